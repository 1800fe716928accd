"""Time and memory of ``sedkit score`` against the reference libraries, side by side in one run.

Every side runs as its own process (a fresh interpreter, as a user runs it), measured with
``wait4``: wall time, CPU time (user + system) and peak resident memory. Repeats alternate the
sides so that machine load affects them alike; the report gives medians and ratios.

1. Threshold folders: ``sedkit score --est DIR`` (``--jobs 1``, the default, and ``--jobs 2``)
   against sed_eval + psds_eval called directly (event- and segment-based F1 at 0.5, PSDS1 and
   PSDS2 over every operating point, the intersection-based F1 at 0.5), on the DCASE 2019
   example's 10 files and on 50 threshold files decoded from synthetic score tables of the
   same 1,168 clips and 10 classes.
2. Score tables: ``sedkit score --scores DIR`` (2 processes, the default, and ``--jobs 1``)
   against sed_scores_eval 0.0.4 (in its venv, see ``tools/make_scoring_reference.py``)
   computing the same figures (PSDS1, PSDS2, collar-, segment- and intersection-based F1 at
   0.5 and at the best threshold), and against psds_eval at 50 thresholds on the same clips.
3. Growth: ``sedkit score --scores`` (both ways) and sed_scores_eval (where it finishes within
   ``--timeout``, and only for ``--reference-sizes``) on synthetic score tables of 1k, 10k
   and 50k clips x 10 classes and 1k clips x 100 and 400 classes.

    .venv/bin/python tools/bench_scoring.py [--repeats 3] [--work /tmp/bench_scoring]
        [--sse-venv /tmp/sse_ref] [--sizes 1000x10,10000x10,50000x10,1000x100,1000x400]
        [--reference-sizes ...] [--skip 1,2,3] [--timeout 600]

The peak memory of a side is that of its largest process (``wait4`` reports the maximum over
a process and its children, not their sum): with 2 processes, ``sedkit score`` holds up to
about twice that.

Synthetic clips are DESED-like: 10 s, 156 frames of 64 ms, one to three events each, scores
that follow the events with noise and false alarms, written with 4 decimals.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ROOT / ".venv/bin/python"
SEDKIT = ROOT / ".venv/bin/sedkit"
REFERENCE = ROOT.parent / "shared/reference/dcase2019_task4_validation"
HOP, N_FRAMES, DURATION = 0.064, 156, 10.0

# ----------------------------------------------------------------------------------------------
# Synthetic data
# ----------------------------------------------------------------------------------------------


def make_score_set(folder: Path, n_clips: int, n_classes: int, seed: int = 0) -> Path:
    """Score tables, ground truth and durations of ``n_clips`` synthetic clips."""
    if (folder / "durations.tsv").exists():
        return folder
    rng = np.random.default_rng(seed)
    classes = [f"class_{k:03d}" for k in range(n_classes)]
    (folder / "scores").mkdir(parents=True, exist_ok=True)
    edges = np.round(np.arange(N_FRAMES + 1) * HOP, 6)
    centres = (edges[:-1] + edges[1:]) / 2
    header = "\t".join(["onset", "offset", *classes]) + "\n"
    fmt = "\t".join(["%.6f", "%.6f"] + ["%.4f"] * n_classes)
    gt_lines, dur_lines = ["filename\tonset\toffset\tevent_label"], ["filename\tduration"]
    kernel = np.ones(9) / 9
    for i in range(n_clips):
        clip = f"clip_{i:06d}"
        noise = rng.random((N_FRAMES + 8, n_classes))
        scores = 0.25 * np.apply_along_axis(np.convolve, 0, noise, kernel, "valid")
        labels = rng.choice(n_classes, size=int(rng.integers(1, 4)), replace=False)
        if n_classes > len(labels) and i % n_classes not in labels:
            labels[0] = i % n_classes  # every class gets events (sed_scores_eval needs it)
        for k in labels:
            on = float(rng.uniform(0, DURATION - 0.5))
            off = min(DURATION, on + float(rng.uniform(0.3, 5.0)))
            gt_lines.append(f"{clip}.wav\t{on:.3f}\t{off:.3f}\t{classes[k]}")
            shift = float(rng.normal(0, 0.15))
            inside = (centres >= on + shift) & (centres < off + shift)
            scores[inside, k] += float(rng.uniform(0.3, 0.7))
        for k in rng.choice(n_classes, size=int(rng.integers(0, 3))):  # false alarms
            start = int(rng.integers(0, N_FRAMES - 10))
            scores[start : start + int(rng.integers(2, 10)), k] += float(rng.uniform(0.2, 0.6))
        scores = np.clip(scores, 0, 1)
        with open(folder / "scores" / f"{clip}.tsv", "w") as f:
            f.write(header)
            np.savetxt(f, np.column_stack((edges[:-1], edges[1:], scores)), fmt=fmt)
        dur_lines.append(f"{clip}.wav\t{DURATION}")
    (folder / "gt.tsv").write_text("\n".join(gt_lines) + "\n")
    (folder / "durations.tsv").write_text("\n".join(dur_lines) + "\n")
    return folder


def make_threshold_folder(score_set: Path, n_thresholds: int = 50) -> Path:
    """Detections of the score tables at ``n_thresholds`` thresholds (scores > t), one file
    each, as a psds_eval user writes them."""
    out = score_set / f"thresholds_{n_thresholds}"
    if out.is_dir():
        return out
    out.mkdir()
    sys.path.insert(0, str(ROOT))
    from sedkit.scoring.score_tables import read_score_tables, score_files

    files = score_files(score_set / "scores")
    tables = read_score_tables(files.values(), ids=list(files))
    thresholds = [round((2 * i + 1) / (2 * n_thresholds), 6) for i in range(n_thresholds)]
    clip_of_frame = np.repeat(np.arange(len(tables.clips)), np.diff(tables.starts))
    first = np.zeros(len(clip_of_frame), bool)
    first[tables.starts[:-1]] = True
    last = np.zeros(len(clip_of_frame), bool)
    last[tables.starts[1:] - 1] = True
    for t in thresholds:
        lines = ["filename\tonset\toffset\tevent_label"]
        active = tables.scores > t
        for k, label in enumerate(tables.classes):
            a = active[:, k]
            starts = np.flatnonzero(a & (first | ~np.roll(a, 1)))
            stops = np.flatnonzero(a & (last | ~np.roll(a, -1)))
            for s, e in zip(starts, stops, strict=True):
                clip = tables.clips[clip_of_frame[s]]
                on, off = tables.onsets[s], tables.offsets[e]
                lines.append(f"{clip}.wav\t{on:.3f}\t{off:.3f}\t{label}")
        (out / f"detections_{t:.6f}.tsv").write_text("\n".join(lines) + "\n")
    return out


# ----------------------------------------------------------------------------------------------
# The sides, each one process
# ----------------------------------------------------------------------------------------------
DIRECT_LEGACY = """
import sys, warnings
warnings.simplefilter("ignore")
from pathlib import Path
import pandas as pd, psds_eval, sed_eval
gt_path, folder, meta_path, chosen = sys.argv[1], Path(sys.argv[2]), sys.argv[3], float(sys.argv[4])
gt = pd.read_csv(gt_path, sep="\\t")
meta = pd.read_csv(meta_path, sep="\\t")
dets = {float(p.stem.rsplit("_", 1)[1]): pd.read_csv(p, sep="\\t")
        for p in sorted(folder.iterdir())
        if p.suffix in (".tsv", ".csv") and p.stem.rsplit("_", 1)[-1].replace(".", "").isdigit()}
det = dets[min(dets, key=lambda t: (round(abs(t - chosen), 9), t))]
files = list(dict.fromkeys(meta["filename"]))
classes = sorted(gt["event_label"].dropna().unique())
def per_clip(df):
    out = {}
    for row in df.dropna().to_dict("records"):
        out.setdefault(row["filename"], []).append(row)
    return [out.get(f, []) for f in files]
event = sed_eval.sound_event.EventBasedMetrics(event_label_list=classes, t_collar=0.2,
    percentage_of_length=0.2, empty_system_output_handling="zero_score")
segment = sed_eval.sound_event.SegmentBasedMetrics(event_label_list=classes, time_resolution=1.0)
for r, e in zip(per_clip(gt), per_clip(det)):
    event.evaluate(reference_event_list=r, estimated_event_list=e)
    segment.evaluate(reference_event_list=r, estimated_event_list=e)
out = {"event_f1_macro": event.results_class_wise_average_metrics()["f_measure"]["f_measure"]}
gt_events = gt.dropna()
for name, dtc, gtc, cttc, act, ast in (("psds1", .7, .7, .3, 0, 1), ("psds2", .1, .1, .3, .5, 1)):
    ev = psds_eval.PSDSEval(dtc, gtc, cttc, ground_truth=gt_events, metadata=meta)
    for t, d in dets.items():
        ev.add_operating_point(d, info={"threshold": t})
    out[name] = float(ev.psds(act, ast, 100.0).value)
ev = psds_eval.PSDSEval(.5, .5, .3, ground_truth=gt_events, metadata=meta)
out["intersection_f1_macro"] = float(ev.compute_macro_f_score(det)[0])
import json; print(json.dumps(out))
"""

DIRECT_SCORES = """
import sys, json, warnings
warnings.simplefilter("ignore")
from sed_scores_eval import collar_based, intersection_based, segment_based
from sed_scores_eval.base_modules.io import (read_audio_durations, read_ground_truth_events,
    read_sed_scores)
scores = read_sed_scores(sys.argv[1])
gt = read_ground_truth_events(sys.argv[2])
durations = read_audio_durations(sys.argv[3])
for clip in scores:
    gt.setdefault(clip, [])
out = {}
for name, dtc, gtc, cttc, act, ast in (("psds1", .7, .7, None, 0, 1), ("psds2", .1, .1, .3, .5, 1)):
    out[name] = float(intersection_based.psds(scores=scores, ground_truth=gt,
        audio_durations=durations, dtc_threshold=dtc, gtc_threshold=gtc, cttc_threshold=cttc,
        alpha_ct=act, alpha_st=ast, max_efpr=100.)[0])
c = dict(onset_collar=.2, offset_collar=.2, offset_collar_rate=.2)
out["collar_f1_macro"] = float(collar_based.fscore(scores, gt, .5, **c)[0]["macro_average"])
out["collar_best_f1_macro"] = float(collar_based.best_fscore(scores, gt, **c)[0]["macro_average"])
out["segment_f1_macro"] = float(segment_based.fscore(scores, gt, durations, .5,
    segment_length=1.)[0]["macro_average"])
out["segment_best_f1_macro"] = float(segment_based.best_fscore(scores, gt, durations,
    segment_length=1.)[0]["macro_average"])
i = dict(dtc_threshold=.5, gtc_threshold=.5)
out["intersection_f1_macro"] = float(
    intersection_based.fscore(scores, gt, .5, **i)[0]["macro_average"])
out["intersection_best_f1_macro"] = float(
    intersection_based.best_fscore(scores, gt, **i)[0]["macro_average"])
print(json.dumps(out))
"""


#: Address-space limit of every measured process: a side that needs more fails (reported)
#: instead of pushing the shared machine into swap.
LIMITS = {"memory_gb": 10.0}


def _limit_memory() -> None:
    limit = int(LIMITS["memory_gb"] * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def measure(argv: list[str], timeout: float) -> dict:
    """Run one process; its wall and CPU seconds, peak RSS (MiB) and JSON output."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=err,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            preexec_fn=_limit_memory,
        )
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                return {"timeout": True, "wall": time.perf_counter() - start}
            time.sleep(0.01)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        text = out.read().decode()
        if os.waitstatus_to_exitcode(status) != 0:
            last = err.read().decode().strip().splitlines()[-1:] or ["?"]
            return {"failed": last[0][:120], "wall": wall}
    start_json = text.find("{")
    return {
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss": usage.ru_maxrss / 1024,
        "result": json.loads(text[start_json:]) if start_json >= 0 else {},
    }


def sides_legacy(gt: Path, folder: Path, meta: Path) -> dict[str, list[str]]:
    sedkit = [str(SEDKIT), "score", "--ref", str(gt), "--est", str(folder), "--meta", str(meta)]
    return {
        "sedkit score --est DIR --jobs 1": [*sedkit, "--json", "--jobs", "1"],
        "sedkit score --est DIR --jobs 2": [*sedkit, "--json", "--jobs", "2"],
        "sed_eval + psds_eval": [
            str(PYTHON),
            "-c",
            DIRECT_LEGACY,
            str(gt),
            str(folder),
            str(meta),
            "0.5",
        ],
    }


def sides_scores(
    score_set: Path, sse_python: Path | None, *, one_process: bool = False
) -> dict[str, list[str]]:
    """``sedkit score --scores`` (2 processes, the default; also ``--jobs 1`` with
    ``one_process``) and sed_scores_eval when its venv is there."""
    args = [str(score_set / "gt.tsv"), str(score_set / "durations.tsv")]
    sedkit = [str(SEDKIT), "score", "--ref", args[0], "--scores", str(score_set / "scores")]
    sides = {"sedkit score --scores": [*sedkit, "--meta", args[1], "--json"]}
    if one_process:
        sides["sedkit score --scores --jobs 1"] = [*sides["sedkit score --scores"], "--jobs", "1"]
    if sse_python is not None:
        sides["sed_scores_eval"] = [
            str(sse_python),
            "-c",
            DIRECT_SCORES,
            str(score_set / "scores"),
            *args,
        ]
    return sides


def run_sides(sides: dict[str, list[str]], repeats: int, timeout: float) -> dict[str, dict]:
    runs: dict[str, list[dict]] = {name: [] for name in sides}
    for _ in range(repeats):
        for name, argv in sides.items():
            if runs[name] and ("timeout" in runs[name][-1] or "failed" in runs[name][-1]):
                continue
            runs[name].append(measure(argv, timeout))
    summary = {}
    for name, rs in runs.items():
        if "timeout" in rs[-1] or "failed" in rs[-1]:
            summary[name] = rs[-1]
            continue
        summary[name] = {
            "wall": statistics.median(r["wall"] for r in rs),
            "cpu": statistics.median(r["cpu"] for r in rs),
            "rss": max(r["rss"] for r in rs),
            "result": rs[-1]["result"],
            "n": len(rs),
        }
    return summary


def _stopped(s: dict) -> str:
    if "timeout" in s:
        return f"> {s['wall']:.0f} (stopped)"
    return f"failed after {s['wall']:.0f} s: {s['failed']}"


def table(title: str, summary: dict[str, dict], base: str) -> str:
    lines = [
        f"**{title}**",
        "",
        "| side | wall s | CPU s | peak MiB | wall ratio | CPU ratio | memory ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    b = summary[base]
    for name, s in summary.items():
        if "timeout" in s or "failed" in s:
            lines.append(f"| {name} | {_stopped(s)} | | | | | |")
            continue
        ratios = ["", "", ""]
        if "wall" in b and "cpu" in b:
            ratios = [f"{s[k] / b[k]:.2f}" for k in ("wall", "cpu", "rss")]
        lines.append(
            f"| {name} | {s['wall']:.2f} | {s['cpu']:.2f} | {s['rss']:.0f} | "
            + " | ".join(ratios)
            + " |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_scoring"))
    parser.add_argument("--sse-venv", type=Path, default=Path("/tmp/sse_ref"))
    parser.add_argument("--sizes", default="1000x10,10000x10,50000x10,1000x100,1000x400")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument(
        "--reference-sizes",
        default=None,
        help="sizes of part 3 where sed_scores_eval runs too (default: all of --sizes)",
    )
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: 1,2,3")
    parser.add_argument("--memory-limit-gb", type=float, default=LIMITS["memory_gb"])
    args = parser.parse_args()
    LIMITS["memory_gb"] = args.memory_limit_gb
    sse = args.sse_venv / "bin/python"
    sse_python = sse if sse.exists() else None
    skip = set(args.skip.split(","))
    reference_sizes = set((args.reference_sizes or args.sizes).split(","))
    args.work.mkdir(parents=True, exist_ok=True)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores; "
        f"python {platform.python_version()}; load average at start {os.getloadavg()}; "
        f"{args.repeats} repeats, medians\n"
    )
    report = []
    desed_like = make_score_set(args.work / "desed_like", 1168, 10)
    folder = make_threshold_folder(desed_like)
    legacy_cases = {
        "DCASE 2019 example, 10 threshold files (1,168 clips)": (
            REFERENCE / "dcase2019t4_gt.csv",
            REFERENCE,
            REFERENCE / "dcase2019t4_meta.csv",
        ),
        "50 threshold files (1,168 synthetic clips, 10 classes)": (
            desed_like / "gt.tsv",
            folder,
            desed_like / "durations.tsv",
        ),
    }
    for title, (gt, est, meta) in legacy_cases.items() if "1" not in skip else ():
        summary = run_sides(sides_legacy(gt, est, meta), args.repeats, args.timeout)
        report.append(table(title, summary, "sed_eval + psds_eval"))
    if "2" not in skip:
        sides = sides_scores(desed_like, sse_python, one_process=True)
        sides["sed_eval + psds_eval, 50 thresholds"] = sides_legacy(
            desed_like / "gt.tsv", folder, desed_like / "durations.tsv"
        )["sed_eval + psds_eval"]
        summary = run_sides(sides, args.repeats, args.timeout)
        base = "sed_scores_eval" if sse_python else "sedkit score --scores"
        report.append(table("Score tables (1,168 synthetic clips, 10 classes)", summary, base))
        for name, s in summary.items():
            if "result" in s:
                shown = {
                    k: round(v, 6)
                    for k, v in s["result"].items()
                    if k in ("psds1", "psds2", "collar_f1_macro", "segment_best_f1_macro")
                }
                report.append(f"- {name}: {shown}")
    if "3" not in skip:
        lines = [
            "**Growth (score tables)**",
            "",
            "| clips x classes | side | wall s | CPU s | peak MiB |",
            "|---|---|---:|---:|---:|",
        ]
        for size in args.sizes.split(","):
            n_clips, n_classes = (int(x) for x in size.split("x"))
            score_set = make_score_set(
                args.work / f"set_{size}", n_clips, n_classes, seed=n_clips + n_classes
            )
            reference = sse_python if size in reference_sizes else None
            sides = sides_scores(score_set, reference, one_process=True)
            summary = run_sides(sides, 1, args.timeout)
            for name, s in summary.items():
                if "timeout" in s or "failed" in s:
                    lines.append(f"| {size} | {name} | {_stopped(s)} | | |")
                else:
                    lines.append(
                        f"| {size} | {name} | {s['wall']:.2f} | {s['cpu']:.2f} | {s['rss']:.0f} |"
                    )
            print(lines[-1], flush=True)
        report.append("\n".join(lines))
    print(f"load average at the end {os.getloadavg()}\n")
    print("\n\n".join(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
