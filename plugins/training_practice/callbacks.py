"""Training-practice callbacks from the lecture notes: early stopping."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from sedkit import hookimpl
from sedkit.components import Callback

log = logging.getLogger("sedkit")


@dataclass
class EarlyStoppingParams:
    monitor: str = "event_f1_macro"
    mode: Literal["max", "min"] = "max"
    patience: int = 5  # validations without improvement before stopping
    min_delta: float = 0.0
    restore_best: bool = True

    def __post_init__(self) -> None:
        if self.patience < 1:
            raise ValueError(f"patience must be >= 1, got {self.patience}")


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` validations;
    with ``restore_best``, the best checkpoint's weights are put back at the end."""

    Params = EarlyStoppingParams

    def __init__(self, params: EarlyStoppingParams, context: Any):
        super().__init__(params, context)
        self.best: float | None = None
        self.bad_validations = 0

    def on_epoch_end(self, trainer: Any, epoch: int, metrics: dict[str, float]) -> None:
        value = metrics.get(self.params.monitor)
        if value is None:
            return  # no validation this epoch
        sign = 1.0 if self.params.mode == "max" else -1.0
        if self.best is None or sign * (value - self.best) > self.params.min_delta:
            self.best, self.bad_validations = float(value), 0
            return
        self.bad_validations += 1
        if self.bad_validations >= self.params.patience:
            trainer.should_stop = True
            trainer.stop_reason = (
                f"early stopping: {self.params.monitor} did not improve for "
                f"{self.bad_validations} validations (best {self.best:.4f})"
            )

    def on_fit_end(self, trainer: Any) -> None:
        if trainer.should_stop and self.params.restore_best and trainer.load_best_weights():
            log.info("early stopping: restored the best weights")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad_validations": self.bad_validations}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.bad_validations = state["best"], state["bad_validations"]


@hookimpl
def sedkit_register_callbacks(register):
    register("early_stopping", EarlyStopping)
