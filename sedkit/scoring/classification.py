"""Clip classification scores (acoustic scenes, instruments): accuracy, log-loss, confusions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: Probabilities are clipped to [EPS, 1] before the log, so one confident mistake costs
#: -log(1e-15) = 34.5 nats instead of infinity (the convention of scikit-learn's log_loss).
LOG_LOSS_EPS = 1e-15


def classification_metrics(
    y_true: Sequence[int] | Sequence[str] | np.ndarray,
    probs: Sequence[Sequence[float]] | np.ndarray,
    classes: Sequence[str],
) -> dict[str, Any]:
    """Single-label classification metrics of class probabilities ``probs`` ``[N, C]``.

    ``y_true`` holds class indices or class names. Returns plain Python values:

    - ``accuracy``: share of clips whose arg-max class is right (micro);
    - ``accuracy_macro``: mean over classes present in ``y_true`` of their class-wise accuracy
      (balanced accuracy), so frequent classes do not dominate;
    - ``classwise_accuracy``: class -> share of its clips classified right (NaN when absent);
    - ``log_loss``: mean negative log-probability of the true class (natural log);
    - ``confusion_matrix``: ``[true][predicted]`` counts, as lists of ints.
    """
    p = np.asarray(probs, dtype=float)
    n_classes = len(classes)
    if p.ndim != 2 or p.shape[1] != n_classes:
        raise ValueError(f"probs must have shape [N, {n_classes}], got {list(p.shape)}")
    labels = np.asarray(y_true)
    if labels.ndim != 1 or len(labels) != len(p):
        raise ValueError(f"y_true must hold {len(p)} labels, got shape {list(labels.shape)}")
    if len(labels) == 0:
        raise ValueError("no clips to score")
    if labels.dtype.kind in "iu":
        y = labels.astype(np.int64)
        if y.min() < 0 or y.max() >= n_classes:
            raise ValueError(
                f"class indices must lie in [0, {n_classes}), got {y.min()}..{y.max()}"
            )
    else:
        index = {c: i for i, c in enumerate(classes)}
        unknown = sorted({str(v) for v in labels if v not in index})
        if unknown:
            raise ValueError(f"labels not among the classes: {', '.join(unknown[:10])}")
        y = np.array([index[v] for v in labels], dtype=np.int64)
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("probs must be finite and non-negative")

    predicted = p.argmax(axis=1)
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (y, predicted), 1)
    support = confusion.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_class = np.where(support > 0, np.diag(confusion) / np.maximum(support, 1), np.nan)
    true_prob = np.clip(p[np.arange(len(y)), y], LOG_LOSS_EPS, 1.0)
    return {
        "accuracy": float((predicted == y).mean()),
        "accuracy_macro": float(np.nanmean(per_class)),
        "log_loss": float(-np.log(true_prob).mean()),
        "classwise_accuracy": {c: float(a) for c, a in zip(classes, per_class, strict=True)},
        "confusion_matrix": confusion.tolist(),
    }


def format_confusion_matrix(confusion: Sequence[Sequence[int]], classes: Sequence[str]) -> str:
    """A plain-text table of the confusion matrix (rows true, columns predicted)."""
    width = max(6, *(len(c) for c in classes))
    cells = max(5, *(len(str(v)) for row in confusion for v in row))
    header = " " * width + " " + " ".join(f"{c[:cells]:>{cells}}" for c in classes)
    lines = [header]
    for label, row in zip(classes, confusion, strict=True):
        lines.append(f"{label:<{width}} " + " ".join(f"{v:>{cells}}" for v in row))
    return "\n".join(lines)
