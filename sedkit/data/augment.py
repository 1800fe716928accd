"""Spectrogram augmentation on the training device: time shift, time and frequency masking,
Gaussian noise, mixup; and weak/strong views of the same clip for consistency methods.

Every function draws its randomness from an explicit ``torch.Generator`` on the features' device,
so a run replays identically after a resume and never disturbs the global RNG. Functions take
``[B, M, T]`` features; targets that must follow the features (frame targets under a time shift,
clip and frame targets under mixup) are passed and returned alongside.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from sedkit.values import Batch

__all__ = [
    "AugmentParams",
    "augment_batch",
    "augment_view",
    "frequency_mask",
    "gaussian_noise",
    "make_generator",
    "mixup",
    "time_mask",
    "time_shift",
    "two_views",
]


@dataclass
class AugmentParams:
    """Augmentation settings (all off by default).

    ``time_shift_max_s``: circular shift of each clip by up to this many seconds either way,
    rounded to whole output frames so frame targets move exactly with the features.
    ``time_masks`` / ``freq_masks``: number of masks per clip, each up to ``time_mask_max_s``
    seconds / ``freq_mask_max_bands`` mel bands wide, filled with the clip's mean.
    ``noise_std``: standard deviation of additive Gaussian noise in (normalised) feature units.
    ``mixup_prob``: probability that a batch is mixed; clips are mixed only with clips of the
    same stream (so domains and label kinds never mix), weight ``lam ~ Beta(alpha, alpha)``,
    targets mixed with the same weight; only streams in ``mixup_streams`` are mixed.
    """

    time_shift_max_s: float = 0.0
    time_masks: int = 0
    time_mask_max_s: float = 0.5
    freq_masks: int = 0
    freq_mask_max_bands: int = 8
    noise_std: float = 0.0
    mixup_prob: float = 0.0
    mixup_alpha: float = 0.2
    mixup_streams: list[str] = field(default_factory=lambda: ["synthetic", "weak"])

    def __post_init__(self) -> None:
        for name in ("time_shift_max_s", "time_mask_max_s", "noise_std"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("time_masks", "freq_masks", "freq_mask_max_bands"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.mixup_prob <= 1.0:
            raise ValueError(f"mixup_prob must be in [0, 1], got {self.mixup_prob}")
        if self.mixup_alpha <= 0:
            raise ValueError(f"mixup_alpha must be positive, got {self.mixup_alpha}")

    @property
    def enabled(self) -> bool:
        return bool(
            self.time_shift_max_s > 0
            or (self.time_masks > 0 and self.time_mask_max_s > 0)
            or (self.freq_masks > 0 and self.freq_mask_max_bands > 0)
            or self.noise_std > 0
            or self.mixup_prob > 0
        )


def make_generator(device: torch.device | str, *seed_parts: int) -> torch.Generator:
    """A generator on ``device`` seeded from integers (e.g. run seed, epoch, batch index)."""
    seed = 0x5EED
    for part in seed_parts:
        # A simple 64-bit mix; distinct tuples give distinct, well-spread seeds.
        seed = (seed * 6364136223846793005 + int(part) + 1442695040888963407) % (1 << 63)
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


def _uniform_int(low: int, high: int, size: int, gen: torch.Generator, device) -> Tensor:
    """Integers uniform in ``[low, high]`` (inclusive)."""
    return torch.randint(low, high + 1, (size,), generator=gen, device=device)


def time_shift(
    features: Tensor,
    max_shift_frames: int,
    generator: torch.Generator,
    *,
    pooling: int = 1,
    frame_targets: Sequence[Tensor | None] = (),
) -> tuple[Tensor, list[Tensor | None]]:
    """Roll each clip by a random whole number of output frames in
    ``[-max_shift_frames, max_shift_frames]`` (``pooling`` input frames each).

    Returns the shifted features and the ``[B, T', C]`` frame targets rolled by the same number
    of output frames (circular, so no label falls off the clip).
    """
    if max_shift_frames <= 0:
        return features, list(frame_targets)
    b, _, t = features.shape
    shifts = _uniform_int(-max_shift_frames, max_shift_frames, b, generator, features.device)
    out = _roll_rows(features, shifts * pooling, dim=2)
    rolled = [
        None if y is None else _roll_rows(y, shifts.to(y.device), dim=1) for y in frame_targets
    ]
    return out, rolled


def _roll_rows(x: Tensor, shifts: Tensor, dim: int) -> Tensor:
    """Circularly roll each batch row of ``x`` along ``dim`` by its own shift."""
    n = x.shape[dim]
    index = (torch.arange(n, device=x.device).unsqueeze(0) - shifts.unsqueeze(1)) % n  # [B, n]
    shape = [x.shape[0]] + [1] * (x.dim() - 1)
    shape[dim] = n
    index = index.view(shape).expand_as(x)
    return torch.gather(x, dim, index)


def _band_mask(b: int, n: int, count: int, max_width: int, gen: torch.Generator, device) -> Tensor:
    """``[B, n]`` bool: ``count`` random intervals per row, each 0..max_width long."""
    mask = torch.zeros(b, n, dtype=torch.bool, device=device)
    positions = torch.arange(n, device=device).unsqueeze(0)
    for _ in range(count):
        width = _uniform_int(0, max_width, b, gen, device)
        start = (torch.rand(b, generator=gen, device=device) * (n - width + 1).clamp_min(1)).long()
        mask |= (positions >= start.unsqueeze(1)) & (positions < (start + width).unsqueeze(1))
    return mask


def _mask_spans(
    features: Tensor, dim: int, count: int, max_width: int, generator: torch.Generator
) -> Tensor:
    """``count`` spans of up to ``max_width`` along ``dim`` (2: frames, 1: mel bands) of each
    clip ``[B, M, T]``, filled with the clip's mean."""
    if count <= 0 or max_width <= 0:
        return features
    n = features.shape[dim]
    mask = _band_mask(features.shape[0], n, count, min(max_width, n), generator, features.device)
    fill = features.mean(dim=(1, 2), keepdim=True)
    return torch.where(mask.unsqueeze(3 - dim), fill, features)


def time_mask(features: Tensor, count: int, max_frames: int, generator: torch.Generator) -> Tensor:
    """SpecAugment time masking: ``count`` spans of up to ``max_frames`` frames per clip,
    filled with the clip's mean (labels unchanged)."""
    return _mask_spans(features, 2, count, max_frames, generator)


def frequency_mask(
    features: Tensor, count: int, max_bands: int, generator: torch.Generator
) -> Tensor:
    """SpecAugment frequency masking: ``count`` spans of up to ``max_bands`` mel bands per clip,
    filled with the clip's mean."""
    return _mask_spans(features, 1, count, max_bands, generator)


def gaussian_noise(features: Tensor, std: float, generator: torch.Generator) -> Tensor:
    """Add ``N(0, std^2)`` noise to every feature value."""
    if std <= 0:
        return features
    noise = torch.randn(features.shape, generator=generator, device=features.device)
    return features + std * noise.to(features.dtype)


def mixup(
    features: Tensor,
    targets: Sequence[Tensor | None],
    groups: Sequence[str],
    alpha: float,
    generator: torch.Generator,
    *,
    mix_groups: Sequence[str] | None = None,
) -> tuple[Tensor, list[Tensor | None]]:
    """Mix each clip with another clip of the same group (stream): ``lam * x + (1 - lam) * x'``
    with one ``lam ~ Beta(alpha, alpha)`` per clip; every target tensor (first dim B) is mixed
    with the same weights. Clips of groups outside ``mix_groups`` are left as they are.
    """
    b = features.shape[0]
    device = features.device
    partner = torch.arange(b, device=device)
    for group in dict.fromkeys(groups):
        if mix_groups is not None and group not in mix_groups:
            continue
        members = torch.tensor([i for i, g in enumerate(groups) if g == group], device=device)
        if len(members) < 2:
            continue
        order = torch.randperm(len(members), generator=generator, device=device)
        partner[members] = members[order]
    # torch's Beta sampler takes no generator: draw lam with numpy, seeded from ours.
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=device).item())
    lam_np = np.random.default_rng(seed).beta(alpha, alpha, size=b)
    lam = torch.as_tensor(lam_np, dtype=torch.float32, device=device)
    lam = torch.where(partner == torch.arange(b, device=device), torch.ones_like(lam), lam)

    def mix(x: Tensor) -> Tensor:
        w = lam.to(x.device, x.dtype).view([b] + [1] * (x.dim() - 1))
        return w * x + (1 - w) * x[partner.to(x.device)]

    return mix(features), [None if y is None else mix(y) for y in targets]


def augment_view(
    features: Tensor,
    params: AugmentParams,
    generator: torch.Generator,
    *,
    frame_hop_s: float,
    input_hop_s: float,
) -> Tensor:
    """One augmented view of ``[B, M, T]`` features without targets (shift, masks, noise).

    ``frame_hop_s`` is the model's output hop, ``input_hop_s`` the feature hop. Note that a
    time shift moves frame positions: compare frame outputs of two views only without one.
    """
    pooling = max(1, round(frame_hop_s / input_hop_s))
    max_shift = int(round(params.time_shift_max_s / frame_hop_s))
    features, _ = time_shift(features, max_shift, generator, pooling=pooling)
    features = time_mask(
        features, params.time_masks, int(round(params.time_mask_max_s / input_hop_s)), generator
    )
    features = frequency_mask(features, params.freq_masks, params.freq_mask_max_bands, generator)
    return gaussian_noise(features, params.noise_std, generator)


def two_views(
    features: Tensor,
    weak: AugmentParams,
    strong: AugmentParams,
    generator: torch.Generator,
    *,
    frame_hop_s: float,
    input_hop_s: float,
) -> tuple[Tensor, Tensor]:
    """A weakly and a strongly augmented view of the same clips (FixMatch-style consistency)."""
    kwargs = {"frame_hop_s": frame_hop_s, "input_hop_s": input_hop_s}
    return (
        augment_view(features, weak, generator, **kwargs),
        augment_view(features, strong, generator, **kwargs),
    )


def augment_batch(
    features: Tensor,
    batch: Batch,
    params: AugmentParams,
    generator: torch.Generator,
    *,
    frame_hop_s: float,
    input_hop_s: float,
) -> tuple[Tensor, Batch]:
    """Training augmentation of a mixed batch: shift (targets follow), masks, noise, mixup
    (targets mixed). Returns new features and a batch with updated targets."""
    if not params.enabled:
        return features, batch
    pooling = max(1, round(frame_hop_s / input_hop_s))
    hidden = dict(batch.hidden)
    strong, weak = batch.strong, batch.weak
    max_shift = int(round(params.time_shift_max_s / frame_hop_s))
    features, (strong, hidden_strong) = time_shift(
        features,
        max_shift,
        generator,
        pooling=pooling,
        frame_targets=(strong, hidden.get("strong")),
    )
    if hidden_strong is not None:
        hidden["strong"] = hidden_strong
    features = time_mask(
        features, params.time_masks, int(round(params.time_mask_max_s / input_hop_s)), generator
    )
    features = frequency_mask(features, params.freq_masks, params.freq_mask_max_bands, generator)
    features = gaussian_noise(features, params.noise_std, generator)
    if params.mixup_prob > 0:
        draw = torch.rand((), generator=generator, device=features.device)
        if bool(draw < params.mixup_prob):
            keys = [k for k in ("weak", "strong") if k in hidden]
            features, mixed = mixup(
                features,
                [strong, weak] + [hidden[k] for k in keys],
                batch.stream,
                params.mixup_alpha,
                generator,
                mix_groups=params.mixup_streams,
            )
            strong, weak = mixed[0], mixed[1]
            hidden.update(zip(keys, mixed[2:], strict=True))
    return features, dataclasses.replace(batch, strong=strong, weak=weak, hidden=hidden)
