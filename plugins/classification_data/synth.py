"""Embedded classification benchmarks: ``sedkit synth scenes|instruments|scenes3 OUT_DIR``.

Small, fully procedural stand-ins (numpy only) for the datasets of the FMUC paper (TUT Acoustic
Scenes 2017, NSynth instrument families) and of the pruned-ensemble paper (TAU Urban Acoustic
Scenes 2020 3Class), so that their recipes run without downloads and deterministically for a
seed. They are not the real datasets: numbers measured on them are comparable with each other,
not with the papers.

- ``scenes`` (TUT2017-like): ten acoustic scenes built from a shared bank of ambience beds
  (traffic, engines, babble, wind, hum, room tone, ...) and event textures (footsteps, bird
  chirps, clinks, beeps, typing, chimes, ...), so several scenes share ingredients (forest path
  and park, cafe and grocery store, office and library). Every recording *location* draws its
  own mix levels, source parameters, colouring (tilt and EQ peaks), reverberation and level;
  train and test clips come from different locations, as in TUT2017.
- ``instruments`` (NSynth-like): notes of ten instrument families (harmonic and inharmonic
  partials, plucked, struck, blown and bowed envelopes, vibrato, breath noise, formants). An
  *instrument* is one draw of synthesis parameters from its family's prior; train and test
  notes come from different instruments.
- ``scenes3`` (TAU Urban Acoustic Scenes 2020 3Class layout): ten fine scenes recorded in
  several *cities* (city-wide colouring, mains frequency, babble timbre) and locations, 48 kHz
  mono, ``meta.csv`` plus fold-1 train/evaluate lists with the coarse labels indoor / outdoor /
  transportation.

Every random draw comes from ``numpy.random.default_rng(SeedSequence([seed, ...]))`` keyed by
what is being drawn (location, clip), so files are byte-identical for a preset and seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

import sedkit
from sedkit.data.synthesis import (
    band,
    build_into,
    check_preset,
    config_for_card,
    fast_len_at_least,
    filter_magnitude,
    rfft_freqs,
    run_jobs,
    seeded_rng,
    tilt,
    unit_rms,
    write_json,
    write_lines,
    write_table,
)
from sedkit_plugins.classification_data.classes import (
    INSTRUMENT_FAMILIES,
    SCENE_CLASSES,
    SCENES3_CLASSES,
    TAU_SCENE_TO_CLASS,
)

#: Bumped whenever a change alters the generated files for a given seed and preset.
GENERATOR_VERSION = "1.0"

TAU_CITIES: tuple[str, ...] = (
    "barcelona",
    "helsinki",
    "lisbon",
    "london",
    "lyon",
    "milan",
    "paris",
    "prague",
    "stockholm",
    "vienna",
)

Log = Any  # a logging.Logger, a callable taking one message, or None


# --------------------------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SceneConfig:
    """Size of a ``scenes`` build: clips per location, locations per class and split."""

    sample_rate: int = 16000
    clip_duration_s: float = 3.0
    train_locations: int = 10
    test_locations: int = 4
    clips_per_train_location: int = 10
    clips_per_test_location: int = 8
    #: Worker processes; the files are identical for any value.
    n_workers: int = 2


@dataclass(frozen=True)
class InstrumentConfig:
    """Size of an ``instruments`` build: notes per instrument, instruments per family."""

    sample_rate: int = 16000
    clip_duration_s: float = 2.0
    train_instruments: int = 10
    test_instruments: int = 4
    notes_per_train_instrument: int = 12
    notes_per_test_instrument: int = 8
    #: Worker processes; the files are identical for any value.
    n_workers: int = 2


@dataclass(frozen=True)
class Scenes3Config:
    """Size of a ``scenes3`` build: cities, locations per (scene, city) and clips per location.

    The first ``train_locations_per_city`` locations of each (scene, city) go to the fold-1
    training list, the others to the evaluation list (TAU keeps locations on one side).
    """

    sample_rate: int = 48000
    clip_duration_s: float = 10.0
    n_cities: int = 3
    locations_per_city: int = 3
    train_locations_per_city: int = 2
    clips_per_location: int = 2
    #: Worker processes; the files are identical for any value.
    n_workers: int = 2

    def __post_init__(self) -> None:
        if not 1 <= self.n_cities <= len(TAU_CITIES):
            raise ValueError(f"n_cities must be in 1..{len(TAU_CITIES)}")
        if not 1 <= self.train_locations_per_city < self.locations_per_city:
            raise ValueError("need 1 <= train_locations_per_city < locations_per_city")


SCENES_PRESETS: dict[str, SceneConfig] = {
    "tiny": SceneConfig(
        clip_duration_s=2.0,
        train_locations=2,
        test_locations=1,
        clips_per_train_location=2,
        clips_per_test_location=1,
        n_workers=1,
    ),
    "default": SceneConfig(),
}
INSTRUMENTS_PRESETS: dict[str, InstrumentConfig] = {
    "tiny": InstrumentConfig(
        clip_duration_s=1.0,
        train_instruments=2,
        test_instruments=1,
        notes_per_train_instrument=2,
        notes_per_test_instrument=1,
        n_workers=1,
    ),
    "default": InstrumentConfig(),
}
SCENES3_PRESETS: dict[str, Scenes3Config] = {
    # 2 s clips keep the tests fast; block mixing then uses shorter segments.
    "tiny": Scenes3Config(
        clip_duration_s=2.0,
        n_cities=2,
        locations_per_city=2,
        train_locations_per_city=1,
        clips_per_location=1,
        n_workers=1,
    ),
    "default": Scenes3Config(),
}


# --------------------------------------------------------------------------------------------
# Signal helpers
# --------------------------------------------------------------------------------------------
def _peak(f: np.ndarray, centre_hz: float, gain_db: float, octaves: float) -> np.ndarray:
    """A bell-shaped EQ peak in dB on a log-frequency axis, as a magnitude factor."""
    distance = np.log2(np.maximum(f, 1.0) / centre_hz) / octaves
    return 10.0 ** (gain_db * np.exp(-0.5 * distance**2) / 20.0)


def _noise(rng: np.random.Generator, n: int, magnitude: np.ndarray) -> np.ndarray:
    """White noise shaped by a magnitude response on the rfft grid of ``n``; unit RMS.

    Drawn directly as a complex Gaussian spectrum (what the rfft of white noise is), which
    saves one FFT per noise."""
    m = n // 2 + 1
    spectrum = rng.standard_normal(m) + 1j * rng.standard_normal(m)
    return unit_rms(np.fft.irfft(spectrum * magnitude, n))


def _walk(rng: np.random.Generator, n: int, sr: int, rate_hz: float) -> np.ndarray:
    """A slow random fluctuation with about unit standard deviation (control-rate noise,
    interpolated: far cheaper than filtering at audio rate)."""
    points = max(4, int(n / sr * rate_hz * 2) + 2)
    control = rng.standard_normal(points)
    return np.interp(np.linspace(0, points - 1, n), np.arange(points), control)


def _decay(n: int, sr: int, tau_s: float, attack_s: float = 0.002) -> np.ndarray:
    t = np.arange(n) / sr
    return np.exp(-t / max(tau_s, 1e-4)) * np.minimum(1.0, t / max(attack_s, 1e-5))


def _place(
    out: np.ndarray, sr: int, rng: np.random.Generator, rate_hz: float, make: Callable
) -> None:
    """Add events made by ``make()`` at Poisson times (rate per second) into ``out``."""
    n = len(out)
    count = rng.poisson(rate_hz * n / sr)
    for start in np.sort(rng.integers(0, n, size=count)):
        event = make()
        stop = min(n, start + len(event))
        out[start:stop] += event[: stop - start]


def _harmonics(
    f0: np.ndarray, sr: int, amplitudes: np.ndarray, ratios: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Sum of partials ``ratios[k] * f0(t)`` with amplitudes ``amplitudes[k]`` (scalars or
    per-sample arrays); partials above 0.45 sr are dropped."""
    phase = 2.0 * np.pi * np.cumsum(f0) / sr
    top = float(np.max(f0))
    out = np.zeros(len(f0))
    for k, ratio in enumerate(ratios):
        if ratio * top >= 0.45 * sr:
            continue
        out += amplitudes[k] * np.sin(ratio * phase + rng.uniform(0, 2 * np.pi))
    return out


def _saw(f0: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A sawtooth on a per-sample f0 track (partials falling as 1/k): one operation per sample
    where additive synthesis needs one per partial. Its slight aliasing is masked by the
    filtering and noise around it."""
    cycles = np.cumsum(f0) / sr + rng.uniform(0.0, 1.0)
    return 2.0 * (cycles - np.floor(cycles)) - 1.0


def _room_and_colour(x: np.ndarray, sr: int, rng: np.random.Generator, place: Place) -> np.ndarray:
    """Reverberation (an exponentially decaying noise impulse response after the direct
    sound) and the place's colouring (tilt, high-pass, EQ peaks), in one FFT pass."""
    m = max(16, int(place.rt60_s * sr))
    t = np.arange(m) / sr
    tail = rng.standard_normal(m) * np.exp(-6.91 * t / place.rt60_s)
    tail *= 10.0 ** (-place.drr_db / 20.0) / (np.sqrt(np.sum(tail**2)) + 1e-12)
    rir = np.concatenate([[1.0], tail])
    size = fast_len_at_least(len(x) + len(rir))
    f = rfft_freqs(size, sr)
    colour = tilt(f, place.tilt) * band(f, place.highpass_hz, 0.49 * sr, order=1)
    for centre, gain, width in place.eq:
        colour = colour * _peak(f, centre, gain, width)
    spectrum = np.fft.rfft(x, size) * np.fft.rfft(rir, size) * colour
    return np.fft.irfft(spectrum, size)[: len(x)]


def _write_wav(path: Path, x: np.ndarray, sr: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(x, -1.0, 1.0).astype(np.float32), sr, subtype="PCM_16")


def _level(x: np.ndarray, rms_dbfs: float) -> np.ndarray:
    """Scale to an RMS level, then down further if the peak would clip."""
    y = unit_rms(x) * 10.0 ** (rms_dbfs / 20.0)
    peak = float(np.max(np.abs(y)))
    return y * (0.97 / peak) if peak > 0.97 else y


# --------------------------------------------------------------------------------------------
# Scene ingredients: ambience beds (rng, n, sr, p) and events (rng, sr, p)
# --------------------------------------------------------------------------------------------
def bed_traffic(rng: np.random.Generator, n: int, sr: int, p: dict) -> np.ndarray:
    """Road traffic: low rumble plus passing vehicles (swells of band noise)."""
    f = rfft_freqs(n, sr)
    rumble = _noise(rng, n, tilt(f, -1.0) * band(f, 30.0, p["cutoff_hz"]))
    rumble *= 1.0 + 0.3 * _walk(rng, n, sr, 0.5)
    swells = np.zeros(n)
    t = np.arange(n) / sr
    for centre in rng.uniform(-1.0, n / sr + 1.0, size=rng.poisson(p["passes_per_s"] * n / sr)):
        swells += np.exp(-0.5 * ((t - centre) / rng.uniform(0.4, 1.5)) ** 2)
    passes = _noise(rng, n, tilt(f, -0.5) * band(f, 150.0, 2.5 * p["cutoff_hz"])) * swells
    return rumble + 1.5 * passes


def bed_engine(rng: np.random.Generator, n: int, sr: int, p: dict) -> np.ndarray:
    """A vehicle engine or electric drive: harmonic drone with a wandering speed, and noise."""
    f0 = p["f0_hz"] * (1.0 + 0.03 * _walk(rng, n, sr, 0.3))
    f = rfft_freqs(n, sr)
    # A sawtooth has 1/k partials; the tilt makes them fall off as k^-rolloff.
    tone = filter_magnitude(_saw(f0, sr, rng), tilt(f, 1.0 - p["rolloff"], p["f0_hz"]))
    return unit_rms(tone) + 0.7 * _noise(rng, n, tilt(f, -1.0) * band(f, 40.0, 1500.0))


def bed_babble(rng: np.random.Generator, n: int, sr: int, p: dict) -> np.ndarray:
    """Crowd babble: voiced harmonic streams and breathy noise, syllable-rate modulated,
    through speech formant regions (``formant_shift`` varies by place)."""
    f = rfft_freqs(n, sr)
    shift = p["formant_shift"]
    formants = _peak(f, 500 * shift, 12, 0.6) * _peak(f, 1500 * shift, 9, 0.6)
    out = np.zeros(n)
    for _ in range(int(p["voices"])):
        am = np.clip(_walk(rng, n, sr, rng.uniform(3.0, 6.0)) + 0.3, 0.0, None)
        f0 = rng.uniform(90, 240) * (1.0 + 0.08 * _walk(rng, n, sr, 2.0))
        out += am * _saw(f0, sr, rng)
    voiced = np.fft.irfft(np.fft.rfft(out) * formants * band(f, 100, 4000), n)
    breath = _noise(rng, n, formants * band(f, 200, 6000))
    return unit_rms(voiced) + 0.4 * breath * (1 + 0.5 * _walk(rng, n, sr, 4.0))


def bed_wind(rng: np.random.Generator, n: int, sr: int, p: dict) -> np.ndarray:
    """Wind in gusts (broad noise whose level follows a slow walk)."""
    f = rfft_freqs(n, sr)
    gust = np.clip(1.0 + 0.6 * _walk(rng, n, sr, p["gust_hz"]), 0.1, None)
    return _noise(rng, n, tilt(f, -0.8) * band(f, 40.0, 3000.0)) * gust


def bed_foliage(rng: np.random.Generator, n: int, sr: int, p: dict) -> np.ndarray:
    """Rustling leaves or water: high band noise with fast random amplitude."""
    f = rfft_freqs(n, sr)
    am = np.clip(1.0 + 0.8 * _walk(rng, n, sr, p["flutter_hz"]), 0.05, None)
    return _noise(rng, n, band(f, p["low_hz"], min(9000.0, 0.45 * sr))) * am


def bed_hum(rng: np.random.Generator, n: int, sr: int, p: dict) -> np.ndarray:
    """Mains hum, fans and ventilation: a few harmonics of ``hum_hz`` plus band noise."""
    t = np.arange(n) / sr
    tone = sum(
        rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * k * p["hum_hz"] * t + rng.uniform(0, 6.3))
        for k in range(1, 6)
    )
    f = rfft_freqs(n, sr)
    air = _noise(rng, n, tilt(f, -0.5) * band(f, 100.0, p["air_hz"]))
    return 0.6 * unit_rms(tone) + air


def bed_room(rng: np.random.Generator, n: int, sr: int, p: dict) -> np.ndarray:
    """Quiet room tone: pink-ish noise."""
    f = rfft_freqs(n, sr)
    return _noise(rng, n, tilt(f, -0.6) * band(f, 30.0, 8000.0))


def bed_music(rng: np.random.Generator, n: int, sr: int, p: dict) -> np.ndarray:
    """Background music: a slow chord progression of soft harmonic tones."""
    out = np.zeros(n)
    chord_len = int(rng.uniform(1.0, 2.0) * sr)
    root = p["root_hz"]
    for start in range(0, n, chord_len):
        m = min(chord_len, n - start)
        base = root * 2.0 ** (rng.integers(0, 12) / 12.0)
        for interval in (0, 4, 7):
            f0 = np.full(m, base * 2.0 ** (interval / 12.0))
            k = np.arange(1, 8)
            out[start : start + m] += _harmonics(f0, sr, k**-2.0, k.astype(float), rng) * _decay(
                m, sr, 1.5, 0.05
            )
    return out


def ev_step(rng: np.random.Generator, sr: int, p: dict) -> np.ndarray:
    """A footstep: a short low thump with a click."""
    m = int(0.08 * sr)
    f = rfft_freqs(m, sr)
    return _noise(rng, m, band(f, 60.0, p["step_hz"])) * _decay(m, sr, 0.015)


def ev_chirp(rng: np.random.Generator, sr: int, p: dict) -> np.ndarray:
    """A bird call: a trill of short frequency sweeps."""
    notes = []
    start_hz = min(p["bird_hz"] * rng.uniform(0.8, 1.25), 0.4 * sr)
    for _ in range(int(rng.integers(1, 6))):
        m = int(rng.uniform(0.04, 0.15) * sr)
        sweep = start_hz * np.exp(np.linspace(0, rng.uniform(-0.5, 0.4), m))
        sweep = np.minimum(sweep, 0.44 * sr)
        tone = np.sin(2 * np.pi * np.cumsum(sweep) / sr) * np.hanning(m)
        notes += [tone, np.zeros(int(rng.uniform(0.02, 0.08) * sr))]
    return np.concatenate(notes)


def ev_clink(rng: np.random.Generator, sr: int, p: dict) -> np.ndarray:
    """Cutlery or glass: inharmonic partials ringing down."""
    m = int(rng.uniform(0.2, 0.5) * sr)
    t = np.arange(m) / sr
    f0 = min(rng.uniform(1200, 3500), 0.15 * sr)
    out = sum(
        rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * f0 * r * t) * np.exp(-t / rng.uniform(0.03, 0.2))
        for r in (1.0, 2.76, 5.40)
        if f0 * r < 0.45 * sr
    )
    return out * np.minimum(1.0, t / 0.001)


def ev_beep(rng: np.random.Generator, sr: int, p: dict) -> np.ndarray:
    """A checkout scanner beep."""
    m = int(rng.uniform(0.08, 0.2) * sr)
    t = np.arange(m) / sr
    return np.sin(2 * np.pi * p["beep_hz"] * t) * np.hanning(m) ** 0.2


def ev_typing(rng: np.random.Generator, sr: int, p: dict) -> np.ndarray:
    """A burst of keystrokes."""
    keys = int(rng.integers(3, 15))
    out = np.zeros(int(keys * 0.2 * sr) + int(0.02 * sr))
    m = int(0.012 * sr)
    f = rfft_freqs(m, sr)
    for start in np.cumsum(rng.uniform(0.06, 0.2, size=keys)) * sr:
        click = _noise(rng, m, band(f, 1500.0, 7000.0)) * _decay(m, sr, 0.003)
        out[int(start) : int(start) + m] += click[: len(out) - int(start)]
    return 0.5 * out


def ev_page(rng: np.random.Generator, sr: int, p: dict) -> np.ndarray:
    """Paper handling: a short swoosh of high band noise."""
    m = int(rng.uniform(0.15, 0.5) * sr)
    f = rfft_freqs(m, sr)
    return _noise(rng, m, band(f, 1500.0, 7500.0)) * np.hanning(m)


def ev_chime(rng: np.random.Generator, sr: int, p: dict) -> np.ndarray:
    """A public-address chime: three decaying bell tones."""
    tones = []
    for step in (0, -4, -7):
        m = int(0.45 * sr)
        f0 = np.full(m, p["chime_hz"] * 2.0 ** (step / 12.0))
        tones.append(_harmonics(f0, sr, np.array([1.0, 0.4, 0.2]), np.array([1, 2, 3.0]), rng))
        tones[-1] *= _decay(m, sr, 0.25, 0.005)
    return np.concatenate(tones)


def ev_rail(rng: np.random.Generator, sr: int, p: dict) -> np.ndarray:
    """Wheels over a rail joint: a pair of low thumps."""
    m = int(0.07 * sr)
    f = rfft_freqs(m, sr)
    thump = _noise(rng, m, band(f, 40.0, 400.0)) * _decay(m, sr, 0.02)
    gap = np.zeros(int(p["bogie_s"] * sr))
    return np.concatenate([thump, gap, thump])


def ev_squeal(rng: np.random.Generator, sr: int, p: dict) -> np.ndarray:
    """Brake or wheel squeal: a narrow tone with a little vibrato."""
    m = int(rng.uniform(0.4, 1.5) * sr)
    t = np.arange(m) / sr
    f0 = min(p["squeal_hz"] * rng.uniform(0.9, 1.1), 0.4 * sr)
    freq = f0 * (1 + 0.01 * np.sin(2 * np.pi * rng.uniform(4, 9) * t))
    return np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.hanning(m) ** 0.5


def ev_thud(rng: np.random.Generator, sr: int, p: dict) -> np.ndarray:
    """A door, a bag put down: a low thud."""
    m = int(0.25 * sr)
    f = rfft_freqs(m, sr)
    return _noise(rng, m, band(f, 40.0, 250.0)) * _decay(m, sr, 0.05)


BEDS: dict[str, Callable] = {
    "traffic": bed_traffic,
    "engine": bed_engine,
    "babble": bed_babble,
    "wind": bed_wind,
    "foliage": bed_foliage,
    "hum": bed_hum,
    "room": bed_room,
    "music": bed_music,
}
EVENTS: dict[str, Callable] = {
    "step": ev_step,
    "chirp": ev_chirp,
    "clink": ev_clink,
    "beep": ev_beep,
    "typing": ev_typing,
    "page": ev_page,
    "chime": ev_chime,
    "rail": ev_rail,
    "squeal": ev_squeal,
    "thud": ev_thud,
}


@dataclass(frozen=True)
class SceneRecipe:
    """What a scene is made of: bed levels in dB, event rates per second, and its space."""

    beds: dict[str, float]
    events: dict[str, float]
    #: Reverberation time range (s): rooms and vehicles echo, open air hardly.
    rt60_s: tuple[float, float] = (0.05, 0.25)
    #: Overrides of the place-drawn ingredient parameters (e.g. an electric drive's pitch).
    params: tuple[tuple[str, tuple[float, float]], ...] = ()


OUTDOOR, INDOOR, VEHICLE = (0.05, 0.2), (0.4, 1.2), (0.15, 0.45)

#: TUT2017-like scenes. Shared ingredients make some scenes close to others on purpose.
SCENE_RECIPES: dict[str, SceneRecipe] = {
    "bus": SceneRecipe(
        {"engine": 0, "traffic": -6, "babble": -12, "hum": -16},
        {"squeal": 0.05, "thud": 0.15, "step": 0.2},
        VEHICLE,
    ),
    "cafe_restaurant": SceneRecipe(
        {"babble": 0, "hum": -12, "music": -14, "room": -16},
        {"clink": 1.0, "step": 0.3, "thud": 0.1},
        INDOOR,
    ),
    "city_center": SceneRecipe(
        {"traffic": 0, "babble": -6, "wind": -14},
        {"step": 1.0, "chirp": 0.1, "squeal": 0.03},
        OUTDOOR,
    ),
    "forest_path": SceneRecipe(
        {"wind": 0, "foliage": -5, "traffic": -22},
        {"chirp": 0.7, "step": 0.5},
        OUTDOOR,
    ),
    "grocery_store": SceneRecipe(
        {"hum": -3, "babble": -4, "music": -12, "room": -12},
        {"beep": 0.6, "clink": 0.2, "step": 0.4, "thud": 0.1},
        INDOOR,
    ),
    "home": SceneRecipe(
        {"room": 0, "hum": -10, "music": -16},
        {"clink": 0.2, "step": 0.2, "thud": 0.15, "page": 0.05},
        INDOOR,
    ),
    "library": SceneRecipe(
        {"room": 0, "hum": -6, "babble": -20},
        {"page": 0.3, "step": 0.2, "typing": 0.1},
        INDOOR,
    ),
    "metro_station": SceneRecipe(
        {"hum": -3, "babble": -4, "traffic": -8},
        {"chime": 0.05, "step": 1.0, "squeal": 0.05, "rail": 0.2},
        INDOOR,
        (("cutoff_hz", (150.0, 300.0)),),
    ),
    "office": SceneRecipe(
        {"hum": 0, "room": -6, "babble": -14},
        {"typing": 0.6, "page": 0.1, "step": 0.1},
        INDOOR,
    ),
    "park": SceneRecipe(
        {"wind": -3, "traffic": -11, "babble": -12, "foliage": -10},
        {"chirp": 0.5, "step": 0.4},
        OUTDOOR,
    ),
}

#: TAU 2020 scenes (for ``scenes3``).
TAU_RECIPES: dict[str, SceneRecipe] = {
    "airport": SceneRecipe(
        {"babble": -3, "hum": -3, "room": -10, "engine": -20},
        {"chime": 0.05, "step": 0.8, "thud": 0.1},
        INDOOR,
        (("f0_hz", (60.0, 110.0)),),
    ),
    "shopping_mall": SceneRecipe(
        {"babble": 0, "music": -8, "hum": -8},
        {"step": 0.6, "clink": 0.2, "beep": 0.05},
        INDOOR,
    ),
    "metro_station": SceneRecipe(
        {"hum": -3, "babble": -6, "traffic": -6},
        {"chime": 0.05, "rail": 0.3, "squeal": 0.05, "step": 0.8},
        INDOOR,
        (("cutoff_hz", (150.0, 300.0)),),
    ),
    "street_pedestrian": SceneRecipe(
        {"babble": -3, "traffic": -8, "wind": -15},
        {"step": 1.0, "chirp": 0.1},
        OUTDOOR,
    ),
    "public_square": SceneRecipe(
        {"babble": -6, "traffic": -10, "wind": -10, "foliage": -10},
        {"step": 0.5, "chirp": 0.3},
        OUTDOOR,
    ),
    "street_traffic": SceneRecipe(
        {"traffic": 0, "engine": -8, "wind": -15},
        {"squeal": 0.05, "step": 0.2},
        OUTDOOR,
    ),
    "park": SceneRecipe(
        {"wind": -3, "foliage": -8, "traffic": -14},
        {"chirp": 0.8, "step": 0.3},
        OUTDOOR,
    ),
    "tram": SceneRecipe(
        {"engine": -4, "babble": -10, "traffic": -10},
        {"rail": 0.8, "squeal": 0.1, "chime": 0.05},
        VEHICLE,
        (("f0_hz", (180.0, 400.0)),),
    ),
    "bus": SceneRecipe(
        {"engine": 0, "traffic": -8, "babble": -12},
        {"squeal": 0.05, "thud": 0.1},
        VEHICLE,
    ),
    "metro": SceneRecipe(
        {"hum": -6, "traffic": -3, "engine": -6},
        {"rail": 1.2, "squeal": 0.1, "chime": 0.05},
        VEHICLE,
        (("f0_hz", (250.0, 500.0)), ("cutoff_hz", (150.0, 300.0))),
    ),
}


def _place_params(rng: np.random.Generator) -> dict[str, float]:
    """Ingredient parameters that a recording place fixes (engine pitch, bird species, ...)."""
    return {
        "cutoff_hz": rng.uniform(300.0, 900.0),
        "passes_per_s": rng.uniform(0.1, 0.6),
        "f0_hz": rng.uniform(35.0, 120.0),
        "rolloff": rng.uniform(0.8, 1.6),
        "formant_shift": rng.uniform(0.85, 1.2),
        "voices": float(rng.integers(3, 10)),
        "gust_hz": rng.uniform(0.2, 1.0),
        "flutter_hz": rng.uniform(5.0, 20.0),
        "low_hz": rng.uniform(1000.0, 3000.0),
        "air_hz": rng.uniform(800.0, 4000.0),
        # Mains hum or a fan's blade rate.
        "hum_hz": float(rng.choice([50.0, 60.0])) if rng.random() < 0.5 else rng.uniform(80, 200),
        "root_hz": rng.uniform(110.0, 330.0),
        "step_hz": rng.uniform(300.0, 1500.0),
        "bird_hz": rng.uniform(2000.0, 6000.0),
        "beep_hz": rng.uniform(1000.0, 3200.0),
        "chime_hz": rng.uniform(500.0, 1000.0),
        "bogie_s": rng.uniform(0.1, 0.25),
        "squeal_hz": rng.uniform(1800.0, 5000.0),
    }


@dataclass(frozen=True)
class Place:
    """How one recording place sounds: ingredient parameters, mix offsets, space, colouring."""

    params: dict[str, float]
    bed_offsets_db: dict[str, float]
    event_factors: dict[str, float]
    rt60_s: float
    drr_db: float
    tilt: float
    eq: tuple[tuple[float, float, float], ...]  # (centre Hz, gain dB, width octaves)
    highpass_hz: float
    level_dbfs: float


def _draw_place(
    rng: np.random.Generator, recipe: SceneRecipe, city: dict[str, float] | None = None
) -> Place:
    """A recording place of ``recipe`` (in ``city``, whose parameters it inherits in part)."""
    params = _place_params(rng)
    for name, (low, high) in recipe.params:
        params[name] = rng.uniform(low, high)
    eq = [(rng.uniform(150, 6000), rng.uniform(-6, 6), rng.uniform(0.5, 1.5)) for _ in range(2)]
    colour_tilt = rng.uniform(-0.25, 0.25)
    if city is not None:
        # A city: its mains frequency, the timbre of its crowds and streets, and its own
        # colouring on top of each place's.
        params["formant_shift"] = city["formant_shift"] * rng.uniform(0.95, 1.05)
        params["cutoff_hz"] *= city["traffic_scale"]
        eq.append((city["eq_hz"], city["eq_db"], 1.0))
        colour_tilt += city["tilt"]
    if city is not None and rng.random() < 0.6:
        params["hum_hz"] = city["mains_hz"]
    return Place(
        params=params,
        bed_offsets_db={b: rng.uniform(-5.0, 5.0) for b in BEDS},
        event_factors={e: float(np.exp(rng.normal(0.0, 0.5))) for e in EVENTS},
        rt60_s=rng.uniform(*recipe.rt60_s),
        drr_db=rng.uniform(0.0, 10.0),
        tilt=colour_tilt,
        eq=tuple(eq),
        highpass_hz=rng.uniform(20.0, 150.0),
        level_dbfs=rng.uniform(-32.0, -20.0),
    )


def _draw_city(rng: np.random.Generator) -> dict[str, float]:
    return {
        "formant_shift": rng.uniform(0.85, 1.2),
        "traffic_scale": rng.uniform(0.7, 1.4),
        "eq_hz": rng.uniform(200.0, 8000.0),
        "eq_db": rng.uniform(-5.0, 5.0),
        "tilt": rng.uniform(-0.15, 0.15),
        "mains_hz": 60.0 if rng.random() < 0.3 else 50.0,
    }


#: Ingredients heard faintly in every scene (overlapping ambiences), in dB below the mix.
SHARED_BEDS: dict[str, tuple[float, float]] = {"traffic": (-30.0, -16.0), "room": (-30.0, -18.0)}


def render_scene(
    rng: np.random.Generator, recipe: SceneRecipe, place: Place, n: int, sr: int
) -> np.ndarray:
    """One clip of a scene at a place: beds and events mixed, reverberated, coloured, levelled."""
    mix = np.zeros(n)
    beds = dict(recipe.beds)
    for bed, (low, high) in SHARED_BEDS.items():
        if bed not in beds:
            beds[bed] = rng.uniform(low, high)
    for bed in sorted(beds):
        gain_db = beds[bed] + place.bed_offsets_db[bed] + rng.uniform(-2.0, 2.0)
        mix += 10.0 ** (gain_db / 20.0) * unit_rms(BEDS[bed](rng, n, sr, place.params))
    for event in sorted(recipe.events):
        layer = np.zeros(n)
        rate = recipe.events[event] * place.event_factors[event]
        _place(layer, sr, rng, rate, lambda e=event: EVENTS[e](rng, sr, place.params))
        if np.any(layer):
            # Events are set relative to the beds' level, with their own spread.
            mix += (
                10.0 ** (rng.uniform(-6.0, 2.0) / 20.0) * layer / max(np.max(np.abs(layer)), 1e-9)
            )
    mix = _room_and_colour(mix, sr, rng, place)
    return _level(mix, place.level_dbfs + rng.uniform(-2.0, 2.0))


# --------------------------------------------------------------------------------------------
# Instrument notes
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Instrument:
    """Synthesis parameters of one instrument (a draw from its family's prior)."""

    family: str
    pitch_range: tuple[int, int]  # MIDI
    partial_ratios: tuple[float, ...]  # relative to f0 (inharmonic for mallets)
    partial_amps: tuple[float, ...]
    #: Envelope: attack, decay time constant of the partials (inf: sustained), release.
    attack_s: float
    decay_s: float
    release_s: float
    #: Higher partials decay faster by this factor per harmonic number (plucked/struck).
    damping: float
    vibrato_hz: float
    vibrato_depth: float  # fraction of f0
    noise_level: float  # breath / bow / hammer noise relative to the tone
    noise_band_hz: tuple[float, float]
    formants: tuple[tuple[float, float], ...]  # (centre Hz, gain dB)
    brightness_attack: float  # how much brighter the attack is than the sustain (brass)


def _spectrum(k: np.ndarray, rolloff: float, odd_boost: float = 0.0) -> np.ndarray:
    amps = k**-rolloff
    return amps * np.where(k % 2 == 1, 1.0 + odd_boost, 1.0 / (1.0 + odd_boost))


def draw_instrument(rng: np.random.Generator, family: str) -> Instrument:
    """One instrument of ``family``: its partials, envelope, vibrato, noise and body.

    Priors overlap on purpose (brass, reed and string are all sustained harmonic tones; guitar,
    keyboard and bass all decay), so families are learnable but not trivially separable.
    """
    k = np.arange(1, 31, dtype=float)
    u = rng.uniform
    sustained = np.inf
    if family == "bass":
        ratios = k * (1 + u(0.0, 3e-4) * k**2) ** 0.5
        amps = _spectrum(k, u(1.4, 2.4))
        env = (u(0.003, 0.02), u(0.6, 2.0), u(0.05, 0.2))
        damping, vib, noise, rng_pitch = u(0.03, 0.1), (0.0, 0.0), u(0.0, 0.05), (28, 52)
        formants = ((u(100, 300), u(0, 6)),)
    elif family == "guitar":
        pluck = u(0.1, 0.3)
        ratios = k * (1 + u(0.0, 2e-4) * k**2) ** 0.5
        amps = np.abs(np.sin(np.pi * k * pluck)) / k ** u(0.8, 1.3) + 1e-3
        env = (u(0.001, 0.006), u(0.4, 1.5), u(0.05, 0.2))
        damping, vib, noise, rng_pitch = u(0.05, 0.2), (0.0, 0.0), u(0.01, 0.06), (40, 76)
        formants = ((u(150, 400), u(3, 9)), (u(2000, 4000), u(0, 6)))
    elif family == "keyboard":
        ratios = k * (1 + u(2e-4, 1.2e-3) * k**2) ** 0.5
        amps = _spectrum(k, u(1.2, 2.0))
        env = (u(0.001, 0.008), u(0.5, 2.5), u(0.1, 0.3))
        damping, vib, noise, rng_pitch = u(0.03, 0.12), (0.0, 0.0), u(0.02, 0.1), (36, 88)
        formants = ()
    elif family == "mallet":
        base = np.array([1.0, u(2.7, 4.0), u(5.2, 10.0), u(8.5, 17.0), u(13.0, 24.0)])
        ratios = np.concatenate([base, np.zeros(len(k) - len(base))])
        amps = np.concatenate([[1.0], u(0.1, 0.7, 4) / np.arange(2, 6), np.zeros(len(k) - 5)])
        env = (u(0.0005, 0.003), u(0.2, 1.2), u(0.05, 0.2))
        damping, vib, noise, rng_pitch = (
            u(0.2, 0.6),
            (u(4, 7), u(0.0, 0.004)),
            u(0.02, 0.1),
            (
                60,
                96,
            ),
        )
        formants = ()
    elif family == "organ":
        drawbars = np.zeros(len(k))
        for h in (1, 2, 3, 4, 6, 8):
            drawbars[h - 1] = u(0.0, 1.0) if h > 1 else 1.0
        ratios, amps = k, drawbars
        env = (u(0.005, 0.03), sustained, u(0.01, 0.08))
        damping, vib, noise, rng_pitch = 0.0, (u(5, 7), u(0.0, 0.003)), u(0.0, 0.03), (36, 84)
        formants = ()
    elif family == "brass":
        ratios, amps = k, _spectrum(k, u(0.7, 1.4))
        env = (u(0.03, 0.1), sustained, u(0.05, 0.15))
        damping, vib, noise, rng_pitch = 0.0, (u(4.5, 6), u(0.0, 0.006)), u(0.01, 0.05), (40, 76)
        formants = ((u(800, 1600), u(3, 9)),)
    elif family == "reed":
        ratios, amps = k, _spectrum(k, u(0.9, 1.6), odd_boost=u(0.0, 3.0))
        env = (u(0.02, 0.07), sustained, u(0.03, 0.12))
        damping, vib, noise, rng_pitch = 0.0, (u(4.5, 6), u(0.0, 0.008)), u(0.04, 0.15), (48, 84)
        formants = ((u(1000, 3000), u(0, 8)),)
    elif family == "flute":
        ratios, amps = k, _spectrum(k, u(2.2, 3.5))
        env = (u(0.05, 0.15), sustained, u(0.05, 0.15))
        damping, vib, noise, rng_pitch = 0.0, (u(4.5, 5.5), u(0.002, 0.01)), u(0.15, 0.4), (60, 96)
        formants = ()
    elif family == "string":
        ratios, amps = k, _spectrum(k, u(0.8, 1.3))
        env = (u(0.06, 0.2), sustained, u(0.08, 0.2))
        damping, vib, noise, rng_pitch = 0.0, (u(5, 6.5), u(0.003, 0.012)), u(0.03, 0.1), (43, 88)
        formants = ((u(250, 500), u(4, 10)), (u(2500, 3500), u(2, 8)))
    elif family == "vocal":
        ratios, amps = k, _spectrum(k, u(1.6, 2.4))
        env = (u(0.04, 0.12), sustained, u(0.05, 0.15))
        damping, vib, noise, rng_pitch = 0.0, (u(5, 6.5), u(0.005, 0.015)), u(0.05, 0.15), (45, 79)
        formants = ((u(300, 800), u(10, 16)), (u(900, 2200), u(8, 14)), (u(2400, 3200), u(4, 10)))
    else:
        raise ValueError(f"unknown instrument family {family!r}")
    low, high = rng_pitch
    span = int(rng.integers(12, 25))
    start = int(rng.integers(low, max(low + 1, high - span + 1)))
    return Instrument(
        family=family,
        pitch_range=(start, min(high, start + span)),
        partial_ratios=tuple(float(r) for r in ratios),
        partial_amps=tuple(float(a) for a in amps),
        attack_s=float(env[0]),
        decay_s=float(env[1]),
        release_s=float(env[2]),
        damping=float(damping),
        vibrato_hz=float(vib[0]),
        vibrato_depth=float(vib[1]),
        noise_level=float(noise),
        noise_band_hz=(float(u(300, 2000)), float(u(4000, 7500))),
        formants=tuple((float(c), float(g)) for c, g in formants),
        brightness_attack=float(u(0.5, 1.5)) if family == "brass" else 0.0,
    )


def render_note(
    rng: np.random.Generator, inst: Instrument, pitch: int, velocity: float, n: int, sr: int
) -> np.ndarray:
    """One note: partials with per-partial decay, vibrato, attack/release envelope, noise and
    body resonances; the note is held for 75 % of the clip, then released (as in NSynth)."""
    t = np.arange(n) / sr
    f0 = 440.0 * 2.0 ** ((pitch - 69) / 12.0)
    f0_track = f0 * (
        1.0 + inst.vibrato_depth * np.sin(2 * np.pi * inst.vibrato_hz * t + rng.uniform(0, 6.3))
    )
    release_at = 0.75 * n / sr
    ratios = np.array(inst.partial_ratios)
    amps = np.array(inst.partial_amps) * (1.0 + 0.15 * rng.standard_normal(len(ratios)))
    # Louder notes are brighter.
    amps = amps * np.arange(1, len(ratios) + 1) ** (0.4 * (velocity - 0.5))
    phase = 2.0 * np.pi * np.cumsum(f0_track) / sr
    tone = np.zeros(n)
    for k, (ratio, amp) in enumerate(zip(ratios, amps, strict=True)):
        if ratio <= 0 or amp == 0 or ratio * f0 >= 0.45 * sr:
            continue
        partial = amp * np.sin(ratio * phase + rng.uniform(0, 2 * np.pi))
        if np.isfinite(inst.decay_s):
            partial *= np.exp(-t * (1.0 + inst.damping * k) / inst.decay_s)
        if inst.brightness_attack > 0 and k > 0:
            partial *= 1.0 + inst.brightness_attack * k / 4 * np.exp(-t / 0.08)
        tone += partial
    tone = unit_rms(tone)
    f = rfft_freqs(n, sr)
    noise = _noise(rng, n, band(f, *inst.noise_band_hz))
    if np.isfinite(inst.decay_s):
        noise *= np.exp(-t / 0.05)  # pluck / hammer noise
    x = tone + inst.noise_level * noise
    body = np.ones_like(f)
    for centre, gain in inst.formants:
        body = body * _peak(f, centre, gain, 0.5)
    x = np.fft.irfft(np.fft.rfft(x) * body, n)
    envelope = np.minimum(1.0, t / inst.attack_s)
    envelope *= np.where(t < release_at, 1.0, np.exp(-(t - release_at) / inst.release_s))
    return _level(x * envelope, -26.0 + 14.0 * (velocity - 0.5))


# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------
def _scene_job(job: tuple) -> None:
    """Render and write one scene clip: ``(path, seed parts, recipe, place, n, sr)``."""
    path, seed_parts, recipe, place, n, sr = job
    _write_wav(path, render_scene(seeded_rng(*seed_parts), recipe, place, n, sr), sr)


def _note_job(job: tuple) -> None:
    """Render and write one note: ``(path, seed parts, instrument, pitch, velocity, n, sr)``."""
    path, seed_parts, inst, pitch, velocity, n, sr = job
    _write_wav(path, render_note(seeded_rng(*seed_parts), inst, pitch, velocity, n, sr), sr)


def _write_card(staging: Path, card: dict, description: list[str]) -> None:
    write_json(staging / "dataset_card.json", card)
    counts = card["clips_per_class"]
    lines = [
        f"# {card['name']}",
        "",
        f"Generated by `{card['generator']}` version {card['generator_version']} "
        f"(sedkit {card['sedkit_version']}, numpy {card['numpy_version']}), "
        f"preset `{card['preset']}`, seed {card['seed']}.",
        "",
        *description,
        "",
        f"{card['sample_rate']} Hz mono 16-bit WAV clips of {card['clip_duration_s']} s; "
        f"{card['n_clips']} clips. Files: {', '.join(card['files'])}.",
        "",
        "| class | " + " | ".join(counts) + " |",
        "|---|" + "---|" * len(counts),
    ]
    for c in card["classes"]:
        lines.append(f"| {c} | " + " | ".join(str(counts[s].get(c, 0)) for s in counts) + " |")
    lines += [
        "",
        "Synthetic data: results on it are comparable with each other, not with the papers "
        "that used the real datasets.",
    ]
    write_lines(staging / "dataset_card.md", lines)


def _card(name: str, generator: str, preset: str, seed: int, config: Any, **extra: Any) -> dict:
    return {
        "name": name,
        "generator": generator,
        "generator_version": GENERATOR_VERSION,
        "sedkit_version": sedkit.__version__,
        "numpy_version": np.__version__,
        "preset": preset,
        "seed": seed,
        "sample_rate": config.sample_rate,
        "clip_duration_s": config.clip_duration_s,
        "config": config_for_card(config),
        **extra,
    }


def _per_class(rows: Sequence[tuple[str, str, str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, label, _ in rows:
        counts[label] = counts.get(label, 0) + 1
    return counts


#: Per split of a TUT-like build: (filename, label, location) of each clip.
SplitRows = dict[str, list[tuple[str, str, str]]]


def _write_tut_lists(staging: Path, rows: SplitRows) -> list[tuple[str, str, str, str]]:
    """``meta.tsv`` and ``evaluation_setup/<split>.tsv`` of the TUT-like layout shared by
    ``scenes`` and ``instruments``; returns the meta rows."""
    meta = [(f, lab, split, loc) for split in rows for f, lab, loc in rows[split]]
    write_table(staging / "meta.tsv", ("filename", "label", "fold", "location"), meta)
    for split in rows:
        header = ("filename", "label", "location")
        write_table(staging / f"evaluation_setup/{split}.tsv", header, rows[split])
    return meta


def _tut_card_fields(classes: Sequence[str], rows: SplitRows) -> dict[str, Any]:
    """Card fields of a TUT-like build (classes, clip counts, list files)."""
    return {
        "classes": list(classes),
        "n_clips": sum(len(r) for r in rows.values()),
        "clips_per_class": {s: _per_class(rows[s]) for s in rows},
        "files": ["meta.tsv", "evaluation_setup/train.tsv", "evaluation_setup/test.tsv"],
    }


def _clip_samples(config: SceneConfig | InstrumentConfig | Scenes3Config) -> tuple[int, int]:
    """Sample rate and samples per clip of a build."""
    return config.sample_rate, int(round(config.clip_duration_s * config.sample_rate))


def _write_scenes(
    staging: Path, say: Callable[[str], None], config: SceneConfig, preset: str, seed: int
) -> str:
    """Render and write a ``scenes`` build into ``staging``; returns the summary line."""
    sr, n = _clip_samples(config)
    splits = {
        "train": (config.train_locations, config.clips_per_train_location),
        "test": (config.test_locations, config.clips_per_test_location),
    }
    rows: SplitRows = {"train": [], "test": []}
    jobs: list[tuple] = []
    location_id = 0
    for scene in SCENE_CLASSES:
        recipe = SCENE_RECIPES[scene]
        for split, (n_locations, n_clips) in splits.items():
            for _ in range(n_locations):
                location = f"l{location_id:03d}"
                location_id += 1
                place = _draw_place(seeded_rng(seed, "scenes", scene, location), recipe)
                for k in range(n_clips):
                    filename = f"audio/{scene}_{location}_{k:02d}.wav"
                    seed_parts = (seed, "scenes", location, k)
                    jobs.append((staging / filename, seed_parts, recipe, place, n, sr))
                    rows[split].append((filename, scene, location))
    say(f"synth scenes: rendering {len(jobs)} clips")
    run_jobs(_scene_job, jobs, config.n_workers)
    meta = _write_tut_lists(staging, rows)
    card = _card(
        "sedkit embedded acoustic scenes (TUT2017-like)",
        "sedkit_plugins.classification_data.synth.build_scenes",
        preset,
        seed,
        config,
        **_tut_card_fields(SCENE_CLASSES, rows),
        recipes={s: asdict(r) for s, r in SCENE_RECIPES.items()},
    )
    _write_card(
        staging,
        card,
        [
            "Ten acoustic scenes mixed from shared ambience beds and event textures; each "
            "recording location has its own mix, source parameters, colouring, reverberation "
            "and level. Train and test clips come from different locations (as in TUT2017).",
        ],
    )
    return f"synth scenes: {len(meta)} clips"


def build_scenes(
    out_dir: str | Path, config: SceneConfig, *, preset: str = "custom", seed: int = 0, log=None
) -> Path:
    """Build the TUT2017-like scenes benchmark into ``out_dir``; returns the card path.

    Layout: ``audio/<scene>_<location>_<k>.wav``; ``meta.tsv`` (filename, label, fold, location;
    fold ``train`` or ``test``); ``evaluation_setup/train.tsv`` and ``test.tsv`` (filename,
    label, location). Locations (``l000``, ...) never appear on both sides.
    """
    return build_into(
        out_dir, log, lambda staging, say: _write_scenes(staging, say, config, preset, seed)
    )


def _write_instruments(
    staging: Path, say: Callable[[str], None], config: InstrumentConfig, preset: str, seed: int
) -> str:
    """Render and write an ``instruments`` build into ``staging``; returns the summary line."""
    sr, n = _clip_samples(config)
    splits = {
        "train": (config.train_instruments, config.notes_per_train_instrument),
        "test": (config.test_instruments, config.notes_per_test_instrument),
    }
    rows: SplitRows = {"train": [], "test": []}
    instruments: dict[str, dict] = {}
    jobs: list[tuple] = []
    for family in INSTRUMENT_FAMILIES:
        index = 0
        for split, (n_instruments, n_notes) in splits.items():
            for _ in range(n_instruments):
                name = f"{family}_{index:03d}"
                index += 1
                inst = draw_instrument(seeded_rng(seed, "instruments", name), family)
                instruments[name] = {"split": split, **asdict(inst)}
                note_rng = seeded_rng(seed, "instruments", name, "notes")
                low, high = inst.pitch_range
                pitches = note_rng.integers(low, high + 1, size=n_notes)
                velocities = note_rng.choice([25, 50, 75, 100, 127], size=n_notes)
                for k, (pitch, velocity) in enumerate(zip(pitches, velocities, strict=True)):
                    filename = f"audio/{name}-{int(pitch):03d}-{int(velocity):03d}-{k:02d}.wav"
                    seed_parts = (seed, "instruments", name, k)
                    note = (inst, int(pitch), float(velocity) / 127.0)
                    jobs.append((staging / filename, seed_parts, *note, n, sr))
                    rows[split].append((filename, family, name))
    say(f"synth instruments: rendering {len(jobs)} notes")
    run_jobs(_note_job, jobs, config.n_workers)
    meta = _write_tut_lists(staging, rows)
    card = _card(
        "sedkit embedded instrument families (NSynth-like)",
        "sedkit_plugins.classification_data.synth.build_instruments",
        preset,
        seed,
        config,
        **_tut_card_fields(INSTRUMENT_FAMILIES, rows),
        instruments=instruments,
    )
    _write_card(
        staging,
        card,
        [
            "Single notes of ten instrument families (harmonic and inharmonic partials, "
            "plucked, struck, blown and bowed envelopes, vibrato, breath noise, formants). "
            "Each instrument is one draw of synthesis parameters from its family's prior; "
            "train and test notes come from different instruments (as in NSynth).",
        ],
    )
    return f"synth instruments: {len(meta)} notes"


def build_instruments(
    out_dir: str | Path,
    config: InstrumentConfig,
    *,
    preset: str = "custom",
    seed: int = 0,
    log=None,
) -> Path:
    """Build the NSynth-like instrument-family benchmark into ``out_dir``; returns the card path.

    Layout: ``audio/<family>_<instrument>-<pitch>-<velocity>.wav`` (NSynth-style note names),
    ``meta.tsv`` (filename, label, fold, location = instrument) and
    ``evaluation_setup/train.tsv`` / ``test.tsv``. Instruments never appear on both sides.
    """
    return build_into(
        out_dir, log, lambda staging, say: _write_instruments(staging, say, config, preset, seed)
    )


def _write_scenes3(
    staging: Path, say: Callable[[str], None], config: Scenes3Config, preset: str, seed: int
) -> str:
    """Render and write a ``scenes3`` build into ``staging``; returns the summary line."""
    sr, n = _clip_samples(config)
    cities = TAU_CITIES[: config.n_cities]
    city_params = {c: _draw_city(seeded_rng(seed, "scenes3", "city", c)) for c in cities}
    meta: list[tuple[str, str, str, str]] = []
    folds: SplitRows = {"train": [], "evaluate": []}
    jobs: list[tuple] = []
    for scene, recipe in TAU_RECIPES.items():
        coarse = TAU_SCENE_TO_CLASS[scene]
        for city in cities:
            for loc in range(config.locations_per_city):
                identifier = f"{city}-{loc}"
                place = _draw_place(
                    seeded_rng(seed, "scenes3", scene, identifier), recipe, city_params[city]
                )
                fold = "train" if loc < config.train_locations_per_city else "evaluate"
                for k in range(config.clips_per_location):
                    filename = f"audio/{scene}-{identifier}-{k}-a.wav"
                    seed_parts = (seed, "scenes3", scene, identifier, k)
                    jobs.append((staging / filename, seed_parts, recipe, place, n, sr))
                    meta.append((filename, scene, identifier, "a"))
                    folds[fold].append((filename, coarse, city))
    say(f"synth scenes3: rendering {len(jobs)} clips")
    run_jobs(_scene_job, jobs, config.n_workers)
    write_table(
        staging / "meta.csv", ("filename", "scene_label", "identifier", "source_label"), meta
    )
    for fold, rows in folds.items():
        write_table(
            staging / f"evaluation_setup/fold1_{fold}.csv",
            ("filename", "scene_label"),
            [(f, lab) for f, lab, _ in rows],
        )
    write_table(
        staging / "evaluation_setup/fold1_test.csv",
        ("filename",),
        [(f,) for f, _, _ in folds["evaluate"]],
    )
    card = _card(
        "sedkit embedded urban scenes, 3 classes (TAU 2020 3Class-like)",
        "sedkit_plugins.classification_data.synth.build_scenes3",
        preset,
        seed,
        config,
        classes=list(SCENES3_CLASSES),
        fine_scenes=TAU_SCENE_TO_CLASS,
        cities=list(cities),
        n_clips=len(meta),
        clips_per_class={s: _per_class(folds[s]) for s in folds},
        files=[
            "meta.csv",
            "evaluation_setup/fold1_train.csv",
            "evaluation_setup/fold1_evaluate.csv",
            "evaluation_setup/fold1_test.csv",
        ],
    )
    _write_card(
        staging,
        card,
        [
            "Ten fine urban scenes (airport, shopping_mall, metro_station: indoor; "
            "street_pedestrian, public_square, street_traffic, park: outdoor; tram, bus, "
            "metro: transportation) recorded in several cities (city-wide colouring, mains "
            "frequency, crowd timbre) and locations; fold-1 lists keep each location on one "
            "side, every city on both (as in TAU 2020).",
        ],
    )
    return f"synth scenes3: {len(meta)} clips"


def build_scenes3(
    out_dir: str | Path, config: Scenes3Config, *, preset: str = "custom", seed: int = 0, log=None
) -> Path:
    """Build the TAU Urban Acoustic Scenes 2020 3Class-like benchmark; returns the card path.

    Layout (as TAU 2020): ``audio/<scene>-<city>-<location>-<segment>-a.wav``; ``meta.csv``
    (tab-separated: filename, scene_label (fine), identifier (``<city>-<location>``),
    source_label); ``evaluation_setup/fold1_train.csv`` and ``fold1_evaluate.csv`` (filename,
    scene_label (coarse: indoor / outdoor / transportation)); ``fold1_test.csv`` (filename).
    """
    return build_into(
        out_dir, log, lambda staging, say: _write_scenes3(staging, say, config, preset, seed)
    )


#: The benchmarks this module builds: their presets and builder.
BENCHMARKS: dict[str, tuple[dict[str, Any], Callable[..., Path]]] = {
    "scenes": (SCENES_PRESETS, build_scenes),
    "instruments": (INSTRUMENTS_PRESETS, build_instruments),
    "scenes3": (SCENES3_PRESETS, build_scenes3),
}


def synthesize(
    benchmark: str, out_dir: str | Path, *, preset: str = "default", seed: int = 0, log: Log = None
) -> Path:
    """``sedkit synth scenes|instruments|scenes3 OUT_DIR``: build ``benchmark`` (a key of
    :data:`BENCHMARKS`) with one of its presets (``tiny``, ``default``); returns the dataset
    card path."""
    presets, build = BENCHMARKS[benchmark]
    return build(out_dir, check_preset(preset, presets), preset=preset, seed=seed, log=log)


__all__ = [
    "BENCHMARKS",
    "GENERATOR_VERSION",
    "INSTRUMENTS_PRESETS",
    "INSTRUMENT_FAMILIES",
    "SCENES3_CLASSES",
    "SCENES3_PRESETS",
    "SCENES_PRESETS",
    "SCENE_CLASSES",
    "TAU_SCENE_TO_CLASS",
    "InstrumentConfig",
    "SceneConfig",
    "Scenes3Config",
    "build_instruments",
    "build_scenes",
    "build_scenes3",
    "draw_instrument",
    "render_note",
    "render_scene",
    "synthesize",
]
