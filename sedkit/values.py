"""The values that pass between the parts of an experiment: a :class:`Batch` of examples, a
model's :class:`ModelOutput`, the :class:`Step` that loss terms see.

Shapes (B batch, S samples, M mel bands, T input frames, T' output frames after the model's
time pooling, C classes, D feature dimension): waveforms ``[B, S]``; features ``[B, M, T]``;
frame outputs ``[B, T', C]``; clip outputs ``[B, C]``; shared features ``h`` ``[B, T', D]``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from sedkit.components import Model

#: Domain tags carried by every example (``Batch.domain``).
SYNTHETIC, REAL = 0.0, 1.0


def example_mask(mask: Tensor | None, size: int, device: torch.device | str = "cpu") -> Tensor:
    """One of a :class:`Batch`'s ``[B]`` masks as bool on ``device``; all False when the batch
    has none (e.g. ``example_mask(batch.weak_mask, len(batch))``)."""
    if mask is None:
        return torch.zeros(size, dtype=torch.bool, device=device)
    return mask.detach().to(device=device, dtype=torch.bool)


@dataclass
class Batch:
    """A batch of examples, possibly mixed from several streams (strong, weak, unlabeled).

    Targets that a stream lacks are zero-filled and excluded by the masks, so every tensor has the
    full batch size. ``hidden`` holds true labels of examples that training must treat as
    unlabeled; only pseudo-label quality metrics may read it.
    """

    filenames: list[str]
    stream: list[str]  # per example: "synthetic", "weak", "unlabeled", "validation", ...
    domain: Tensor  # [B] float, SYNTHETIC (0.0) or REAL (1.0)
    audio: Tensor | None = None  # [B, S] at the recipe's sample rate
    features: Tensor | None = None  # [B, M, T] when the data component supplies features itself
    strong: Tensor | None = None  # [B, T', C] frame targets (SED)
    strong_mask: Tensor | None = None  # [B] bool: example has strong labels
    weak: Tensor | None = None  # [B, C] clip targets (SED, multi-label)
    weak_mask: Tensor | None = None  # [B] bool: example has clip labels (strong examples too)
    label: Tensor | None = None  # [B] long, single-label classification target, -1 unlabeled
    hidden: dict[str, Tensor] = field(default_factory=dict)  # true labels of "unlabeled" examples

    def __len__(self) -> int:
        return len(self.filenames)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """A copy with every tensor moved to ``device``."""

        def move(value: Any) -> Any:
            if isinstance(value, Tensor):
                return value.to(device, non_blocking=non_blocking)
            if isinstance(value, dict):
                return {k: move(v) for k, v in value.items()}
            return value

        return dataclasses.replace(
            self, **{f.name: move(getattr(self, f.name)) for f in dataclasses.fields(self)}
        )

    def pin_memory(self) -> Batch:
        """Called by ``torch.utils.data.DataLoader(pin_memory=True)``."""

        def pin(value: Any) -> Any:
            if isinstance(value, Tensor):
                return value.pin_memory()
            if isinstance(value, dict):
                return {k: pin(v) for k, v in value.items()}
            return value

        return dataclasses.replace(
            self, **{f.name: pin(getattr(self, f.name)) for f in dataclasses.fields(self)}
        )


@dataclass
class ModelOutput:
    """What a model returns for a batch of features.

    SED models fill ``frame_probs`` and ``clip_probs`` (sigmoid outputs), their logits
    ``frame_logits`` and ``clip_logits`` (the SED losses of :mod:`sedkit.losses` take logits, so
    that bf16 autocast cannot saturate them), and ``h``, the shared features on which
    pseudo-labelers and domain adapters put their heads. Classification models fill
    ``clip_logits`` (softmax over classes) and may fill ``h``.
    """

    clip_probs: Tensor | None = None  # [B, C]
    clip_logits: Tensor | None = None  # [B, C]
    frame_probs: Tensor | None = None  # [B, T', C]
    frame_logits: Tensor | None = None  # [B, T', C]
    h: Tensor | None = None  # [B, T', D] (or [B, D] for clip-level models)


@dataclass
class ScoringReference:
    """Where the validation ground truth lives, for ``sedkit.scoring``."""

    ground_truth_tsv: Path  # strong labels: filename onset offset event_label
    durations_tsv: Path | None = None  # filename duration


@dataclass
class Step:
    """Everything a loss term may need for one training step.

    ``features`` is the (augmented) model input; ``out`` the model's output on it.
    ``progress`` runs from 0 to 1 over the whole training, counted in optimizer steps.
    """

    model: "Model"
    features: Tensor
    out: ModelOutput
    batch: Batch
    epoch: int
    global_step: int
    progress: float
    stage: str
