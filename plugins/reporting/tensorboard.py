"""TensorBoard scalars of every epoch, when TensorBoard is installed (optional extra
``sedkit[tensorboard]``); otherwise one info line and nothing else.

Event files go to ``RUN_DIR/tensorboard``. Tags group the metrics as the training-curve figure
does: ``loss/<term>`` (``train_`` dropped), ``lr``, ``validation/<metric>``,
``validation_details/<metric>`` (precision, recall, error rate), ``pseudo_labels/<statistic>``,
``domain/<statistic>``, ``pruning/<statistic>`` and ``other/<metric>``. A resumed run purges the
steps after its checkpoint, so curves do not double back.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from sedkit_plugins.reporting.rundata import as_number, curve_group

log = logging.getLogger("sedkit")

TAG_PREFIX = {
    "training losses": "loss",
    "learning rate": "",
    "validation": "validation",
    "validation details": "validation_details",
    # Section metrics are tagged by their own name (``pseudo_labeler/quality``).
    "pseudo-labels": "",
    "domain adaptation": "",
    "callbacks": "",
    "other": "other",
}


def summary_writer_class() -> type | None:
    """``torch.utils.tensorboard.SummaryWriter``, or None when TensorBoard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter


def scalar_tags(metrics: dict[str, Any]) -> dict[str, float]:
    """The epoch's numeric metrics under their TensorBoard tags."""
    tags = {}
    for key, value in metrics.items():
        number = as_number(value)
        group = curve_group(key)
        if number is None or group is None:
            continue
        name = key[len("train_") :] if group == "training losses" else key
        prefix = TAG_PREFIX[group]
        tags[f"{prefix}/{name}" if prefix else name] = number
    return tags


class TensorBoardLogger:
    """One SummaryWriter per run directory, opened at the first epoch, closed at the run's end."""

    def __init__(self) -> None:
        self.writers: dict[Path, Any] = {}
        self.recipes: dict[Path, dict[str, Any]] = {}
        self.announced = False

    def run_start(self, run_dir: Path, recipe: dict[str, Any]) -> None:
        self.recipes[Path(run_dir)] = recipe

    def epoch_end(self, run_dir: Path, epoch: int, metrics: dict[str, Any]) -> None:
        writer = self.writers.get(run_dir)
        if writer is None:
            writer_class = summary_writer_class()
            if writer_class is None:
                if not self.announced:
                    log.info(
                        "reporting: TensorBoard is not installed; no event files "
                        "(pip install 'sedkit[tensorboard]')"
                    )
                    self.announced = True
                return
            run_dir = Path(run_dir)
            # purge_step drops events a killed run logged after its last checkpoint.
            writer = writer_class(log_dir=str(run_dir / "tensorboard"), purge_step=epoch)
            self.writers[run_dir] = writer
            recipe = self.recipes.pop(run_dir, None)
            if recipe is not None:
                text = yaml.safe_dump(recipe, sort_keys=False)
                writer.add_text("recipe", "```\n" + text + "\n```", global_step=epoch)
        for tag, value in scalar_tags(metrics).items():
            writer.add_scalar(tag, value, global_step=epoch)
        writer.flush()

    def run_end(self, run_dir: Path) -> None:
        run_dir = Path(run_dir)
        self.recipes.pop(run_dir, None)
        writer = self.writers.pop(run_dir, None)
        if writer is not None:
            writer.close()
