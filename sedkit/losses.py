"""SED losses shared by every method: clip pooling and masked BCE, from logits, in float32.

Why logits: under bf16 autocast a probability p >= 0.998 rounds to exactly 1.0, so BCE on
probabilities gives a confidently wrong output a loss of 100 (PyTorch's log clamp) and zero
gradient. Every SED loss therefore takes logits and runs ``binary_cross_entropy_with_logits`` in
float32 with autocast off; clip outputs are pooled in log space (:func:`pool_clip_logits`) so that
attention, mean and max pooling also have exact clip logits.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

CLIP_POOLINGS = ("attention", "max", "mean")


def pool_clip_logits(frame_logits: Tensor, method: str, att_logits: Tensor | None = None) -> Tensor:
    """Clip logits [B, C] whose sigmoid is the pooled frame probabilities, float32.

    With p_t = sigmoid(l_t) and pooling weights w_t (softmax over time of ``att_logits`` for
    ``attention``, 1/T for ``mean``), the clip probability is P = sum_t w_t p_t and
    1 - P = sum_t w_t sigmoid(-l_t), so logit(P) = logsumexp_t(log w_t + logsigmoid(l_t)) -
    logsumexp_t(log w_t + logsigmoid(-l_t)): exact, and finite however confident the frames are.
    ``max``: sigmoid is monotonic, so the clip logit is max_t l_t.
    Check: logits [[0], [ln 3]] (p = .5, .75) with mean pooling -> sigmoid = 0.625.
    """
    with torch.autocast(device_type=frame_logits.device.type, enabled=False):
        logits = frame_logits.float()
        if method == "max":
            return logits.amax(dim=1)
        if method == "attention":
            if att_logits is None:
                raise ValueError("attention pooling needs attention logits")
            log_w = torch.log_softmax(att_logits.float(), dim=1)
        elif method == "mean":
            log_w = torch.full_like(logits, -math.log(max(logits.shape[1], 1)))
        else:
            raise ValueError(f"unknown clip pooling {method!r}")
        log_p = torch.logsumexp(log_w + F.logsigmoid(logits), dim=1)
        log_not_p = torch.logsumexp(log_w + F.logsigmoid(-logits), dim=1)
        return log_p - log_not_p


def masked_bce_with_logits(logits: Tensor, targets: Tensor, mask: Tensor | None = None) -> Tensor:
    """BCE of sigmoid(``logits``) against ``targets``, averaged over the entries ``mask`` keeps.

    ``mask`` is per example ([B], broadcast over the other axes) or per entry (same shape as
    ``logits``); None keeps everything. float32 with autocast off. With nothing selected the
    result is 0 and still has a gradient path, so a batch without strong (or weak) clips adds
    no NaN and needs no device sync to check.
    """
    with torch.autocast(device_type=logits.device.type, enabled=False):
        x = logits.float()
        y = targets.to(device=x.device).float().clamp(0.0, 1.0)
        per_entry = F.binary_cross_entropy_with_logits(x, y, reduction="none")
        if mask is None:
            return per_entry.mean()
        weights = mask.to(device=x.device, dtype=x.dtype)
        while weights.dim() < x.dim():
            weights = weights.unsqueeze(-1)
        weights = weights.expand_as(x)
        return (per_entry * weights).sum() / weights.sum().clamp_min(1.0)


def logits_of(logits: Tensor | None, probs: Tensor | None, eps: float = 1e-6) -> Tensor:
    """The logits a loss should take: the model's own when it gives them; for a model that gives
    only probabilities, their inverse sigmoid (probabilities clamped to [eps, 1 - eps], float32;
    such a model's saturated outputs keep no gradient, which is why sedkit's models give logits).
    """
    if logits is not None:
        return logits
    if probs is None:
        raise ValueError("the model gives neither logits nor probabilities for this output")
    with torch.autocast(device_type=probs.device.type, enabled=False):
        p = probs.float().clamp(eps, 1.0 - eps)
        return torch.log(p) - torch.log1p(-p)


def zero_loss(like: Tensor) -> Tensor:
    """A zero scalar on ``like``'s graph (a loss term over zero examples)."""
    return like.float().sum() * 0.0
