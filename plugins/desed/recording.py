"""The DESED-like benchmark's backgrounds and domain shift: the "recording" of real-domain
mixtures (room reverberation, device colouring)."""

from __future__ import annotations

import numpy as np

from sedkit.data.synthesis import (
    band,
    rfft_freqs,
    tilt,
)
from sedkit_plugins.desed.config import BACKGROUND_KINDS, DeviceConfig, DomainConfig
from sedkit_plugins.desed.sources import _shaped_noise, _smooth_walk


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
