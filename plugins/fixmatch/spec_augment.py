"""Image-style augmentations of spectrogram patches for weak and strong views (FixMatch, FMUC).

The FMUC paper treats log-mel patches as "spectral images" and augments them like images:
translation in x (time) and y (frequency), additive Gaussian noise and sharpening, with small
settings for the weak view and larger ones (plus more operations) for the strong view. This
module adds the image operations that :mod:`sedkit.data.augment` lacks (translation with padding,
sharpening, a random gain) and composes them with its time/frequency masking and noise into one
configurable view, :func:`augment_spectrogram`.

Sizes are fractions of the patch (of its frames T or mel bands M), as in image augmentation
libraries, so one setting serves patches of any size. All randomness comes from an explicit
``torch.Generator`` on the features' device (see :func:`sedkit.data.augment.make_generator`).
Inputs are ``[B, M, T]``; every clip draws its own parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from sedkit.data.augment import frequency_mask, gaussian_noise, time_mask

__all__ = [
    "SpecAugmentParams",
    "augment_spectrogram",
    "random_gain",
    "sharpen",
    "shift_rows",
    "translate",
]

TranslateFill = Literal["roll", "nearest", "min"]


@dataclass
class SpecAugmentParams:
    """One view's augmentation settings (all off by default); applied in this order:

    ``time_translate_max`` / ``freq_translate_max``: translate each clip by a whole number of
    frames / bands drawn uniformly in +-(fraction * T) / +-(fraction * M).
    ``translate_fill``: what enters at the edge: ``roll`` (circular: what leaves re-enters),
    ``nearest`` (repeat the edge frame/band, like image libraries' default) or ``min`` (the
    clip's minimum, i.e. silence on a log scale).
    ``sharpen_max``: unsharp masking x + a (x - blur3x3(x)) with a ~ U(0, sharpen_max).
    ``time_masks`` / ``freq_masks``: SpecAugment masks per clip, each up to ``time_mask_max``
    of the frames / ``freq_mask_max`` of the bands wide, filled with the clip's mean.
    ``gain_max``: add an offset ~ U(-gain_max, gain_max) to the whole clip (a level change on
    a log scale; brightness for images).
    ``noise_std``: additive Gaussian noise, in feature units (standardised features: 1 = one
    standard deviation of a band).
    """

    time_translate_max: float = 0.0
    freq_translate_max: float = 0.0
    translate_fill: TranslateFill = "nearest"
    sharpen_max: float = 0.0
    time_masks: int = 0
    time_mask_max: float = 0.1
    freq_masks: int = 0
    freq_mask_max: float = 0.1
    gain_max: float = 0.0
    noise_std: float = 0.0

    def __post_init__(self) -> None:
        for name in ("time_translate_max", "freq_translate_max", "time_mask_max", "freq_mask_max"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}: a fraction of the patch in [0, 1], got {value}")
        for name in ("sharpen_max", "gain_max", "noise_std", "time_masks", "freq_masks"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must be >= 0, got {getattr(self, name)}")

    @property
    def shifts_time(self) -> bool:
        """True when the view moves content in time (frame targets would no longer align)."""
        return self.time_translate_max > 0


def _uniform(low: float, high: float, size: int, gen: torch.Generator, device) -> Tensor:
    return low + (high - low) * torch.rand(size, generator=gen, device=device)


def shift_rows(x: Tensor, shifts: Tensor, dim: int, fill: TranslateFill = "roll") -> Tensor:
    """Shift each batch row of ``x`` along ``dim`` by its own integer in ``shifts`` [B]
    (positive: towards higher indices). ``fill`` says what enters at the edge (see
    :class:`SpecAugmentParams`)."""
    n = x.shape[dim]
    source = torch.arange(n, device=x.device).unsqueeze(0) - shifts.to(x.device).unsqueeze(1)
    inside = (source >= 0) & (source < n)  # [B, n]
    source = source % n if fill == "roll" else source.clamp(0, n - 1)
    shape = [x.shape[0]] + [1] * (x.dim() - 1)
    shape[dim] = n
    out = torch.gather(x, dim, source.view(shape).expand_as(x))
    if fill == "min":
        floor = x.amin(dim=tuple(range(1, x.dim())), keepdim=True)
        out = torch.where(inside.view(shape), out, floor)
    return out


def translate(
    features: Tensor,
    max_frames: int,
    max_bands: int,
    generator: torch.Generator,
    fill: TranslateFill = "nearest",
) -> Tensor:
    """Translate each ``[M, T]`` clip by up to ``max_frames`` frames and ``max_bands`` mel bands
    either way (uniform integers, drawn per clip)."""
    b, m, t = features.shape
    device = features.device
    if max_frames > 0:
        shifts = torch.randint(
            -max_frames, max_frames + 1, (b,), generator=generator, device=device
        )
        features = shift_rows(features, shifts, dim=2, fill=fill)
    if max_bands > 0:
        shifts = torch.randint(-max_bands, max_bands + 1, (b,), generator=generator, device=device)
        features = shift_rows(features, shifts, dim=1, fill=fill)
    return features


def sharpen(features: Tensor, max_amount: float, generator: torch.Generator) -> Tensor:
    """Unsharp masking: ``x + a (x - blur(x))`` with ``blur`` the 3x3 mean (edges replicated)
    and ``a ~ U(0, max_amount)`` per clip. A constant patch is left unchanged."""
    if max_amount <= 0:
        return features
    b = features.shape[0]
    x = features.unsqueeze(1)
    blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1).squeeze(1)
    amount = _uniform(0.0, max_amount, b, generator, features.device).to(features.dtype)
    return features + amount.view(b, 1, 1) * (features - blurred)


def random_gain(features: Tensor, max_offset: float, generator: torch.Generator) -> Tensor:
    """Add one offset ~ U(-max_offset, max_offset) to each whole clip."""
    if max_offset <= 0:
        return features
    b = features.shape[0]
    offset = _uniform(-max_offset, max_offset, b, generator, features.device).to(features.dtype)
    return features + offset.view(b, 1, 1)


def augment_spectrogram(
    features: Tensor, params: SpecAugmentParams, generator: torch.Generator
) -> Tensor:
    """One augmented view of ``[B, M, T]`` features: translate, sharpen, time and frequency
    masks, gain, noise (each skipped when off)."""
    _, m, t = features.shape
    features = translate(
        features,
        round(params.time_translate_max * t),
        round(params.freq_translate_max * m),
        generator,
        params.translate_fill,
    )
    features = sharpen(features, params.sharpen_max, generator)
    features = time_mask(features, params.time_masks, round(params.time_mask_max * t), generator)
    features = frequency_mask(
        features, params.freq_masks, round(params.freq_mask_max * m), generator
    )
    features = random_gain(features, params.gain_max, generator)
    return gaussian_noise(features, params.noise_std, generator)
