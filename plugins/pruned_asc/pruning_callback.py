"""The ``pruning`` callback: per-layer magnitude pruning on a polynomial-decay schedule.

Works with any model (see :mod:`.pruning` for what is pruned and how size is counted).
At the start of each scheduled epoch (t0, t0 + dt, ..., t0 + n dt) the masks are recomputed
from the target sparsity and applied, so that epoch and the following ones train under them;
after every optimizer step the masks are applied again (Adam would otherwise move pruned
weights away from zero); at the end of training the zeros are made permanent. Every epoch's
metrics gain, under the recipe section (``callbacks/sparsity``...; runs written before had no
prefix, and ``pruning_target_sparsity``), ``target_sparsity`` (the schedule's s in effect),
``sparsity`` (measured zeros among the prunable weights), ``nonzero_params`` and ``size_kb``
(non-zero values x 4 bytes / 1024).

Epochs count from 1 as in the trainer: epoch t0 = 100 is the 100th epoch. (TensorFlow Model
Optimization, used by the paper's authors, counts from 0 and so pruned one epoch later: an
offset of 1 epoch in 400.)

``select_best_after_pruning`` (default on) restarts the trainer's best-checkpoint tracking at
each mask update, so the checkpoint kept as ``best`` (and evaluated at the end) was trained and
validated under the latest masks: after a full schedule, the best of epochs t0 + n dt .. the
last, as the authors chose among their pruned epochs 300-400. Without it an early, unpruned
epoch could be reported as the pruned model.

The masks and the update history are in :meth:`Pruning.state_dict` (tensors), so a resumed
run continues exactly where it stopped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from sedkit import hookimpl
from sedkit.components import BuildContext, Callback
from sedkit.formatting import section_metrics
from sedkit_plugins.pruned_asc.pruning import (
    PolynomialDecaySchedule,
    apply_masks,
    compute_masks,
    count_nonzero_parameters,
    make_permanent,
    prunable_weights,
    size_kb,
    weight_sparsity,
)

log = logging.getLogger("sedkit")


@dataclass
class PruningParams(PolynomialDecaySchedule):
    """The schedule (defaults: the paper's s_i 0.1, s_f 0.8, t0 100, n 20, dt 10 epochs) and
    whether the best checkpoint is chosen among epochs under the latest masks only."""

    select_best_after_pruning: bool = True


class Pruning(Callback):
    """Prunes ``trainer.model`` on the schedule of :class:`PruningParams`."""

    Params = PruningParams

    def __init__(self, params: PruningParams, context: BuildContext):
        super().__init__(params, context)
        self.masks: dict[str, torch.Tensor] = {}
        self.target_sparsity = 0.0
        self.update_epochs: list[int] = []  # epochs at which masks were (re)computed

    def on_fit_start(self, trainer: Any) -> None:
        if not prunable_weights(trainer.model):
            log.warning("pruning: the model has no conv or dense weights; nothing to prune")
        max_epochs = getattr(getattr(trainer, "tp", None), "max_epochs", None)
        if max_epochs is not None and max_epochs < self.params.end_epoch:
            log.warning(
                "pruning: the schedule ends at epoch %d but training stops after epoch %d; "
                "the final sparsity %.3g will not be reached",
                self.params.end_epoch,
                max_epochs,
                self.params.final_sparsity,
            )
        if self.masks:  # resumed: bring the masks to the model's device once
            device = next(iter(prunable_weights(trainer.model).values())).device
            self.masks = {k: v.to(device) for k, v in self.masks.items()}
            apply_masks(trainer.model, self.masks)

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        if not self.params.is_update_epoch(epoch):
            return
        self.target_sparsity = self.params.sparsity(epoch)
        self.masks = compute_masks(trainer.model, self.target_sparsity)
        apply_masks(trainer.model, self.masks)
        self.update_epochs.append(epoch)
        log.info("pruning: epoch %d, masks at sparsity %.4f", epoch, self.target_sparsity)

    def after_optimizer_step(self, trainer: Any) -> None:
        if self.masks:
            apply_masks(trainer.model, self.masks)

    def on_epoch_end(self, trainer: Any, epoch: int, metrics: dict[str, float]) -> None:
        nonzero = count_nonzero_parameters(trainer.model)
        own = {
            "target_sparsity": self.target_sparsity,
            "sparsity": weight_sparsity(trainer.model),
            "nonzero_params": nonzero,
            "size_kb": size_kb(nonzero),
        }
        metrics.update(section_metrics("callbacks", own))
        if self.params.select_best_after_pruning and epoch in self.update_epochs[-1:]:
            # The trainer compares this epoch's metrics with the best after the callbacks
            # ran: forgetting the best makes this (pruned) epoch the new reference.
            trainer.best_value = None
            trainer.best_epoch = 0

    def on_fit_end(self, trainer: Any) -> None:
        make_permanent(trainer.model, self.masks)
        self.masks = {}

    def state_dict(self) -> dict[str, Any]:
        return {
            "masks": {k: v.detach().cpu() for k, v in self.masks.items()},
            "target_sparsity": self.target_sparsity,
            "update_epochs": list(self.update_epochs),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.masks = dict(state["masks"])
        self.target_sparsity = float(state["target_sparsity"])
        self.update_epochs = list(state["update_epochs"])


@hookimpl
def sedkit_register_callbacks(register):
    register("pruning", Pruning)
