"""Non-target sounds of the embedded DESED-like benchmark's real domain.

Real recordings hold sounds outside the ten DESED classes (doors, steps, keyboards, music,
birds), unlabeled: a detector must learn to ignore them, which only real-domain data can teach.
Each generator below draws a new instance on each call, in the style of the class generators of
:mod:`sedkit_plugins.desed.synth`: ``(rng, sample rate, max duration) -> waveform``. They are
chosen to resemble target classes in one respect each (impulsive like Dishes and Dog, harmonic
like Alarm_bell_ringing and Speech, chirping like Cat), so that they confuse.
numpy only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sedkit.data.synthesis import band, filter_magnitude, rfft_freqs, unit_rms


def _noise_burst(rng: np.random.Generator, n: int, sr: int, low: float, high: float) -> np.ndarray:
    return unit_rms(filter_magnitude(rng.standard_normal(n), band(rfft_freqs(n, sr), low, high)))


def _place(parts: list[np.ndarray], starts_s: np.ndarray, sr: int) -> np.ndarray:
    """Sum ``parts`` into one signal, each starting at its time in seconds."""
    length = max(int(s * sr) + len(p) for p, s in zip(parts, starts_s, strict=True))
    out = np.zeros(length)
    for part, start in zip(parts, starts_s, strict=True):
        i = int(start * sr)
        out[i : i + len(part)] += part
    return out


def door_knock(rng: np.random.Generator, sr: int, max_duration_s: float) -> np.ndarray:
    """Two to five knocks on a wooden door: low damped body modes under a short click."""
    modes = rng.uniform(90.0, 320.0, 3)
    knocks = []
    for _ in range(int(rng.integers(2, 6))):
        m = int(0.18 * sr)
        t = np.arange(m) / sr
        body = sum(np.exp(-t / rng.uniform(0.02, 0.06)) * np.sin(2 * np.pi * f * t) for f in modes)
        click = np.exp(-t / 0.002) * _noise_burst(rng, m, sr, 800.0, 4000.0)
        knocks.append(body + rng.uniform(0.1, 0.4) * click)
    starts = np.cumsum(rng.uniform(0.15, 0.35, len(knocks))) - 0.15
    return _place(knocks, starts, sr)[: int(max_duration_s * sr)]


def footsteps(rng: np.random.Generator, sr: int, max_duration_s: float) -> np.ndarray:
    """Steps at a walking pace: soft low thumps with a little scuff noise."""
    n_steps = int(rng.integers(3, 12))
    period = rng.uniform(0.45, 0.7)
    steps = []
    for _ in range(n_steps):
        m = int(0.12 * sr)
        t = np.arange(m) / sr
        thump = np.exp(-t / rng.uniform(0.015, 0.04)) * _noise_burst(rng, m, sr, 40.0, 500.0)
        scuff = np.exp(-t / 0.03) * _noise_burst(rng, m, sr, 1000.0, 5000.0)
        steps.append(thump + rng.uniform(0.05, 0.3) * scuff)
    starts = period * np.arange(n_steps) + rng.uniform(-0.04, 0.04, n_steps).clip(0.0)
    return _place(steps, starts, sr)[: int(max_duration_s * sr)]


def keyboard_typing(rng: np.random.Generator, sr: int, max_duration_s: float) -> np.ndarray:
    """Bursts of key presses: bright clicks 5-12 per second with irregular gaps."""
    n_keys = int(rng.integers(6, 40))
    clicks = []
    for _ in range(n_keys):
        m = int(0.03 * sr)
        t = np.arange(m) / sr
        clicks.append(
            rng.uniform(0.4, 1.0) * np.exp(-t / 0.004) * _noise_burst(rng, m, sr, 2000.0, 7500.0)
        )
    gaps = rng.exponential(1.0 / rng.uniform(5.0, 12.0), n_keys)
    return _place(clicks, np.cumsum(gaps), sr)[: int(max_duration_s * sr)]


def music(rng: np.random.Generator, sr: int, max_duration_s: float) -> np.ndarray:
    """A few bars from a radio: chords of harmonic tones with vibrato, changing every 0.5-1.5 s."""
    total = int(sr * min(max_duration_s, rng.uniform(2.0, 8.0)))
    out = np.zeros(total)
    root = rng.uniform(110.0, 330.0)
    start = 0
    while start < total:
        m = min(total - start, int(sr * rng.uniform(0.5, 1.5)))
        t = np.arange(m) / sr
        chord = root * 2.0 ** (np.array([0, 4, 7, 12])[: int(rng.integers(2, 5))] / 12.0)
        chord *= 2.0 ** (rng.integers(-5, 6) / 12.0)
        vibrato = 1.0 + 0.004 * np.sin(2 * np.pi * rng.uniform(4.0, 6.0) * t)
        tone = np.zeros(m)
        for f in chord:
            for k in range(1, 8):
                if k * f < 0.45 * sr:
                    phase = 2 * np.pi * k * f * np.cumsum(vibrato) / sr
                    tone += np.sin(phase + rng.uniform(0, 6)) / k**1.3
        envelope = np.minimum(1.0, t / 0.02) * np.exp(-t / rng.uniform(0.5, 3.0))
        out[start : start + m] += tone * envelope
        start += m
    return out


def birdsong(rng: np.random.Generator, sr: int, max_duration_s: float) -> np.ndarray:
    """A song of fast frequency-modulated chirps between 2 and 7 kHz."""
    n_chirps = int(rng.integers(3, 15))
    chirps = []
    for _ in range(n_chirps):
        m = int(sr * rng.uniform(0.04, 0.2))
        t = np.linspace(0.0, 1.0, m)
        f_start, f_end = rng.uniform(2000.0, 7000.0, 2).clip(max=0.45 * sr)
        track = f_start + (f_end - f_start) * t + rng.uniform(0, 600.0) * np.sin(12 * t)
        chirp = np.sin(2 * np.pi * np.cumsum(track) / sr) * np.sin(np.pi * t) ** 2
        chirps.append(chirp)
    starts = np.cumsum(rng.uniform(0.06, 0.3, n_chirps))
    return _place(chirps, starts, sr)[: int(max_duration_s * sr)]


DISTRACTOR_GENERATORS: dict[str, Callable[..., np.ndarray]] = {
    "door_knock": door_knock,
    "footsteps": footsteps,
    "keyboard_typing": keyboard_typing,
    "music": music,
    "birdsong": birdsong,
}


def generate_distractor(
    kind: str, rng: np.random.Generator, sr: int, max_duration_s: float
) -> np.ndarray:
    """One non-target sound of ``kind``: at most ``max_duration_s`` long, peak 0.5, float32."""
    x = DISTRACTOR_GENERATORS[kind](rng, sr, max_duration_s)
    x = x[: int(max_duration_s * sr)]
    return (0.5 * x / (np.max(np.abs(x)) + 1e-12)).astype(np.float32)
