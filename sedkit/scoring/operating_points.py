"""PSDS and intersection-based F1 of thresholded detections, as psds_eval computes them.

psds_eval (Bilen et al., ICASSP 2020) scores each operating point (one detection table per
decision threshold) with pandas merges and group-bys, one table at a time; with 50 operating
points that is most of ``sedkit score``'s time. This module computes the same counts for all
operating points at once with NumPy: every (detection, reference event) pair of one clip that
intersects, then per detection its share inside events of its class (detection tolerance
criterion, dtc), per reference event its share covered by the detections that pass the dtc
(ground-truth intersection criterion, gtc), and per detection that fails the dtc its share
inside events of each other class (cross-trigger criterion, cttc).

It follows psds_eval 0.5.3 to the letter, so the figures are equal (the tests compare both on
the DCASE 2019 example): shares are summed as ratios (intersection / length); detections and
events with offset <= onset are dropped; a detection that fails the dtc is a false positive
when it intersects its clip (psds_eval's "world" event); the per-class ROC is a staircase over
the union of every class's effective FP rates (highest TPR per rate, then its running maximum);
a padded operating point (nothing detected) closes every curve at 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sedkit.scoring.score_based import expand_ranges, staircase_area

#: psds_eval's rates are per hour.
SECONDS_PER_UNIT = 3600.0


@dataclass
class OperatingPointCounts:
    """Counts of every operating point: ``tp[op, c]``, ``fp[op, c]`` and ``ct[op, c, k]``
    (detections of class c that cross-trigger class k), for the classes of the reference."""

    classes: list[str]
    tp: np.ndarray
    fp: np.ndarray
    ct: np.ndarray
    n_ref: np.ndarray  # per class
    ref_duration: np.ndarray  # per class, seconds
    dataset_duration: float


def _events(df: pd.DataFrame) -> pd.DataFrame:
    events = df[df["event_label"].notna()]
    return events[events["offset"] > events["onset"]]


def count_operating_points(
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    detections: Sequence[pd.DataFrame],
    *,
    dtc: float,
    gtc: float,
    cttc: float,
) -> OperatingPointCounts:
    """TP, FP and cross-trigger counts of each detection table under psds_eval's criteria."""
    gt = _events(ground_truth)
    classes = sorted(set(gt["event_label"]))
    class_index = {c: i for i, c in enumerate(classes)}
    n_classes = len(classes)
    meta = durations.drop_duplicates("filename")
    files = {f: i for i, f in enumerate(meta["filename"])}
    file_duration = meta["duration"].to_numpy(float)

    # Reference events sorted by clip, with their class (all classes of the reference).
    g_file = gt["filename"].map(files).to_numpy()
    if np.isnan(g_file.astype(float)).any():
        missing = gt["filename"][pd.isna(gt["filename"].map(files))].iloc[0]
        raise ValueError(f"no duration for clip {missing}")
    g_file = g_file.astype(np.int64)
    order = np.argsort(g_file, kind="stable")
    g_file = g_file[order]
    g_on = gt["onset"].to_numpy(float)[order]
    g_off = gt["offset"].to_numpy(float)[order]
    g_cls = gt["event_label"].map(class_index).to_numpy(np.int64)[order]
    g_len = g_off - g_on
    n_ref = np.bincount(g_cls, minlength=n_classes)
    ref_duration = np.bincount(g_cls, weights=g_len, minlength=n_classes)
    first = np.searchsorted(g_file, np.arange(len(files)), "left")
    last = np.searchsorted(g_file, np.arange(len(files)), "right")

    # All detections of all operating points, one array each.
    tables = [_events(d) for d in detections]
    n_ops = len(tables)
    op = np.repeat(np.arange(n_ops), [len(t) for t in tables])
    cat = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=["filename"])
    known = cat["event_label"].isin(class_index).to_numpy() if len(cat) else np.zeros(0, bool)
    d_file = cat["filename"].map(files).to_numpy(float) if len(cat) else np.zeros(0)
    keep = known & ~np.isnan(d_file)
    op = op[keep]
    d_file = d_file[keep].astype(np.int64)
    d_on = cat["onset"].to_numpy(float)[keep]
    d_off = cat["offset"].to_numpy(float)[keep]
    d_cls = cat["event_label"][keep].map(class_index).to_numpy(np.int64)
    d_len = d_off - d_on
    n_det = len(op)

    # Intersecting (detection, reference event) pairs of one clip.
    pair_det, pair_gt = expand_ranges(first[d_file], last[d_file])
    inter = np.minimum(d_off[pair_det], g_off[pair_gt]) - np.maximum(d_on[pair_det], g_on[pair_gt])
    hit = (d_on[pair_det] < g_off[pair_gt]) & (g_on[pair_gt] < d_off[pair_det])
    pair_det, pair_gt, inter = pair_det[hit], pair_gt[hit], inter[hit]
    same = d_cls[pair_det] == g_cls[pair_gt]
    precision = inter / d_len[pair_det]
    coverage = inter / g_len[pair_gt]

    # dtc: a detection's summed share inside events of its own class.
    share = np.bincount(pair_det[same], weights=precision[same], minlength=n_det)
    touches = np.bincount(pair_det[same], minlength=n_det) > 0
    relevant = touches & (share >= dtc)
    # gtc: a reference event's summed share covered by relevant detections of its class (per
    # operating point).
    take = same & relevant[pair_det]
    key = op[pair_det[take]] * len(g_file) + pair_gt[take]
    covered_keys, inverse = np.unique(key, return_inverse=True)
    covered = np.bincount(inverse, weights=coverage[take])
    true_events = covered_keys[covered >= gtc]
    tp = np.zeros((n_ops, n_classes), np.int64)
    np.add.at(tp, (true_events // len(g_file), g_cls[true_events % len(g_file)]), 1)

    # False positives: detections failing the dtc that intersect their clip ("world").
    in_clip = (d_on < file_duration[d_file]) & (d_off > 0)
    false = ~relevant & in_clip
    fp = np.zeros((n_ops, n_classes), np.int64)
    np.add.at(fp, (op[false], d_cls[false]), 1)

    # Cross-triggers: detections failing the dtc, summed share inside events of another class.
    other = ~same & ~relevant[pair_det]
    key = pair_det[other] * n_classes + g_cls[pair_gt[other]]
    ct_keys, inverse = np.unique(key, return_inverse=True)
    ct_share = np.bincount(inverse, weights=precision[other])
    triggers = ct_keys[ct_share >= cttc]
    det = triggers // n_classes
    ct = np.zeros((n_ops, n_classes, n_classes), np.int64)
    np.add.at(ct, (op[det], d_cls[det], triggers % n_classes), 1)
    return OperatingPointCounts(
        classes, tp, fp, ct, n_ref, ref_duration, float(file_duration.sum())
    )


def _staircase(grid: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """psds_eval's step curve: on ``grid`` (which holds every ``x``), the running maximum of
    the highest ``y`` at each ``x`` at or below the grid point (0 before the first)."""
    xs, inverse = np.unique(x, return_inverse=True)
    best = np.full(len(xs), -np.inf)
    np.maximum.at(best, inverse, y)
    best = np.maximum.accumulate(best)
    index = np.searchsorted(xs, grid, side="right") - 1
    return np.where(index >= 0, best[np.maximum(index, 0)], 0.0)


def psds_of_counts(
    counts: OperatingPointCounts, *, alpha_ct: float, alpha_st: float, max_efpr: float
) -> dict[str, Any]:
    """PSDS (psds_eval's ``psds()``) of the counts; with the PSD-ROC for plots: ``etpr``
    over ``efpr`` and the per-class ``tpr_vs_efpr`` (classes x grid)."""
    n_ref = np.maximum(counts.n_ref, 1)
    # One more operating point that detects nothing (psds_eval pads with zeros).
    pad = lambda a: np.concatenate((a, np.zeros((1, *a.shape[1:]), a.dtype)))  # noqa: E731
    tpr = pad(counts.tp) / n_ref
    fpr = pad(counts.fp) * SECONDS_PER_UNIT / counts.dataset_duration
    with np.errstate(divide="ignore", invalid="ignore"):
        ctr = pad(counts.ct) * SECONDS_PER_UNIT / counts.ref_duration[None, None, :]
    n = len(counts.classes)
    diagonal = np.eye(n, dtype=bool)
    ctr[:, diagonal] = np.nan
    if n > 1:
        with np.errstate(invalid="ignore"):
            efpr = fpr + alpha_ct * np.nanmean(ctr, axis=2)
    else:
        efpr = fpr + alpha_ct * np.nan
    grid = np.unique(efpr)
    curves = np.array([_staircase(grid, efpr[:, c], tpr[:, c]) for c in range(n)])
    etpr = curves.mean(axis=0) - alpha_st * curves.std(axis=0)
    etpr = np.where(np.isnan(etpr) | (etpr < 0), 0.0, etpr)
    return {
        "value": staircase_area(etpr, grid, max_efpr) / max_efpr,
        "etpr": etpr,
        "efpr": grid,
        "tpr_vs_efpr": curves,
        "max_efpr": max_efpr,
        "classes": list(counts.classes),
    }


def macro_f1_of_counts(counts: OperatingPointCounts) -> list[tuple[float, dict[str, float]]]:
    """psds_eval's ``compute_macro_f_score`` of each operating point: per class
    2 TP / (2 TP + FN + FP), NaN for a class without a true positive, NaN-mean over classes."""
    out = []
    for tp, fp in zip(counts.tp, counts.fp, strict=True):
        tp = tp.astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            fn = np.where(tp > 0, counts.n_ref - tp, np.nan)
            f = 2 * tp / (2 * tp + fn + fp)
        mean = float(np.nanmean(f)) if np.isfinite(f).any() else float("nan")
        out.append((mean, {c: float(v) for c, v in zip(counts.classes, f, strict=True)}))
    return out


def counts_for(
    params: Any, ground_truth: pd.DataFrame, durations: pd.DataFrame, detections
) -> OperatingPointCounts:
    """:func:`count_operating_points` under the criteria of ``params`` (a
    :class:`~sedkit.scoring.sed.PSDSParams`)."""
    return count_operating_points(
        ground_truth,
        durations,
        list(detections),
        dtc=params.dtc_threshold,
        gtc=params.gtc_threshold,
        cttc=params.cttc_threshold,
    )


def psds_operating_points(
    ground_truth: pd.DataFrame,
    durations: pd.DataFrame,
    detections: Mapping[Any, pd.DataFrame],
    params: Any,
) -> dict[str, Any]:
    """PSDS of one scenario (:class:`~sedkit.scoring.sed.PSDSParams`) over the operating
    points ``detections`` (threshold -> table)."""
    counts = counts_for(params, ground_truth, durations, detections.values())
    return psds_of_counts(
        counts, alpha_ct=params.alpha_ct, alpha_st=params.alpha_st, max_efpr=params.max_efpr
    )
