"""The optimizer, the learning-rate schedule and gradient clipping of the trainer."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from sedkit.recipe import OptimizerParams, SchedulerParams


def build_optimizer(p: OptimizerParams, params: list[Any]) -> torch.optim.Optimizer:
    """``params``: parameters, or param groups (dicts) with their own ``lr``. The fused
    implementations (one kernel for all tensors; CPU and CUDA) are used where they apply."""
    tensors = [t for g in params for t in (g["params"] if isinstance(g, dict) else [g])]
    fused = all(t.is_floating_point() and t.device.type in ("cpu", "cuda") for t in tensors)
    common = dict(lr=p.lr, weight_decay=p.weight_decay, fused=fused or None)
    if p.name == "adam":
        return torch.optim.Adam(params, betas=p.betas, **common)
    if p.name == "adamw":
        return torch.optim.AdamW(params, betas=p.betas, **common)
    return torch.optim.SGD(params, momentum=p.momentum, **common)


def lr_factor(p: SchedulerParams, t: int, total: int) -> float:
    """Multiplier of the initial learning rate at step/epoch ``t`` (lecture-notes formulas)."""
    warm = min(1.0, (t + 1) / p.warmup_steps) if p.warmup_steps > 0 else 1.0
    if p.name == "power":
        f = (1.0 + t / p.s) ** (-p.c)
    elif p.name == "exponential":
        f = 0.1 ** (t / p.s)
    elif p.name == "cosine":
        f = 0.5 * (1.0 + math.cos(math.pi * min(t, total) / max(total, 1)))
    else:
        f = 1.0
    return warm * f


class Schedule:
    """The learning-rate schedule: a formula of :func:`lr_factor` per step or per epoch, or
    performance scheduling (``plateau``), which the formula only warms up."""

    def __init__(
        self, optimizer: torch.optim.Optimizer, p: SchedulerParams, monitor_mode: str
    ) -> None:
        self.p = p
        self.total_steps = 1  # set by set_length once the epoch length is known
        self.plateau = None
        if p.name == "plateau":
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer,
                mode=p.monitor_mode or monitor_mode,
                factor=p.factor,
                patience=p.patience,
                min_lr=p.min_lr,
            )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda t: lr_factor(p, t, self.total_steps)
        )

    def set_length(self, steps_per_epoch: int, max_epochs: int) -> None:
        self.total_steps = steps_per_epoch * max_epochs if self.p.interval == "step" else max_epochs

    def step(self) -> None:
        """Advance the formula. With ``plateau`` it only does the warm-up: after that the
        learning rate is ReduceLROnPlateau's alone (LambdaLR would overwrite it)."""
        if self.p.name != "plateau" or self.scheduler.last_epoch < self.p.warmup_steps:
            self.scheduler.step()

    def after_optimizer_step(self) -> None:
        if self.p.interval == "step":
            self.step()

    def epoch_end(self, metrics: dict[str, Any], monitor: str) -> None:
        """The plateau's decision on the monitored metric (when it was measured), then the
        per-epoch formula step."""
        metric = self.p.monitor or monitor
        if self.plateau is not None and metric in metrics:
            self.plateau.step(metrics[metric])
        if self.p.interval == "epoch":
            self.step()

    def state_dict(self) -> dict[str, Any]:
        return {
            "scheduler": self.scheduler.state_dict(),
            "plateau": self.plateau.state_dict() if self.plateau else {},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state["scheduler"])
        if self.plateau is not None:
            self.plateau.load_state_dict(state["plateau"])


def clip_groups(modules: nn.ModuleDict, scope: str) -> dict[str, list[nn.Parameter]]:
    """Gradient clipping groups: one per component, or all together (``grad_clip_scope``)."""
    if scope == "global":
        return {"all": [p for p in modules.parameters() if p.requires_grad]}
    return {
        name: [p for p in module.parameters() if p.requires_grad]
        for name, module in modules.items()
    }


def clip_gradients(
    groups: dict[str, list[nn.Parameter]], tp: Any, device: torch.device
) -> torch.Tensor | None:
    """Clip by value and by norm, each group on its own norm; the groups' norms before
    clipping (None without groups). No host sync: the norms stay on the device."""
    norms = []
    for params in groups.values():
        if not params:
            continue
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            norms.append(torch.zeros((), device=device))
            continue
        norm = torch.nn.utils.get_total_norm(grads)
        norms.append(norm.detach())
        if tp.grad_clip_value is not None:
            torch.nn.utils.clip_grad_value_(params, tp.grad_clip_value)
            if tp.grad_clip_norm is not None:
                norm = torch.nn.utils.get_total_norm(grads)  # changed by the value clipping
        if tp.grad_clip_norm is not None:
            torch.nn.utils.clip_grads_with_norm_(params, tp.grad_clip_norm, norm)
    return torch.stack([n.float() for n in norms]) if norms else None


def grad_norm_metrics(
    grad_norms: list[torch.Tensor], groups: dict[str, list[nn.Parameter]], clip_norm: float | None
) -> dict[str, float]:
    """An epoch's gradient norms before clipping, per clipping group (after DDP's averaging:
    the same on all ranks); the total over all groups as grad_norm_max/mean."""
    if not grad_norms:
        return {}
    metrics = {}
    norms = torch.stack(grad_norms).float().cpu()  # [steps, groups]
    total = norms.square().sum(dim=1).sqrt()
    metrics["grad_norm_max"] = float(total.max())
    metrics["grad_norm_mean"] = float(total.mean())
    names = [n for n, params in groups.items() if params]
    if len(names) > 1:
        for i, name in enumerate(names):
            metrics[f"grad_norm_mean_{name}"] = float(norms[:, i].mean())
    if clip_norm is not None:
        clipped = norms > clip_norm
        metrics["grad_clipped_share"] = float(clipped.any(dim=1).float().mean())
        if len(names) > 1:
            for i, name in enumerate(names):
                metrics[f"grad_clipped_share_{name}"] = float(clipped[:, i].float().mean())
    return metrics
