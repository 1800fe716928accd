"""Transfer learning's freezing as a built-in callback: the reused parameters
(``trainer.transfer.freeze``) are frozen before ``transfer.unfreeze_epoch`` and train from then
on, in a param group of their own whose learning rate is scaled by ``unfreeze_lr_scale``."""

from __future__ import annotations

import logging
from typing import Any

from torch import nn

from sedkit.components import BuildContext, Callback, TrainerView
from sedkit.recipe import TransferParams
from sedkit.transfer import matching_parameters

log = logging.getLogger("sedkit")


class TransferFreezing(Callback):
    """Run by the trainer after the recipe's callbacks; not saved in checkpoints (its state
    follows from the epoch)."""

    def __init__(self, params: TransferParams, context: BuildContext, modules: nn.ModuleDict):
        super().__init__(params, context)
        self.modules = modules
        self.frozen_names = set(matching_parameters(modules, params.freeze))
        self.frozen_now: bool | None = None

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """The optimizer's param groups: the others at ``lr``, the reused ones at
        ``lr * unfreeze_lr_scale`` (frozen, they have no gradient and the optimizer skips
        them); empty groups left out."""
        trainable = [(n, p) for n, p in self.modules.named_parameters() if p.requires_grad]
        groups = [
            {"params": [p for n, p in trainable if n not in self.frozen_names]},
            {
                "params": [p for n, p in trainable if n in self.frozen_names],
                "lr": lr * self.params.unfreeze_lr_scale,
            },
        ]
        return [g for g in groups if g["params"]]

    def on_epoch_start(self, trainer: TrainerView, epoch: int) -> None:
        """Freeze or unfreeze for this epoch; when the set of trained parameters changes, the
        trainer re-wraps its step (DistributedDataParallel registers the trained ones)."""
        p = self.params
        frozen = bool(self.frozen_names) and (p.unfreeze_epoch is None or epoch < p.unfreeze_epoch)
        if frozen == self.frozen_now:
            return
        for name, param in self.modules.named_parameters():
            if name in self.frozen_names:
                param.requires_grad_(not frozen)
        if self.frozen_names:
            state = "frozen" if frozen else f"trained at {p.unfreeze_lr_scale:g} x lr"
            log.info(
                "epoch %d: %d reused parameter tensors %s", epoch, len(self.frozen_names), state
            )
        self.frozen_now = frozen
        trainer.wrap_step()
