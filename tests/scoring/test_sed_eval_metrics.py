"""sedkit.scoring.sed_eval_metrics against sed_eval itself, on cases built to hit its corners:
substitutions (the timing right, the label wrong), events with two possible partners (collars
that overlap: sed_eval's own matching decides), clips without events on either side, events
on segment boundaries and at the clip end, a class never detected, a class never present."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

sed_eval = pytest.importorskip("sed_eval")

from sedkit.scoring.sed_eval_metrics import event_based, segment_based  # noqa: E402

CLASSES = ["Cat", "Dog", "Speech", "Never"]


def _case(seed: int) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    rng = np.random.default_rng(seed)
    clips = [f"clip{k:02d}.wav" for k in range(40)]
    gt_rows, det_rows = [], []
    for k, clip in enumerate(clips):
        if k % 10 == 9:
            continue  # no event on either side
        for _ in range(int(rng.integers(0, 4))):
            label = CLASSES[int(rng.integers(0, 3))]
            on = float(rng.choice([0.0, 1.0, 2.0, round(float(rng.uniform(0, 8)), 3)]))
            off = min(10.0, round(on + float(rng.choice([0.1, 0.3, 1.0, 2.5])), 3))
            gt_rows.append((clip, on, off, label))
            kind = int(rng.integers(0, 5))
            if kind == 0:  # a match
                det_rows.append((clip, on + 0.1, off - 0.05, label))
            elif kind == 1:  # a substitution
                det_rows.append((clip, on, off, CLASSES[(CLASSES.index(label) + 1) % 3]))
            elif kind == 2:  # two detections within the collars of one event
                det_rows.append((clip, on, round(on + 0.1, 3), label))
                det_rows.append((clip, round(on + 0.15, 3), off, label))
            elif kind == 3:  # a miss, and a false alarm elsewhere
                det_rows.append((clip, 9.5, 10.0, label))
    columns = ["filename", "onset", "offset", "event_label"]
    return pd.DataFrame(gt_rows, columns=columns), pd.DataFrame(det_rows, columns=columns), clips


def _sed_eval(metric, gt: pd.DataFrame, det: pd.DataFrame, clips: list[str], kind: str) -> dict:
    for clip in clips:
        metric.evaluate(
            reference_event_list=gt[gt["filename"] == clip].to_dict("records"),
            estimated_event_list=det[det["filename"] == clip].to_dict("records"),
        )
    overall = metric.results_overall_metrics()
    average = metric.results_class_wise_average_metrics()
    out = {
        f"{kind}_f1_macro": average["f_measure"]["f_measure"],
        f"{kind}_er_macro": average["error_rate"]["error_rate"],
        f"{kind}_f1_micro": overall["f_measure"]["f_measure"],
        f"{kind}_precision_micro": overall["f_measure"]["precision"],
        f"{kind}_recall_micro": overall["f_measure"]["recall"],
        f"{kind}_er_micro": overall["error_rate"]["error_rate"],
    }
    for label, result in metric.results_class_wise_metrics().items():
        out[f"{label} f1"] = result["f_measure"]["f_measure"]
        out[f"{label} precision"] = result["f_measure"]["precision"]
        out[f"{label} er"] = result["error_rate"]["error_rate"]
    return out


def _ours(result: dict, kind: str) -> dict:
    out = {k: v for k, v in result.items() if k != "classwise"}
    for label, values in result["classwise"].items():
        for key in ("f1", "precision", "er"):
            out[f"{label} {key}"] = values[f"{kind}_{key}"]
    return out


def _assert_same(ours: dict, theirs: dict) -> None:
    differ = {
        k: (ours[k], v)
        for k, v in theirs.items()
        if not (v == ours[k] or (math.isnan(v) and math.isnan(ours[k])))
    }
    assert not differ, differ


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_event_based_equals_sed_eval(seed: int) -> None:
    gt, det, clips = _case(seed)
    metric = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=CLASSES,
        t_collar=0.2,
        percentage_of_length=0.2,
        empty_system_output_handling="zero_score",
    )
    theirs = _sed_eval(metric, gt, det, clips, "event")
    assert theirs["event_er_micro"] > 0 and 0 < theirs["event_f1_micro"] < 1
    _assert_same(_ours(event_based(gt, det, clips, CLASSES, 0.2, 0.2), "event"), theirs)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("resolution", [1.0, 0.25])
def test_segment_based_equals_sed_eval(seed: int, resolution: float) -> None:
    gt, det, clips = _case(seed)
    metric = sed_eval.sound_event.SegmentBasedMetrics(
        event_label_list=CLASSES, time_resolution=resolution
    )
    theirs = _sed_eval(metric, gt, det, clips, "segment")
    _assert_same(_ours(segment_based(gt, det, clips, CLASSES, resolution), "segment"), theirs)


def test_substitutions_are_counted_in_file_order() -> None:
    """One reference event, two detections of other labels that both match its timing: one
    substitution, one insertion (sed_eval takes the first)."""
    columns = ["filename", "onset", "offset", "event_label"]
    gt = pd.DataFrame([("a.wav", 1.0, 2.0, "Cat")], columns=columns)
    det = pd.DataFrame(
        [("a.wav", 1.0, 2.0, "Dog"), ("a.wav", 1.05, 2.0, "Speech")], columns=columns
    )
    result = event_based(gt, det, ["a.wav"], CLASSES, 0.2, 0.2)
    # ER = (S + D + I) / N = (1 + 0 + 1) / 1
    assert result["event_er_micro"] == pytest.approx(2.0)
