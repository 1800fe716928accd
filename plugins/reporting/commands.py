"""``sedkit compare``, ``sedkit show`` and ``sedkit report``.

``sedkit compare RUN_DIR...`` prints one table of chosen metrics across runs, as for an
ablation (the DCASE 2019 Table 1 family: ``sedkit compare runs/dcase2019_task4-*``). Runs of
the same recipe form one row: the same run name and the same resolved recipe but for the seed,
the description and the run paths (runs of one name that differ in anything else, such as the
data or the number of epochs, are separate rows labelled by what differs). With several runs
(seeds) a cell is the mean and the sample standard deviation (divisor n - 1) of the runs that
have the metric. Runs that did not complete (failed, interrupted, still running) are left out
and named on stderr.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from sedkit.components import Command
from sedkit.errors import UserError
from sedkit.outputs import check_output
from sedkit_plugins.reporting.rundata import RunRecord, find_run_dirs, read_run

if TYPE_CHECKING:
    from sedkit.plugins import Plugins

SED_METRICS = ["event_f1_macro", "segment_f1_macro", "psds1", "psds2"]
CLASSIFICATION_METRICS = ["accuracy", "accuracy_macro", "log_loss"]

Format = Literal["text", "markdown", "csv"]


@dataclass
class CompareRow:
    """One recipe (or one run with ``per_run``) and the values of each metric over its runs."""

    name: str
    description: str
    runs: list[RunRecord] = field(default_factory=list)

    def values(self, metric: str) -> list[float]:
        found = (run.metric(metric) for run in self.runs)
        return [v for v in found if v is not None and not math.isnan(v)]


def default_metrics(runs: Sequence[RunRecord]) -> list[str]:
    """Table 1's columns for SED runs; accuracy, balanced accuracy and log-loss when every run
    is a classification run."""
    if runs and all(run.task == "classification" for run in runs):
        return list(CLASSIFICATION_METRICS)
    return list(SED_METRICS)


#: Recipe sections that differ between the seeds of one experiment, not between experiments.
PER_RUN_KEYS = ("seed", "description", "run")

#: run.json statuses whose metrics describe a finished training.
FINISHED = ("completed", "stopped")

log = logging.getLogger("sedkit")


def experiment(run: RunRecord) -> dict:
    """The run's resolved recipe without what differs from seed to seed."""
    return {k: v for k, v in run.recipe.items() if k not in PER_RUN_KEYS}


def group_runs(runs: Sequence[RunRecord], *, per_run: bool = False) -> list[CompareRow]:
    """Rows in the order runs first appear: one per experiment (run name and recipe but for
    :data:`PER_RUN_KEYS`), or one per run. Experiments sharing a run name are labelled by
    the recipe keys in which they differ."""
    from sedkit.run import flatten

    rows: dict[tuple[str, str], CompareRow] = {}
    recipes: dict[tuple[str, str], dict] = {}
    for run in runs:
        recipe = experiment(run)
        key = (str(run.path), "") if per_run else (run.name, json.dumps(recipe, sort_keys=True))
        label = f"{run.name} ({run.path.name})" if per_run else run.name
        rows.setdefault(key, CompareRow(label, run.description)).runs.append(run)
        recipes[key] = flatten(recipe)
    for key, row in rows.items():
        others = [r for k, r in recipes.items() if k[0] == key[0] and k != key]
        if not per_run and others:
            mine = recipes[key]
            differing = sorted(
                {k for r in others for k in set(r) | set(mine) if r.get(k) != mine.get(k)}
            )
            row.name += " [" + ", ".join(f"{k}={mine.get(k)}" for k in differing) + "]"
    return list(rows.values())


def finished_runs(runs: Sequence[RunRecord]) -> list[RunRecord]:
    """The runs whose training finished; the others are named in one warning each."""
    kept = []
    for run in runs:
        status = run.run_info.get("status", "unknown")
        if status in FINISHED:
            kept.append(run)
        else:
            log.warning("compare: left out %s (status %s)", run.path, status)
    return kept


def summarize(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for a single value)."""
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else None)


def _cell(values: Sequence[float], scale: float, digits: int) -> str:
    if not values:
        return "n/a"
    mean, std = summarize([v * scale for v in values])
    return f"{mean:.{digits}f}" if std is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def compare_table(
    rows: Sequence[CompareRow],
    metrics: Sequence[str],
    *,
    fmt: Format = "text",
    percent: bool = False,
    describe: bool = False,
) -> str:
    """The comparison as aligned text, a Markdown table or CSV.

    Text and Markdown cells read ``mean ± std`` over a row's runs; CSV gives ``<metric>`` (the
    mean), ``<metric>_std`` and ``<metric>_n`` columns, unrounded. ``percent`` multiplies
    by 100 (as papers print F1 and PSDS).
    """
    scale, digits = (100.0, 2) if percent else (1.0, 4)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        header = ["name", "description", "runs"]
        for m in metrics:
            header += [m, f"{m}_std", f"{m}_n"]
        writer.writerow(header)
        for row in rows:
            cells: list[str | int | float] = [row.name, row.description, len(row.runs)]
            for m in metrics:
                values = [v * scale for v in row.values(m)]
                if values:
                    mean, std = summarize(values)
                    cells += [repr(mean), "" if std is None else repr(std), len(values)]
                else:
                    cells += ["", "", 0]
            writer.writerow(cells)
        return buffer.getvalue()

    header = ["run", "n", *metrics]
    if describe:
        header.insert(1, "description")
    table = []
    for row in rows:
        cells = [
            row.name,
            str(len(row.runs)),
            *(_cell(row.values(m), scale, digits) for m in metrics),
        ]
        if describe:
            cells.insert(1, row.description)
        table.append(cells)
    if fmt == "markdown":
        lines = ["| " + " | ".join(header) + " |"]
        lines.append(
            "|"
            + "|".join([" --- "] * (len(header) - len(metrics)) + [" ---: "] * len(metrics))
            + "|"
        )
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |" for cells in table]
        return "\n".join(lines) + "\n"
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]
    numeric_from = len(header) - len(metrics) - 1  # the n column and the metrics align right

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i >= numeric_from else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [line(header), "  ".join("-" * w for w in widths)]
    out += [line(cells) for cells in table]
    return "\n".join(out) + "\n"


class CompareCommand(Command):
    help = "one table of metrics across runs (ablations: mean ± std over seeds)"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "run_dirs",
            nargs="+",
            metavar="RUN_DIR",
            help="run directories, or folders holding them",
        )
        parser.add_argument(
            "--metrics",
            nargs="+",
            metavar="METRIC",
            help="metric names (default: event_f1_macro segment_f1_macro psds1 psds2; "
            "accuracy accuracy_macro log_loss for classification runs); dotted names reach "
            "into nested scores, e.g. classwise.Speech.event_f1",
        )
        parser.add_argument("--format", choices=["text", "markdown", "csv"], default="text")
        parser.add_argument("--per-run", action="store_true", help="one row per run, no grouping")
        parser.add_argument("--percent", action="store_true", help="values x 100, 2 decimals")
        parser.add_argument("--describe", action="store_true", help="add each recipe's description")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        runs = finished_runs([read_run(path) for path in find_run_dirs(args.run_dirs)])
        if not runs:
            raise UserError(f"{' '.join(args.run_dirs)}: no run that completed")
        metrics = list(args.metrics or default_metrics(runs))
        unknown = [m for m in metrics if all(run.metric(m) is None for run in runs)]
        if len(unknown) == len(metrics):
            raise UserError(
                f"--metrics: none of {', '.join(metrics)} is in any run's metrics "
                "(metrics.json validation scores, its top level, or the last epoch of "
                "metrics.jsonl)"
            )
        rows = group_runs(runs, per_run=args.per_run)
        print(
            compare_table(
                rows, metrics, fmt=args.format, percent=args.percent, describe=args.describe
            ),
            end="",
        )
        return 0


class ShowCommand(Command):
    help = "render the detection view of one clip (spectrogram, events, frame probabilities)"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("run_dir", metavar="RUN_DIR")
        parser.add_argument("clip", metavar="CLIP", help="a clip's file name or an audio file")
        parser.add_argument(
            "-o", "--output", help="PNG to write (default RUN_DIR/plots/detection/CLIP.png)"
        )
        parser.add_argument("--checkpoint", default="best", choices=["best", "last"])
        parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
        parser.add_argument("--overwrite", action="store_true", help="replace an existing -o")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        from sedkit.plugins import get_plugins

        path = show_clip(
            Path(args.run_dir),
            args.clip,
            Path(args.output) if args.output else None,
            plugins=get_plugins(),
            checkpoint=args.checkpoint,
            device=args.device,
            overwrite=args.overwrite,
        )
        print(path)
        return 0


def show_clip(
    run_dir: Path,
    clip: str,
    output: Path | None,
    *,
    plugins: Plugins,
    checkpoint: str = "best",
    device: str = "cpu",
    overwrite: bool = False,
) -> Path:
    """Write the detection view of ``clip`` from the run in ``run_dir``; returns the PNG.
    An ``output`` the user named is never replaced without ``overwrite`` (the default one,
    in the run's own plots folder, is redrawn)."""
    from sedkit.trained_run import load_trained_run
    from sedkit_plugins.reporting.detection import render_clip

    read_run(run_dir)  # a clear error for a path that is not a run directory
    if output is not None and output.suffix.lower() != ".png":
        raise UserError(f"{output}: the detection view is written as PNG (use a .png name)")
    if output is not None:
        check_output(output, overwrite=overwrite)
    trained = load_trained_run(run_dir, plugins=plugins, checkpoint=checkpoint, device=device)
    target = output or run_dir / "plots" / "detection" / f"{Path(clip).stem}.png"
    return render_clip(trained, clip, target)


class ReportCommand(Command):
    help = "write (again) a run's plots, report.md and report.html"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("run_dir", metavar="RUN_DIR")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        from sedkit_plugins.reporting.report import write_run_report

        files = write_run_report(Path(args.run_dir))
        print(files.markdown)
        print(files.html)
        return 0
