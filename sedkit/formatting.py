"""Metric names and metrics as text: the one-line epoch summary of the log and the final table
of a run."""

from __future__ import annotations

from typing import Any

#: The headline validation metrics, in the order they are shown.
HEADLINE = [
    "event_f1_macro",
    "event_f1_micro",
    "segment_f1_macro",
    "segment_f1_micro",
    "psds1",
    "psds2",
    "accuracy",
    "accuracy_macro",
    "log_loss",
]


def section_metrics(section: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """A component's own metrics named by its recipe section: ``quality`` of the
    ``pseudo_labeler`` is logged as ``pseudo_labeler/quality``, so readers (reports, TensorBoard
    groups) know a metric's part without knowing the method, and two parts never clash."""
    return {f"{section}/{key}": value for key, value in metrics.items()}


def epoch_summary(metrics: dict[str, Any], monitor: str) -> str:
    """``train_loss=... MONITOR=... lr=...``: an epoch's line in the log."""
    keys = ["train_loss", monitor, "event_f1_macro", "segment_f1_macro", "accuracy", "lr"]
    shown = dict.fromkeys(k for k in keys if k in metrics)
    return " ".join(f"{k}={metrics[k]:.4g}" for k in shown if isinstance(metrics[k], float))


def format_metrics(metrics: dict[str, Any]) -> str:
    """The headline validation metrics as an aligned table."""
    val = metrics.get("validation", {})
    rows = [(k, val[k]) for k in HEADLINE if isinstance(val.get(k), int | float)]
    width = max((len(k) for k, _ in rows), default=0)
    return "\n".join(f"  {k:<{width}}  {v:.4f}" for k, v in rows)
