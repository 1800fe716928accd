"""Validation for each task, through the one scoring path of :mod:`sedkit.scoring`."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sedkit.components import Batch, Predictor, ScoringReference
from sedkit.data.labels import LabelEncoder
from sedkit.recipe import DecodingParams
from sedkit.scoring import (
    classification_metrics,
    read_durations,
    read_ground_truth,
    score_sed,
    write_detections,
)
from sedkit.scoring.io import CLASSES_FILE, check_events_within_durations
from sedkit.scoring.score_based import score_tables_psds
from sedkit.scoring.score_tables import ScoreTables, tables_from_probs, write_score_tables


def psds_thresholds(n: int) -> list[float]:
    """``n`` decision thresholds evenly spread inside (0, 1): 1/(2n), 3/(2n), ..."""
    return [round((2 * i + 1) / (2 * n), 6) for i in range(n)]


def collect_frame_probs(
    predictor: Predictor, loader: Iterable[Batch]
) -> tuple[list[str], torch.Tensor]:
    """Frame probabilities ``[N, T', C]`` (CPU, float32) of every clip, in loader order."""
    names: list[str] = []
    probs: list[torch.Tensor] = []
    for batch, out in predictor.predict(loader):
        names.extend(batch.filenames)
        probs.append(out.frame_probs.detach().float().cpu())
    return names, torch.cat(probs) if probs else torch.empty(0)


def frame_score_tables(
    names: list[str], probs: torch.Tensor, encoder: LabelEncoder, decoding: DecodingParams
) -> ScoreTables:
    """The frame scores of validation or test clips as score tables, median filtered as the
    decoder filters decisions, so that thresholding a table at ``t`` (scores > t) gives the
    detections decoded at ``t``."""
    return tables_from_probs(
        names,
        probs.numpy(),
        encoder.classes,
        frame_hop=encoder.frame_hop_s,
        duration=encoder.clip_duration_s,
        median_filter_frames=encoder.median_filter_lengths(decoding.median_filter_s),
    )


def check_reference(reference: ScoringReference | None) -> None:
    """Read a data module's validation ground truth and durations as ``sedkit score`` will:
    a malformed row, a repeated event or an event starting after its clip's end is refused
    when the run starts rather than at its first validation."""
    if reference is None:
        return
    gt = read_ground_truth(reference.ground_truth_tsv)
    if reference.durations_tsv is not None:
        check_events_within_durations(gt, read_durations(reference.durations_tsv))


def evaluate_sed(
    predictor: Predictor,
    loader: Iterable[Batch],
    encoder: LabelEncoder,
    decoding: DecodingParams,
    reference: ScoringReference,
    *,
    with_psds: bool,
    out_dir: Path | None = None,
) -> dict[str, Any]:
    """Score validation detections with sed_eval, and PSDS when ``with_psds``.

    ``psds1``/``psds2`` are exact, over all thresholds, from the frame scores
    (:mod:`sedkit.scoring.score_based`, as sed_scores_eval computes them and the DCASE task 4
    baselines report them since 2023). ``psds1_psds_eval``/``psds2_psds_eval`` are psds_eval's,
    over the ``decoding.psds_thresholds`` operating points (lower: the values runs reported as
    ``psds1``/``psds2`` before the exact ones replaced them). With ``out_dir``, writes
    ``validation_detections.tsv`` (at ``decoding.threshold``), ``psds/<threshold>.tsv`` for
    each operating point, ``scores/<clip>.tsv`` (the frame score tables) and ``classes.txt``,
    all readable by ``sedkit score``, and the PSD-ROC curves drawn from the score tables as
    PNG into ``out_dir/../plots``.
    """
    names, probs = collect_frame_probs(predictor, loader)
    decode = dict(median_filter_s=decoding.median_filter_s)
    detections = encoder.decode_batch(names, probs, threshold=decoding.threshold, **decode)
    tables = frame_score_tables(names, probs, encoder, decoding)
    psds_detections = None
    if with_psds:
        psds_detections = {
            th: encoder.decode_batch(names, probs, threshold=th, **decode)
            for th in psds_thresholds(decoding.psds_thresholds)
        }
    if out_dir is not None:
        write_detections(detections, out_dir / "validation_detections.tsv", overwrite=True)
        # The system's classes, so that `sedkit score` counts its detections of classes the
        # reference lacks as false positives, as this validation does.
        (out_dir / CLASSES_FILE).write_text("\n".join(encoder.classes) + "\n", encoding="utf-8")
        write_score_tables(out_dir / "scores", tables)
        for th, det in (psds_detections or {}).items():
            write_detections(det, out_dir / "psds" / f"{th:.6f}.tsv", overwrite=True)
    metrics = score_sed(
        ground_truth=reference.ground_truth_tsv,
        detections=detections,
        durations=reference.durations_tsv,
        psds_detections=psds_detections,
        classes=encoder.classes,
    )
    if with_psds:
        exact = score_tables_psds(
            tables,
            reference.ground_truth_tsv,
            reference.durations_tsv,
            plot_dir=out_dir.parent / "plots" if out_dir is not None else None,
        )
        for name in ("psds1", "psds2"):
            if name in metrics:
                metrics[f"{name}_psds_eval"] = metrics.pop(name)
            metrics[name] = exact[name]
    return metrics


def evaluate_classification(
    predictor: Predictor, loader: Iterable[Batch], classes: list[str]
) -> dict[str, Any]:
    """Accuracy, log-loss and confusion matrix of single-label clip predictions."""
    labels, probs = [], []
    for batch, out in predictor.predict(loader):
        labels.append(batch.label.cpu())
        probs.append(torch.softmax(out.clip_logits.detach().float(), dim=-1).cpu())
    y_true = torch.cat(labels).numpy()
    return classification_metrics(y_true, torch.cat(probs).numpy().astype(np.float64), classes)
