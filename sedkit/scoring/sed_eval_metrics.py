"""Event-based (collar) and segment-based metrics as sed_eval 0.2.1 computes them, in NumPy.

sed_eval evaluates clip by clip through its event containers, which costs about a second per
thousand clips; the same counts come out of a few array operations over all clips. The
conventions are sed_eval's, so the figures are equal to it (``tests/scoring`` compares):

- Event-based (``EventBasedMetrics``, optimal matching, ``empty_system_output_handling=
  "zero_score"``): a detection matches a reference event of its class when their onsets differ
  by at most ``t_collar`` and their offsets by at most ``max(t_collar, percentage_of_length x
  reference length)``; true positives are a maximum matching. A reference event and a
  detection left over that match but for the label are a substitution (sed_eval pairs them
  greedily, in file order). Where an event could match several (collars that overlap), the
  maximum matching is not unique and sed_eval's own choice decides the substitutions: such a
  clip is handed to sed_eval itself (rare; sed_eval is imported only then).
- Segment-based (``SegmentBasedMetrics``): each clip is cut into ``ceil(max offset /
  time_resolution)`` segments (the latest offset of its reference and its detections); an
  event is active from segment ``floor(onset / r)`` to ``ceil(offset / r)`` (excluded).

Returns the figures ``sedkit.scoring.sed`` reports: ``<kind>_{f1,precision,recall,er}_{macro,
micro}`` and per class ``<kind>_{f1,precision,recall,er}``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from sedkit.scoring.score_based import expand_ranges

#: sed_eval's eps (numpy.spacing(1)) in its rates.
EPS = float(np.spacing(1))


class _Events:
    """The events of a table as arrays, in table order: clip index, class index (-1 for a
    label outside the classes), onset, offset."""

    def __init__(self, df: pd.DataFrame, clip_index: dict[str, int], classes: Sequence[str]):
        index = {c: k for k, c in enumerate(classes)}
        self.clip = np.array([clip_index[f] for f in df["filename"]], np.int64)
        self.label = np.array([index.get(c, -1) for c in df["event_label"]], np.int64)
        self.onset = df["onset"].to_numpy(float)
        self.offset = df["offset"].to_numpy(float)
        self.raw_label = df["event_label"].to_numpy(object)


def _precision(tp: float, n_sys: float, zero_score: bool) -> float:
    if n_sys == 0:
        return 0.0 if zero_score else math.nan
    return tp / n_sys


def _recall(tp: float, n_ref: float) -> float:
    return math.nan if n_ref == 0 else tp / n_ref


def _f_measure(p: float, r: float) -> float:
    return 0.0 if p == 0 and r == 0 else 2 * p * r / (p + r)


def _figures(kind: str, counts: dict[str, np.ndarray], classes, zero_score: bool, overall):
    """sed_eval's results from the counts: per class (Ntp, Nsys, Nref, Nfn, Nfp) and overall
    (Ntp, Nsys, Nref, S, D, I)."""
    classwise = {}
    for k, label in enumerate(classes):
        tp, n_sys, n_ref = (float(counts[key][k]) for key in ("tp", "sys", "ref"))
        p, r = _precision(tp, n_sys, zero_score), _recall(tp, n_ref)
        deletion = float(counts["fn"][k]) / (n_ref + EPS)
        insertion = float(counts["fp"][k]) / (n_ref + EPS)
        classwise[label] = {
            f"{kind}_f1": _f_measure(p, r),
            f"{kind}_precision": p,
            f"{kind}_recall": r,
            f"{kind}_er": 0.0 + deletion + insertion,
        }
    tp, n_sys, n_ref, s, d, i = (float(x) for x in overall)
    p, r = _precision(tp, n_sys, zero_score), _recall(tp, n_ref)

    def macro(key: str) -> float:
        values = [v[f"{kind}_{key}"] for v in classwise.values()]
        if not values or all(math.isnan(v) for v in values):
            return math.nan
        return float(np.nanmean(values))

    return {
        f"{kind}_f1_macro": macro("f1"),
        f"{kind}_precision_macro": macro("precision"),
        f"{kind}_recall_macro": macro("recall"),
        f"{kind}_er_macro": macro("er"),
        f"{kind}_f1_micro": _f_measure(p, r),
        f"{kind}_precision_micro": p,
        f"{kind}_recall_micro": r,
        f"{kind}_er_micro": s / (n_ref + EPS) + d / (n_ref + EPS) + i / (n_ref + EPS),
        "classwise": classwise,
    }


def segment_based(
    gt: pd.DataFrame,
    det: pd.DataFrame,
    clips: Sequence[str],
    classes: Sequence[str],
    time_resolution: float = 1.0,
) -> dict[str, Any]:
    """sed_eval's segment-based metrics of ``det`` against ``gt`` over ``clips``."""
    clip_index = {c: k for k, c in enumerate(clips)}
    ref, sys_ = _Events(gt, clip_index, classes), _Events(det, clip_index, classes)
    n_clips, n_classes = len(clips), len(classes)
    r = float(time_resolution)
    last = np.zeros(n_clips)
    np.maximum.at(last, ref.clip, ref.offset)
    np.maximum.at(last, sys_.clip, sys_.offset)
    n_segments = np.ceil(last / r).astype(np.int64)
    first_segment = np.cumsum(n_segments) - n_segments
    rolls = []
    for events in (ref, sys_):
        roll = np.zeros((int(n_segments.sum()), n_classes), bool)
        start = np.floor(events.onset / r).astype(np.int64)
        stop = np.minimum(np.ceil(events.offset / r).astype(np.int64), n_segments[events.clip])
        owner, segment = expand_ranges(start, stop)
        known = events.label[owner] >= 0  # (sed_eval refuses other labels; never given here)
        owner, segment = owner[known], segment[known]
        roll[first_segment[events.clip[owner]] + segment, events.label[owner]] = True
        rolls.append(roll)
    a, s = rolls
    tp_seg, n_ref_seg, n_sys_seg = (a & s).sum(1), a.sum(1), s.sum(1)
    overall = (
        tp_seg.sum(),
        n_sys_seg.sum(),
        n_ref_seg.sum(),
        (np.minimum(n_ref_seg, n_sys_seg) - tp_seg).sum(),
        np.maximum(0, n_ref_seg - n_sys_seg).sum(),
        np.maximum(0, n_sys_seg - n_ref_seg).sum(),
    )
    counts = {
        "tp": (a & s).sum(0),
        "sys": s.sum(0),
        "ref": a.sum(0),
        "fn": (a & ~s).sum(0),
        "fp": (s & ~a).sum(0),
    }
    return _figures("segment", counts, classes, False, overall)


def _collar_pairs(ref: _Events, est: _Events, same_label: bool, t_collar, percentage_of_length):
    """(reference, detection) index pairs of one clip (and one class with ``same_label``)
    whose onsets and offsets match within the collars."""
    key_ref = ref.clip * (1 << 20) + (ref.label + 1 if same_label else 0)
    key_est = est.clip * (1 << 20) + (est.label + 1 if same_label else 0)
    order = np.argsort(key_est, kind="stable")
    lo = np.searchsorted(key_est[order], key_ref, "left")
    hi = np.searchsorted(key_est[order], key_ref, "right")
    j, position = expand_ranges(lo, hi)
    i = order[position]
    if same_label:
        keep = ref.raw_label[j] == est.raw_label[i]  # (labels outside the classes too)
        j, i = j[keep], i[keep]
    onset_ok = np.abs(ref.onset[j] - est.onset[i]) <= t_collar
    length = ref.offset[j] - ref.onset[j]
    offset_ok = np.abs(ref.offset[j] - est.offset[i]) <= np.maximum(
        t_collar, percentage_of_length * length
    )
    hit = onset_ok & offset_ok
    return j[hit], i[hit]


def event_based(
    gt: pd.DataFrame,
    det: pd.DataFrame,
    clips: Sequence[str],
    classes: Sequence[str],
    t_collar: float = 0.2,
    percentage_of_length: float = 0.2,
) -> dict[str, Any]:
    """sed_eval's event-based metrics of ``det`` against ``gt`` over ``clips``."""
    clip_index = {c: k for k, c in enumerate(clips)}
    ref, est = _Events(gt, clip_index, classes), _Events(det, clip_index, classes)
    n_classes = len(classes)
    t_collar, percentage_of_length = float(t_collar), float(percentage_of_length)
    hit_ref, hit_est = _collar_pairs(ref, est, True, t_collar, percentage_of_length)
    # A clip where an event has two possible partners: sed_eval's matching decides.
    ambiguous = np.zeros(len(clips), bool)
    ambiguous[ref.clip[hit_ref[np.bincount(hit_ref, minlength=len(ref.clip))[hit_ref] > 1]]] = 1
    ambiguous[est.clip[hit_est[np.bincount(hit_est, minlength=len(est.clip))[hit_est] > 1]]] = 1
    mine = ~ambiguous[ref.clip[hit_ref]]
    hit_ref, hit_est = hit_ref[mine], hit_est[mine]
    ref_mine, est_mine = ~ambiguous[ref.clip], ~ambiguous[est.clip]
    counts = {
        "tp": np.bincount(ref.label[hit_ref] + 1, minlength=n_classes + 1)[1:].astype(float),
        "ref": np.bincount(ref.label[ref_mine] + 1, minlength=n_classes + 1)[1:].astype(float),
        "sys": np.bincount(est.label[est_mine] + 1, minlength=n_classes + 1)[1:].astype(float),
    }
    # Substitutions: left-over pairs matching but for the label, taken greedily in file order.
    ref_left = np.ones(len(ref.clip), bool)
    est_left = np.ones(len(est.clip), bool)
    ref_left[hit_ref] = False
    est_left[hit_est] = False
    n_subs = 0
    sub_ref, sub_est = _collar_pairs(ref, est, False, t_collar, percentage_of_length)
    candidate = ref_left[sub_ref] & est_left[sub_est] & ~ambiguous[ref.clip[sub_ref]]
    sub_ref, sub_est = sub_ref[candidate], sub_est[candidate]
    order = np.lexsort((sub_est, sub_ref))
    taken: set[int] = set()
    previous_ref = -1
    for j, i in zip(sub_ref[order].tolist(), sub_est[order].tolist(), strict=True):
        if j != previous_ref and i not in taken:
            taken.add(i)
            n_subs += 1
            previous_ref = j
    overall = np.array([len(hit_ref), ref_mine.sum(), est_mine.sum(), n_subs], float)
    if ambiguous.any():
        _add_sed_eval_counts(
            gt, det, [c for c, a in zip(clips, ambiguous, strict=True) if a], classes,
            t_collar, percentage_of_length, counts, overall,
        )  # fmt: skip
    tp, n_ref, n_sys, n_subs = overall
    counts["fn"] = counts["ref"] - counts["tp"]
    counts["fp"] = counts["sys"] - counts["tp"]
    deletions, insertions = n_ref - tp - n_subs, n_sys - tp - n_subs
    return _figures(
        "event", counts, classes, True, (tp, n_sys, n_ref, n_subs, deletions, insertions)
    )


def _add_sed_eval_counts(gt, det, clips, classes, t_collar, percentage_of_length, counts, overall):
    """sed_eval's own counts for ``clips``, added to ``counts`` and ``overall``."""
    import sed_eval

    metric = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=list(classes),
        t_collar=t_collar,
        percentage_of_length=percentage_of_length,
        empty_system_output_handling="zero_score",
    )
    columns = ["filename", "onset", "offset", "event_label"]
    for clip in clips:
        metric.evaluate(
            reference_event_list=gt.loc[gt["filename"] == clip, columns].to_dict("records"),
            estimated_event_list=det.loc[det["filename"] == clip, columns].to_dict("records"),
        )
    for k, label in enumerate(classes):
        for key, theirs in (("tp", "Ntp"), ("ref", "Nref"), ("sys", "Nsys")):
            counts[key][k] += metric.class_wise[label][theirs]
    overall += [metric.overall[k] for k in ("Ntp", "Nref", "Nsys", "Nsubs")]
