"""Run directories: one per run, never overwritten, holding everything needed to resume.

Layout::

    RUN_DIR/
      recipe.yaml          resolved recipe (every default filled in); --resume reads it
      recipe_source.yaml   the recipe file as written (plus overrides in run.json)
      run.json             status, command line, timestamps
      environment.json     versions, device, host
      plugins.json         loaded plugins and what they register
      train.log            the log
      metrics.jsonl        one JSON object per epoch
      metrics.json         final metrics
      checkpoints/last.pt, checkpoints/best.pt
      predictions/         validation detections (TSV) at the decision threshold and for PSDS
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
import yaml

from sedkit.checkpoint import atomic_write
from sedkit.errors import UserError

log = logging.getLogger("sedkit")


def create_run_dir(root: Path, name: str, explicit: str | None = None) -> Path:
    """A new, empty run directory: ``explicit`` if given (must not exist), else
    ``root/name/<timestamp>`` with a numeric suffix when that is taken."""
    if explicit is not None:
        path = Path(explicit)
        if path.exists() and any(path.iterdir()):
            raise UserError(f"run.dir: {path} already exists and is not empty; never overwritten")
        path.mkdir(parents=True, exist_ok=True)
        return path
    stamp = time.strftime("%Y%m%d-%H%M%S")
    parent = Path(root) / name
    parent.mkdir(parents=True, exist_ok=True)
    for i in range(1000):
        path = parent / (stamp if i == 0 else f"{stamp}-{i}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise UserError(f"{parent}: could not create a new run directory")


def write_json(path: Path, data: Any) -> None:
    text = json.dumps(to_jsonable(data), indent=2, sort_keys=False) + "\n"
    atomic_write(path, lambda f: f.write(text.encode()))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def write_yaml(path: Path, data: Any) -> None:
    text = yaml.safe_dump(to_jsonable(data), sort_keys=False)
    atomic_write(path, lambda f: f.write(text.encode()))


def to_jsonable(value: Any) -> Any:
    """Plain JSON values: tensors and numpy scalars to numbers; NaN/inf to strings."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return to_jsonable(value.tolist())
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return to_jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Path):
        return str(value)
    return value


def environment(device: str) -> dict[str, Any]:
    """Versions and hardware, recorded in every run."""
    versions = {}
    for dist in (
        "sedkit",
        "torch",
        "torchaudio",
        "numpy",
        "pandas",
        "sed_eval",
        "psds_eval",
        "scaper",
        "soundfile",
        "pluggy",
    ):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
        "versions": versions,
    }
    if device.startswith("cuda"):
        env["gpu"] = torch.cuda.get_device_name(0)
        env["cuda"] = torch.version.cuda
    return env


class MetricsLog:
    """Per-epoch metrics as JSON lines; on resume, lines past the resumed epoch are dropped."""

    def __init__(self, path: Path, keep_until_epoch: int | None = None):
        self.path = path
        if keep_until_epoch is not None and path.exists():
            kept = [
                line
                for line in path.read_text().splitlines()
                if line.strip() and json.loads(line).get("epoch", 0) <= keep_until_epoch
            ]
            text = "".join(line + "\n" for line in kept)
            atomic_write(path, lambda f: f.write(text.encode()))

    def append(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(to_jsonable(record)) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


def attach_log_file(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger("sedkit").addHandler(handler)
    return handler
