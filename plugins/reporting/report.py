"""The run report: ``report.md`` and ``report.html`` in the run directory, with the plots in
``plots/``.

Sections: recipe summary, data summary (clips per subset, missing files, data source), final
metrics (headline and class-wise tables, the numbers of ``metrics.json`` to four decimals),
plots, and the time and hardware used (``metrics.json``, ``run.json``, ``environment.json``).
Both files are rendered from one list of blocks, so they always say the same.
"""

from __future__ import annotations

import html
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sedkit.checkpoint import atomic_write
from sedkit.errors import UserError
from sedkit.plugins import get_plugins
from sedkit.scoring import detection_files_by_threshold
from sedkit.trained_run import load_trained_run
from sedkit_plugins.reporting import plots
from sedkit_plugins.reporting.detection import DURATIONS, GROUND_TRUTH, render_clip, report_clips
from sedkit_plugins.reporting.rundata import (
    HEADLINE_METRICS,
    RunRecord,
    as_number,
    read_data_summary,
    read_run,
)

log = logging.getLogger("sedkit")

PLOTS_DIR = "plots"


# ------------------------------------------------------------------------------------------
# A tiny document model rendered to Markdown and HTML
# ------------------------------------------------------------------------------------------
@dataclass
class Heading:
    level: int
    text: str


@dataclass
class Paragraph:
    text: str


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]


@dataclass
class Image:
    path: str  # relative to the run directory
    caption: str


Block = Heading | Paragraph | Table | Image


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_markdown(blocks: Sequence[Block]) -> str:
    """GitHub-flavoured Markdown."""
    out: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Paragraph):
            out.append(block.text)
        elif isinstance(block, Table):
            lines = ["| " + " | ".join(_md_cell(h) for h in block.header) + " |"]
            lines.append("|" + "|".join(" --- " for _ in block.header) + "|")
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.rows]
            out.append("\n".join(lines))
        else:
            out.append(f"![{block.caption}]({block.path})\n\n*{block.caption}*")
    return "\n\n".join(out) + "\n"


HTML_STYLE = """
body { font-family: sans-serif; max-width: 70em; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0 2em; } img { max-width: 100%; }
"""


def _is_number_text(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def render_html(blocks: Sequence[Block], title: str) -> str:
    """A self-contained HTML page (images linked relative to the run directory)."""
    esc = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{HTML_STYLE}</style></head><body>",
    ]
    for block in blocks:
        if isinstance(block, Heading):
            out.append(f"<h{block.level}>{esc(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            out.append(f"<p>{esc(block.text)}</p>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{esc(h)}</th>" for h in block.header)
            rows = "".join(
                "<tr>"
                + "".join(
                    f'<td class="num">{esc(c)}</td>' if _is_number_text(c) else f"<td>{esc(c)}</td>"
                    for c in row
                )
                + "</tr>"
                for row in block.rows
            )
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        else:
            out.append(
                f'<figure><img src="{esc(block.path)}" alt="{esc(block.caption)}">'
                f"<figcaption>{esc(block.caption)}</figcaption></figure>"
            )
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------
# Formatting
# ------------------------------------------------------------------------------------------
def format_number(value: Any) -> str:
    """Metrics to four decimals (the precision of every table sedkit prints); integers as
    they are; NaN as ``nan``."""
    number = as_number(value)
    if number is None:
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if math.isnan(number):
        return "nan"
    return f"{number:.4f}"


def format_duration(seconds: float) -> str:
    whole = int(round(seconds))
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d} ({seconds:.1f} s)"


def _compact(value: Any) -> str:
    """Component params on one line."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={_compact(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_compact(v) for v in value) + "]"
    return json.dumps(value) if isinstance(value, str) else str(value)


# ------------------------------------------------------------------------------------------
# Sections
# ------------------------------------------------------------------------------------------
def recipe_section(run: RunRecord) -> list[Block]:
    r = run.recipe
    rows: list[list[str]] = [["name", run.name], ["task", run.task], ["seed", str(run.seed)]]
    if run.description:
        rows.insert(1, ["description", run.description])
    for key in ("data", "model", "pseudo_labeler", "domain_adapter"):
        spec = r.get(key)
        if isinstance(spec, dict) and spec.get("name"):
            params = spec.get("params") or {}
            rows.append([key, f"{spec['name']} ({_compact(params)})" if params else spec["name"]])
    for i, spec in enumerate(r.get("callbacks") or []):
        if isinstance(spec, dict):
            rows.append([f"callbacks[{i}]", f"{spec.get('name')} ({_compact(spec.get('params'))})"])
    features = r.get("features") or {}
    if features:
        shown = ("sample_rate", "n_fft", "hop_length", "n_mels", "normalization")
        rows.append(["features", _compact({k: features[k] for k in shown if k in features})])
    trainer = r.get("trainer") or {}
    if trainer:
        optimizer = trainer.get("optimizer") or {}
        scheduler = trainer.get("scheduler") or {}
        rows.append(
            [
                "trainer",
                _compact(
                    {
                        "max_epochs": trainer.get("max_epochs"),
                        "optimizer": optimizer.get("name"),
                        "lr": optimizer.get("lr"),
                        "scheduler": scheduler.get("name"),
                        "monitor": trainer.get("monitor"),
                    }
                ),
            ]
        )
    decoding = r.get("decoding") or {}
    if decoding and run.task == "sed":
        shown = ("threshold", "median_filter_s", "psds_thresholds")
        rows.append(["decoding", _compact({k: decoding[k] for k in shown if k in decoding})])
    overrides = run.run_info.get("overrides") or []
    if overrides:
        rows.append(["overrides", " ".join(map(str, overrides))])
    if run.run_info.get("recipe"):
        rows.append(["recipe file", str(run.run_info["recipe"])])
    return [Heading(2, "Recipe"), Table(["key", "value"], rows)]


def data_section(run: RunRecord) -> list[Block]:
    summary = read_data_summary(run.path)
    blocks: list[Block] = [Heading(2, "Data")]
    subsets = list(dict.fromkeys([*summary.used, *summary.missing]))
    if subsets:
        rows = [[s, str(summary.used.get(s, 0)), str(summary.missing.get(s, 0))] for s in subsets]
        rows.append(["total", str(sum(summary.used.values())), str(sum(summary.missing.values()))])
        blocks.append(Table(["subset", "clips used", "clips missing"], rows))
        if summary.missing:
            blocks.append(Paragraph("Missing clips are listed in clips_missing.tsv."))
    else:
        blocks.append(Paragraph("The data component recorded no clip lists (clips_used.tsv)."))
    if summary.source:
        rows = [[str(k), _compact(v)] for k, v in summary.source.items()]
        blocks += [Paragraph("Data source (data_source.json):"), Table(["key", "value"], rows)]
    return blocks


def metrics_section(run: RunRecord, status: str) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Final metrics")]
    validation = run.validation
    if not validation:
        text = f"The run ended with status {status!r} before its final evaluation"
        last = run.epochs[-1] if run.epochs else {}
        if not last:
            return [*blocks, Paragraph(text + "; no epoch finished.")]
        rows = [[k, format_number(v)] for k, v in last.items() if as_number(v) is not None]
        return [
            *blocks,
            Paragraph(text + f"; the last finished epoch ({last.get('epoch')}) logged:"),
            Table(["metric", "value"], rows),
        ]
    m = run.metrics
    if m.get("best_epoch") is not None:
        monitor = m.get("monitor", "")
        blocks.append(
            Paragraph(
                f"Validation with the best checkpoint: epoch {m.get('best_epoch')} of "
                f"{m.get('epochs', '?')} ({monitor} = {format_number(m.get('best_value'))} "
                f"when selected); status {m.get('status', status)}."
            )
        )
    keys = [k for k in HEADLINE_METRICS if k in validation]
    keys += sorted(
        k
        for k, v in validation.items()
        if k not in keys and as_number(v) is not None and k != "classwise"
    )
    blocks.append(Table(["metric", "value"], [[k, format_number(validation[k])] for k in keys]))
    scores = plots.classwise_scores(validation)
    if scores:
        classes = list(dict.fromkeys(c for values in scores.values() for c in values))
        rows = [[c, *(format_number(scores[s].get(c, math.nan)) for s in scores)] for c in classes]
        blocks += [Heading(3, "Class-wise"), Table(["class", *scores], rows)]
    return blocks


def hardware_section(run: RunRecord) -> list[Block]:
    env, m, info = run.environment, run.metrics, run.run_info
    rows: list[list[str]] = []
    if as_number(m.get("train_time_s")) is not None:
        rows.append(["training time", format_duration(float(m["train_time_s"]))])
    if m.get("epochs") is not None:
        rows.append(["epochs", str(m["epochs"])])
    speeds = [as_number(e.get("train_clips_per_s")) for e in run.epochs]
    speeds = [s for s in speeds if s is not None]
    if speeds:
        rows.append(["training speed", f"{sum(speeds) / len(speeds):.1f} clips/s (mean of epochs)"])
    for key in ("started", "ended"):
        if info.get(key):
            rows.append([key, str(info[key])])
    if info.get("resumed"):
        rows.append(["resumed", ", ".join(map(str, info["resumed"]))])
    for key in (
        "device",
        "gpu",
        "cuda",
        "cpu_count",
        "torch_threads",
        "host",
        "platform",
        "python",
    ):
        if env.get(key) is not None:
            rows.append([key.replace("_", " "), str(env[key])])
    versions = env.get("versions") or {}
    if versions:
        rows.append(["versions", ", ".join(f"{k} {v}" for k, v in versions.items() if v)])
    if not rows:
        return [Heading(2, "Time and hardware"), Paragraph("Not recorded.")]
    return [Heading(2, "Time and hardware"), Table(["item", "value"], rows)]


# ------------------------------------------------------------------------------------------
# Plots and the whole report
# ------------------------------------------------------------------------------------------
@dataclass
class Plot:
    path: Path
    caption: str


@dataclass
class ReportFiles:
    markdown: Path
    html: Path
    plots: list[Plot] = field(default_factory=list)


def _psd_roc_plots(run: RunRecord, out_dir: Path) -> list[Plot]:
    run_dir = run.path
    classes = list(run.validation.get("classwise") or {})
    ground_truth, durations = run_dir / GROUND_TRUTH, run_dir / DURATIONS
    detections = run_dir / "predictions" / "validation_detections.tsv"
    psds_dir = run_dir / "predictions" / "psds"
    if not (ground_truth.is_file() and durations.is_file() and detections.is_file()):
        log.debug("reporting: no validation ground truth and durations in the run; no PSD-ROC")
        return []
    if not classes or not psds_dir.is_dir() or not any(psds_dir.glob("*.tsv")):
        return []
    # The operating points of a finished run never change: curves drawn once are kept.
    written = sorted(out_dir.glob("psds*_roc*.png"))
    if not written:
        written, _ = plots.plot_psd_roc_curves(
            ground_truth=ground_truth,
            durations=durations,
            detections=detections,
            psds_detections=detection_files_by_threshold(psds_dir),
            classes=classes,
            out_dir=out_dir,
        )
    return [
        Plot(
            p, f"PSD-ROC, {p.stem.split('_')[0]}" + (" per class" if "per_class" in p.stem else "")
        )
        for p in written
    ]


def _detection_plots(run_dir: Path, out_dir: Path) -> list[Plot]:
    clips = report_clips(run_dir)
    if not clips:
        return []
    try:
        trained = load_trained_run(run_dir, plugins=get_plugins(), checkpoint="best", device="cpu")
    except UserError as exc:  # e.g. a plugin of this run is not installed in this process
        log.warning("reporting: no detection views: %s", exc)
        return []
    written = []
    for clip in clips:
        path = out_dir / "detection" / f"{Path(clip).stem}.png"
        try:
            render_clip(trained, clip, path)
        except UserError as exc:  # e.g. an audio file moved since training
            log.warning("reporting: no detection view of %s: %s", clip, exc)
            continue
        written.append(Plot(path, f"detection view of {clip}"))
    return written


def write_plots(run: RunRecord, status: str) -> list[Plot]:
    """Every figure the run's files allow, into ``RUN_DIR/plots``."""
    out_dir = run.path / PLOTS_DIR
    made: list[Plot] = []

    def add(path: Path | None, caption: str) -> None:
        if path is not None:
            made.append(Plot(path, caption))

    add(plots.plot_training_curves(run.epochs, out_dir / "training_curves.png"), "training curves")
    if run.validation:
        add(plots.plot_classwise(run.validation, out_dir / "classwise.png"), "class-wise scores")
    for path in plots.plot_confusions(run.validation, run.epochs, out_dir):
        made.append(Plot(path, "confusion"))
    # The methods' own figures (pseudo-label curves and confusions), from their plugins.
    figures = get_plugins().report_figures(
        run_dir=run.path, epochs=run.epochs, validation=run.validation or {}, out_dir=out_dir
    )
    made += [Plot(path, caption) for path, caption in figures]
    if status != "failed" and run.task == "sed":
        made += _psd_roc_plots(run, out_dir)
        made += _detection_plots(run.path, out_dir)
    return made


def build_report(run: RunRecord, status: str, made: Sequence[Plot]) -> list[Block]:
    title = f"Run report: {run.name}"
    blocks: list[Block] = [
        Heading(1, title),
        Paragraph(f"Status: {status}. Run directory: {run.path}."),
    ]
    blocks += recipe_section(run)
    blocks += data_section(run)
    blocks += metrics_section(run, status)
    if made:
        blocks.append(Heading(2, "Plots"))
        blocks += [Image(p.path.relative_to(run.path).as_posix(), p.caption) for p in made]
    blocks += hardware_section(run)
    return blocks


def write_run_report(run_dir: str | Path, status: str | None = None) -> ReportFiles:
    """Write the plots, ``report.md`` and ``report.html`` of a run directory (any status)."""
    run = read_run(run_dir)
    status = status or run.status
    made = write_plots(run, status)
    blocks = build_report(run, status, made)
    md_path, html_path = run.path / "report.md", run.path / "report.html"
    markdown = render_markdown(blocks)
    page = render_html(blocks, f"Run report: {run.name}")
    atomic_write(md_path, lambda f: f.write(markdown.encode()))
    atomic_write(html_path, lambda f: f.write(page.encode()))
    return ReportFiles(md_path, html_path, list(made))
