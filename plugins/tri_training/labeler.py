"""Tri-training pseudo-labeling for weakly labeled SED (tri-training paper, Algorithm 1).

Two labelers F1 and F2 sit on the model's shared features ``h`` next to the model's own heads
(the paper's Ft). Stage 1 trains F, F1, F2 and Ft on the labeled data (the model's supervised
loss is added by the trainer; this component adds the labelers' BCE and the orthogonality term
lambda * Omega that pushes F1 and F2 apart). When stage 2 starts, F1 and F2 label the weak (W)
and unlabeled (U) real clips in eval mode: per class (clip and frame) a label is kept where both
labelers are on the same side of the threshold and masked where they disagree. Stage 2 trains F
and Ft on S, W and the pseudo-labels (W_psl: frame labels of weak clips, whose clip labels are
known; U_psl: clip and frame labels of unlabeled clips); F1 and F2 are no longer used.
METHODS.md section 3 pins the details checked by the tests.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from sedkit import hookimpl
from sedkit.components import (
    Batch,
    DataModule,
    HeadContext,
    ModelOutput,
    Predictor,
    PseudoLabeler,
    Step,
    example_mask,
)
from sedkit.errors import UserError
from sedkit.losses import logits_of, masked_bce_with_logits, pool_clip_logits, zero_loss

MASKED = -1  # stored pseudo-label value of a (clip or frame, class) entry left out of the loss


OmegaNormalization = Literal["unit", "matrix"]
OmegaReduction = Literal["mean", "sum", "sum_per_unit"]


def orthogonality(
    w1: Tensor,
    w2: Tensor,
    normalization: OmegaNormalization = "unit",
    reduction: OmegaReduction = "mean",
    eps: float = 1e-8,
) -> Tensor:
    """Omega = |(W1/|W1|)^T (W2/|W2|)| of paper eq. 8, with its two open choices named.

    ``w1``, ``w2``: the labelers' first-layer weights as stored by ``nn.Linear``, shape
    [hidden, D]. In the paper's notation W = weight^T is [D, hidden], one column per hidden unit,
    and G = (W1/|W1|)^T (W2/|W2|) is [hidden, hidden]. The paper leaves open:

    - ``normalization``: ``unit`` divides each unit's weight vector by its L2 norm, so G holds
      the cosine similarities between the units of F1 and those of F2; ``matrix`` divides each
      matrix by its Frobenius norm.
    - ``reduction`` of |G|: ``mean`` over all hidden x hidden pairs, ``sum``, or ``sum_per_unit``
      (the sum divided by hidden: the mean over F1's units of their summed |cosines| with F2's).

    Default ``unit`` + ``mean``: Omega is the mean absolute cosine between the two labelers'
    units, in [0, 1] whatever the layer width, so the paper's lambda = 1 weighs it like one BCE
    term. ``sum_per_unit`` is ``hidden`` times larger (about 9 at initialisation for 128 units,
    30x the BCE it sits next to), and its L1 subgradient does not shrink as Omega -> 0, so it
    dominated the labelers' update. The asymmetric tri-training this builds on (Saito et al.,
    2017) uses |W1^T W2| with a small lambda for the same reason.
    Checks (``unit``): W1 = W2 = I_n gives 1/n (``mean``), n (``sum``), 1 (``sum_per_unit``);
    W1 = [I; 0], W2 = [0; I] (units reading disjoint inputs) give 0 in every form. Omega depends
    on these two weights only, so it sends no gradient to F or Ft. Perfect orthogonality needs
    2 x hidden <= D.

    Why a Gram matrix between hidden units: the order of hidden units in two separately
    initialised labelers is arbitrary, and G's entries as a set do not depend on it.
    """
    with torch.autocast(device_type=w1.device.type, enabled=False):  # a float32 Gram matrix
        if normalization == "unit":
            u1 = torch.nn.functional.normalize(w1.float(), dim=1, eps=eps)
            u2 = torch.nn.functional.normalize(w2.float(), dim=1, eps=eps)
        elif normalization == "matrix":
            u1 = w1.float() / w1.float().norm().clamp_min(eps)
            u2 = w2.float() / w2.float().norm().clamp_min(eps)
        else:
            raise ValueError(f"unknown orthogonality normalization {normalization!r}")
        gram = (u1 @ u2.T).abs()
        if reduction == "mean":
            return gram.mean()
        if reduction == "sum":
            return gram.sum()
        if reduction == "sum_per_unit":
            return gram.sum() / w1.shape[0]
        raise ValueError(f"unknown orthogonality reduction {reduction!r}")


def agreement_labels(
    p1: Tensor, p2: Tensor, threshold: float = 0.5, margin: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Pseudo-labels from two labelers' probabilities: (labels 0/1, kept mask).

    1 where both are above ``threshold + margin``, 0 where both are below
    ``threshold - margin``; other entries (disagreement) are masked out.
    Check: p1 = [.6, .4, .7], p2 = [.8, .3, .4] -> labels [1, 0, .], mask [True, True, False].
    """
    positive = (p1 > threshold + margin) & (p2 > threshold + margin)
    negative = (p1 < threshold - margin) & (p2 < threshold - margin)
    return positive.to(torch.int8), positive | negative


def weak_consistent(
    frame_y: Tensor, frame_kept: Tensor, clip_truth: Tensor, has_clip_labels: Tensor
) -> tuple[Tensor, Tensor]:
    """Frame pseudo-labels [B, T', C] made consistent with known clip labels [B, C].

    For clips with clip labels (``has_clip_labels`` [B]): a class absent from the clip is 0 in
    every frame (a certainty, kept whatever the labelers say); a class present in the clip whose
    frames hold no agreed positive is masked in every frame, since "absent everywhere" would
    contradict the clip label. Other clips are unchanged.
    Check: clip labels [1, 0] with agreed frame labels all 0 -> class 0 masked, class 1 all 0.
    """
    known = has_clip_labels[:, None]
    absent = known & ~clip_truth
    unlocated = known & clip_truth & ~(frame_kept & (frame_y == 1)).any(dim=1)
    frame_y = torch.where(absent[:, None, :], torch.zeros_like(frame_y), frame_y)
    frame_kept = (frame_kept | absent[:, None, :]) & ~unlocated[:, None, :]
    return frame_y, frame_kept


@dataclass
class TriTrainingParams:
    """Keys of ``pseudo_labeler.params``.

    Stage 1 covers epochs 1..stage1_epochs; stage 2 the rest of training. Pseudo-labels are
    computed when stage 2 starts and, if ``recompute_every`` is set, every that many epochs
    after it.
    """

    stage1_epochs: int = 10
    recompute_every: int | None = None
    hidden: int = (
        128  # labelers' first layer; 2 * hidden <= D (checked at build) lets Omega reach 0
    )
    dropout: float = 0.5
    clip_pooling: Literal["model", "attention", "max", "mean"] = "model"
    orthogonality_weight: float = 1.0  # lambda (paper: 1.0)
    # Paper eq. 8 leaves both open; see orthogonality(). Default: Omega = mean |cosine| in [0, 1].
    orthogonality_normalization: OmegaNormalization = "unit"
    orthogonality_reduction: OmegaReduction = "mean"
    threshold: float = 0.5  # agreement threshold (paper: 0.5)
    margin: float = 0.0  # both labelers must be this far from the threshold (paper: 0)
    pseudo_weight: float = 1.0  # weight of the stage-2 pseudo-label BCE terms
    # Beyond the paper: frame pseudo-labels of weak clips obey their clip labels (see
    # weak_consistent); the paper leaves W_psl to the labelers alone.
    weak_label_consistency: bool = False
    # Algorithm 1 trains F with the labelers' BCE too (True, the paper). False detaches h for
    # F1 and F2 in stage 1: the labelers learn on F's features but do not shape them, so F and
    # Ft learn in stage 1 exactly as in the baseline (stage-1 deficit: docs/table1.md).
    labelers_update_features: bool = True

    def __post_init__(self) -> None:
        if self.stage1_epochs < 0:
            raise ValueError(f"stage1_epochs: must be >= 0, got {self.stage1_epochs}")
        if self.recompute_every is not None and self.recompute_every < 1:
            raise ValueError(f"recompute_every: must be >= 1 or null, got {self.recompute_every}")
        if self.hidden < 1:
            raise ValueError(f"hidden: must be >= 1, got {self.hidden}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: must be in [0, 1), got {self.dropout}")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold: must be in (0, 1), got {self.threshold}")
        if not 0.0 <= self.margin < min(self.threshold, 1.0 - self.threshold):
            raise ValueError(
                f"margin: must be >= 0 and keep both bands in (0, 1), got {self.margin}"
            )
        if self.orthogonality_weight < 0 or self.pseudo_weight < 0:
            raise ValueError("orthogonality_weight and pseudo_weight must be >= 0")


class Labeler(nn.Module):
    """A labeler head on h: Linear(D, hidden) -> ReLU -> dropout -> frame (and attention) layers."""

    def __init__(
        self, feature_dim: int, hidden: int, n_classes: int, dropout: float, clip_pooling: str
    ):
        super().__init__()
        self.first = nn.Linear(feature_dim, hidden)
        self.dropout = nn.Dropout(dropout)
        self.frame_head = nn.Linear(hidden, n_classes)
        self.attention_head = nn.Linear(hidden, n_classes) if clip_pooling == "attention" else None
        self.clip_pooling = clip_pooling

    def forward(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """Frame logits [B, T', C] and clip logits [B, C] (float32, pooled as the model does)."""
        z = self.dropout(torch.relu(self.first(h)))
        frame_logits = self.frame_head(z)
        att = self.attention_head(z) if self.attention_head is not None else None
        return frame_logits.float(), pool_clip_logits(frame_logits, self.clip_pooling, att)


class TriTraining(PseudoLabeler):
    """Labelers F1, F2 with orthogonality (stage 1), agreement pseudo-labels (stage 2)."""

    Params = TriTrainingParams

    def __init__(self, params: TriTrainingParams, context: HeadContext):
        super().__init__(params, context)
        if context.feature_dim < 1 or context.n_classes < 1:
            raise ValueError("TriTraining needs feature_dim and n_classes in its HeadContext")
        if 2 * params.hidden > context.feature_dim:
            raise UserError(
                f"pseudo_labeler.params.hidden: 2 x {params.hidden} > {context.feature_dim}, the "
                f"model's feature size D: the two labelers' first layers cannot be orthogonal "
                f"(Omega cannot reach 0); use hidden <= {context.feature_dim // 2}"
            )
        pooling = params.clip_pooling
        if pooling == "model":
            pooling = getattr(getattr(context.model, "params", None), "clip_pooling", "attention")
        self.labelers = nn.ModuleList(
            Labeler(context.feature_dim, params.hidden, context.n_classes, params.dropout, pooling)
            for _ in range(2)
        )
        self.n_classes = context.n_classes
        # Pseudo-labels, CPU int8 with MASKED for left-out entries; row i belongs to filenames[i].
        self._index: dict[str, int] = {}
        self._clip_labels = torch.empty(0, context.n_classes, dtype=torch.int8)
        self._frame_labels = torch.empty(0, 0, context.n_classes, dtype=torch.int8)
        self._computed_epoch = 0  # epoch whose start computed the labels (0: never)
        self._reset_stats()

    # ---------------------------------------------------------------------------------------
    # Stages and losses
    # ---------------------------------------------------------------------------------------
    def stage(self, epoch: int) -> str:
        return "stage1" if epoch <= self.params.stage1_epochs else "stage2"

    def loss(self, step: Step) -> dict[str, Tensor]:
        if self.stage(step.epoch) == "stage1":
            return self._stage1_loss(step)
        return self._stage2_loss(step)

    def _stage1_loss(self, step: Step) -> dict[str, Tensor]:
        h, batch = step.out.h, step.batch
        if h is None:
            raise ValueError("tri-training needs the model's shared features h")
        if not self.params.labelers_update_features:
            h = h.detach()
        frame_terms, clip_terms = [], []
        for labeler in self.labelers:
            frame_logits, clip_logits = labeler(h)
            if batch.strong is None or batch.strong_mask is None:
                frame_terms.append(zero_loss(frame_logits))
            else:
                frame_terms.append(
                    masked_bce_with_logits(frame_logits, batch.strong, batch.strong_mask)
                )
            if batch.weak is None or batch.weak_mask is None:
                clip_terms.append(zero_loss(clip_logits))
            else:
                clip_terms.append(masked_bce_with_logits(clip_logits, batch.weak, batch.weak_mask))
        omega = self.omega()
        self._omega_sum = self._omega_sum + omega.detach()
        self._stage1_batches += 1
        return {
            "tri_labeler_frame_bce": sum(frame_terms),
            "tri_labeler_clip_bce": sum(clip_terms),
            "tri_orthogonality": self.params.orthogonality_weight * omega,
        }

    def omega(self) -> Tensor:
        """The orthogonality term Omega of the two labelers' first layers (unweighted)."""
        return orthogonality(
            self.labelers[0].first.weight,
            self.labelers[1].first.weight,
            self.params.orthogonality_normalization,
            self.params.orthogonality_reduction,
        )

    def _stage2_loss(self, step: Step) -> dict[str, Tensor]:
        out, batch = step.out, step.batch
        frame_logits = logits_of(out.frame_logits, out.frame_probs)
        clip_logits = logits_of(out.clip_logits, out.clip_probs)
        clip_targets, frame_targets = self.lookup(batch.filenames, frame_logits.shape[1])
        device = frame_logits.device
        clip_targets = clip_targets.to(device, non_blocking=True)
        frame_targets = frame_targets.to(device, non_blocking=True)
        size = len(batch)
        # W_psl: frame labels of clips without strong labels; U_psl: also clip labels of clips
        # without clip labels. True labels always win over pseudo-labels.
        no_strong = ~example_mask(batch.strong_mask, size, device)
        no_weak = ~example_mask(batch.weak_mask, size, device)
        frame_kept = (frame_targets != MASKED) & no_strong[:, None, None]
        clip_kept = (clip_targets != MASKED) & no_weak[:, None]
        frame = masked_bce_with_logits(frame_logits, frame_targets.clamp(min=0), frame_kept)
        clip = masked_bce_with_logits(clip_logits, clip_targets.clamp(min=0), clip_kept)
        # Shares of the entries open to pseudo-labels; device sums, read once per epoch.
        self._frame_kept = self._frame_kept + frame_kept.sum()
        self._frame_total = self._frame_total + no_strong.sum() * frame_kept[0].numel()
        self._clip_kept = self._clip_kept + clip_kept.sum()
        self._clip_total = self._clip_total + no_weak.sum() * clip_kept[0].numel()
        self._stage2_batches += 1
        weight = self.params.pseudo_weight
        return {"tri_pseudo_frame_bce": weight * frame, "tri_pseudo_clip_bce": weight * clip}

    def lookup(self, filenames: list[str], n_frames: int) -> tuple[Tensor, Tensor]:
        """Stored pseudo-labels of ``filenames``: clip [B, C] and frame [B, n_frames, C] int8,
        MASKED where a clip has none (frames cropped or padded with MASKED to n_frames)."""
        size, classes = len(filenames), self.n_classes
        clip = torch.full((size, classes), MASKED, dtype=torch.int8)
        frame = torch.full((size, n_frames, classes), MASKED, dtype=torch.int8)
        rows = [self._index.get(name, -1) for name in filenames]
        found = [i for i, row in enumerate(rows) if row >= 0]
        if found:
            source = torch.tensor([rows[i] for i in found])
            target = torch.tensor(found)
            clip[target] = self._clip_labels[source]
            frames = min(n_frames, self._frame_labels.shape[1])
            frame[target, :frames] = self._frame_labels[source, :frames]
        return clip, frame

    # ---------------------------------------------------------------------------------------
    # Pseudo-labeling
    # ---------------------------------------------------------------------------------------
    def on_epoch_start(
        self, epoch: int, predictor: Predictor, data: DataModule
    ) -> dict[str, float]:
        """Compute pseudo-labels when stage 2 starts (and every ``recompute_every`` epochs)."""
        if self.stage(epoch) != "stage2":
            return {}
        every = self.params.recompute_every
        since_start = epoch - self.params.stage1_epochs - 1
        due = self._computed_epoch == 0 or (
            every is not None and since_start % every == 0 and epoch != self._computed_epoch
        )
        if not due:
            return {}
        stats = self.compute_pseudo_labels(predictor.predict(data.unlabeled_loader()))
        self._computed_epoch = epoch
        if self.context.log is not None:
            self.context.log.info(
                "tri-training: pseudo-labeled %d clips at epoch %d (%s)",
                int(stats.get("pseudo_clips", 0)),
                epoch,
                ", ".join(f"{k}={v:.3f}" for k, v in stats.items() if k != "pseudo_clips"),
            )
        return stats

    @torch.no_grad()
    def compute_pseudo_labels(
        self, outputs: Iterable[tuple[Batch, ModelOutput]]
    ) -> dict[str, float]:
        """Label every clip of ``outputs`` (from ``Predictor.predict``) with F1 and F2 on its h.

        Replaces the stored pseudo-labels and returns statistics: clips labeled, share of
        labels kept, labelers' agreement rate (same side of the threshold) and, where
        ``batch.hidden`` holds true labels, precision and recall of the kept positive labels
        (recall counts masked true positives as missed). Clip statistics cover clips without
        clip labels, frame statistics clips without strong labels: the labels the loss uses.
        """
        was_training = [labeler.training for labeler in self.labelers]
        self.labelers.eval()
        names: list[str] = []
        clips: list[Tensor] = []
        frames: list[Tensor] = []
        counts: dict[str, float] = {}

        def add(key: str, value: Tensor | float) -> None:
            counts[key] = counts.get(key, 0.0) + float(value)

        thr, margin = self.params.threshold, self.params.margin
        try:
            for batch, out in outputs:
                if out.h is None:
                    raise ValueError("tri-training needs the model's shared features h")
                h = out.h.float().to(next(self.labelers.parameters()).device)
                # float32 even when the predictor runs under autocast: bf16 rounds many
                # probabilities near the threshold onto it.
                with torch.autocast(device_type=h.device.type, enabled=False):
                    (f1, c1), (f2, c2) = (labeler(h) for labeler in self.labelers)
                f1, c1, f2, c2 = (torch.sigmoid(t.float()).cpu() for t in (f1, c1, f2, c2))
                clip_y, clip_kept = agreement_labels(c1, c2, thr, margin)
                frame_y, frame_kept = agreement_labels(f1, f2, thr, margin)
                if self.params.weak_label_consistency and batch.weak is not None:
                    frame_y, frame_kept = weak_consistent(
                        frame_y,
                        frame_kept,
                        batch.weak.detach().cpu() > 0.5,
                        example_mask(batch.weak_mask, len(batch)),
                    )
                clip_store = torch.where(clip_kept, clip_y, torch.full_like(clip_y, MASKED))
                frame_store = torch.where(frame_kept, frame_y, torch.full_like(frame_y, MASKED))
                names.extend(batch.filenames)
                clips.append(clip_store)
                frames.extend(frame_store.unbind(0))

                size = len(batch)
                clip_used = ~example_mask(batch.weak_mask, size)
                frame_used = ~example_mask(batch.strong_mask, size)
                add("clip_entries", clip_kept[clip_used].numel())
                add("clip_kept", clip_kept[clip_used].sum())
                add("clip_agree", ((c1 > thr) == (c2 > thr))[clip_used].sum())
                add("frame_entries", frame_kept[frame_used].numel())
                add("frame_kept", frame_kept[frame_used].sum())
                add("frame_agree", ((f1 > thr) == (f2 > thr))[frame_used].sum())

                hidden_mask = batch.hidden.get("hidden_mask")
                known = (
                    example_mask(hidden_mask, size)
                    if hidden_mask is not None
                    else ~example_mask(None, size)
                )
                # Precision and recall against the hidden true labels, where the data has them.
                for level, hidden, used, kept, y in (
                    ("clip", batch.hidden.get("weak"), clip_used, clip_kept, clip_y),
                    ("frame", batch.hidden.get("strong"), frame_used, frame_kept, frame_y),
                ):
                    if hidden is None or hidden.shape != y.shape:
                        continue
                    rows = known & used
                    truth = hidden.detach().cpu()[rows] > 0.5
                    predicted = (kept & (y == 1))[rows]
                    add(f"{level}_tp", (predicted & truth).sum())
                    add(f"{level}_pp", predicted.sum())
                    add(f"{level}_true", truth.sum())
        finally:
            for labeler, mode in zip(self.labelers, was_training, strict=True):
                labeler.train(mode)

        self._store(names, clips, frames)
        stats: dict[str, float] = {"pseudo_clips": float(len(self._index))}
        for level in ("clip", "frame"):
            entries = counts.get(f"{level}_entries", 0.0)
            if entries > 0:
                stats[f"{level}_kept"] = counts[f"{level}_kept"] / entries
                stats[f"{level}_agreement"] = counts[f"{level}_agree"] / entries
            if counts.get(f"{level}_pp", 0.0) > 0:
                stats[f"{level}_precision"] = counts[f"{level}_tp"] / counts[f"{level}_pp"]
            if counts.get(f"{level}_true", 0.0) > 0:
                stats[f"{level}_recall"] = counts[f"{level}_tp"] / counts[f"{level}_true"]
        return stats

    def _store(self, names: list[str], clips: list[Tensor], frames: list[Tensor]) -> None:
        """Keep the labels as stacked CPU tensors; frames padded with MASKED to a common T'."""
        self._index = {name: i for i, name in enumerate(names)}
        classes = self.n_classes
        if not names:
            self._clip_labels = torch.empty(0, classes, dtype=torch.int8)
            self._frame_labels = torch.empty(0, 0, classes, dtype=torch.int8)
            return
        self._clip_labels = torch.cat(clips).to(torch.int8)
        longest = max(f.shape[0] for f in frames)
        stacked = torch.full((len(frames), longest, classes), MASKED, dtype=torch.int8)
        for i, f in enumerate(frames):
            stacked[i, : f.shape[0]] = f
        self._frame_labels = stacked

    # ---------------------------------------------------------------------------------------
    # Metrics and checkpoints
    # ---------------------------------------------------------------------------------------
    def _reset_stats(self) -> None:
        self._omega_sum: Tensor | float = 0.0
        self._stage1_batches = 0
        self._stage2_batches = 0
        self._frame_kept: Tensor | float = 0.0
        self._frame_total: Tensor | float = 0.0
        self._clip_kept: Tensor | float = 0.0
        self._clip_total: Tensor | float = 0.0

    def epoch_metrics(self) -> dict[str, float]:
        """Mean Omega (stage 1). Stage 2: of the training entries lacking true labels (frames
        of clips without strong labels, classes of clips without clip labels), the share that
        carried a pseudo-label."""
        metrics: dict[str, float] = {}
        if self._stage1_batches:
            metrics["omega"] = float(self._omega_sum) / self._stage1_batches
        if self._stage2_batches:
            for level in ("frame", "clip"):
                total = float(getattr(self, f"_{level}_total"))
                if total > 0:
                    kept = float(getattr(self, f"_{level}_kept"))
                    metrics[f"batch_{level}_kept"] = kept / total
        self._reset_stats()
        return metrics

    def get_extra_state(self) -> dict[str, Any]:
        """Pseudo-labels travel with the checkpoint, so a resumed stage 2 keeps them."""
        return {
            "filenames": list(self._index),
            "clip_labels": self._clip_labels,
            "frame_labels": self._frame_labels,
            "computed_epoch": self._computed_epoch,
        }

    def set_extra_state(self, state: dict[str, Any]) -> None:
        names = list(state["filenames"])
        self._index = {name: i for i, name in enumerate(names)}
        self._clip_labels = state["clip_labels"].detach().cpu().to(torch.int8)
        self._frame_labels = state["frame_labels"].detach().cpu().to(torch.int8)
        self._computed_epoch = int(state["computed_epoch"])


@hookimpl
def sedkit_register_pseudo_labelers(register) -> None:
    register("tri_training", TriTraining)


@hookimpl
def sedkit_report_figures(
    run_dir: Path, epochs: list[dict[str, Any]], validation: dict[str, Any], out_dir: Path
) -> list[tuple[Path, str]]:
    """A tri-training run's report figure (nothing for runs without its metrics)."""
    from sedkit_plugins.tri_training.figures import plot_pseudo_labels

    path = plot_pseudo_labels(epochs, out_dir / "pseudo_labels.png")
    return [(path, "pseudo-label quality and quantity")] if path else []
