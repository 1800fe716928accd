"""Adversarial domain adaptation with a gradient reversal layer (tri-training paper, section 3.1).

A domain classifier D tells real from synthetic clips from the shared features ``h`` of the
feature extractor F. The gradient reversal layer (GRL) sits between F and D: the identity going
forward, -alpha times the gradient going back. D therefore gets the plain gradient of its loss
L_d while F gets -alpha dL_d/dtheta_F (paper eq. 5 and 7; METHODS.md section 2). The loss is
returned unnegated: reversing happens once, in the GRL, and the GRL is never behind D.

Modes: ``whole`` (Adv.whole) decides once per clip from h pooled over time (mean) or flattened;
``frame`` (Adv.time) decides per output frame, the clip's domain broadcast over frames and the
loss averaged over frames. Every example of the batch feeds D (synthetic, weak and unlabeled).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sedkit import hookimpl
from sedkit.components import DomainAdapter, HeadContext, Step


class GradientReversal(torch.autograd.Function):
    """Forward: identity. Backward: the incoming gradient times -alpha."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, alpha: float) -> Tensor:
        ctx.alpha = float(alpha)
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None]:
        return grad_output * -ctx.alpha, None


def grad_reverse(x: Tensor, alpha: float) -> Tensor:
    """Apply the gradient reversal layer with weight ``alpha``."""
    return GradientReversal.apply(x, alpha)


def dann_alpha(progress: float, gamma: float = 10.0) -> float:
    """The DANN schedule alpha(p) = 2 / (1 + exp(-gamma p)) - 1, p in [0, 1] (Ganin et al.)."""
    return 2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0


def domain_loss(logits: Tensor, targets: Tensor, *, balanced: bool = True) -> Tensor:
    """L_d: BCE-with-logits of D (float32, autocast off), targets 1 real / 0 synthetic.

    ``balanced``: the mean over real entries and the mean over synthetic entries weigh half each
    (a domain absent from the batch leaves the other's mean), so L_d is 0.693 at chance whatever
    the domains' shares. Otherwise the plain mean over entries. Computed without a device sync.
    Check: logits [0, 0, 0, 2], targets [1, 1, 1, 0] -> (0.693 + 2.127) / 2 = 1.410.
    """
    with torch.autocast(device_type=logits.device.type, enabled=False):
        per_entry = F.binary_cross_entropy_with_logits(
            logits.float(), targets.float(), reduction="none"
        )
        if not balanced:
            return per_entry.mean()
        real = targets.float()
        synthetic = 1.0 - real
        n_real, n_synthetic = real.sum(), synthetic.sum()
        means = (
            (per_entry * real).sum() / n_real.clamp_min(1.0),
            (per_entry * synthetic).sum() / n_synthetic.clamp_min(1.0),
        )
        present = (n_real > 0).float(), (n_synthetic > 0).float()
        return (means[0] * present[0] + means[1] * present[1]) / (
            present[0] + present[1]
        ).clamp_min(1.0)


@dataclass
class GRLParams:
    """Keys of ``domain_adapter.params``.

    ``alpha`` is the GRL weight (schedule ``constant``) or its final value (schedule ``dann``:
    alpha * alpha_dann(progress), progress counted in optimizer steps over the whole training).
    """

    mode: Literal["whole", "frame"] = "frame"
    whole_pooling: Literal["mean", "flatten"] = "mean"  # how ``whole`` sees the clip's h
    alpha: float = 1.0
    schedule: Literal["constant", "dann"] = "constant"
    dann_gamma: float = 10.0
    hidden: list[int] = field(default_factory=lambda: [128])  # D's hidden layer sizes
    dropout: float = 0.0
    # Beyond the paper (which does not say): each domain weighs half of L_d whatever its share
    # of the batch. Unbalanced (6 synthetic to 18 real clips), D sits at the prior (accuracy
    # 0.75) with a small loss gradient and sends F almost no reversed gradient.
    balance_domains: bool = True

    def __post_init__(self) -> None:
        if self.alpha < 0:
            raise ValueError(f"alpha: must be >= 0, got {self.alpha}")
        if any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden: layer sizes must be >= 1, got {self.hidden}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: must be in [0, 1), got {self.dropout}")


class GRLAdapter(DomainAdapter):
    """Domain classifier behind a gradient reversal layer; loss ``adv_domain``."""

    Params = GRLParams

    def __init__(self, params: GRLParams, context: HeadContext):
        super().__init__(params, context)
        if context.feature_dim < 1:
            raise ValueError("GRLAdapter needs the model's feature_dim in its HeadContext")
        in_dim = context.feature_dim
        if params.mode == "whole" and params.whole_pooling == "flatten":
            model = context.model
            n_frames = getattr(getattr(model, "context", None), "n_frames", 0)
            if model is None or n_frames < 1:
                raise ValueError("whole_pooling 'flatten' needs the model and its n_frames")
            self.flat_frames = model.output_frames(n_frames)
            in_dim *= self.flat_frames
        layers: list[nn.Module] = []
        for width in params.hidden:
            layers += [nn.Linear(in_dim, width), nn.ReLU()]
            if params.dropout > 0:
                layers.append(nn.Dropout(params.dropout))
            in_dim = width
        layers.append(nn.Linear(in_dim, 1))
        self.discriminator = nn.Sequential(*layers)
        self._reset_stats()

    def _reset_stats(self) -> None:
        self._loss_sum: Tensor | float = 0.0
        self._correct: Tensor | float = 0.0
        self._real_correct: Tensor | float = 0.0
        self._real_count: Tensor | float = 0.0
        self._synthetic_correct: Tensor | float = 0.0
        self._synthetic_count: Tensor | float = 0.0
        self._count = 0.0
        self._batches = 0
        self._alpha = 0.0

    def alpha(self, progress: float) -> float:
        """The GRL weight at training progress ``progress`` in [0, 1]."""
        if self.params.schedule == "dann":
            return self.params.alpha * dann_alpha(progress, self.params.dann_gamma)
        return self.params.alpha

    def domain_logits(self, h: Tensor, alpha: float) -> Tensor:
        """D's logits on GRL(h): [B] in mode ``whole``, [B, T'] in mode ``frame``."""
        reversed_h = grad_reverse(h, alpha)
        if self.params.mode == "frame":
            return self.discriminator(reversed_h).squeeze(-1)
        if self.params.whole_pooling == "mean":
            pooled = reversed_h.mean(dim=1)
        else:
            if reversed_h.shape[1] != self.flat_frames:
                raise ValueError(
                    f"whole_pooling 'flatten' was built for {self.flat_frames} frames, "
                    f"got {reversed_h.shape[1]}"
                )
            pooled = reversed_h.flatten(1)
        return self.discriminator(pooled).squeeze(-1)

    def loss(self, step: Step) -> dict[str, Tensor]:
        h = step.out.h
        if h is None or h.dim() != 3:
            raise ValueError("the GRL adapter needs the model's shared features h [B, T', D]")
        alpha = self.alpha(step.progress)
        logits = self.domain_logits(h, alpha)
        targets = step.batch.domain.to(device=logits.device, dtype=torch.float32)
        if logits.dim() == 2:  # frame mode: the clip's domain on every frame
            targets = targets.unsqueeze(1).expand_as(logits)
        loss = domain_loss(logits, targets, balanced=self.params.balance_domains)
        with torch.no_grad():
            hits = ((logits.float() > 0).float() == targets).float()
            real = targets > 0.5
            # Accumulate on the device; one sync per epoch in epoch_metrics.
            self._loss_sum = self._loss_sum + loss.detach()
            self._correct = self._correct + hits.sum()
            self._real_correct = self._real_correct + hits[real].sum()
            self._real_count = self._real_count + real.sum()
            self._synthetic_correct = self._synthetic_correct + hits[~real].sum()
            self._synthetic_count = self._synthetic_count + (~real).sum()
        self._count += targets.numel()
        self._batches += 1
        self._alpha = alpha
        return {"adv_domain": loss}

    def epoch_metrics(self) -> dict[str, float]:
        """Mean domain loss, D's accuracy (per clip or per frame), its balanced accuracy (mean of
        the per-domain accuracies: 0.5 at chance whatever the batch's domain shares) and the last
        alpha (logged as ``domain_adapter/accuracy`` and so on)."""
        if self._batches == 0:
            return {}
        metrics = {
            "domain_loss": float(self._loss_sum) / self._batches,
            "accuracy": float(self._correct) / max(self._count, 1.0),
            "alpha": float(self._alpha),
        }
        shares = [
            float(correct) / float(count)
            for correct, count in (
                (self._real_correct, self._real_count),
                (self._synthetic_correct, self._synthetic_count),
            )
            if float(count) > 0
        ]
        if len(shares) == 2:
            metrics["balanced_accuracy"] = sum(shares) / 2
        self._reset_stats()
        return metrics


@hookimpl
def sedkit_register_domain_adapters(register) -> None:
    register("grl", GRLAdapter)
