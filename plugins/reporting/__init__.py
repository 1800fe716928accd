"""Reporting plugin: TensorBoard logging, plots, run reports, `sedkit compare` and `sedkit show`.

What every run gets, without extra work:

- TensorBoard scalars after each epoch in ``RUN_DIR/tensorboard`` when TensorBoard is installed
  (:mod:`.tensorboard`);
- at the end of the run (completed, stopped or failed), PNG figures in ``RUN_DIR/plots`` and
  ``report.md`` + ``report.html`` (:mod:`.report`, :mod:`.plots`). SED runs also get PSD-ROC
  curves and the detection view of a few validation clips (``$SEDKIT_REPORT_CLIPS``: a count or
  file names; see :mod:`.detection`).

Commands: ``sedkit compare RUN_DIR...``, ``sedkit show RUN_DIR CLIP``, ``sedkit report RUN_DIR``
(:mod:`.commands`). Disable the plugin with ``SEDKIT_DISABLE_PLUGINS=reporting``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sedkit import hookimpl
from sedkit.hookspecs import Register
from sedkit_plugins.reporting.commands import CompareCommand, ReportCommand, ShowCommand
from sedkit_plugins.reporting.tensorboard import TensorBoardLogger

#: The process's TensorBoard writers, one per run directory.
TENSORBOARD = TensorBoardLogger()


@hookimpl
def sedkit_register_commands(register: Register) -> None:
    register("compare", CompareCommand)
    register("show", ShowCommand)
    register("report", ReportCommand)


@hookimpl
def sedkit_run_start(run_dir: Path, recipe: dict[str, Any]) -> None:
    TENSORBOARD.run_start(run_dir, recipe)


@hookimpl
def sedkit_epoch_end(run_dir: Path, epoch: int, metrics: dict[str, Any]) -> None:
    TENSORBOARD.epoch_end(run_dir, epoch, metrics)


@hookimpl
def sedkit_run_end(run_dir: Path, status: str) -> None:
    from sedkit_plugins.reporting.report import write_run_report

    try:
        write_run_report(run_dir, status)
    finally:
        TENSORBOARD.run_end(run_dir)
