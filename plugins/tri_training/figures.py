"""The tri-training run's report figure: the share of entries kept and the precision of the kept
positives against the hidden labels, per epoch, one panel each, clip and frame level."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

#: Panel title -> the per-epoch metrics drawn in it (both levels), named by the recipe section.
TRI_CURVES = {
    "quality (precision)": ("pseudo_labeler/clip_precision", "pseudo_labeler/frame_precision"),
    "quantity (kept)": ("pseudo_labeler/clip_kept", "pseudo_labeler/frame_kept"),
}


def _points(epochs: Sequence[Mapping[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """The epochs that hold a number for ``key``, and those numbers."""
    found = [
        (int(record.get("epoch", i + 1)), float(record[key]))
        for i, record in enumerate(epochs)
        if isinstance(record.get(key), int | float) and not isinstance(record.get(key), bool)
    ]
    return [e for e, _ in found], [v for _, v in found]


def plot_pseudo_labels(epochs: Sequence[Mapping[str, Any]], out_png: Path) -> Path | None:
    """Tri-training's pseudo-label quality and quantity (%) over epochs; None when the run
    logged none of :data:`TRI_CURVES`."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    panels = {
        title: [k for k in names if _points(epochs, k)[0]] for title, names in TRI_CURVES.items()
    }
    panels = {title: names for title, names in panels.items() if names}
    if not panels:
        return None
    fig = Figure(figsize=(5 * len(panels), 4))
    for axes, (title, names) in zip(
        fig.subplots(1, len(panels), squeeze=False)[0], panels.items(), strict=True
    ):
        for key in names:
            xs, ys = _points(epochs, key)
            axes.plot(xs, [100 * y for y in ys], marker="o", markersize=3, label=key.split("/")[-1])
        axes.set_title(f"pseudo-label {title}")
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel("%")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100)
    return out_png
