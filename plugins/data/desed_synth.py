"""The embedded DESED-like benchmark: ``sedkit synth desed OUT_DIR``.

Builds a small, fully synthetic stand-in for DESED / DCASE 2019 task 4 so that the dcase2019 recipe
can run without downloading anything, and deterministically for a seed.

How it is made:

1. **Source sounds.** One numpy generator per DESED class draws a new instance of the class on each
   call, with real within-class variation (pitch, duration, timbre, envelope). Five classes are long
   and stationary (Blender, Electric_shaver_toothbrush, Frying, Running_water, Vacuum_cleaner),
   five short and impulsive (Alarm_bell_ringing, Cat, Dishes, Dog, Speech), as in DESED.
2. **Two domains.** The *synthetic* domain is clean: dry sources, its own backgrounds (noise
   colours, mains hum), DESED 2019's SNR range. The *real* domain differs the way recordings differ
   from clean synthesis: other backgrounds, shifted source parameters (lower, slower, duller
   sounds), room reverberation (synthetic RIRs), device colouring (band limits, EQ, soft
   clipping, self noise), other SNRs and levels.
3. **Mixing.** scaper mixes each 10 s soundscape (events placed by this module's seeded planner) and
   reports its strong labels; real-domain mixtures are then "recorded" in numpy. Labels stay valid
   (reverb tails slightly extend events, as in real recordings).
4. **Writing.** DESED 2019 layout, 16 kHz mono 16-bit WAV, tab-separated metadata, hidden true
   labels of weak/unlabeled clips (for pseudo-label quality only) and a dataset card.

Every random draw comes from a numpy Generator seeded by ``SeedSequence([seed, stream, ...])``, so
files are byte-identical for a seed whatever the number of worker processes.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

import sedkit
from sedkit.class_lists import DESED_CLASSES
from sedkit.compat import import_scaper
from sedkit.errors import UserError
from sedkit_plugins.data.desed_distractors import DISTRACTOR_GENERATORS, generate_distractor
from sedkit_plugins.data.synth_common import (
    band,
    build_into,
    check_preset,
    config_for_card,
    fast_len_at_most,
    filter_magnitude,
    message_function,
    rfft_freqs,
    run_jobs,
    seeded_rng,
    tilt,
    unit_rms,
    write_json,
    write_lines,
)

#: Bumped whenever a change alters the generated files for a given seed and preset.
GENERATOR_VERSION = "2.0"

CLASSES: tuple[str, ...] = DESED_CLASSES
#: Stationary classes whose events last seconds; scaper takes an excerpt of their sources.
LONG_CLASSES: frozenset[str] = frozenset(
    {"Blender", "Electric_shaver_toothbrush", "Frying", "Running_water", "Vacuum_cleaner"}
)
BACKGROUND_KINDS: tuple[str, ...] = (
    "white",
    "pink",
    "brown",
    "mains_hum",
    "room_tone",
    "traffic",
    "ventilation",
)

#: Events per class in the real DESED 2019 validation set (1,168 clips, 4,245 events; counted from
#: the ground truth in shared/reference): the real domain's class prior. Speech is 41 % of them.
DESED_VALIDATION_EVENTS: dict[str, int] = {
    "Alarm_bell_ringing": 420,
    "Blender": 95,
    "Cat": 341,
    "Dishes": 563,
    "Dog": 570,
    "Electric_shaver_toothbrush": 65,
    "Frying": 94,
    "Running_water": 237,
    "Speech": 1753,
    "Vacuum_cleaner": 92,
}

Log = Callable[[str], None]


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------
Range = tuple[float, float]


@dataclass(frozen=True)
class RoomConfig:
    """Room reverberation: an exponentially decaying noise RIR with early reflections."""

    rt60_s: Range = (0.2, 0.8)
    #: Direct-to-reverberant energy ratio; lower means farther from the microphone.
    drr_db: Range = (0.0, 12.0)


@dataclass(frozen=True)
class DeviceConfig:
    """The recording device: band limits, a bumpy EQ, soft clipping and self noise."""

    highpass_hz: Range = (80.0, 350.0)
    lowpass_hz: Range = (3500.0, 7500.0)
    eq_peaks: int = 3
    #: Each EQ peak's gain is drawn from [-eq_gain_db, +eq_gain_db].
    eq_gain_db: float = 6.0
    #: tanh drive relative to the clip's peak; 1 is nearly linear.
    drive: Range = (1.0, 3.0)
    self_noise_dbfs: Range = (-72.0, -58.0)


@dataclass(frozen=True)
class DomainConfig:
    """How one domain sounds: its sources, backgrounds, mixing levels and recording chain."""

    name: str
    backgrounds: tuple[str, ...]
    snr_db: Range
    #: scaper's reference loudness (LUFS) of the background.
    ref_db: float = -40.0
    #: Source-parameter shifts, drawn per source file (see :class:`SourceStyle`).
    pitch_shift_semitones: Range = (0.0, 0.0)
    tempo_factor: Range = (1.0, 1.0)
    brightness_octaves: Range = (0.0, 0.0)
    room: RoomConfig | None = None
    device: DeviceConfig | None = None
    #: Final peak level drawn per clip; None keeps scaper's level.
    peak_dbfs: Range | None = None
    #: Class prior of the events (weights in CLASSES order); None draws classes uniformly.
    class_weights: tuple[float, ...] | None = None
    #: Events per clip: None draws uniformly in [min_events, max_events] of the SynthConfig;
    #: a number draws 1 + Poisson(extra_events_mean), at most max_events.
    extra_events_mean: float | None = None
    #: Non-target sounds (unlabeled) mixed into each clip: kinds, Poisson mean per clip, SNR.
    distractors: tuple[str, ...] = ()
    distractors_per_clip: float = 0.0
    distractor_snr_db: Range = (0.0, 15.0)
    #: Labels cover the audible reverberation tail, as an annotator marks it: an event ends when
    #: its tail sinks below the background, rt60 * max(0, SNR - DRR) / 60 after the dry offset.
    label_reverb_tail: bool = False

    def __post_init__(self) -> None:
        unknown = sorted(set(self.backgrounds) - set(BACKGROUND_KINDS))
        if unknown or not self.backgrounds:
            raise ValueError(
                f"domain {self.name!r}: backgrounds must be a non-empty subset of "
                f"{BACKGROUND_KINDS}, got {self.backgrounds}"
            )
        unknown = sorted(set(self.distractors) - set(DISTRACTOR_GENERATORS))
        if unknown:
            raise ValueError(
                f"domain {self.name!r}: unknown distractors {unknown}; choose from "
                f"{sorted(DISTRACTOR_GENERATORS)}"
            )
        if self.class_weights is not None and (
            len(self.class_weights) != len(CLASSES) or min(self.class_weights) < 0
        ):
            raise ValueError(f"domain {self.name!r}: class_weights needs {len(CLASSES)} weights")


SYNTHETIC_DOMAIN = DomainConfig(
    name="synthetic",
    backgrounds=("white", "pink", "mains_hum"),
    snr_db=(6.0, 30.0),  # DESED 2019 synthetic soundscapes
)
REAL_DOMAIN = DomainConfig(
    name="real",
    backgrounds=("brown", "room_tone", "traffic", "ventilation"),
    snr_db=(3.0, 24.0),
    pitch_shift_semitones=(-3.0, 1.0),
    tempo_factor=(0.8, 1.05),
    brightness_octaves=(-0.6, 0.1),
    room=RoomConfig(),
    # Mild on purpose (generator 2.0): the 1.0 band limits (80-350 Hz to 3.5-7.5 kHz) blanked
    # 5-28 of 64 mel bands, information that no adaptation can bring back.
    device=DeviceConfig(highpass_hz=(50.0, 200.0), lowpass_hz=(5500.0, 7800.0), drive=(1.0, 2.0)),
    peak_dbfs=(-24.0, -3.0),
    class_weights=tuple(float(DESED_VALIDATION_EVENTS[c]) for c in CLASSES),
    extra_events_mean=2.0,
    distractors=tuple(DISTRACTOR_GENERATORS),
    distractors_per_clip=1.0,
    label_reverb_tail=True,
)


@dataclass(frozen=True)
class SynthConfig:
    """Sizes and settings of one benchmark build."""

    sample_rate: int = 16000
    clip_duration_s: float = 10.0
    # DESED 2019's proportions (strong synthetic 2,045 : weak 1,578 : unlabeled 14,412 :
    # validation 1,168) scaled by 0.117 to fit the 15-minute budget of the main recipe on 2 CPU
    # cores (docs/benchmarks.md); eval (real domain, reporting only) and eval_synthetic
    # (held-out synthetic clips, for the domain gap) beside them.
    n_synthetic: int = 240
    n_weak: int = 185
    n_unlabeled: int = 1690
    n_validation: int = 150
    n_eval: int = 200
    n_eval_synthetic: int = 80
    #: Foreground events per clip, drawn uniformly (clips meant to be empty excepted) unless the
    #: domain sets extra_events_mean; never more than max_events.
    min_events: int = 1
    max_events: int = 4
    max_events_real: int = 8
    #: Share of clips without any event (DESED's validation set has a few; weak clips have none).
    empty_fraction_unlabeled: float = 0.1
    empty_fraction_validation: float = 0.05
    #: Source files per class in each of the four disjoint source pools (synthetic train,
    #: synthetic eval, real train, real validation): no waveform crosses a train/test line.
    sources_per_class: int = 30
    #: The real training pool feeds weak and unlabeled clips (about 8x the synthetic ones):
    #: more distinct recordings, as in DESED where every real clip is a new recording.
    sources_per_class_real_train: int = 90
    distractors_per_kind: int = 8
    backgrounds_per_kind: int = 6
    synthetic: DomainConfig = SYNTHETIC_DOMAIN
    real: DomainConfig = REAL_DOMAIN
    #: Worker processes; output is identical for any value.
    n_workers: int = 2

    def __post_init__(self) -> None:
        counts = (
            "n_synthetic",
            "n_weak",
            "n_unlabeled",
            "n_validation",
            "n_eval",
            "n_eval_synthetic",
        )
        problems = [f"{name} must be >= 1" for name in counts if getattr(self, name) < 1]
        if self.sample_rate < 8000:
            problems.append("sample_rate must be >= 8000")
        if self.clip_duration_s < 1.0:
            problems.append("clip_duration_s must be >= 1")
        if not 0 <= self.min_events <= self.max_events or self.max_events_real < 1:
            problems.append("need 0 <= min_events <= max_events and max_events_real >= 1")
        for name in ("empty_fraction_unlabeled", "empty_fraction_validation"):
            if not 0.0 <= getattr(self, name) < 1.0:
                problems.append(f"{name} must be in [0, 1)")
        sizes = (
            "sources_per_class",
            "sources_per_class_real_train",
            "distractors_per_kind",
            "backgrounds_per_kind",
            "n_workers",
        )
        problems += [f"{name} must be >= 1" for name in sizes if getattr(self, name) < 1]
        if problems:
            raise ValueError("SynthConfig: " + "; ".join(problems))


PRESETS: dict[str, SynthConfig] = {
    # For tests: a handful of short clips per subset, built in seconds in one process.
    "tiny": SynthConfig(
        clip_duration_s=4.0,
        n_synthetic=6,
        n_weak=6,
        n_unlabeled=6,
        n_validation=6,
        n_eval=4,
        n_eval_synthetic=4,
        max_events=3,
        max_events_real=4,
        sources_per_class=2,
        sources_per_class_real_train=2,
        distractors_per_kind=1,
        backgrounds_per_kind=1,
        n_workers=1,
    ),
    # Sized for a CRNN recipe that trains in ~15 minutes on 2 CPU cores.
    "default": SynthConfig(),
}


# --------------------------------------------------------------------------------------------
# Signal helpers
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SourceStyle:
    """A domain's shift of source parameters, applied on top of each class's own variation."""

    pitch_semitones: float = 0.0
    tempo: float = 1.0
    brightness_octaves: float = 0.0

    def hz(self, f: float | np.ndarray) -> float | np.ndarray:
        """A pitch (fundamental or resonance of the sound body), shifted."""
        return f * 2.0 ** (self.pitch_semitones / 12.0)

    def bright(self, f: float | np.ndarray) -> float | np.ndarray:
        """A spectral-shape frequency (cutoff, formant region), shifted."""
        return f * 2.0**self.brightness_octaves

    def dur(self, seconds: float) -> float:
        """A duration of a temporal pattern (beep, syllable, gap), stretched."""
        return seconds / self.tempo


def _resonances(f: np.ndarray, formants: Sequence[tuple[object, float]]) -> np.ndarray:
    """Sum of resonance peaks ``(centre_hz, bandwidth_hz)``; centres may be per-sample arrays.

    Each peak is a second-order resonator's power response, so it falls off fast enough away from
    its centre for formants to shape a harmonic spectrum audibly."""
    return sum(1.0 / (1.0 + ((f - centre) / (0.5 * bw)) ** 2) for centre, bw in formants)


def _shaped_noise(rng: np.random.Generator, n: int, sr: int, magnitude: np.ndarray) -> np.ndarray:
    """White noise filtered by a magnitude response on the rfft grid, unit RMS."""
    return unit_rms(filter_magnitude(rng.standard_normal(n), magnitude))


def _smooth_walk(rng: np.random.Generator, n: int, sr: int, rate_hz: float) -> np.ndarray:
    """A slow random fluctuation with unit standard deviation (load changes, gusts)."""
    return _shaped_noise(rng, n, sr, (rfft_freqs(n, sr) < rate_hz).astype(float))


def _envelope(n: int, sr: int, attack_s: float, release_s: float) -> np.ndarray:
    """Raised-cosine attack and release."""
    env = np.ones(n)
    a = int(np.clip(attack_s * sr, 1, n // 2))
    r = int(np.clip(release_s * sr, 1, n // 2))
    env[:a] = np.sin(np.linspace(0.0, np.pi / 2, a)) ** 2
    env[n - r :] *= np.cos(np.linspace(0.0, np.pi / 2, r)) ** 2
    return env


def _harmonic_tone(
    rng: np.random.Generator,
    f0: np.ndarray,
    sr: int,
    gain: Callable[[int, np.ndarray], np.ndarray | float],
    n_harmonics: int,
) -> np.ndarray:
    """Additive harmonic synthesis on a per-sample f0 track; ``gain(k, f_k)`` shapes the timbre.

    Harmonic k is Im(z^k e^{i psi_k}) with z = e^{i phase}: one complex multiply per sample and
    harmonic instead of a sine (4x faster; the recurrence's rounding error stays near 1e-14)."""
    z = np.exp(1j * (2.0 * np.pi * np.cumsum(f0) / sr))
    zk = np.ones_like(z)
    out = np.zeros(len(f0))
    top = 0.47 * sr
    for k in range(1, n_harmonics + 1):
        zk *= z
        fk = k * f0
        audible = fk < top
        if not audible.any():
            break
        tone = (zk * np.exp(1j * rng.uniform(0, 2 * np.pi))).imag
        out += np.where(audible, gain(k, fk), 0.0) * tone
    return out


def _sequence(parts: Sequence[np.ndarray], gaps_s: Sequence[float], sr: int) -> np.ndarray:
    """Concatenate sound parts with silent gaps between them."""
    pieces: list[np.ndarray] = []
    for i, part in enumerate(parts):
        if i:
            pieces.append(np.zeros(int(gaps_s[i - 1] * sr)))
        pieces.append(part)
    return np.concatenate(pieces)


def _long_length(rng: np.random.Generator, sr: int, max_duration_s: float) -> int:
    """Length of a stationary source: a good part of the clip, at least one second."""
    return fast_len_at_most(int(sr * max(1.0, rng.uniform(0.35, 1.0) * max_duration_s)))


# --------------------------------------------------------------------------------------------
# Class sound generators: (rng, style, sample rate, max duration) -> waveform
# --------------------------------------------------------------------------------------------
def alarm_bell_ringing(
    rng: np.random.Generator, style: SourceStyle, sr: int, max_duration_s: float
) -> np.ndarray:
    """An electronic beeper (square-ish tone bursts, sometimes two-tone) or an electric bell
    (inharmonic partials struck 14-26 times a second)."""
    if rng.random() < 0.6:
        f0 = style.hz(rng.uniform(700.0, 2800.0))
        ratio = rng.uniform(1.15, 1.5) if rng.random() < 0.3 else 1.0
        beep_s, gap_s = style.dur(rng.uniform(0.08, 0.45)), style.dur(rng.uniform(0.05, 0.35))
        odd_rolloff = rng.uniform(0.8, 2.0)  # sine-like to square-like timbre
        m = int(beep_s * sr)
        beeps = [
            _harmonic_tone(
                rng,
                np.full(m, f0 * (ratio if i % 2 else 1.0)),
                sr,
                lambda k, fk: (k % 2) / k**odd_rolloff,
                9,
            )
            * _envelope(m, sr, 0.004, 0.01)
            for i in range(int(rng.integers(2, 9)))
        ]
        return _sequence(beeps, [gap_s] * len(beeps), sr)
    n = int(sr * min(max_duration_s, style.dur(rng.uniform(0.8, 3.5))))
    t = np.arange(n) / sr
    partials = style.hz(rng.uniform(500.0, 1600.0)) * np.array([1.0, 2.32, 4.25, 6.63])
    partials *= 1.0 + rng.uniform(-0.03, 0.03, partials.size)
    amps = rng.uniform(0.3, 1.0, partials.size)
    ring = sum(
        a * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
        for a, f in zip(amps, partials, strict=True)
        if f < 0.47 * sr
    )
    strike_phase = (t * rng.uniform(14.0, 26.0) * style.tempo) % 1.0
    strikes = np.exp(-strike_phase / rng.uniform(0.2, 0.6))
    return ring * strikes * _envelope(n, sr, 0.005, 0.08)


def blender(
    rng: np.random.Generator, style: SourceStyle, sr: int, max_duration_s: float
) -> np.ndarray:
    """A loaded motor: harmonic whine whose speed wanders with the load, plus blade-chopped
    broadband noise."""
    n = _long_length(rng, sr, max_duration_s)
    f0 = style.hz(rng.uniform(140.0, 380.0)) * (
        1.0 + rng.uniform(0.02, 0.08) * _smooth_walk(rng, n, sr, rng.uniform(0.5, 3.0))
    )
    rolloff, body_hz = rng.uniform(0.6, 1.2), style.bright(rng.uniform(800.0, 2500.0))
    motor = _harmonic_tone(
        rng,
        f0,
        sr,
        lambda k, fk: k**-rolloff * (0.3 + _resonances(fk, [(body_hz, 0.6 * body_hz)])),
        40,
    )
    chop_rate = 2 * np.pi * np.cumsum(f0 / rng.integers(2, 5)) / sr
    chop = _shaped_noise(rng, n, sr, band(rfft_freqs(n, sr), 300.0, style.bright(5000.0)))
    chop *= 1.0 + rng.uniform(0.3, 0.9) * np.sin(chop_rate)
    mix = motor / (np.std(motor) + 1e-12) + rng.uniform(0.3, 1.0) * chop
    return mix * _envelope(n, sr, 0.15, 0.2)


def cat(rng: np.random.Generator, style: SourceStyle, sr: int, max_duration_s: float) -> np.ndarray:
    """One or two meows: a rising-falling harmonic voice through gliding "mee-ow" formants."""
    meows = []
    for _ in range(int(rng.integers(1, 3))):
        m = int(sr * style.dur(rng.uniform(0.35, 1.2)))
        t = np.linspace(0.0, 1.0, m)
        peak_at, rise = rng.uniform(0.25, 0.6), rng.uniform(0.15, 0.6)
        f0 = style.hz(rng.uniform(380.0, 800.0)) * (
            1.0 + rise * np.exp(-0.5 * ((t - peak_at) / 0.25) ** 2)
        )
        f0 *= 1.0 + 0.015 * np.sin(2 * np.pi * rng.uniform(4.0, 8.0) * t * m / sr)
        scale = style.bright(rng.uniform(0.85, 1.2))
        f1 = scale * np.interp(t, [0.0, 0.5, 1.0], [500.0, 950.0, 600.0])
        f2 = scale * np.interp(t, [0.0, 0.5, 1.0], [2200.0, 1500.0, 900.0])
        voice = _harmonic_tone(
            rng,
            f0,
            sr,
            lambda k, fk, f1=f1, f2=f2, s=scale: (
                k**-0.3 * _resonances(fk, [(f1, 250.0), (f2, 400.0), (3000.0 * s, 700.0)])
            ),
            20,
        )
        breath = 0.05 * _shaped_noise(rng, m, sr, band(rfft_freqs(m, sr), 1000.0, 6000.0))
        meows.append((voice / (np.std(voice) + 1e-12) + breath) * _envelope(m, sr, 0.04, 0.15))
    return _sequence(meows, [rng.uniform(0.2, 0.7)], sr)


def dishes(
    rng: np.random.Generator, style: SourceStyle, sr: int, max_duration_s: float
) -> np.ndarray:
    """Clinks of crockery and cutlery: struck inharmonic high modes with short decays."""
    clinks = []
    for _ in range(int(rng.integers(1, 6))):
        n_modes = int(rng.integers(3, 7))
        modes = np.minimum(style.hz(rng.uniform(1500.0, 7000.0, n_modes)), 0.45 * sr)
        decays = rng.uniform(0.01, 0.12, n_modes)
        m = int(sr * min(0.5, 4.0 * decays.max()))
        t = np.arange(m) / sr
        ring = sum(
            rng.uniform(0.2, 1.0) * np.exp(-t / d) * np.sin(2 * np.pi * f * t + rng.uniform(0, 6))
            for f, d in zip(modes, decays, strict=True)
        )
        knock = np.exp(-t / 0.002) * _shaped_noise(
            rng, m, sr, band(rfft_freqs(m, sr), 2000.0, 7800.0)
        )
        clinks.append((ring + rng.uniform(0.1, 0.5) * knock) * _envelope(m, sr, 0.0005, 0.01))
    gaps = style.dur(1.0) * rng.uniform(0.05, 0.35, len(clinks))
    return _sequence(clinks, gaps, sr)


def dog(rng: np.random.Generator, style: SourceStyle, sr: int, max_duration_s: float) -> np.ndarray:
    """A few barks: short rough harmonic bursts with a falling pitch and broad formants; the dog's
    size sets pitch and formants together."""
    size = rng.uniform(0.0, 1.0)
    base_f0 = style.hz(620.0 - 380.0 * size) * rng.uniform(0.9, 1.1)
    f1 = style.bright((950.0 - 400.0 * size) * rng.uniform(0.9, 1.1))
    f2 = style.bright(rng.uniform(1300.0, 2100.0))
    barks = []
    for _ in range(int(rng.integers(1, 5))):
        m = int(sr * style.dur(rng.uniform(0.1, 0.3)))
        t = np.linspace(0.0, 1.0, m)
        f0 = base_f0 * (0.7 + 0.6 * np.exp(-t / 0.3)) * (1.0 + 0.04 * rng.standard_normal(m))
        voice = _harmonic_tone(
            rng,
            f0,
            sr,
            lambda k, fk: k**-0.5 * _resonances(fk, [(f1, 400.0), (f2, 600.0)]),
            25,
        )
        rough = _shaped_noise(rng, m, sr, band(rfft_freqs(m, sr), 400.0, 4000.0))
        env = _envelope(m, sr, 0.008, 0.02) * np.exp(-t * rng.uniform(1.0, 3.0))
        barks.append((voice / (np.std(voice) + 1e-12) + rng.uniform(0.2, 0.6) * rough) * env)
    gaps = style.dur(1.0) * rng.uniform(0.1, 0.5, len(barks))
    return _sequence(barks, gaps, sr)


def electric_shaver_toothbrush(
    rng: np.random.Generator, style: SourceStyle, sr: int, max_duration_s: float
) -> np.ndarray:
    """A buzz: a pulse-like tone rich in harmonics with a resonant body; toothbrushes add the
    2-4 Hz amplitude swing of brushing strokes."""
    n = _long_length(rng, sr, max_duration_s)
    f0 = style.hz(rng.uniform(90.0, 260.0)) * (1.0 + 0.01 * _smooth_walk(rng, n, sr, 2.0))
    rolloff = rng.uniform(0.2, 0.6)
    body = (style.bright(rng.uniform(1500.0, 4500.0)), rng.uniform(800.0, 2000.0))
    buzz = _harmonic_tone(
        rng, f0, sr, lambda k, fk: k**-rolloff * (0.2 + _resonances(fk, [body])), 60
    )
    t = np.arange(n) / sr
    depth = rng.uniform(0.3, 0.7) if rng.random() < 0.5 else rng.uniform(0.0, 0.08)
    strokes = 1.0 - depth * (
        0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(1.5, 4.0) * style.tempo * t)
    )
    return buzz * strokes * _envelope(n, sr, 0.05, 0.1)


def frying(
    rng: np.random.Generator, style: SourceStyle, sr: int, max_duration_s: float
) -> np.ndarray:
    """Hot oil: a high hiss under dense random crackles and occasional louder pops."""
    n = _long_length(rng, sr, max_duration_s)
    f = rfft_freqs(n, sr)
    hiss = _shaped_noise(rng, n, sr, band(f, style.bright(rng.uniform(1500.0, 3500.0)), 7800.0))
    crackles = np.zeros(n)
    n_crackles = rng.poisson(rng.uniform(80.0, 500.0) * n / sr)
    crackles[rng.integers(0, n, n_crackles)] = rng.lognormal(0.0, 0.7, n_crackles) * rng.choice(
        [-1.0, 1.0], n_crackles
    )
    crackles = filter_magnitude(
        crackles, band(f, style.bright(rng.uniform(1000.0, 2500.0)), 7800.0)
    )
    pops = np.zeros(n)
    for start in rng.integers(0, n, rng.poisson(rng.uniform(2.0, 10.0) * n / sr)):
        m = min(n - start, int(0.03 * sr))
        t = np.arange(m) / sr
        pop_hz = style.hz(rng.uniform(500.0, 2000.0))
        pops[start : start + m] += (
            rng.uniform(2.0, 6.0) * np.exp(-t / 0.006) * np.sin(2 * np.pi * pop_hz * t)
        )
    mix = rng.uniform(0.1, 0.4) * hiss + crackles / (np.std(crackles) + 1e-12) + pops
    return mix * (1.0 + 0.2 * _smooth_walk(rng, n, sr, 0.5)) * _envelope(n, sr, 0.1, 0.2)


def running_water(
    rng: np.random.Generator, style: SourceStyle, sr: int, max_duration_s: float
) -> np.ndarray:
    """A tap or stream: fluctuating flow noise plus many small bubbles (rising damped chirps)."""
    n = _long_length(rng, sr, max_duration_s)
    f = rfft_freqs(n, sr)
    low, high = style.bright(rng.uniform(150.0, 400.0)), style.bright(rng.uniform(3000.0, 7000.0))
    flow = _shaped_noise(rng, n, sr, band(f, low, high) * tilt(f, -0.3))
    flow *= 1.0 + 0.3 * np.tanh(_smooth_walk(rng, n, sr, rng.uniform(1.0, 6.0)))
    bubbles = np.zeros(n)
    for start in rng.integers(0, n, rng.poisson(rng.uniform(40.0, 250.0) * style.tempo * n / sr)):
        decay = rng.uniform(0.004, 0.025)
        m = min(n - start, int(5 * decay * sr))
        t = np.arange(m) / sr
        f_start = style.hz(np.exp(rng.uniform(np.log(500.0), np.log(3000.0))))
        chirp = f_start * (1.0 + rng.uniform(0.1, 0.5) * t / decay)
        bubbles[start : start + m] += (
            rng.lognormal(0.0, 0.5) * np.exp(-t / decay) * np.sin(2 * np.pi * np.cumsum(chirp) / sr)
        )
    mix = rng.uniform(0.3, 1.0) * flow + bubbles / (np.std(bubbles) + 1e-12)
    return mix * _envelope(n, sr, 0.1, 0.2)


_VOWEL_FORMANTS_HZ = np.array(
    [
        (730, 1090, 2440),  # a
        (270, 2290, 3010),  # i
        (300, 870, 2240),  # u
        (530, 1840, 2480),  # e
        (570, 840, 2410),  # o
        (660, 1720, 2410),  # ae
        (440, 1020, 2240),  # schwa-like
    ],
    dtype=float,
)


def speech(
    rng: np.random.Generator, style: SourceStyle, sr: int, max_duration_s: float
) -> np.ndarray:
    """A phrase of syllables: voiced vowels through three formants gliding between vowel targets,
    fricative or plosive onsets, intonation falling over the phrase, occasional pauses."""
    f0_speaker = style.hz(rng.uniform(85.0, 250.0))
    tract = style.bright(rng.uniform(0.9, 1.2))  # shorter vocal tract, higher formants
    syllable_rate = rng.uniform(3.5, 6.5) * style.tempo
    n_syllables = int(rng.integers(3, 15))
    previous = _VOWEL_FORMANTS_HZ[rng.integers(len(_VOWEL_FORMANTS_HZ))] * tract
    parts, gaps = [], []
    for i in range(n_syllables):
        target = _VOWEL_FORMANTS_HZ[rng.integers(len(_VOWEL_FORMANTS_HZ))] * tract
        m = int(sr * rng.uniform(0.6, 1.4) / syllable_rate)
        t = np.linspace(0.0, 1.0, m)
        glide = np.minimum(t / 0.4, 1.0)[:, None]
        formants = previous + (target - previous) * glide  # [m, 3]
        declination = 1.15 - 0.3 * (i / max(1, n_syllables - 1))
        accent = 1.0 + rng.uniform(0.0, 0.15) * np.sin(np.pi * t)
        f0 = f0_speaker * declination * accent
        vowel = _harmonic_tone(
            rng,
            f0,
            sr,
            lambda k, fk, fm=formants: (
                k**-1.0 * _resonances(fk, [(fm[:, 0], 90.0), (fm[:, 1], 120.0), (fm[:, 2], 180.0)])
            ),
            40,
        )
        vowel = vowel / (np.std(vowel) + 1e-12) * _envelope(m, sr, 0.02, 0.03)
        onset = rng.random()
        if onset < 0.35:  # fricative: s, sh, f
            c = int(sr * rng.uniform(0.04, 0.1))
            centre = style.bright(rng.uniform(2500.0, 6500.0))
            noise = _shaped_noise(rng, c, sr, band(rfft_freqs(c, sr), 0.6 * centre, 1.3 * centre))
            vowel = np.concatenate([0.4 * noise * _envelope(c, sr, 0.01, 0.01), vowel])
        elif onset < 0.6:  # plosive: p, t, k
            c = int(sr * rng.uniform(0.01, 0.025))
            burst = _shaped_noise(rng, c, sr, band(rfft_freqs(c, sr), 500.0, 6000.0))
            vowel = np.concatenate([0.6 * burst * np.exp(-np.arange(c) / (0.004 * sr)), vowel])
        parts.append(vowel)
        gaps.append(rng.uniform(0.12, 0.35) if rng.random() < 0.15 else rng.uniform(0.0, 0.03))
        previous = target
    return _sequence(parts, gaps, sr)


def vacuum_cleaner(
    rng: np.random.Generator, style: SourceStyle, sr: int, max_duration_s: float
) -> np.ndarray:
    """Loud broadband air noise with a resonant hump, a high turbine whine and motor rumble."""
    n = _long_length(rng, sr, max_duration_s)
    f = rfft_freqs(n, sr)
    hump_hz = style.bright(rng.uniform(800.0, 3000.0))
    air = _shaped_noise(
        rng, n, sr, band(f, 100.0, 7500.0) * (0.3 + _resonances(f, [(hump_hz, hump_hz)]))
    )
    whine_f0 = style.hz(rng.uniform(500.0, 1500.0)) * (1.0 + 0.005 * _smooth_walk(rng, n, sr, 1.0))
    rolloff = rng.uniform(0.5, 1.5)
    whine = _harmonic_tone(rng, whine_f0, sr, lambda k, fk: k**-rolloff, 3)
    rumble = _shaped_noise(rng, n, sr, band(f, 40.0, 150.0))
    mix = (
        air
        + rng.uniform(0.1, 0.6) * whine / (np.std(whine) + 1e-12)
        + rng.uniform(0.2, 0.6) * rumble
    )
    return mix * _envelope(n, sr, rng.uniform(0.1, 0.5), 0.2)


SOURCE_GENERATORS: dict[str, Callable[..., np.ndarray]] = {
    "Alarm_bell_ringing": alarm_bell_ringing,
    "Blender": blender,
    "Cat": cat,
    "Dishes": dishes,
    "Dog": dog,
    "Electric_shaver_toothbrush": electric_shaver_toothbrush,
    "Frying": frying,
    "Running_water": running_water,
    "Speech": speech,
    "Vacuum_cleaner": vacuum_cleaner,
}


def generate_source(
    label: str, rng: np.random.Generator, style: SourceStyle, sr: int, max_duration_s: float
) -> np.ndarray:
    """One instance of class ``label``: at most ``max_duration_s`` long, peak 0.5, float32."""
    x = SOURCE_GENERATORS[label](rng, style, sr, max_duration_s)
    max_samples = int(max_duration_s * sr)
    if len(x) > max_samples:
        x = x[:max_samples] * _envelope(max_samples, sr, 0.0, 0.05)
    return (0.5 * x / (np.max(np.abs(x)) + 1e-12)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Backgrounds
# --------------------------------------------------------------------------------------------
def generate_background(
    kind: str, rng: np.random.Generator, sr: int, duration_s: float
) -> np.ndarray:
    """A stationary background of ``kind`` (see :data:`BACKGROUND_KINDS`), peak 0.5, float32."""
    n = int(duration_s * sr)
    f = rfft_freqs(n, sr)
    t = np.arange(n) / sr
    audible = band(f, 20.0, 0.47 * sr, order=4)

    def hum(mains_hz: float, n_harmonics: int) -> np.ndarray:
        amps = rng.uniform(0.2, 1.0, n_harmonics) / np.arange(1, n_harmonics + 1)
        return sum(
            a * np.sin(2 * np.pi * mains_hz * (k + 1) * t + rng.uniform(0, 6))
            for k, a in enumerate(amps)
        )

    if kind in ("white", "pink", "brown"):
        exponent = {"white": 0.0, "pink": -0.5, "brown": -1.0}[kind] + rng.uniform(-0.15, 0.15)
        x = _shaped_noise(rng, n, sr, audible * tilt(f, exponent))
    elif kind == "mains_hum":
        x = hum(rng.choice([50.0, 60.0]), 6) + rng.uniform(0.05, 0.3) * _shaped_noise(
            rng, n, sr, audible * tilt(f, -0.5)
        )
    elif kind == "room_tone":
        x = _shaped_noise(rng, n, sr, audible * tilt(f, -0.5) * band(f, 30.0, 2000.0))
        x *= 1.0 + 0.2 * _smooth_walk(rng, n, sr, 0.2)
        x += rng.uniform(0.0, 0.2) * hum(rng.choice([50.0, 60.0]), 3)
    elif kind == "traffic":
        x = _shaped_noise(rng, n, sr, audible * tilt(f, -1.0) * band(f, 25.0, 600.0))
        passes = np.ones(n)
        for centre in rng.uniform(0.0, duration_s, rng.integers(1, 4)):
            passes += rng.uniform(1.0, 4.0) * np.exp(-0.5 * ((t - centre) / rng.uniform(1, 3)) ** 2)
        x *= passes
    elif kind == "ventilation":
        x = _shaped_noise(rng, n, sr, audible * band(f, 150.0, 1500.0))
        x += rng.uniform(0.1, 0.5) * hum(rng.uniform(80.0, 200.0), 4)  # fan blade pass
    else:
        raise ValueError(f"unknown background kind {kind!r}; choose from {BACKGROUND_KINDS}")
    return (0.5 * x / (np.max(np.abs(x)) + 1e-12)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Domain shift: the "recording" of real-domain mixtures
# --------------------------------------------------------------------------------------------
def room_impulse_response(
    rng: np.random.Generator, sr: int, rt60_s: float, drr_db: float
) -> np.ndarray:
    """A synthetic RIR: unit direct path, a few early reflections (2-30 ms) and a noise tail
    decaying by 60 dB in ``rt60_s``, scaled to the direct-to-reverberant ratio ``drr_db``."""
    n = int(1.2 * rt60_s * sr) + 1
    t = np.arange(n) / sr
    reverb = rng.standard_normal(n) * np.exp(-3.0 * np.log(10.0) * t / rt60_s)
    reverb[: int(0.002 * sr)] = 0.0
    for delay in rng.uniform(0.002, 0.03, 8):
        reverb[int(delay * sr)] += rng.uniform(0.2, 0.7) * rng.choice([-1.0, 1.0])
    reverb *= np.sqrt(10.0 ** (-drr_db / 10.0) / np.sum(reverb**2))
    reverb[0] = 1.0  # direct path at lag 0: labels keep their timing
    return reverb


def device_response(rng: np.random.Generator, f: np.ndarray, device: DeviceConfig) -> np.ndarray:
    """A device's magnitude response on frequencies ``f``: band limits and random EQ peaks."""
    response = band(f, rng.uniform(*device.highpass_hz), rng.uniform(*device.lowpass_hz))
    for _ in range(device.eq_peaks):
        centre = np.exp(rng.uniform(np.log(200.0), np.log(6000.0)))
        gain = 10.0 ** (rng.uniform(-device.eq_gain_db, device.eq_gain_db) / 20.0)
        width_oct = rng.uniform(0.3, 1.5)
        bump = np.exp(-0.5 * (np.log2(np.maximum(f, 1.0) / centre) / width_oct) ** 2)
        response *= 1.0 + (gain - 1.0) * bump
    return response


def record(
    x: np.ndarray,
    rng: np.random.Generator,
    sr: int,
    domain: DomainConfig,
    room: tuple[float, float] | None = None,
) -> np.ndarray:
    """Pass a dry mixture through the domain's room, device and level: the domain shift.

    ``room``: the (rt60 s, DRR dB) drawn for the clip when its labels depend on them; None draws
    them here from ``rng``. Room and device filter are both linear: one FFT applies them together
    (the reverberation tail past the clip end is dropped)."""
    n = len(x)
    rir = None
    if domain.room is not None:
        if room is None:
            room = (rng.uniform(*domain.room.rt60_s), rng.uniform(*domain.room.drr_db))
        rir = room_impulse_response(rng, sr, *room)
    device = domain.device
    if rir is not None or device is not None:
        size = 1 << int(np.ceil(np.log2(n + (len(rir) - 1 if rir is not None else 0))))
        spectrum = np.fft.rfft(x, size)
        if rir is not None:
            spectrum *= np.fft.rfft(rir, size)
        if device is not None:
            spectrum *= device_response(rng, rfft_freqs(size, sr), device)
        x = np.fft.irfft(spectrum, size)[:n]
    if device is not None:
        peak = np.max(np.abs(x)) + 1e-12
        drive = rng.uniform(*device.drive)
        x = peak * np.tanh(drive * x / peak) / np.tanh(drive)
        x = x / (np.max(np.abs(x)) + 1e-12)
        x = x + 10.0 ** (rng.uniform(*device.self_noise_dbfs) / 20.0) * rng.standard_normal(n)
    if domain.peak_dbfs is not None:
        x = x * 10.0 ** (rng.uniform(*domain.peak_dbfs) / 20.0) / (np.max(np.abs(x)) + 1e-12)
    return x


# --------------------------------------------------------------------------------------------
# Plans and workers
# --------------------------------------------------------------------------------------------
# Seed streams: every random draw is keyed by (seed, stream, ...) so that it depends on nothing
# else (not on the number of workers, nor on the order in which work finishes).
_STREAM_SOURCE, _STREAM_BACKGROUND, _STREAM_PLAN, _STREAM_RECORD, _STREAM_EMPTY = range(5)
_STREAM_DISTRACTOR = 5

#: Disjoint source pools: (name, domain attribute of SynthConfig).
_POOLS: tuple[tuple[str, str], ...] = (
    ("synthetic_train", "synthetic"),
    ("synthetic_eval", "synthetic"),
    ("real_train", "real"),
    ("real_validation", "real"),
    ("real_eval", "real"),
)


@dataclass(frozen=True)
class _Subset:
    name: str
    audio_dir: str
    prefix: str
    pool: str
    count_field: str
    empty_field: str | None
    labels: str  # what a training recipe may see: "strong", "weak" or "none"


_SUBSETS: tuple[_Subset, ...] = (
    _Subset(
        "synthetic",
        "audio/train/synthetic",
        "synth",
        "synthetic_train",
        "n_synthetic",
        None,
        "strong",
    ),
    _Subset("weak", "audio/train/weak", "weak", "real_train", "n_weak", None, "weak"),
    _Subset(
        "unlabel_in_domain",
        "audio/train/unlabel_in_domain",
        "unlabel",
        "real_train",
        "n_unlabeled",
        "empty_fraction_unlabeled",
        "none",
    ),
    _Subset(
        "validation",
        "audio/validation",
        "val",
        "real_validation",
        "n_validation",
        "empty_fraction_validation",
        "strong",
    ),
    _Subset(
        "eval",
        "audio/eval/public",
        "eval",
        "real_eval",
        "n_eval",
        "empty_fraction_validation",
        "strong",
    ),
    _Subset(
        "eval_synthetic",
        "audio/eval/synthetic",
        "eval_synth",
        "synthetic_eval",
        "n_eval_synthetic",
        None,
        "strong",
    ),
)


@dataclass(frozen=True)
class _SourceJob:
    path: Path
    label: str  # class name, or background kind
    domain: DomainConfig
    words: tuple[int, ...]
    seed: int
    sr: int
    max_duration_s: float


def _make_source(job: _SourceJob) -> float:
    """Write one foreground or background source file; returns its duration in seconds."""
    rng = seeded_rng(job.seed, *job.words)
    if job.label in DISTRACTOR_GENERATORS:
        x = generate_distractor(job.label, rng, job.sr, job.max_duration_s)
    elif job.label in SOURCE_GENERATORS:
        d = job.domain
        style = SourceStyle(
            pitch_semitones=rng.uniform(*d.pitch_shift_semitones),
            tempo=rng.uniform(*d.tempo_factor),
            brightness_octaves=rng.uniform(*d.brightness_octaves),
        )
        x = generate_source(job.label, rng, style, job.sr, job.max_duration_s)
    else:
        x = generate_background(job.label, rng, job.sr, job.max_duration_s)
    job.path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(job.path, x, job.sr, subtype="FLOAT")
    return len(x) / job.sr


@dataclass(frozen=True)
class _EventPlan:
    label: str
    source_file: str
    source_time: float
    event_time: float
    event_duration: float
    snr_db: float


@dataclass(frozen=True)
class _ClipPlan:
    out_path: Path
    fg_dir: Path
    bg_dir: Path
    background: tuple[str, str, float]  # kind, file, source_time
    events: tuple[_EventPlan, ...]
    domain: DomainConfig
    sr: int
    duration_s: float
    seed: int
    words: tuple[int, int]  # (subset index, clip index)
    scaper_seed: int
    room: tuple[float, float] | None = None  # (rt60 s, DRR dB) of a real-domain clip


def _floor_ms(seconds: float) -> float:
    return float(np.floor(seconds * 1000.0) / 1000.0)


def _plan_clip(
    rng: np.random.Generator,
    cfg: SynthConfig,
    domain: DomainConfig,
    sources: dict[str, list[tuple[str, float]]],
    backgrounds: dict[str, list[tuple[str, float]]],
    empty: bool,
) -> tuple[tuple[str, str, float], list[_EventPlan], tuple[float, float] | None]:
    """Draw a background, the events (target classes, then non-target distractors) and the
    room of one clip. Events of one class never overlap."""
    clip_s = cfg.clip_duration_s
    kind = domain.backgrounds[rng.integers(len(domain.backgrounds))]
    bg_file, bg_s = backgrounds[kind][rng.integers(len(backgrounds[kind]))]
    # A multiple of 1/16 s is exact in binary, so scaper's int(start * sr) and int(stop * sr)
    # differ by exactly the clip length (an off-by-one there breaks its mixing).
    bg_time = np.floor(rng.uniform(0.0, max(0.0, bg_s - clip_s)) * 16.0) / 16.0
    background = (kind, bg_file, float(bg_time))
    events: list[_EventPlan] = []
    if empty:
        n_events = 0
    elif domain.extra_events_mean is None:
        n_events = int(rng.integers(max(1, cfg.min_events), cfg.max_events + 1))
    else:
        n_events = int(min(cfg.max_events_real, 1 + rng.poisson(domain.extra_events_mean)))
    if domain.class_weights is None:
        prior = np.full(len(CLASSES), 1.0 / len(CLASSES))
    else:
        prior = np.asarray(domain.class_weights) / np.sum(domain.class_weights)
    labels = [CLASSES[i] for i in rng.choice(len(CLASSES), size=n_events, p=prior)]
    n_distractors = int(rng.poisson(domain.distractors_per_clip)) if domain.distractors else 0
    labels += [
        domain.distractors[i] for i in rng.integers(len(domain.distractors), size=n_distractors)
    ]
    for label in labels:
        source_file, source_s = sources[label][rng.integers(len(sources[label]))]
        duration = source_s * rng.uniform(0.4, 1.0) if label in LONG_CLASSES else source_s
        duration = _floor_ms(min(duration, clip_s - 0.01, source_s))
        source_time = _floor_ms(rng.uniform(0.0, source_s - duration))
        same_class = [
            (e.event_time, e.event_time + e.event_duration) for e in events if e.label == label
        ]
        snr_range = domain.snr_db if label in CLASSES else domain.distractor_snr_db
        for _attempt in range(10):
            onset = _floor_ms(rng.uniform(0.0, clip_s - duration - 0.002))
            if all(onset + duration <= a or onset >= b for a, b in same_class):
                snr = float(rng.uniform(*snr_range))
                events.append(_EventPlan(label, source_file, source_time, onset, duration, snr))
                break
    room = None
    if domain.room is not None:
        room = (float(rng.uniform(*domain.room.rt60_s)), float(rng.uniform(*domain.room.drr_db)))
    return background, events, room


def labeled_events(
    plan_events: Sequence[_EventPlan],
    annotation: Sequence[tuple[float, float, str]],
    domain: DomainConfig,
    room: tuple[float, float] | None,
    clip_s: float,
) -> list[tuple[float, float, str]]:
    """The clip's strong labels from scaper's annotation: target classes only (distractors are
    unlabeled), each offset extended by the audible reverberation tail when the domain says so
    (``label_reverb_tail``), and same-class events that then touch merged, as an annotator would
    mark one longer event. Check: rt60 0.6 s, DRR 4 dB, SNR 14 dB -> +0.1 s."""
    snr = {(round(e.event_time, 3), e.label): e.snr_db for e in plan_events}
    events = []
    for onset, offset, label in annotation:
        if label not in CLASSES:
            continue
        if domain.label_reverb_tail and room is not None:
            rt60, drr = room
            tail = rt60 * max(0.0, snr.get((round(onset, 3), label), 0.0) - drr) / 60.0
            offset = min(clip_s, offset + tail)
        events.append((round(float(onset), 3), round(float(offset), 3), str(label)))
    merged: list[tuple[float, float, str]] = []
    for onset, offset, label in sorted(events, key=lambda e: (e[2], e[0])):
        if merged and merged[-1][2] == label and onset <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], offset), label)
        else:
            merged.append((onset, offset, label))
    return sorted(merged)


def _render_clip(plan: _ClipPlan) -> list[tuple[float, float, str]]:
    """Mix one clip with scaper, record it in the real domain, write it; returns its events."""
    scaper = import_scaper()
    sc = scaper.Scaper(
        plan.duration_s, str(plan.fg_dir), str(plan.bg_dir), random_state=plan.scaper_seed
    )
    sc.sr, sc.n_channels, sc.ref_db = plan.sr, 1, plan.domain.ref_db
    kind, bg_file, bg_time = plan.background
    sc.add_background(
        label=("const", kind), source_file=("const", bg_file), source_time=("const", bg_time)
    )
    for e in plan.events:
        sc.add_event(
            label=("const", e.label),
            source_file=("const", e.source_file),
            source_time=("const", e.source_time),
            event_time=("const", e.event_time),
            event_duration=("const", e.event_duration),
            snr=("const", e.snr_db),
            pitch_shift=None,
            time_stretch=None,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # clipping fixes and the like: expected, not actionable
        audio, _jams, annotation, _events = sc.generate(
            fix_clipping=True, disable_instantiation_warnings=True
        )
    x = np.asarray(audio, dtype=np.float64)[:, 0]
    rng = seeded_rng(plan.seed, _STREAM_RECORD, *plan.words)
    x = record(x, rng, plan.sr, plan.domain, plan.room)
    _write_pcm16(plan.out_path, x, plan.sr)
    return labeled_events(plan.events, annotation, plan.domain, plan.room, plan.duration_s)


def _write_pcm16(path: Path, x: np.ndarray, sr: int) -> None:
    """16-bit PCM WAV; quantised here (clipped, rounded) so the bytes never depend on libsndfile's
    float conversion."""
    pcm = np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2")
    sf.write(path, pcm, sr, subtype="PCM_16")


# --------------------------------------------------------------------------------------------
# Writer
# --------------------------------------------------------------------------------------------
def _strong_rows(clips: list[tuple[str, list[tuple[float, float, str]]]]) -> list[str]:
    """DESED strong rows; a clip without events is a row with empty onset, offset and label."""
    rows = ["filename\tonset\toffset\tevent_label"]
    for name, events in clips:
        rows += [f"{name}\t{on:.3f}\t{off:.3f}\t{label}" for on, off, label in events] or [
            f"{name}\t\t\t"
        ]
    return rows


def _write_metadata(
    root: Path, cfg: SynthConfig, clips: dict[str, list[tuple[str, list[tuple[float, float, str]]]]]
) -> None:
    def durations(name: str) -> list[str]:
        return ["filename\tduration"] + [
            f"{clip}\t{cfg.clip_duration_s:.3f}" for clip, _ in clips[name]
        ]

    meta = root / "metadata"
    write_lines(meta / "train" / "synthetic.tsv", _strong_rows(clips["synthetic"]))
    write_lines(
        meta / "train" / "weak.tsv",
        ["filename\tevent_labels"]
        + [f"{name}\t{','.join(sorted({e[2] for e in ev}))}" for name, ev in clips["weak"]],
    )
    write_lines(
        meta / "train" / "unlabel_in_domain.tsv",
        ["filename"] + [name for name, _ in clips["unlabel_in_domain"]],
    )
    write_lines(meta / "validation" / "validation.tsv", _strong_rows(clips["validation"]))
    write_lines(meta / "validation" / "validation_durations.tsv", durations("validation"))
    write_lines(meta / "eval" / "public.tsv", _strong_rows(clips["eval"]))
    write_lines(meta / "eval" / "public_durations.tsv", durations("eval"))
    write_lines(meta / "eval" / "synthetic.tsv", _strong_rows(clips["eval_synthetic"]))
    write_lines(meta / "eval" / "synthetic_durations.tsv", durations("eval_synthetic"))
    write_lines(meta / "hidden" / "weak.tsv", _strong_rows(clips["weak"]))
    write_lines(meta / "hidden" / "unlabel_in_domain.tsv", _strong_rows(clips["unlabel_in_domain"]))


_METADATA_FILES = {
    "synthetic": "metadata/train/synthetic.tsv",
    "weak": "metadata/train/weak.tsv",
    "unlabel_in_domain": "metadata/train/unlabel_in_domain.tsv",
    "validation": "metadata/validation/validation.tsv",
    "eval": "metadata/eval/public.tsv",
    "eval_synthetic": "metadata/eval/synthetic.tsv",
}
_HIDDEN_FILES = {
    "weak": "metadata/hidden/weak.tsv",
    "unlabel_in_domain": "metadata/hidden/unlabel_in_domain.tsv",
}


def _card(
    cfg: SynthConfig,
    preset: str,
    seed: int,
    clips: dict[str, list[tuple[str, list[tuple[float, float, str]]]]],
) -> dict:
    scaper = import_scaper()
    subsets = {}
    for subset in _SUBSETS:
        events = [e for _, ev in clips[subset.name] for e in ev]
        per_class = {c: [off - on for on, off, lab in events if lab == c] for c in CLASSES}
        n_samples = int(round(cfg.clip_duration_s * cfg.sample_rate))
        subsets[subset.name] = {
            "audio_dir": subset.audio_dir,
            "metadata": _METADATA_FILES[subset.name],
            "hidden_strong_labels": _HIDDEN_FILES.get(subset.name),
            "labels_visible": subset.labels,
            "domain": getattr(cfg, dict(_POOLS)[subset.pool]).name,
            "source_pool": subset.pool,
            "n_clips": len(clips[subset.name]),
            "n_clips_without_events": sum(1 for _, ev in clips[subset.name] if not ev),
            "n_events": len(events),
            "events_per_class": {c: len(d) for c, d in per_class.items()},
            "mean_event_duration_s": {
                c: round(float(np.mean(d)), 3) if d else None for c, d in per_class.items()
            },
            "total_duration_s": round(len(clips[subset.name]) * cfg.clip_duration_s, 3),
            "audio_bytes": len(clips[subset.name]) * (44 + 2 * n_samples),
        }
    return {
        "name": "sedkit DESED-like synthetic benchmark",
        "generator": __name__,
        "generator_version": GENERATOR_VERSION,
        "sedkit_version": sedkit.__version__,
        "scaper_version": scaper.__version__,
        "numpy_version": np.__version__,
        "preset": preset,
        "seed": seed,
        "classes": list(CLASSES),
        "long_classes": sorted(LONG_CLASSES),
        "sample_rate": cfg.sample_rate,
        "channels": 1,
        "sample_format": "PCM_16",
        "clip_duration_s": cfg.clip_duration_s,
        "subsets": subsets,
        "domain_shift": {
            "synthetic": dataclasses.asdict(cfg.synthetic),
            "real": dataclasses.asdict(cfg.real),
        },
        "config": config_for_card(cfg),
    }


def _card_markdown(card: dict) -> str:
    lines = [
        f"# {card['name']}",
        "",
        f"Generated by `{card['generator']}` version {card['generator_version']} "
        f"(sedkit {card['sedkit_version']}, scaper {card['scaper_version']}, "
        f"numpy {card['numpy_version']}), preset `{card['preset']}`, seed {card['seed']}.",
        "The same preset and seed give byte-identical files.",
        "",
        f"{card['sample_rate']} Hz mono 16-bit WAV clips of {card['clip_duration_s']} s. "
        f"Classes ({len(card['classes'])}): {', '.join(card['classes'])}. "
        f"Long stationary classes: {', '.join(card['long_classes'])}.",
        "",
        "## Subsets",
        "",
        "| subset | domain | labels | clips | clips without events | events | hours |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in card["subsets"].items():
        lines.append(
            f"| {name} (`{s['audio_dir']}`) | {s['domain']} | {s['labels_visible']} | "
            f"{s['n_clips']} | {s['n_clips_without_events']} | {s['n_events']} | "
            f"{s['total_duration_s'] / 3600:.3f} |"
        )
    lines += [
        "",
        "Hidden true strong labels of the weak and unlabeled clips are in `metadata/hidden/`; "
        "only pseudo-label quality metrics may read them.",
        "",
        "## Events per class",
        "",
        "| class | " + " | ".join(card["subsets"]) + " |",
        "|---|" + "---|" * len(card["subsets"]),
    ]
    for c in card["classes"]:
        cells = [
            f"{s['events_per_class'][c]} ({s['mean_event_duration_s'][c]:.2f} s)"
            if s["events_per_class"][c]
            else "0"
            for s in card["subsets"].values()
        ]
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Cells: number of events (mean duration).",
        "",
        "## Domain shift",
        "",
        "The synthetic domain is clean; the real domain (weak, unlabeled, validation, eval) uses "
        "other backgrounds, shifted source parameters, room reverberation (labels cover the "
        "audible tail), device colouring, other levels, the class prior of DESED's validation set "
        "and unlabeled non-target sounds. Settings:",
        "",
        "```json",
        json.dumps(card["domain_shift"], indent=2),
        "```",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------
def _write_dataset(
    staging: Path, cfg: SynthConfig, *, seed: int, preset: str, say: Log, sounds: Any = None
) -> str:
    """Generate sources in a temporary work folder, mix and write every clip, the metadata and
    the card into ``staging``; returns the summary line (how many clips). ``sounds``: a
    :class:`desed_real.RealSounds` that replaces some sources by recordings (``--source real``).
    """
    sr = cfg.sample_rate
    with tempfile.TemporaryDirectory(prefix="sedkit-synth-") as work_name:
        work = Path(work_name)
        # 1. Source pools: foreground sounds per class and backgrounds per kind.
        jobs: list[_SourceJob] = []
        for p, (pool, domain_attr) in enumerate(_POOLS):
            domain = getattr(cfg, domain_attr)
            # (role, class or kind, seed stream, its index, files, name digits, max duration)
            per_class = (
                cfg.sources_per_class_real_train if pool == "real_train" else cfg.sources_per_class
            )
            kinds = (
                [
                    ("fg", label, _STREAM_SOURCE, c, per_class, 4, cfg.clip_duration_s)
                    for c, label in enumerate(CLASSES)
                ]
                + [
                    (
                        "fg",
                        kind,
                        _STREAM_DISTRACTOR,
                        sorted(DISTRACTOR_GENERATORS).index(kind),
                        cfg.distractors_per_kind,
                        4,
                        cfg.clip_duration_s,
                    )
                    for kind in domain.distractors
                ]
                + [
                    (
                        "bg",
                        kind,
                        _STREAM_BACKGROUND,
                        BACKGROUND_KINDS.index(kind),
                        cfg.backgrounds_per_kind,
                        3,
                        cfg.clip_duration_s + 2.0,
                    )
                    for kind in domain.backgrounds
                ]
            )
            for role, label, stream, index, count, digits, max_duration_s in kinds:
                jobs += [
                    _SourceJob(
                        work / pool / role / label / f"{label}_{i:0{digits}d}.wav",
                        label,
                        domain,
                        (stream, p, index, i),
                        seed,
                        sr,
                        max_duration_s,
                    )
                    for i in range(count)
                ]
        make: Callable[[Any], float] = _make_source
        if sounds is not None:
            from sedkit_plugins.data.desed_real import make_source

            jobs, make = sounds.source_jobs(jobs), make_source
        say(f"synth: generating {len(jobs)} source sounds ({cfg.n_workers} worker(s))")
        durations = run_jobs(make, jobs, cfg.n_workers)
        pools: dict[str, dict[str, dict[str, list[tuple[str, float]]]]] = {
            pool: {"fg": {}, "bg": {}} for pool, _ in _POOLS
        }
        for job, seconds in zip(jobs, durations, strict=True):
            role = job.path.parent.parent.name
            pools[job.path.parents[2].name][role].setdefault(job.label, []).append(
                (str(job.path), seconds)
            )

        # 2. Clip plans, drawn in the parent from per-clip seeds.
        plans: list[_ClipPlan] = []
        names: list[tuple[str, str]] = []
        for s, subset in enumerate(_SUBSETS):
            domain = getattr(cfg, dict(_POOLS)[subset.pool])
            n_clips = getattr(cfg, subset.count_field)
            fraction = getattr(cfg, subset.empty_field) if subset.empty_field else 0.0
            n_empty = max(1, round(fraction * n_clips)) if fraction > 0 else 0
            empty = set(seeded_rng(seed, _STREAM_EMPTY, s).permutation(n_clips)[:n_empty].tolist())
            (staging / subset.audio_dir).mkdir(parents=True, exist_ok=True)
            for i in range(n_clips):
                name = f"{subset.prefix}_{i:05d}.wav"
                background, events, room = _plan_clip(
                    seeded_rng(seed, _STREAM_PLAN, s, i),
                    cfg,
                    domain,
                    pools[subset.pool]["fg"],
                    pools[subset.pool]["bg"],
                    i in empty,
                )
                scaper_seed = int(np.random.SeedSequence([seed, s, i]).generate_state(1)[0])
                plans.append(
                    _ClipPlan(
                        staging / subset.audio_dir / name,
                        work / subset.pool / "fg",
                        work / subset.pool / "bg",
                        background,
                        tuple(events),
                        domain,
                        sr,
                        cfg.clip_duration_s,
                        seed,
                        (s, i),
                        scaper_seed,
                        room,
                    )
                )
                names.append((subset.name, name))

        # 3. Mix, record and write the clips.
        say(f"synth: mixing {len(plans)} soundscapes with scaper")
        annotations = run_jobs(_render_clip, plans, cfg.n_workers)

    clips: dict[str, list[tuple[str, list[tuple[float, float, str]]]]] = {
        subset.name: [] for subset in _SUBSETS
    }
    for (subset_name, name), events in zip(names, annotations, strict=True):
        clips[subset_name].append((name, events))
    _write_metadata(staging, cfg, clips)
    card = _card(cfg, preset, seed, clips)
    if sounds is not None:
        sounds.extend_card(card)
    markdown = _card_markdown(card)
    if sounds is not None:
        markdown += "\n".join(sounds.card_lines()) + "\n"
    write_json(staging / "dataset_card.json", card)
    (staging / "dataset_card.md").write_text(markdown, encoding="utf-8")
    return f"synth desed: {len(names)} clips"


def build(
    out_dir: Path | str,
    config: SynthConfig,
    *,
    seed: int = 0,
    preset: str = "custom",
    log: Log | None = None,
    sounds: Any = None,
) -> Path:
    """Build the benchmark described by ``config`` into ``out_dir``; returns the card JSON path.

    ``out_dir`` must be absent or empty. The tree is assembled next to it and moved into place
    at the end, so an interrupted build never leaves a half dataset that looks complete.
    ``sounds``: real recordings for some sources (see :mod:`desed_real`).
    """
    return build_into(
        out_dir,
        log,
        lambda staging, say: _write_dataset(
            staging, config, seed=seed, preset=preset, say=say, sounds=sounds
        ),
    )


def synthesize(
    out_dir: Path | str,
    *,
    preset: str = "default",
    seed: int = 0,
    log: Log | None = None,
    source: str | None = None,
    fetch: bool = False,
) -> Path:
    """Build the embedded DESED-like benchmark (preset from :data:`PRESETS`) into ``out_dir``.

    Returns the path of the dataset card (``dataset_card.json``; ``dataset_card.md`` lies next
    to it). The same preset and seed give byte-identical files. ``source``: ``procedural``
    (default) or ``real`` (recordings from Debian packages where they exist, :mod:`desed_real`;
    ``fetch`` downloads them first).
    """
    config = check_preset(preset, PRESETS)
    if source not in (None, "procedural", "real"):
        raise UserError(f"synth desed: unknown --source {source!r}; choose from procedural, real")
    if source != "real":
        if fetch:
            raise UserError("synth desed: --fetch needs --source real")
        return build(out_dir, config, seed=seed, preset=preset, log=log)
    from sedkit_plugins.data.desed_real import RealSounds

    sounds = RealSounds.load(seed, fetch=fetch, say=message_function(log))
    return build(out_dir, config, seed=seed, preset=preset, log=log, sounds=sounds)


__all__ = [
    "CLASSES",
    "GENERATOR_VERSION",
    "LONG_CLASSES",
    "PRESETS",
    "DeviceConfig",
    "DomainConfig",
    "RoomConfig",
    "SourceStyle",
    "SynthConfig",
    "build",
    "generate_background",
    "generate_source",
    "record",
    "room_impulse_response",
    "synthesize",
]
