"""Mean teacher (Tarvainen and Valpola, 2017), the method of the DCASE 2019 task 4 baseline.

The teacher is an exponential moving average (EMA) of the student model's weights. Each step
adds a consistency cost: the mean squared error between the student's and the teacher's frame
and clip probabilities on every example of the batch (labeled or not), weighted by
w(t) = consistency_weight * exp(-5 (1 - t)^2), t the ramp-up position in [0, 1].

Teacher mode (a parameter): ``train`` (default, as the DCASE baseline) runs the teacher with
dropout active and batch norm on batch statistics, so teacher and student see different noise
on the same input; ``eval`` gives a deterministic teacher. ``teacher_noise_std`` adds Gaussian
noise to the teacher's input (the baseline's input noise). In both modes, batch-norm running
statistics follow the student (EMA of its buffers), so the teacher can be evaluated too.

The teacher is a submodule (its weights are checkpointed) whose parameters have
``requires_grad=False``: the optimizer never sees them.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from sedkit import hookimpl
from sedkit.components import HeadContext, PseudoLabeler, Step


def sigmoid_rampup(position: float) -> float:
    """exp(-5 (1 - t)^2) for t = position clipped to [0, 1] (Laine and Aila's ramp-up)."""
    t = min(max(position, 0.0), 1.0)
    return math.exp(-5.0 * (1.0 - t) ** 2)


@dataclass
class MeanTeacherParams:
    """Keys of ``pseudo_labeler.params``.

    The ramp-up runs over ``rampup_steps`` optimizer steps when set, otherwise over the first
    ``rampup_fraction`` of training (counted in steps through ``Step.progress``).
    """

    ema_decay: float = 0.999
    ema_warmup: bool = True  # decay min(1 - 1/(n + 1), ema_decay) after n updates (baseline)
    consistency_weight: float = 2.0  # the baseline's max consistency cost
    rampup_steps: int | None = None
    rampup_fraction: float = 0.3
    teacher_mode: Literal["train", "eval"] = "train"
    teacher_noise_std: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay: must be in [0, 1), got {self.ema_decay}")
        if self.consistency_weight < 0:
            raise ValueError(f"consistency_weight: must be >= 0, got {self.consistency_weight}")
        if self.rampup_steps is not None and self.rampup_steps < 1:
            raise ValueError(f"rampup_steps: must be >= 1 or null, got {self.rampup_steps}")
        if not 0.0 < self.rampup_fraction <= 1.0:
            raise ValueError(f"rampup_fraction: must be in (0, 1], got {self.rampup_fraction}")
        if self.teacher_noise_std < 0:
            raise ValueError(f"teacher_noise_std: must be >= 0, got {self.teacher_noise_std}")


class MeanTeacher(PseudoLabeler):
    """EMA teacher of the model and a ramped-up consistency cost (``mt_*_consistency``)."""

    Params = MeanTeacherParams

    def __init__(self, params: MeanTeacherParams, context: HeadContext):
        super().__init__(params, context)
        model = context.model
        if model is None:
            raise ValueError("the mean teacher needs the model in its HeadContext")
        # Share the build context (logger, paths) instead of copying it.
        self.teacher = copy.deepcopy(model, memo={id(model.context): model.context})
        for parameter in self.teacher.parameters():
            parameter.requires_grad_(False)
        self._updates = 0  # EMA updates so far; checkpointed through get_extra_state
        self._reset_stats()

    def _reset_stats(self) -> None:
        self._consistency_sum: Tensor | float = 0.0
        self._batches = 0
        self._weight = 0.0

    def rampup_weight(self, step: Step) -> float:
        """consistency_weight * exp(-5 (1 - t)^2) at this step."""
        if self.params.rampup_steps is not None:
            position = step.global_step / self.params.rampup_steps
        else:
            position = step.progress / self.params.rampup_fraction
        return self.params.consistency_weight * sigmoid_rampup(position)

    def loss(self, step: Step) -> dict[str, Tensor]:
        out = step.out
        if out.frame_probs is None or out.clip_probs is None:
            raise ValueError("the mean teacher needs frame_probs and clip_probs from the model")
        features = step.features
        if self.params.teacher_noise_std > 0:
            features = features + self.params.teacher_noise_std * torch.randn_like(features)
        was_training = self.teacher.training
        self.teacher.train(self.params.teacher_mode == "train")
        try:
            with torch.no_grad():
                target = self.teacher(features)
        finally:
            self.teacher.train(was_training)
        weight = self.rampup_weight(step)
        with torch.autocast(device_type=out.frame_probs.device.type, enabled=False):
            frame = torch.mean((out.frame_probs.float() - target.frame_probs.float()) ** 2)
            clip = torch.mean((out.clip_probs.float() - target.clip_probs.float()) ** 2)
        self._consistency_sum = self._consistency_sum + (frame + clip).detach()
        self._batches += 1
        self._weight = weight
        return {"mt_frame_consistency": weight * frame, "mt_clip_consistency": weight * clip}

    @torch.no_grad()
    def after_optimizer_step(self, step: Step) -> None:
        """teacher <- decay * teacher + (1 - decay) * student, for weights and buffers.

        The first update copies the student (decay 0), so weights loaded into the model after
        this component was built (transfer learning) reach the teacher at once.
        """
        decay = self.params.ema_decay
        if self.params.ema_warmup or self._updates == 0:
            decay = min(1.0 - 1.0 / (self._updates + 1), decay)
        teacher_params = list(self.teacher.parameters())
        student_params = [p.detach() for p in step.model.parameters()]
        if len(teacher_params) != len(student_params):
            raise RuntimeError("the model's parameters no longer match the teacher's")
        torch._foreach_lerp_(teacher_params, student_params, 1.0 - decay)
        for t_buf, s_buf in zip(self.teacher.buffers(), step.model.buffers(), strict=True):
            if t_buf.is_floating_point():
                t_buf.lerp_(s_buf, 1.0 - decay)
            else:  # e.g. batch norm's num_batches_tracked
                t_buf.copy_(s_buf)
        self._updates += 1

    def epoch_metrics(self) -> dict[str, float]:
        """Mean unweighted consistency (frame + clip MSE) and the last ramp-up weight."""
        if not self._batches:
            return {}
        metrics = {
            "consistency": float(self._consistency_sum) / self._batches,
            "consistency_weight": self._weight,
        }
        self._reset_stats()
        return metrics

    def get_extra_state(self) -> dict[str, Any]:
        return {"ema_updates": self._updates}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self._updates = int(state["ema_updates"])


@hookimpl
def sedkit_register_pseudo_labelers(register) -> None:
    register("mean_teacher", MeanTeacher)
