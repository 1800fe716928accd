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
from sedkit.scoring import classification_metrics, score_sed, write_detections
from sedkit.scoring.io import check_events_within_durations, read_durations, read_ground_truth


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
    """Score validation detections with sed_eval (and psds_eval when ``with_psds``).

    With ``out_dir``, writes ``validation_detections.tsv`` (at ``decoding.threshold``) and
    ``psds/<threshold>.tsv`` for each PSDS operating point, readable by ``sedkit score``, and
    the PSD-ROC curves as PNG into ``out_dir/../plots``.
    """
    names, probs = collect_frame_probs(predictor, loader)
    decode = dict(median_filter_s=decoding.median_filter_s)
    detections = encoder.decode_batch(names, probs, threshold=decoding.threshold, **decode)
    psds_detections = None
    if with_psds:
        psds_detections = {
            th: encoder.decode_batch(names, probs, threshold=th, **decode)
            for th in psds_thresholds(decoding.psds_thresholds)
        }
    if out_dir is not None:
        write_detections(detections, out_dir / "validation_detections.tsv", overwrite=True)
        for th, det in (psds_detections or {}).items():
            write_detections(det, out_dir / "psds" / f"{th:.6f}.tsv", overwrite=True)
    return score_sed(
        ground_truth=reference.ground_truth_tsv,
        detections=detections,
        durations=reference.durations_tsv,
        psds_detections=psds_detections,
        classes=encoder.classes,
        plot_dir=out_dir.parent / "plots" if out_dir is not None and with_psds else None,
    )


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
