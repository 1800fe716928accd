"""PNG figures of scores: PSD-ROC curves and confusion matrices.

Figures are built with ``matplotlib.figure.Figure`` directly (no pyplot state, no display), so
they can be written from any thread or process, headless.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure


def plot_psd_roc(
    result: dict[str, Any], classes: Sequence[str], out_dir: Path, *, name: str
) -> list[Path]:
    """Save the PSD-ROC of one PSDS scenario over operating points (thresholded detections):
    ``result`` as :func:`sedkit.scoring.operating_points.psds_of_counts` returns it (``etpr``
    over ``efpr``, and per-class ``tpr_vs_efpr`` on the same grid when computed)."""
    grid = result["efpr"]
    per_class = result.get("tpr_vs_efpr")
    curves = {
        "etpr": result["etpr"],
        "efpr": grid,
        "classes": None if per_class is None else [(tpr, grid) for tpr in per_class],
    }
    return plot_score_psd_roc(
        curves, classes, out_dir, name=name, max_efpr=result["max_efpr"], source="operating points"
    )


def plot_score_psd_roc(
    curves: dict[str, Any],
    classes: Sequence[str],
    out_dir: Path,
    *,
    name: str,
    max_efpr: float | None = None,
    source: str = "all thresholds",
) -> list[Path]:
    """Save a PSD-ROC: the multi-class curve (``curves["etpr"]`` over ``curves["efpr"]``) as
    ``<name>_roc.png`` and, when ``curves["classes"]`` holds (TPR, eFPR) per class, the
    per-class curves as ``<name>_roc_per_class.png``. Returns the written paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if max_efpr is None:
        max_efpr = float(curves["efpr"][-1])
    fig = Figure(figsize=(7, 7))
    axes = fig.add_subplot()
    axes.step(curves["efpr"], curves["etpr"], where="post")
    axes.set(xlim=(0, max_efpr), ylim=(0, 1.02), xlabel="eFPR per hour", ylabel="eTPR")
    axes.set_title(f"PSD-ROC ({name}, {source})")
    axes.grid(True, alpha=0.3)
    written = [out_dir / f"{name}_roc.png"]
    fig.savefig(written[0], dpi=100)
    if curves.get("classes") is None:
        return written
    fig = Figure(figsize=(9, 7))
    axes = fig.add_subplot()
    for label, (tpr, efpr) in zip(classes, curves["classes"], strict=True):
        axes.step(np.append(efpr, max_efpr), np.append(tpr, tpr[-1]), where="post", label=label)
    axes.set(xlim=(0, max_efpr), ylim=(0, 1.02), xlabel="eFPR per hour", ylabel="TPR")
    axes.set_title(f"Per-class PSD-ROC ({name}, {source})")
    axes.legend(fontsize=8, loc="lower right")
    axes.grid(True, alpha=0.3)
    written.append(out_dir / f"{name}_roc_per_class.png")
    fig.savefig(written[1], dpi=100)
    return written


def plot_score_psd_rocs(
    curves: dict[str, dict[str, Any]], classes: Sequence[str], out_dir: Path
) -> list[Path]:
    """Save the PSD-ROC of every scenario that score-table scoring returned with
    ``with_curves`` (``metrics["curves"]``, by scenario name); returns the written paths."""
    written = []
    for name, curve in curves.items():
        written += plot_score_psd_roc(curve, classes, out_dir, name=name)
    return written


def plot_confusion_matrix(
    confusion: Sequence[Sequence[float]] | np.ndarray,
    classes: Sequence[str],
    path: str | Path,
    *,
    xlabel: str = "predicted",
    ylabel: str = "true",
    row_percent: bool = False,
) -> Path:
    """Save a confusion matrix (rows: true class, columns: ``xlabel``) as a PNG heat map of
    counts, or with ``row_percent`` of each row in % of its total (colours from 0)."""
    matrix = np.asarray(confusion, dtype=float)
    n = len(classes)
    if matrix.shape != (n, n):
        raise ValueError(f"confusion matrix {matrix.shape} does not match {n} classes")
    if row_percent:
        totals = matrix.sum(axis=1, keepdims=True)
        matrix = np.divide(100 * matrix, totals, out=np.zeros_like(matrix), where=totals > 0)
    size = max(4.0, 0.6 * n + 2)
    fig = Figure(figsize=(size, size))
    axes = fig.add_subplot()
    image = axes.imshow(matrix, cmap="Blues", vmin=0 if row_percent else None)
    fig.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    axes.set_xticks(range(n), labels=list(classes), rotation=45, ha="right")
    axes.set_yticks(range(n), labels=list(classes))
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    threshold = matrix.max() / 2 if matrix.size else 0
    for i in range(n):
        for j in range(n):
            axes.text(
                j,
                i,
                f"{matrix[i, j]:.1f}" if row_percent else f"{int(matrix[i, j])}",
                ha="center",
                va="center",
                color="white" if matrix[i, j] > threshold else "black",
                fontsize=7 if row_percent else 8,  # the decimals are wider
            )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
