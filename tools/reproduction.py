"""What the reproduction tools (reproduce_table1.py, reproduce_fmuc.py, reproduce_task1b.py)
share: one run as a ``sedkit run`` subprocess that is skipped when it completed and resumed when
it was interrupted."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from sedkit_plugins.reporting.rundata import section_names


def completed(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a run that finished."""
    record = run_dir / "run.json"
    return record.is_file() and json.loads(record.read_text()).get("status") == "completed"


def train(name: str, run_dir: Path, recipe: Path, overrides: Sequence[str], threads: int) -> str:
    """Train ``recipe`` with ``overrides`` in ``run_dir`` on ``threads`` CPU threads (or resume
    it from its last checkpoint, or skip it when it completed); returns a status line."""
    if completed(run_dir):
        return f"{name}: already completed"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    # glibc hands every large freed block back to the OS, so each training step page-faults
    # its activations in again: measured on V(2,2,3,3), 15 ms of system time per clip, 1.5 ms
    # with these thresholds (and no change in results).
    env.setdefault("MALLOC_MMAP_THRESHOLD_", str(2**31))
    env.setdefault("MALLOC_TRIM_THRESHOLD_", str(2**31))
    if (run_dir / "checkpoints" / "last.pt").is_file():
        args = ["run", "--resume", str(run_dir)]
    else:
        args = ["run", str(recipe), *overrides, "--run-dir", str(run_dir)]
    started = time.time()
    result = subprocess.run(
        [sys.executable, "-m", "sedkit.cli", *args], env=env, capture_output=True, text=True
    )
    status = "ok" if result.returncode == 0 else f"FAILED ({result.stderr.strip()[-300:]})"
    return f"{name}: {status} in {time.time() - started:.0f} s"


#: Metrics of a SED run scored on a held-out split.
SED_METRICS = ("event_f1_macro", "segment_f1_macro", "psds1", "psds2")
#: DESED-layout splits for reporting: (audio folder, ground truth, durations) under the data root.
SED_SPLITS = {
    "eval": ("audio/eval/public", "metadata/eval/public.tsv", "metadata/eval/public_durations.tsv"),
    "eval_synthetic": (
        "audio/eval/synthetic",
        "metadata/eval/synthetic.tsv",
        "metadata/eval/synthetic_durations.tsv",
    ),
    "validation": (
        "audio/validation",
        "metadata/validation/validation.tsv",
        "metadata/validation/validation_durations.tsv",
    ),
}


def sedkit_cli(*args: str) -> str:
    """Run ``sedkit ARGS`` in this interpreter; its standard output, or exit with its error."""
    result = subprocess.run(
        [sys.executable, "-m", "sedkit.cli", *args], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SystemExit(f"sedkit {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def score_split(run_dir: Path, data_root: Path, split: str) -> dict[str, float]:
    """A finished run's best checkpoint (selected on validation) scored on ``split``, from its
    frame score tables (median filtered as in the run's decoding): event- and segment-based
    macro F1 at the 0.5 threshold and the exact, threshold-independent PSDS1/PSDS2 (all
    thresholds, sed_scores_eval's definition), by `sedkit predict` + `sedkit score --scores`.
    Cached in ``RUN_DIR/scores/SPLIT/score_metrics.json``."""
    out = run_dir / "scores" / split
    cached = out / "score_metrics.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    audio, ground_truth, durations = (data_root / part for part in SED_SPLITS[split])
    sedkit_cli("predict", str(run_dir), str(audio), "--threshold", "0.5",
               "-o", str(out / "detections.tsv"), "--scores", str(out / "score_tables"),
               "--overwrite")  # fmt: skip
    metrics = json.loads(
        sedkit_cli(
            "score",
            "--ref",
            str(ground_truth),
            "--scores",
            str(out / "score_tables"),
            "--meta",
            str(durations),
            "--threshold",
            "0.5",
            "--json",
        )  # fmt: skip
    )
    # The collar-based F1 of the score tables at 0.5 is the event-based F1 of the detections.
    names = {"event_f1_macro": "collar_f1_macro", "segment_f1_macro": "segment_f1_macro",
             "psds1": "psds1", "psds2": "psds2"}  # fmt: skip
    picked = {ours: float(metrics[theirs]) for ours, theirs in names.items()}
    cached.write_text(json.dumps(picked, indent=2))
    return picked


def mean_std(values: Sequence[float]) -> str:
    """``mean ± std`` over seeds (the value alone for one seed)."""
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def epoch_records(run_dir: Path) -> list[dict]:
    """The run's ``metrics.jsonl``, one dict per epoch, with today's metric names (runs written
    before metrics were named by recipe section read the same)."""
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [section_names(json.loads(line)) for line in lines if line.strip()]


def last_quarter_gain(
    records: Sequence[dict], metric: str = "event_f1_macro", window: int = 1
) -> float:
    """What the last quarter of an N-epoch run added to validation ``metric``: its mean over the
    last ``window`` epochs minus its mean over the ``window`` epochs ending at epoch floor(3N/4).
    ``window`` 1 is issue 15's convergence criterion (< 0.01, mean of 3 seeds); a wider window
    averages out the epoch-to-epoch noise of a small validation set."""
    # One record per epoch; its "stage" is "train" or the pseudo-labeler's (tri-training:
    # "stage1", "stage2"), so every record counts.
    by_epoch = {r["epoch"]: r[metric] for r in records if isinstance(r.get(metric), int | float)}
    last = max(by_epoch)
    start = (3 * last) // 4
    end_values = [by_epoch[e] for e in range(last - window + 1, last + 1)]
    start_values = [by_epoch[e] for e in range(start - window + 1, start + 1)]
    return statistics.mean(end_values) - statistics.mean(start_values)
