"""Classification metrics against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sedkit.scoring import classification_metrics, format_confusion_matrix
from sedkit.scoring.plots import plot_confusion_matrix

CLASSES = ["bus", "park", "metro"]
PROBS = [
    [0.7, 0.2, 0.1],  # bus -> bus
    [0.1, 0.8, 0.1],  # bus -> park
    [0.2, 0.5, 0.3],  # park -> park
    [0.3, 0.3, 0.4],  # metro -> metro
    [0.6, 0.1, 0.3],  # metro -> bus
    [0.1, 0.1, 0.8],  # metro -> metro
]
Y = [0, 0, 1, 2, 2, 2]


def test_metrics_by_hand():
    m = classification_metrics(Y, PROBS, CLASSES)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["classwise_accuracy"] == pytest.approx({"bus": 0.5, "park": 1.0, "metro": 2 / 3})
    assert m["accuracy_macro"] == pytest.approx((0.5 + 1.0 + 2 / 3) / 3)
    expected_log_loss = -(
        math.log(0.7) + math.log(0.1) + math.log(0.5) + math.log(0.4) + math.log(0.3)
        + math.log(0.8)
    ) / 6  # fmt: skip
    assert m["log_loss"] == pytest.approx(expected_log_loss)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert all(type(v) is float for v in (m["accuracy"], m["accuracy_macro"], m["log_loss"]))


def test_string_labels_and_absent_class():
    m = classification_metrics(["bus", "bus"], [[0.9, 0.1, 0.0], [0.2, 0.8, 0.0]], CLASSES)
    assert m["accuracy"] == 0.5
    assert math.isnan(m["classwise_accuracy"]["park"])
    assert m["accuracy_macro"] == 0.5  # absent classes do not enter the macro average
    # p = 0 for the true class is clipped to 1e-15: a finite, large loss.
    m = classification_metrics([2], [[0.5, 0.5, 0.0]], CLASSES)
    assert m["log_loss"] == pytest.approx(-math.log(1e-15))


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="shape"):
        classification_metrics([0], [[0.5, 0.5]], CLASSES)
    with pytest.raises(ValueError, match="among the classes"):
        classification_metrics(["tram"], [[0.5, 0.5, 0.0]], CLASSES)
    with pytest.raises(ValueError, match="indices"):
        classification_metrics([3], [[0.5, 0.5, 0.0]], CLASSES)


def test_confusion_table_and_png(tmp_path):
    m = classification_metrics(Y, PROBS, CLASSES)
    table = format_confusion_matrix(m["confusion_matrix"], CLASSES)
    assert table.splitlines()[3].split() == ["metro", "1", "0", "2"]
    path = plot_confusion_matrix(np.array(m["confusion_matrix"]), CLASSES, tmp_path / "cm.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
