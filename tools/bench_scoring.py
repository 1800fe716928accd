"""Time ``sedkit.scoring.score_sed`` against sed_eval + psds_eval called directly.

Both sides do the same work on the DCASE 2019 task 4 validation example (1,168 clips, ten
decision thresholds): read the tables, event- and segment-based metrics (sed_eval) on the 0.5
detections, PSDS1 and PSDS2 over the ten operating points and psds_eval's intersection-based
macro F1 on each table (psds_eval). The direct side is a lean script (each table read once with
pandas, split per clip in one pass); sedkit adds parsing with line-numbered validation and may
spread the independent evaluations over processes. Repeats alternate the two sides so that
machine load affects both alike; the report gives medians and their ratio.

    python tools/bench_scoring.py [--repeats 5] [--jobs 2] [--reference DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import warnings
from pathlib import Path

import pandas as pd
import psds_eval
import sed_eval

from sedkit.scoring import PSDS1, PSDS2, score_sed
from sedkit.scoring.sed import INTERSECTION_F1

DEFAULT_REFERENCE = (
    Path(__file__).resolve().parents[1].parent / "shared/reference/dcase2019_task4_validation"
)


def score_directly(reference: Path) -> dict[str, float]:
    """The same scores with the reference libraries called by hand."""
    gt = pd.read_csv(reference / "dcase2019t4_gt.csv", sep="\t")
    meta = pd.read_csv(reference / "dcase2019t4_meta.csv", sep="\t")
    detections = {
        float(p.stem.rsplit("_", 1)[1]): pd.read_csv(p, sep="\t")
        for p in sorted(reference.glob("baseline_*.csv"))
    }
    chosen = detections[0.5]
    files = gt["filename"].unique()
    classes = sorted(gt["event_label"].dropna().unique())

    def per_clip(df: pd.DataFrame) -> list[list[dict]]:
        buckets: dict[str, list[dict]] = {}
        for row in df.dropna().to_dict("records"):
            buckets.setdefault(row["filename"], []).append(row)
        return [buckets.get(f, []) for f in files]

    ref_lists, est_lists = per_clip(gt), per_clip(chosen)
    event = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=classes,
        t_collar=0.2,
        percentage_of_length=0.2,
        empty_system_output_handling="zero_score",
    )
    segment = sed_eval.sound_event.SegmentBasedMetrics(
        event_label_list=classes, time_resolution=1.0
    )
    for ref, est in zip(ref_lists, est_lists, strict=True):
        event.evaluate(reference_event_list=ref, estimated_event_list=est)
    for ref, est in zip(ref_lists, est_lists, strict=True):
        segment.evaluate(reference_event_list=ref, estimated_event_list=est)
    out = {
        "event_f1_macro": event.results_class_wise_average_metrics()["f_measure"]["f_measure"],
        "segment_f1_macro": segment.results_class_wise_average_metrics()["f_measure"]["f_measure"],
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for params in (PSDS1, PSDS2):
            evaluator = psds_eval.PSDSEval(
                params.dtc_threshold,
                params.gtc_threshold,
                params.cttc_threshold,
                ground_truth=gt,
                metadata=meta,
            )
            for threshold, det in detections.items():
                evaluator.add_operating_point(det, info={"threshold": threshold})
            out[params.name] = evaluator.psds(params.alpha_ct, params.alpha_st, params.max_efpr)
        evaluator = psds_eval.PSDSEval(
            INTERSECTION_F1.dtc_threshold,
            INTERSECTION_F1.gtc_threshold,
            INTERSECTION_F1.cttc_threshold,
            ground_truth=gt,
            metadata=meta,
        )
        for det in detections.values():  # the 0.5 table among them
            if not det.empty:
                evaluator.compute_macro_f_score(det)
    return out


def score_with_sedkit(reference: Path, n_jobs: int) -> dict:
    files = {float(p.stem.rsplit("_", 1)[1]): p for p in sorted(reference.glob("baseline_*.csv"))}
    return score_sed(
        ground_truth=reference / "dcase2019t4_gt.csv",
        detections=files[0.5],
        durations=reference / "dcase2019t4_meta.csv",
        psds_detections=files,
        psds_scenarios=(PSDS1, PSDS2),
        n_jobs=n_jobs,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    args = parser.parse_args()

    # Warm-up: imports and first-call caches, on both sides.
    direct = score_directly(args.reference)
    sedkit_1 = score_with_sedkit(args.reference, 1)
    for key in ("event_f1_macro", "segment_f1_macro"):
        assert abs(direct[key] - sedkit_1[key]) < 1e-9, key
    for key in ("psds1", "psds2"):
        assert abs(direct[key].value - sedkit_1[key]) < 1e-9, key

    names = ["direct", "sedkit n_jobs=1"] + (
        [f"sedkit n_jobs={args.jobs}"] if args.jobs > 1 else []
    )
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.repeats):
        for name in names:
            start_cpu, start = _cpu_seconds(), time.perf_counter()
            if name == "direct":
                score_directly(args.reference)
            else:
                score_with_sedkit(args.reference, int(name.rsplit("=", 1)[1]))
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(_cpu_seconds() - start_cpu)

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores; python "
        f"{platform.python_version()}, psds_eval {psds_eval.__version__}, pandas {pd.__version__}"
    )
    print(f"load average at the end (1, 5, 15 min): {os.getloadavg()}")
    print(f"{args.repeats} repeats, alternating; CPU = user + system, worker processes included")
    base_wall, base_cpu = statistics.median(wall["direct"]), statistics.median(cpu["direct"])
    print(
        f"{'':18}{'wall med':>9}{'wall min':>9}{'ratio':>7}{'CPU med':>9}{'CPU min':>9}{'ratio':>7}"
    )
    for name in names:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        print(
            f"{name:18}{w:9.3f}{min(wall[name]):9.3f}{w / base_wall:7.3f}"
            f"{c:9.3f}{min(cpu[name]):9.3f}{c / base_cpu:7.3f}"
        )


def _cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the pool's workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


if __name__ == "__main__":
    main()
