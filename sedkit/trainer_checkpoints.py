"""The trainer's checkpointed state: what ``last.pt`` and ``best.pt`` hold, the best epoch's
bookkeeping, and the commit of one epoch (protocol in :mod:`sedkit.checkpoint`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sedkit import distributed as D
from sedkit.checkpoint import (
    BEST,
    LAST,
    CheckpointMismatchError,
    commit_epoch,
    load_checkpoint,
    rng_state,
    set_rng_state,
)
from sedkit.errors import UserError

log = logging.getLogger("sedkit")

CHECKPOINT_FORMAT = 1


class TrainerCheckpoints:
    """Checkpointing of :class:`sedkit.trainer.Trainer` (a base class of it: the attributes
    used here are the trainer's)."""

    run_dir: Path
    checkpoint_dir: Path
    best_value: float | None
    best_epoch: int
    best_record: dict[str, Any] | None
    epoch: int
    tp: Any

    def _update_best(self, metrics: dict[str, Any]) -> bool:
        value = metrics.get(self.tp.monitor)
        if value is None:
            return False
        better = (
            self.best_value is None
            or (self.tp.monitor_mode == "max" and value > self.best_value)
            or (self.tp.monitor_mode == "min" and value < self.best_value)
        )
        if better:
            self.best_value, self.best_epoch = float(value), self.epoch
        return better

    def load_best_weights(self) -> bool:
        """Put the best checkpoint's weights into the modules (early stopping, final eval):
        only the file this run recorded (digest and epoch), never another epoch's weights.
        False when no epoch was ever best."""
        if self.best_record is None:
            if self.best_epoch:
                raise CheckpointMismatchError(
                    f"{self.checkpoint_dir / LAST}: records best epoch {self.best_epoch} "
                    f"but no digest of {BEST} (a checkpoint of an older sedkit); refusing to "
                    "evaluate other weights as the best"
                )
            return False
        path = self.checkpoint_dir / BEST
        state = load_checkpoint(path, map_location=self.device, sha256=self.best_record["sha256"])
        if state.get("epoch") != self.best_epoch:
            raise CheckpointMismatchError(
                f"{path}: holds epoch {state.get('epoch')}, the run's best is {self.best_epoch}"
            )
        self.modules.load_state_dict(state["modules"])
        self.extractor.load_state_dict(state["extractor"])
        return True

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "epoch": self.epoch,
            "global_step": self.global_step,
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "should_stop": self.should_stop,
            "stop_reason": self.stop_reason,
            "modules": self.modules.state_dict(),
            "extractor": self.extractor.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            **self.schedule.state_dict(),  # "scheduler", "plateau"
            "scaler": self.scaler.state_dict(),
            "callbacks": [cb.state_dict() for cb in self.callbacks],
            "data": self.data.state_dict(),
            "classes": self.classes,
            "rng": rng_state(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise UserError(f"checkpoint format {state.get('format')} is not supported")
        try:
            self.modules.load_state_dict(state["modules"])
        except RuntimeError as exc:  # shapes or names differ: the recipe's model changed
            first = str(exc).strip().splitlines()
            raise UserError(
                f"{self.checkpoint_dir / LAST}: does not fit the recipe's model "
                f"({first[1].strip() if len(first) > 1 else first[0]})"
            ) from None
        self.extractor.load_state_dict(state["extractor"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state)
        self.scaler.load_state_dict(state["scaler"])
        for cb, cb_state in zip(self.callbacks, state["callbacks"], strict=True):
            cb.load_state_dict(cb_state)
        self.data.load_state_dict(state["data"])
        self.epoch, self.global_step = state["epoch"], state["global_step"]
        self.best_value, self.best_epoch = state["best_value"], state["best_epoch"]
        self.best_record = state.get("best")
        # An early stop decided in the checkpointed epoch holds after a resume.
        self.should_stop = bool(state.get("should_stop", False))
        self.stop_reason = str(state.get("stop_reason", ""))
        set_rng_state(state["rng"])

    def commit(self, improved: bool) -> None:
        """Checkpoint this epoch: ``last`` and, when ``improved``, ``best``, in one commit
        (rank 0 writes: the ranks hold the same state; every rank keeps the record)."""
        if D.is_main():
            self.best_record = commit_epoch(
                self.checkpoint_dir, self.state_dict(), improved=improved, best=self.best_record
            )
        self.best_record = D.broadcast_object(self.best_record)
        if not D.is_main():
            return
        for kind in ("best", "last") if improved else ("last",):
            self.plugins.checkpoint_saved(
                run_dir=self.run_dir, path=self.checkpoint_dir / f"{kind}.pt", kind=kind,
                epoch=self.epoch,
            )  # fmt: skip
