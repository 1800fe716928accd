"""FixMatch (Sohn et al., 2020) and FixMatch-Uncertainty, FMUC (Grollmisch et al., 2022).

One implementation, registered twice with different defaults:

- ``fixmatch``: a weakly augmented view of each unlabeled clip goes through the model (no
  gradient); where the largest softmax probability reaches ``threshold`` (0.95) its class becomes
  a hard pseudo-label; the cross-entropy of the model's output on a strongly augmented view
  against it is the unlabeled loss.
- ``fmuc``: the weak view goes through the model N = 5 times with dropout active and batch norm
  in eval mode (MC dropout, :mod:`sedkit.mc_dropout`); logits are divided by the temperature
  T = 2 before the softmax; mu and sigma are the mean and standard deviation of those
  probabilities over the passes; with c = argmax mu the clip is kept iff mu_c - sigma_c > tau
  (0.9).

The unlabeled loss is averaged over ALL unlabeled examples of the batch (masked ones count in
the denominator), as in FixMatch, and added unweighted (``unlabeled_weight`` 1) to the model's
supervised loss, which the trainer adds. METHODS.md section 4 has the checks the tests hold.

Every variant of the paper's Table I is a parameter; :data:`TABLE1_VARIANTS` lists them as
(registered name, params) pairs:

===========================  ===========================================================
FM                           ``fixmatch``
FM thresh. 0.99              ``fixmatch``, ``threshold: 0.99``
FMUC                         ``fmuc``
FMUC thresh. 0.95            ``fmuc``, ``threshold: 0.95``
FMUC two thresh. (UPS)       ``fmuc``, ``selection: two_thresholds`` (mu >= 0.7, sigma < 0.05)
FMUC w/o temp.               ``fmuc``, ``temperature: 1.0``
FMUC w. temp. 4              ``fmuc``, ``temperature: 4.0``
FMUC w/o MC-Dr.              ``fmuc``, ``mc_passes: 1``, ``weak_pass: eval``
===========================  ===========================================================

Standard deviation: ``std_estimator`` ``biased`` (default; divides by N like numpy's
``np.std``, which a Keras implementation such as the paper's would use) or ``unbiased``
(N - 1). With one pass sigma is 0.

How the weak view passes through the model (``weak_pass``): ``train`` (FixMatch's default: the
model as it trains, batch norm on batch statistics, which also updates its running statistics as
FixMatch's joint batch does), ``eval`` (deterministic: dropout off, batch norm frozen) or
``mc_dropout`` (dropout on, batch norm frozen; required for more than one pass). Every module's
training flag is restored afterwards. ``weak_view: model_input`` skips the extra pass and takes
the model's own output on its input (``Step.out``, i.e. the data module's augmentation as the
weak view): cheaper, FixMatch only.

Labeled examples are augmented by the data module (``augment_features``); to follow FixMatch
give it the weak augmentation. The strong view runs as its own training-mode batch, so its batch
norm statistics come from the unlabeled examples alone (FixMatch's reference code normalises one
concatenated batch of labeled, weak and strong examples).

Multi-label SED (recipes with ``task: sed``; the mode follows the task): sigmoid per class with
the temperature applied to logits (``frame_logits``/``clip_logits`` where the model gives them,
otherwise logit(p) via sedkit.losses.logits_of; the CRNN gives exact clip logits). Pseudo-label
y_c = 1 where class c is confidently present (p_c >= tau; mu_c - sigma_c > tau for FMUC). A
class is confidently absent where p_c <= tau_neg (mu_c + sigma_c < tau_neg; two thresholds:
mu_c <= tau_neg and sigma_c < std_threshold), tau_neg = ``negative_threshold`` or 1 - tau (the
mirror image of the positive rule). ``mask_level: class`` keeps each confident (clip, class)
entry and masks the rest; ``mask_level: clip`` keeps a clip only when every class is confident
one way or the other and then uses all its classes, so a class that is neither confidently
present nor absent never becomes a silent negative: its clip is dropped. The BCE of the strong
view's probabilities against the kept entries is averaged over all entries of the pseudo-labeled
clips (masked ones count, as in FixMatch). Pseudo-labeled clips: those of ``unlabeled_streams``
without clip labels (``weak_mask`` false); ``frame_level: true`` adds the same on frame outputs
for those without strong labels (needs views without time translation, so frames stay aligned).

Quality and quantity (paper Sec. IV, Fig. 2, Table I) are gathered every step from the weak
view and returned by :meth:`FixMatch.epoch_metrics` (logged under the recipe section,
``pseudo_labeler/quantity`` and so on; runs written before used a ``pl_`` prefix): ``quantity``
(share of unlabeled examples kept; multi-label: of their (clip, class) entries), ``quality``
(accuracy of the kept pseudo-labels against the hidden true labels ``batch.hidden['label']``;
multi-label ``batch.hidden['weak']``), ``unlabeled_accuracy`` (argmax of the weak view over all
unlabeled examples) and ``confusion`` (counts, rows true class, columns pseudo-label, kept
examples; paper Fig. 3). :func:`plot_quality_quantity` and :func:`plot_confusion` draw them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sedkit import hookimpl
from sedkit.components import (
    Batch,
    HeadContext,
    ModelOutput,
    PseudoLabeler,
    Step,
    example_mask,
)
from sedkit.data.augment import make_generator
from sedkit.losses import logits_of
from sedkit.mc_dropout import eval_mode, mc_dropout_passes, mean_and_std
from sedkit_plugins.fixmatch.spec_augment import SpecAugmentParams, augment_spectrogram

Selection = Literal["confidence", "mean_minus_std", "two_thresholds"]
WeakPass = Literal["train", "eval", "mc_dropout"]

#: The paper's Table I rows: name -> (registered pseudo-labeler, params overriding its defaults).
TABLE1_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "FM": ("fixmatch", {}),
    "FM thresh. 0.99": ("fixmatch", {"threshold": 0.99}),
    "FMUC": ("fmuc", {}),
    "FMUC thresh. 0.95": ("fmuc", {"threshold": 0.95}),
    "FMUC two thresh.": ("fmuc", {"selection": "two_thresholds"}),
    "FMUC w/o temp.": ("fmuc", {"temperature": 1.0}),
    "FMUC w. temp. 4": ("fmuc", {"temperature": 4.0}),
    "FMUC w/o MC-Dr.": ("fmuc", {"mc_passes": 1, "weak_pass": "eval"}),
}


@dataclass
class WeakViewParams(SpecAugmentParams):
    """The weak view: small translations (FixMatch translates images by up to 12.5 %)."""

    time_translate_max: float = 0.125
    freq_translate_max: float = 0.03


@dataclass
class StrongViewParams(SpecAugmentParams):
    """The strong view: larger translations, sharpening, one time and one frequency mask,
    Gaussian noise."""

    time_translate_max: float = 0.25
    freq_translate_max: float = 0.08
    sharpen_max: float = 1.0
    time_masks: int = 1
    freq_masks: int = 1
    noise_std: float = 0.1


@dataclass
class FixMatchParams:
    """Keys of ``pseudo_labeler.params`` for ``fixmatch`` (defaults: FixMatch, threshold 0.95).

    ``selection``: ``confidence`` keeps mu_c >= threshold; ``mean_minus_std`` keeps
    mu_c - sigma_c > threshold (FMUC); ``two_thresholds`` keeps mu_c >= mean_threshold and
    sigma_c < std_threshold (UPS; ``threshold`` unused). ``temperature`` divides the logits
    before the softmax (sigmoid). ``mc_passes`` (N) forward passes of the weak view; more than
    one needs ``weak_pass: mc_dropout``. ``weak``/``strong``: the two views' augmentations.
    ``batched_passes``: run the N passes as one batch of N copies (faster) or one by one.
    Multi-label keys (``task: sed``): ``mask_level``, ``negative_threshold``, ``frame_level``,
    ``unlabeled_streams`` (also used for classification: which examples are unlabeled).
    Keys a recipe's ``weak:``/``strong:`` mapping leaves out keep that view's defaults; set
    them to 0 to switch an operation off.
    """

    threshold: float = 0.95
    selection: Selection = "confidence"
    temperature: float = 1.0
    mc_passes: int = 1
    weak_pass: WeakPass = "train"
    std_estimator: Literal["biased", "unbiased"] = "biased"
    mean_threshold: float = 0.7
    std_threshold: float = 0.05
    weak_view: Literal["augment", "model_input"] = "augment"
    weak: WeakViewParams = field(default_factory=WeakViewParams)
    strong: StrongViewParams = field(default_factory=StrongViewParams)
    unlabeled_weight: float = 1.0
    batched_passes: bool = True
    unlabeled_streams: list[str] = field(default_factory=lambda: ["unlabeled"])
    mask_level: Literal["class", "clip"] = "class"
    negative_threshold: float | None = None
    frame_level: bool = False

    def __post_init__(self) -> None:
        for name in ("threshold", "mean_threshold"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"{name}: must be in (0, 1), got {getattr(self, name)}")
        if self.negative_threshold is not None and not 0.0 < self.negative_threshold < 1.0:
            raise ValueError(
                f"negative_threshold: must be in (0, 1) or null, got {self.negative_threshold}"
            )
        if self.std_threshold <= 0:
            raise ValueError(f"std_threshold: must be > 0, got {self.std_threshold}")
        if not self.temperature > 0:
            raise ValueError(f"temperature: must be > 0, got {self.temperature}")
        if self.mc_passes < 1:
            raise ValueError(f"mc_passes: must be >= 1, got {self.mc_passes}")
        if self.mc_passes > 1 and self.weak_pass != "mc_dropout":
            raise ValueError(
                f"mc_passes: {self.mc_passes} passes need weak_pass: mc_dropout (train or eval "
                f"passes would be identical or update batch norm), got weak_pass: {self.weak_pass}"
            )
        if self.weak_view == "model_input" and (self.mc_passes != 1 or self.weak_pass != "train"):
            raise ValueError(
                "weak_view: model_input reuses the model's training-mode output; it needs "
                "mc_passes: 1 and weak_pass: train"
            )
        if self.unlabeled_weight < 0:
            raise ValueError(f"unlabeled_weight: must be >= 0, got {self.unlabeled_weight}")
        if not self.unlabeled_streams:
            raise ValueError("unlabeled_streams: name at least one stream")
        if self.frame_level and (self.weak.shifts_time or self.strong.shifts_time):
            raise ValueError(
                "frame_level: frame pseudo-labels need views without time translation "
                "(set weak.time_translate_max and strong.time_translate_max to 0)"
            )


@dataclass
class FMUCParams(FixMatchParams):
    """Keys of ``pseudo_labeler.params`` for ``fmuc``: the same as ``fixmatch`` with the FMUC
    defaults (tau 0.9 on mu - sigma, T = 2, N = 5 MC-dropout passes)."""

    threshold: float = 0.9
    selection: Selection = "mean_minus_std"
    temperature: float = 2.0
    mc_passes: int = 5
    weak_pass: WeakPass = "mc_dropout"


# --------------------------------------------------------------------------------------------
# Pseudo-label rules (pure functions, checked by the tests)
# --------------------------------------------------------------------------------------------
def tempered_softmax(logits: Tensor, temperature: float) -> Tensor:
    """softmax(logits / T) over the last axis, in float32 (paper eq. 1).
    Check: logits [4, 0] -> 0.98201 at T = 1, 0.88080 at T = 2."""
    return torch.softmax(logits.float() / temperature, dim=-1)


def tempered_sigmoid(logits: Tensor, temperature: float) -> Tensor:
    """sigmoid(logits / T) in float32: the multi-label counterpart of :func:`tempered_softmax`."""
    return torch.sigmoid(logits.float() / temperature)


def select_single_label(
    mean: Tensor,
    std: Tensor,
    *,
    selection: str,
    threshold: float,
    mean_threshold: float = 0.7,
    std_threshold: float = 0.05,
) -> tuple[Tensor, Tensor]:
    """Hard pseudo-labels and the kept mask from mean/std class probabilities ``[B, C]``.

    c = argmax mu; kept: ``confidence`` mu_c >= threshold; ``mean_minus_std``
    mu_c - sigma_c > threshold; ``two_thresholds`` mu_c >= mean_threshold and
    sigma_c < std_threshold. Check: max probs [0.96, 0.5], threshold 0.95 -> kept [1, 0].
    """
    mu_c, labels = mean.max(dim=-1)
    sigma_c = std.gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    if selection == "confidence":
        kept = mu_c >= threshold
    elif selection == "mean_minus_std":
        kept = (mu_c - sigma_c) > threshold
    elif selection == "two_thresholds":
        kept = (mu_c >= mean_threshold) & (sigma_c < std_threshold)
    else:
        raise ValueError(f"unknown selection {selection!r}")
    return labels, kept


def select_multi_label(
    mean: Tensor,
    std: Tensor,
    *,
    selection: str,
    threshold: float,
    negative_threshold: float | None = None,
    mean_threshold: float = 0.7,
    std_threshold: float = 0.05,
    mask_level: str = "class",
) -> tuple[Tensor, Tensor]:
    """Multi-label pseudo-labels ``y`` (0/1 float) and kept mask (bool), both shaped like
    ``mean`` ([B, C] clip or [B, T', C] frame probabilities; classes on the last axis).

    y_c = 1 where class c is confidently present: ``confidence`` mu_c >= tau;
    ``mean_minus_std`` mu_c - sigma_c > tau; ``two_thresholds`` mu_c >= mean_threshold and
    sigma_c < std_threshold. Confidently absent: mu_c <= tau_neg; mu_c + sigma_c < tau_neg;
    mu_c <= tau_neg and sigma_c < std_threshold; tau_neg = ``negative_threshold`` or
    1 - tau (1 - mean_threshold for two thresholds). ``mask_level='class'`` keeps the confident
    entries; ``'clip'`` keeps all entries of a row (last axis) whose classes are all confident and
    none of the others. Check: p = [.8, .3, .76], tau .75 -> y = [1, 0, 1], kept per class
    [1, 0, 1] (.3 > .25), per clip [0, 0, 0].
    """
    if selection == "confidence":
        negative_at = 1.0 - threshold if negative_threshold is None else negative_threshold
        present = mean >= threshold
        absent = mean <= negative_at
    elif selection == "mean_minus_std":
        negative_at = 1.0 - threshold if negative_threshold is None else negative_threshold
        present = (mean - std) > threshold
        absent = (mean + std) < negative_at
    elif selection == "two_thresholds":
        negative_at = 1.0 - mean_threshold if negative_threshold is None else negative_threshold
        certain = std < std_threshold
        present = (mean >= mean_threshold) & certain
        absent = (mean <= negative_at) & certain
    else:
        raise ValueError(f"unknown selection {selection!r}")
    kept = present | absent
    if mask_level == "clip":
        kept = kept.all(dim=-1, keepdim=True).expand_as(kept)
    elif mask_level != "class":
        raise ValueError(f"unknown mask_level {mask_level!r}")
    return present.float(), kept


def masked_mean_cross_entropy(logits: Tensor, labels: Tensor, kept: Tensor) -> Tensor:
    """Cross-entropy against hard labels, summed over kept examples and divided by ALL
    examples (FixMatch's L_u); float32, autocast off. Check: kept [1, 0] -> CE_1 / 2."""
    with torch.autocast(device_type=logits.device.type, enabled=False):
        per_example = F.cross_entropy(logits.float(), labels, reduction="none")
        return (per_example * kept.float()).sum() / max(per_example.numel(), 1)


def masked_mean_bce(logits: Tensor, targets: Tensor, kept: Tensor, rows: Tensor) -> Tensor:
    """BCE of sigmoid(``logits``) against 0/1 targets, summed over kept entries and divided by
    all entries of the rows (examples) selected by ``rows`` [B]; BCE-with-logits in float32,
    autocast off (bf16 probabilities saturate: a confident wrong output would get no gradient)."""
    with torch.autocast(device_type=logits.device.type, enabled=False):
        x = logits.float()
        per_entry = F.binary_cross_entropy_with_logits(x, targets.float(), reduction="none")
        row_weight = rows.float().view(-1, *([1] * (x.dim() - 1)))
        weight = kept.float() * row_weight
        entries = row_weight.sum() * (x[0].numel() if x.shape[0] else 0)
        return (per_entry * weight).sum() / entries.clamp_min(1.0)


# --------------------------------------------------------------------------------------------
# The component
# --------------------------------------------------------------------------------------------
class FixMatch(PseudoLabeler):
    """FixMatch / FMUC pseudo-labeling on unlabeled examples of each training batch."""

    Params = FixMatchParams

    def __init__(self, params: FixMatchParams, context: HeadContext):
        super().__init__(params, context)
        self.multilabel = context.task == "sed"
        self._reset_stats()

    # ------------------------------------------------------------------ views and passes
    def _unlabeled_rows(self, batch: Batch) -> list[int]:
        streams = set(self.params.unlabeled_streams)
        return [i for i, stream in enumerate(batch.stream) if stream in streams]

    def _select(self, out: ModelOutput) -> tuple[Tensor, ...]:
        """Logits of interest, float32: (class logits,) single-label; (clip,) or (clip, frame)
        multi-label."""
        if not self.multilabel:
            if out.clip_logits is None:
                raise ValueError(f"{type(self).__name__} needs clip_logits from the model")
            return (out.clip_logits.float(),)
        clip = logits_of(out.clip_logits, out.clip_probs).float()
        if not self.params.frame_level:
            return (clip,)
        if out.frame_logits is None and out.frame_probs is None:
            raise ValueError("frame_level: the model gives no frame outputs")
        return clip, logits_of(out.frame_logits, out.frame_probs).float()

    def weak_logits(self, model: torch.nn.Module, weak_view: Tensor) -> tuple[Tensor, ...]:
        """Logits of the weak view for each pass, ``[N, B, ...]`` per output (no gradient)."""
        p = self.params
        with torch.no_grad():
            if p.weak_pass == "mc_dropout":
                samples = mc_dropout_passes(
                    model, weak_view, p.mc_passes, select=self._select, batched=p.batched_passes
                )
                assert isinstance(samples, tuple)
                return samples
            if p.weak_pass == "eval":
                with eval_mode(model):
                    single = self._select(model(weak_view))
            else:
                single = self._select(model(weak_view))
        return tuple(s.unsqueeze(0) for s in single)

    # ------------------------------------------------------------------ loss
    def loss(self, step: Step) -> dict[str, Tensor]:
        p = self.params
        rows = self._unlabeled_rows(step.batch)
        if not rows:
            zero = _zero_like(step.out)
            if self.multilabel:
                terms = {"fm_unlabeled_clip_bce": zero}
                if p.frame_level:
                    terms["fm_unlabeled_frame_bce"] = zero
                return terms
            return {"fm_unlabeled_ce": zero}
        device = step.features.device
        index = torch.tensor(rows, device=device)
        features = step.features.detach()[index]
        generator = make_generator(device, self.context.seed, step.global_step)
        if p.weak_view == "model_input":
            samples = tuple(s.detach()[index].unsqueeze(0) for s in self._select(step.out))
        else:
            weak_view = augment_spectrogram(features, p.weak, generator)
            samples = self.weak_logits(step.model, weak_view)
        strong_out = step.model(augment_spectrogram(features, p.strong, generator))
        sub_batch = _rows(step.batch, rows, index)
        if self.multilabel:
            return self._multi_label_loss(samples, strong_out, sub_batch)
        return self._single_label_loss(samples[0], strong_out, sub_batch)

    def _selection(self) -> dict[str, Any]:
        """The selection settings single- and multi-label pseudo-labels share."""
        p = self.params
        names = ("selection", "threshold", "mean_threshold", "std_threshold")
        return {name: getattr(p, name) for name in names}

    def _single_label_loss(
        self, logits: Tensor, strong: ModelOutput, batch: Batch
    ) -> dict[str, Tensor]:
        p = self.params
        with torch.no_grad():
            mean, std = mean_and_std(
                tempered_softmax(logits, p.temperature), unbiased=p.std_estimator == "unbiased"
            )
            labels, kept = select_single_label(mean, std, **self._selection())
            self._count_single_label(mean, std, labels, kept, batch)
        assert strong.clip_logits is not None
        loss = masked_mean_cross_entropy(strong.clip_logits, labels, kept)
        return {"fm_unlabeled_ce": p.unlabeled_weight * loss}

    def _multi_label_loss(
        self, samples: tuple[Tensor, ...], strong: ModelOutput, batch: Batch
    ) -> dict[str, Tensor]:
        p = self.params
        size = len(batch)
        device = samples[0].device
        no_weak = ~example_mask(batch.weak_mask, size, device)
        no_strong = ~example_mask(batch.strong_mask, size, device)
        # The strong view's logits, as _select takes them (logits where the model gives them).
        strong_logits = self._select(strong)
        levels = [("clip", strong_logits[0], no_weak)]
        if p.frame_level:
            levels.append(("frame", strong_logits[1], no_strong))
        terms: dict[str, Tensor] = {}
        for (level, student_logits, open_rows), logits in zip(levels, samples, strict=True):
            with torch.no_grad():
                mean, std = mean_and_std(
                    tempered_sigmoid(logits, p.temperature),
                    unbiased=p.std_estimator == "unbiased",
                )
                targets, kept = select_multi_label(
                    mean,
                    std,
                    negative_threshold=p.negative_threshold,
                    mask_level=p.mask_level,
                    **self._selection(),
                )
                self._count_multi_label(level, targets, kept, open_rows, batch)
            loss = masked_mean_bce(student_logits, targets, kept, open_rows)
            terms[f"fm_unlabeled_{level}_bce"] = p.unlabeled_weight * loss
        return terms

    # ------------------------------------------------------------------ statistics
    def _reset_stats(self) -> None:
        # Device tensors summed every step and read once per epoch: no per-step device sync.
        self._stats: dict[str, Tensor] = {}
        self._confusion: Tensor | None = None

    def _add(self, key: str, value: Tensor) -> None:
        value = value.detach().double().sum()
        self._stats[key] = self._stats[key] + value if key in self._stats else value

    def _count_single_label(
        self, mean: Tensor, std: Tensor, labels: Tensor, kept: Tensor, batch: Batch
    ) -> None:
        self._add("examples", torch.ones_like(kept, dtype=torch.float64))
        self._add("kept", kept)
        self._add("kept_std", std.gather(-1, labels.unsqueeze(-1)).squeeze(-1) * kept)
        truth = batch.hidden.get("label")
        if truth is None:
            return
        truth = truth.to(labels.device)
        known = truth >= 0
        correct = (labels == truth) & known
        self._add("known", known)
        self._add("correct_all", correct)
        self._add("kept_known", kept & known)
        self._add("kept_correct", correct & kept)
        n = mean.shape[-1]
        if self._confusion is None:
            self._confusion = torch.zeros(n * n, dtype=torch.long, device=labels.device)
        cell = truth.clamp(min=0) * n + labels
        self._confusion.index_add_(0, cell, (kept & known).long())

    def _count_multi_label(
        self, level: str, targets: Tensor, kept: Tensor, open_rows: Tensor, batch: Batch
    ) -> None:
        rows = open_rows.view(-1, *([1] * (kept.dim() - 1))).expand_as(kept)
        kept = kept & rows
        self._add(f"{level}_entries", rows)
        self._add(f"{level}_kept", kept)
        truth = batch.hidden.get("weak" if level == "clip" else "strong")
        if truth is None or truth.shape != targets.shape:
            return
        truth = truth.to(targets.device) > 0.5
        hidden_mask = batch.hidden.get("hidden_mask")
        known = (
            example_mask(hidden_mask, len(batch), targets.device)
            if hidden_mask is not None
            else None
        )
        known = (
            rows
            if known is None
            else (rows & known.view(-1, *([1] * (kept.dim() - 1))).expand_as(kept))
        )
        correct = (targets > 0.5) == truth
        self._add(f"{level}_known", known)
        self._add(f"{level}_correct_all", correct & known)
        self._add(f"{level}_kept_known", kept & known)
        self._add(f"{level}_kept_correct", correct & kept & known)

    def epoch_metrics(self) -> dict[str, Any]:
        """Pseudo-label quality and quantity of the epoch (see the module docstring); then reset.

        Single-label: ``quantity``, ``quality``, ``unlabeled_accuracy``, ``kept_std`` (mean
        sigma_c of the kept labels, MC dropout) and ``confusion`` (nested list of counts).
        Multi-label: the same per level, the frame level's prefixed ``frame_``, over
        (clip, class) / (frame, class) entries.
        """
        s = {k: float(v) for k, v in self._stats.items()}
        metrics: dict[str, Any] = {}

        def ratio(key: str, num: str, den: str) -> None:
            if s.get(den, 0.0) > 0:
                metrics[key] = s.get(num, 0.0) / s[den]

        if self.multilabel:
            for level, prefix in (("clip", ""), ("frame", "frame_")):
                ratio(f"{prefix}quantity", f"{level}_kept", f"{level}_entries")
                ratio(f"{prefix}quality", f"{level}_kept_correct", f"{level}_kept_known")
                ratio(f"{prefix}unlabeled_accuracy", f"{level}_correct_all", f"{level}_known")
        else:
            ratio("quantity", "kept", "examples")
            ratio("quality", "kept_correct", "kept_known")
            ratio("unlabeled_accuracy", "correct_all", "known")
            if self.params.mc_passes > 1:
                ratio("kept_std", "kept_std", "kept")
            if self._confusion is not None:
                n = math.isqrt(self._confusion.numel())
                metrics["confusion"] = self._confusion.view(n, n).cpu().tolist()
        log = self.context.log
        if log is not None and "quantity" in metrics:
            log.info(
                "pseudo-labels: quantity %.3f, quality %s",
                metrics["quantity"],
                f"{metrics['quality']:.3f}" if "quality" in metrics else "n/a",
            )
        self._reset_stats()
        return metrics


class FMUC(FixMatch):
    """FixMatch-Uncertainty: FixMatch with MC dropout, temperature and mu - sigma selection."""

    Params = FMUCParams


def _zero_like(out: ModelOutput) -> Tensor:
    """A zero scalar on the graph of the model's output (a loss over zero examples)."""
    for value in (out.clip_logits, out.clip_probs, out.frame_probs):
        if value is not None:
            return value.float().sum() * 0.0
    raise ValueError("the model output holds no tensor")


def _rows(batch: Batch, rows: list[int], index: Tensor) -> Batch:
    """The targets and hidden labels of the selected rows (what the statistics need);
    ``index`` holds ``rows`` on the device (no device-to-host copy)."""

    def pick(value: Tensor | None) -> Tensor | None:
        return None if value is None else value[index.to(value.device)]

    return Batch(
        filenames=[batch.filenames[i] for i in rows],
        stream=[batch.stream[i] for i in rows],
        domain=pick(batch.domain),
        strong_mask=pick(batch.strong_mask),
        weak_mask=pick(batch.weak_mask),
        label=pick(batch.label),
        hidden={k: v[index.to(v.device)] for k, v in batch.hidden.items()},
    )


# --------------------------------------------------------------------------------------------
# Figures (paper Fig. 2 and Fig. 3)
# --------------------------------------------------------------------------------------------
def read_pseudo_label_curves(metrics_jsonl_path: str | Path) -> dict[str, list[float]]:
    """Epochs and per-epoch ``quality``/``quantity`` from a run's ``metrics.jsonl`` (logged as
    ``pseudo_labeler/quality``, or ``pl_quality`` by runs written before; NaN where an epoch
    lacks a value)."""
    curves: dict[str, list[float]] = {"epoch": [], "quality": [], "quantity": []}
    for line in Path(metrics_jsonl_path).read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        values = {
            key: record.get(f"pseudo_labeler/{key}", record.get(f"pl_{key}"))
            for key in ("quality", "quantity")
        }
        if all(value is None for value in values.values()):
            continue
        curves["epoch"].append(float(record.get("epoch", len(curves["epoch"]) + 1)))
        for key, value in values.items():
            curves[key].append(float(value) if isinstance(value, int | float) else math.nan)
    return curves


def plot_quality_quantity(
    metrics_jsonl_path: str | Path | Mapping[str, str | Path], out_png: str | Path
) -> Path:
    """Pseudo-label quality and quantity (%) per epoch, two panels as in the paper's Fig. 2.

    ``metrics_jsonl_path``: one run's ``metrics.jsonl``, or a mapping legend label -> path to
    compare runs (e.g. ``{"FM": ..., "FMUC": ...}``).
    """
    from matplotlib.figure import Figure

    runs = (
        dict(metrics_jsonl_path)
        if isinstance(metrics_jsonl_path, Mapping)
        else {Path(metrics_jsonl_path).parent.name or "run": metrics_jsonl_path}
    )
    fig = Figure(figsize=(10, 4))
    panels = fig.subplots(1, 2)
    for label, path in runs.items():
        curves = read_pseudo_label_curves(path)
        for axes, key in zip(panels, ("quality", "quantity"), strict=True):
            axes.plot(curves["epoch"], [100 * v for v in curves[key]], label=str(label))
    for axes, title in zip(panels, ("(a) quality", "(b) quantity"), strict=True):
        axes.set_title(f"Pseudo-label {title}")
        axes.set_xlabel("epoch")
        axes.set_ylabel("%")
        axes.grid(alpha=0.3)
        axes.legend()
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    return out


def plot_confusion(
    matrix: Sequence[Sequence[float]] | np.ndarray,
    classes: Sequence[str],
    out_png: str | Path,
    *,
    normalize: bool = True,
) -> Path:
    """Pseudo-label confusion matrix (rows: true class, columns: pseudo-label) as a PNG, each
    row in % of its kept pseudo-labels when ``normalize`` (as the paper's Fig. 3)."""
    from sedkit.scoring.plots import plot_confusion_matrix

    return plot_confusion_matrix(
        matrix, classes, out_png, xlabel="pseudo-label", ylabel="true class", row_percent=normalize
    )


@hookimpl
def sedkit_register_pseudo_labelers(register) -> None:
    register("fixmatch", FixMatch)
    register("fmuc", FMUC)


@hookimpl
def sedkit_report_figures(
    run_dir: Path, epochs: list[dict[str, Any]], validation: dict[str, Any], out_dir: Path
) -> list[tuple[Path, str]]:
    """A FixMatch/FMUC run's report figures: pseudo-label quality and quantity per epoch (the
    paper's Fig. 2) and, with the validation's classes, the last epoch's pseudo-label confusion
    (Fig. 3). Nothing for runs without these metrics."""
    figures: list[tuple[Path, str]] = []
    quality, quantity, confusion_key = (
        f"pseudo_labeler/{key}" for key in ("quality", "quantity", "confusion")
    )
    if {quality, quantity} & {key for record in epochs for key in record}:
        path = plot_quality_quantity(run_dir / "metrics.jsonl", out_dir / "pseudo_labels.png")
        figures.append((path, "pseudo-label quality and quantity"))
    classes = list((validation.get("classwise_accuracy") or {}).keys())
    confusion = next(
        (r[confusion_key] for r in reversed(epochs) if isinstance(r.get(confusion_key), list)),
        None,
    )
    if classes and confusion is not None and len(confusion) == len(classes):
        path = plot_confusion(confusion, classes, out_dir / "pseudo_label_confusion.png")
        figures.append((path, "pseudo-label confusion (last epoch)"))
    return figures
