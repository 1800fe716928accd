"""Scoring of SED systems (sed_eval, psds_eval) and of clip classifiers.

One scoring path serves ``sedkit score`` and the end of ``sedkit run``::

    from sedkit.scoring import score_sed, PSDS1, PSDS2
    metrics = score_sed(ground_truth="gt.tsv", detections="pred_0.5.tsv",
                        durations="durations.tsv", psds_detections={0.1: df1, 0.2: df2, ...})

``ScoreCommand`` (the ``sedkit score`` subcommand) is imported lazily: it pulls in
``sedkit.components`` and hence torch, which scoring itself does not need.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sedkit.scoring.classification import classification_metrics, format_confusion_matrix
from sedkit.scoring.io import (
    read_detections,
    read_durations,
    read_ground_truth,
    write_detections,
)
from sedkit.scoring.sed import (
    INTERSECTION_F1,
    PSDS1,
    PSDS2,
    PSDSParams,
    ScoringWarning,
    detection_files_by_threshold,
    metrics_to_json,
    score_sed,
    threshold_from_name,
)

if TYPE_CHECKING:
    from sedkit.scoring.cli import ScoreCommand

__all__ = [
    "INTERSECTION_F1",
    "PSDS1",
    "PSDS2",
    "PSDSParams",
    "ScoreCommand",
    "ScoringWarning",
    "classification_metrics",
    "detection_files_by_threshold",
    "format_confusion_matrix",
    "metrics_to_json",
    "read_detections",
    "read_durations",
    "read_ground_truth",
    "score_sed",
    "threshold_from_name",
    "write_detections",
]


def __getattr__(name: str) -> Any:
    if name == "ScoreCommand":
        from sedkit.scoring.cli import ScoreCommand

        return ScoreCommand
    raise AttributeError(f"module 'sedkit.scoring' has no attribute {name!r}")
