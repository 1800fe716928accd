"""PNG figures of any run: training curves, class-wise scores, PSD-ROC, the confusion matrix
and the detection view of one clip (a method's own figures: ``sedkit_report_figures``).

Figures are ``matplotlib.figure.Figure`` objects drawn without pyplot (no global state, no
display), as in :mod:`sedkit.scoring.plots`, which draws the PSD-ROC and confusion figures
reused here. Each ``plot_*`` function returns the written path, or None when the run holds
nothing to draw (a key missing from its metrics skips that figure, never the report).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sedkit_plugins.reporting.rundata import CURVE_GROUPS, as_number, curve_group

DPI = 100


def epoch_series(epochs: Sequence[Mapping[str, Any]]) -> dict[str, tuple[list[int], list[float]]]:
    """Numeric per-epoch metrics as ``key -> (epochs, values)``; epochs lacking a key (no
    validation that epoch) are left out of that series."""
    series: dict[str, tuple[list[int], list[float]]] = {}
    for i, record in enumerate(epochs):
        epoch = int(record.get("epoch", i + 1))
        for key, value in record.items():
            number = as_number(value)
            if number is None or key == "epoch":
                continue
            xs, ys = series.setdefault(key, ([], []))
            xs.append(epoch)
            ys.append(number)
    return series


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def plot_training_curves(epochs: Sequence[Mapping[str, Any]], out_png: Path) -> Path | None:
    """One panel per group of per-epoch metrics (losses per term, learning rate, validation
    scores, pseudo-label statistics, domain-classifier accuracy, sparsity)."""
    groups: dict[str, dict[str, tuple[list[int], list[float]]]] = {}
    for key, xy in epoch_series(epochs).items():
        group = curve_group(key)
        if group is not None:
            groups.setdefault(group, {})[key] = xy
    panels = [g for g in CURVE_GROUPS if g in groups]
    if not panels:
        return None
    cols = 2 if len(panels) > 1 else 1
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(6 * cols, 3.2 * rows))
    axes_grid = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for axes, group in zip(axes_grid, panels, strict=False):
        for key, (xs, ys) in sorted(groups[group].items()):
            axes.plot(xs, ys, marker="o", markersize=3, label=key)
        if group == "learning rate" and all(y > 0 for _, ys in groups[group].values() for y in ys):
            axes.set_yscale("log")
        axes.set_title(group)
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
        axes.legend(fontsize=7)
    for axes in axes_grid[len(panels) :]:
        axes.set_visible(False)
    fig.tight_layout()
    return _save(fig, out_png)


def classwise_scores(validation: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Per-class scores to draw: SED ``event_f1``/``segment_f1``/``intersection_f1`` from
    ``classwise``; classification ``classwise_accuracy``. ``score -> class -> value``."""
    scores: dict[str, dict[str, float]] = {}
    classwise = validation.get("classwise")
    if isinstance(classwise, Mapping):
        for label, values in classwise.items():
            if not isinstance(values, Mapping):
                continue
            for score in ("event_f1", "segment_f1", "intersection_f1"):
                number = as_number(values.get(score))
                if number is not None:
                    scores.setdefault(score, {})[str(label)] = number
    accuracy = validation.get("classwise_accuracy")
    if isinstance(accuracy, Mapping):
        for label, value in accuracy.items():
            number = as_number(value)
            if number is not None:
                scores.setdefault("accuracy", {})[str(label)] = number
    return scores


def plot_classwise(validation: Mapping[str, Any], out_png: Path) -> Path | None:
    """Grouped bars, one group per class: event/segment/intersection F1 (SED) or accuracy
    (classification). NaN (a class absent from the reference) draws no bar."""
    scores = classwise_scores(validation)
    if not scores:
        return None
    classes = list(dict.fromkeys(c for values in scores.values() for c in values))
    width = 0.8 / len(scores)
    fig = Figure(figsize=(max(6.0, 0.7 * len(classes) * len(scores) + 2), 4))
    axes = fig.add_subplot()
    x = np.arange(len(classes))
    for i, (score, values) in enumerate(scores.items()):
        heights = [values.get(c, math.nan) for c in classes]
        axes.bar(x + (i - (len(scores) - 1) / 2) * width, heights, width, label=score)
    axes.set_xticks(x, labels=classes, rotation=45, ha="right")
    axes.set_ylim(0, 1)
    axes.set_ylabel("score")
    axes.set_title("class-wise scores")
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return _save(fig, out_png)


def plot_confusions(
    validation: Mapping[str, Any], epochs: Sequence[Mapping[str, Any]], out_dir: Path
) -> list[Path]:
    """The classifier's confusion matrix on validation (``confusion_matrix.png``); a method's
    own confusions (pseudo-labels) come from its ``sedkit_report_figures`` hook."""
    written: list[Path] = []
    classes = list((validation.get("classwise_accuracy") or {}).keys())
    confusion = validation.get("confusion_matrix")
    if classes and isinstance(confusion, list) and len(confusion) == len(classes):
        from sedkit.scoring.plots import plot_confusion_matrix

        written.append(plot_confusion_matrix(confusion, classes, out_dir / "confusion_matrix.png"))
    return written


def plot_psd_roc_curves(
    *,
    ground_truth: Path,
    durations: Path,
    detections: Path,
    psds_detections: Mapping[float, Path],
    classes: Sequence[str],
    out_dir: Path,
) -> tuple[list[Path], dict[str, Any]]:
    """PSD-ROC curves (overall and per class) of both DCASE scenarios, by scoring the run's
    frame score tables (``scores/`` beside ``detections``) again over all thresholds, as the
    run's validation does; runs without them: their saved operating points, with
    :func:`sedkit.scoring.score_sed`.

    ``classes`` are the run's classes (a class without reference events is still a class, as
    in the run's own scoring). Returns the written PNGs (``psds1_roc.png``,
    ``psds1_roc_per_class.png``, ...) and the scores, whose ``psds1``/``psds2`` equal the run's
    own when nothing changed on disk.
    """
    from sedkit.scoring import score_sed
    from sedkit.scoring.score_based import score_tables_psds

    before = set(out_dir.glob("*_roc*.png")) if out_dir.is_dir() else set()
    score_tables = Path(detections).parent / "scores"
    if score_tables.is_dir():
        scores = score_tables_psds(score_tables, ground_truth, durations, plot_dir=out_dir)
        return sorted(set(out_dir.glob("*_roc*.png")) | before), scores
    scores = score_sed(
        ground_truth=ground_truth,
        detections=detections,
        durations=durations,
        psds_detections=dict(psds_detections),
        classes=list(classes),
        plot_dir=out_dir,
    )
    written = sorted(set(out_dir.glob("*_roc*.png")) | before)
    return written, scores


# ------------------------------------------------------------------------------------------
# Detection view
# ------------------------------------------------------------------------------------------
Event = tuple[float, float, str]


@dataclass
class DetectionView:
    """Everything the detection view of one clip shows.

    ``log_mel`` ``[M, T]`` with input frame i centred at ``i * feature_hop_s``; ``frame_probs``
    ``[T', C]`` with output frame j covering ``[j, j+1) * frame_hop_s`` (the label encoder's
    grid); events as ``(onset, offset, label)`` in seconds.
    """

    clip: str
    log_mel: np.ndarray
    feature_hop_s: float
    frame_probs: np.ndarray
    frame_hop_s: float
    classes: list[str]
    reference: list[Event]
    predicted: list[Event]
    duration_s: float
    threshold: float | Sequence[float] | Mapping[str, float] | None = None


@dataclass
class DetectionFigure:
    figure: Figure
    spectrogram: Axes
    events: Axes
    probabilities: Axes
    classes: list[str]

    def row_y(self, label: str, kind: str) -> float:
        """Data y of the bar row of class ``label``, ``kind`` "reference" or "predicted"."""
        return event_row_y(self.classes, label, kind)


def class_colours(n: int) -> list[tuple[float, float, float]]:
    """Distinct opaque colours, one per class (tab10, tab20 beyond ten classes)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [tuple(float(v) for v in cmap(i % cmap.N)[:3]) for i in range(n)]


def event_row_y(classes: Sequence[str], label: str, kind: str) -> float:
    """Rows from the top: class 0 reference, class 0 predicted, class 1 reference, ..."""
    k = list(classes).index(label)
    row = 2 * k + (0 if kind == "reference" else 1)
    return float(2 * len(classes) - 1 - row)


def _per_class_thresholds(threshold: Any, classes: Sequence[str]) -> list[float] | None:
    if threshold is None:
        return None
    if isinstance(threshold, Mapping):
        return [float(threshold[c]) for c in classes]
    if isinstance(threshold, int | float):
        return [float(threshold)] * len(classes)
    return [float(t) for t in threshold]


def draw_detection_view(view: DetectionView) -> DetectionFigure:
    """The log-mel spectrogram, reference and predicted events as bars (one colour per class,
    a reference row above a predicted row), and the frame probabilities with the decision
    threshold, on one time axis from 0 to the clip's duration.

    The layout is fixed (figure size, margins, ``DPI``) and the x limits are exactly
    ``(0, duration_s)``, so pixel columns map linearly to time; bars are drawn without
    anti-aliasing so their edges land on one pixel column.
    """
    n_classes = len(view.classes)
    spec_in, events_in, probs_in = 2.2, max(1.0, 0.3 * 2 * n_classes), 2.0
    top_in, bottom_in, gap_in = 0.45, 0.55, 0.25
    height = spec_in + events_in + probs_in + top_in + bottom_in + 2 * gap_in
    fig = Figure(figsize=(12, height), dpi=DPI)
    grid = fig.add_gridspec(
        3,
        1,
        height_ratios=[spec_in, events_in, probs_in],
        left=0.14,
        right=0.98,
        top=1 - top_in / height,
        bottom=bottom_in / height,
        hspace=gap_in / ((spec_in + events_in + probs_in) / 3),
    )
    spec = fig.add_subplot(grid[0])
    events = fig.add_subplot(grid[1], sharex=spec)
    probs = fig.add_subplot(grid[2], sharex=spec)
    colours = class_colours(n_classes)

    mel = np.asarray(view.log_mel, dtype=float)
    n_mels, n_frames = mel.shape
    hop = view.feature_hop_s
    spec.imshow(
        mel,
        origin="lower",
        aspect="auto",
        interpolation="nearest",
        cmap="magma",
        extent=(-0.5 * hop, (n_frames - 0.5) * hop, 0, n_mels),
    )
    spec.set_ylabel("mel band")
    spec.set_title(view.clip)

    for kind, table in (("reference", view.reference), ("predicted", view.predicted)):
        for onset, offset, label in table:
            if label not in view.classes:
                continue
            y = event_row_y(view.classes, label, kind)
            events.barh(
                y,
                offset - onset,
                left=onset,
                height=0.8,
                color=colours[view.classes.index(label)],
                linewidth=0,
                antialiased=False,
            )
    ticks = [
        event_row_y(view.classes, c, kind)
        for c in view.classes
        for kind in ("reference", "predicted")
    ]
    labels = [f"{c} ({kind})" for c in view.classes for kind in ("ref", "pred")]
    events.set_yticks(ticks, labels=labels, fontsize=7)
    events.set_ylim(-0.5, 2 * n_classes - 0.5)
    for k in range(1, n_classes):  # a thin line between classes
        events.axhline(2 * k - 0.5, color="0.85", linewidth=0.5)

    probabilities = np.asarray(view.frame_probs, dtype=float)
    edges = np.arange(probabilities.shape[0] + 1) * view.frame_hop_s
    for k, label in enumerate(view.classes):
        probs.stairs(
            probabilities[:, k], edges, baseline=None, color=colours[k], label=label, linewidth=1.2
        )
    thresholds = _per_class_thresholds(view.threshold, view.classes)
    if thresholds is not None:
        if len(set(thresholds)) == 1:
            probs.axhline(thresholds[0], color="0.4", linestyle="--", linewidth=0.8)
        else:
            for k, t in enumerate(thresholds):
                probs.axhline(t, color=colours[k], linestyle="--", linewidth=0.8)
    probs.set_ylim(0, 1.02)
    probs.set_ylabel("probability")
    probs.set_xlabel("time (s)")
    probs.legend(fontsize=7, loc="upper right", ncol=min(n_classes, 5))
    probs.grid(alpha=0.3)

    spec.set_xlim(0, view.duration_s)
    for axes in (spec, events):
        axes.tick_params(labelbottom=False)
    return DetectionFigure(fig, spec, events, probs, list(view.classes))


def save_detection_view(view: DetectionView, out_png: Path) -> Path:
    """Draw :func:`draw_detection_view` and write it as a PNG."""
    return _save(draw_detection_view(view).figure, Path(out_png))
