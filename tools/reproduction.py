"""What the reproduction tools (reproduce_table1.py, reproduce_fmuc.py, reproduce_task1b.py)
share: one run as a ``sedkit run`` subprocess that is skipped when it completed and resumed when
it was interrupted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path


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
