"""Signal helpers of the classification benchmarks: noise, walks, envelopes, harmonics, EQ
peaks, levels, WAV writing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

from sedkit.data.synthesis import (
    unit_rms,
)


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


def _write_wav(path: Path, x: np.ndarray, sr: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.clip(x, -1.0, 1.0).astype(np.float32), sr, subtype="PCM_16")


def _level(x: np.ndarray, rms_dbfs: float) -> np.ndarray:
    """Scale to an RMS level, then down further if the peak would clip."""
    y = unit_rms(x) * 10.0 ** (rms_dbfs / 20.0)
    peak = float(np.max(np.abs(y)))
    return y * (0.97 / peak) if peak > 0.97 else y
