"""PSDS and intersection F1 over operating points (sedkit.scoring.operating_points) against
psds_eval itself, on random detections: overlapping classes (cross-triggers), detections past
the clip end, identical copies, a detection class the reference lacks, empty tables."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from sedkit.scoring.operating_points import (
    count_operating_points,
    macro_f1_of_counts,
    psds_operating_points,
)
from sedkit.scoring.sed import PSDSParams

psds_eval = pytest.importorskip("psds_eval")

CLASSES = ["a", "b", "c"]
SCENARIOS = [
    PSDSParams("p1", 0.7, 0.7, 0.3, 0.0, 1.0, 100.0),
    PSDSParams("p2", 0.1, 0.1, 0.3, 0.5, 1.0, 100.0),
    PSDSParams("p3", 0.5, 0.3, 0.2, 1.0, 0.5, 40.0),
    PSDSParams("p4", 0.0, 0.0, 0.0, 0.3, 0.0, 400.0),
]


def _disjoint_events(rng, clip: str, label: str, duration: float, n: int) -> list[tuple]:
    cuts = np.sort(rng.choice(np.arange(1, 100), size=2 * n, replace=False)) * duration / 100
    return [(clip, round(cuts[2 * i], 2), round(cuts[2 * i + 1], 2), label) for i in range(n)]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    clips = [f"f{i}.wav" for i in range(40)]
    meta = pd.DataFrame({"filename": clips, "duration": rng.choice([8.0, 10.0], len(clips))})
    gt = []
    for clip, duration in zip(clips, meta["duration"], strict=True):
        for label in CLASSES:
            gt += _disjoint_events(rng, clip, label, duration, int(rng.integers(0, 3)))
    gt = pd.DataFrame(gt, columns=["filename", "onset", "offset", "event_label"])
    tables = []
    for k in range(8):
        keep_true, keep_other = 0.9 - 0.1 * k, 0.05 * k  # like decreasing thresholds
        rows = []
        for clip, duration in zip(clips, meta["duration"], strict=True):
            in_clip = gt[gt["filename"] == clip]
            for label in [*CLASSES, "d"]:
                own = in_clip["event_label"] == label
                shift = rng.normal(0.0, 0.15, len(in_clip))
                pick = np.where(
                    own, rng.random(len(in_clip)) < keep_true, rng.random(len(in_clip)) < keep_other
                )
                candidates = [
                    (max(0.0, on + dt), off + dt + rng.uniform(-0.2, 0.4))
                    for on, off, dt in zip(
                        in_clip["onset"][pick], in_clip["offset"][pick], shift[pick], strict=True
                    )
                ]
                candidates += [
                    (t, t + rng.uniform(0.1, 1.5))
                    for t in rng.uniform(0, duration, rng.integers(0, 2) * (k >= 5))
                ]
                end = -1.0
                for on, off in sorted(candidates):  # keep the events of one class disjoint
                    if on >= end and off > on:
                        rows.append((clip, round(on, 3), round(off, 3), label))
                        end = off
        det = pd.DataFrame(rows, columns=["filename", "onset", "offset", "event_label"])
        if k == 3:
            det = pd.concat([det, det.iloc[:5]], ignore_index=True)  # identical copies
        tables.append(det)
    tables.append(tables[0].iloc[:0])  # nothing detected
    return gt, meta, tables


def _psds_eval(gt, meta, tables, params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        evaluator = psds_eval.PSDSEval(
            params.dtc_threshold,
            params.gtc_threshold,
            params.cttc_threshold,
            ground_truth=gt,
            metadata=meta,
        )
        for i, det in enumerate(tables):
            evaluator.add_operating_point(det, info={"name": str(i)})
        psds = evaluator.psds(params.alpha_ct, params.alpha_st, params.max_efpr)
        f1 = [evaluator.compute_macro_f_score(det) for det in tables if not det.empty]
    return float(psds.value), f1


@pytest.mark.parametrize("params", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_equal_to_psds_eval(data, params):
    gt, meta, tables = data
    expected, expected_f1 = _psds_eval(gt, meta, tables, params)
    ours = psds_operating_points(gt, meta, dict(enumerate(tables)), params)
    assert 0.0 < expected < 1.0
    assert ours["value"] == pytest.approx(expected, abs=1e-9)
    counts = count_operating_points(
        gt,
        meta,
        [t for t in tables if not t.empty],
        dtc=params.dtc_threshold,
        gtc=params.gtc_threshold,
        cttc=params.cttc_threshold,
    )
    for (f1, per_class), (their_f1, their_per_class) in zip(
        macro_f1_of_counts(counts), expected_f1, strict=True
    ):
        assert f1 == pytest.approx(their_f1, abs=1e-9, nan_ok=True)
        for c in CLASSES:
            assert per_class[c] == pytest.approx(their_per_class[c], abs=1e-9, nan_ok=True)
