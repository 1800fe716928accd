"""PNG figures of scores: PSD-ROC curves (drawn by psds_eval) and confusion matrices.

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
    """Save the PSD-ROC of one PSDS scenario (and its per-class curves when computed).

    ``result`` is what the scoring job returns: ``psds`` (psds_eval's ``PSDS``) and optionally
    ``tpr_vs_efpr`` (psds_eval's per-class ``PSDROC``). Returns the written paths.
    """
    from psds_eval import plot_per_class_psd_roc
    from psds_eval import plot_psd_roc as psds_eval_plot_psd_roc

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    fig = Figure(figsize=(7, 7))
    axes = fig.add_subplot()
    psds_eval_plot_psd_roc(result["psds"], axes=axes)
    path = out_dir / f"{name}_roc.png"
    fig.savefig(path, dpi=100)
    written.append(path)
    if result.get("tpr_vs_efpr") is not None:
        fig = Figure(figsize=(9, 7))
        axes = fig.add_subplot()
        # psds_eval expects the class list with its injected "world" class last.
        plot_per_class_psd_roc(
            result["tpr_vs_efpr"],
            [*classes, "world"],
            max_efpr=result["psds"].max_efpr,
            axes=axes,
            title=f"Per-class PSD-ROC ({name})",
            xlabel=f"eFPR per {result['psds'].duration_unit}",
        )
        path = out_dir / f"{name}_roc_per_class.png"
        fig.savefig(path, dpi=100)
        written.append(path)
    return written


def plot_score_psd_roc(
    curves: dict[str, Any], classes: Sequence[str], out_dir: Path, *, name: str
) -> list[Path]:
    """Save the PSD-ROC of one scenario computed from score tables (all thresholds): the
    multi-class curve (``curves["etpr"]`` over ``curves["efpr"]``) and the per-class curves
    (``curves["classes"]``: (TPR, eFPR) per class), as ``<name>_roc.png`` and
    ``<name>_roc_per_class.png``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    max_efpr = float(curves["efpr"][-1])
    fig = Figure(figsize=(7, 7))
    axes = fig.add_subplot()
    axes.step(curves["efpr"], curves["etpr"], where="post")
    axes.set(xlim=(0, max_efpr), ylim=(0, 1.02), xlabel="eFPR per hour", ylabel="eTPR")
    axes.set_title(f"PSD-ROC ({name}, all thresholds)")
    axes.grid(True, alpha=0.3)
    written = [out_dir / f"{name}_roc.png"]
    fig.savefig(written[0], dpi=100)
    fig = Figure(figsize=(9, 7))
    axes = fig.add_subplot()
    for label, (tpr, efpr) in zip(classes, curves["classes"], strict=True):
        axes.step(np.append(efpr, max_efpr), np.append(tpr, tpr[-1]), where="post", label=label)
    axes.set(xlim=(0, max_efpr), ylim=(0, 1.02), xlabel="eFPR per hour", ylabel="TPR")
    axes.set_title(f"Per-class PSD-ROC ({name}, all thresholds)")
    axes.legend(fontsize=8, loc="lower right")
    axes.grid(True, alpha=0.3)
    written.append(out_dir / f"{name}_roc_per_class.png")
    fig.savefig(written[1], dpi=100)
    return written


def plot_confusion_matrix(
    confusion: Sequence[Sequence[int]], classes: Sequence[str], path: str | Path
) -> Path:
    """Save a confusion matrix (rows: true class, columns: predicted) as a PNG heat map."""
    matrix = np.asarray(confusion, dtype=float)
    n = len(classes)
    size = max(4.0, 0.6 * n + 2)
    fig = Figure(figsize=(size, size))
    axes = fig.add_subplot()
    image = axes.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    axes.set_xticks(range(n), labels=list(classes), rotation=45, ha="right")
    axes.set_yticks(range(n), labels=list(classes))
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    threshold = matrix.max() / 2 if matrix.size else 0
    for i in range(n):
        for j in range(n):
            axes.text(
                j,
                i,
                f"{int(matrix[i, j])}",
                ha="center",
                va="center",
                color="white" if matrix[i, j] > threshold else "black",
                fontsize=8,
            )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
