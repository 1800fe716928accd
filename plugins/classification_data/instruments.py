"""Instrument notes (``instruments``): instruments drawn from their family's prior, and the
rendering of one note."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sedkit.data.synthesis import (
    band,
    rfft_freqs,
    unit_rms,
)
from sedkit_plugins.classification_data.sound import _level, _noise, _peak


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
