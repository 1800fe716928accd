"""Run directories: one per run, never overwritten, holding everything needed to resume.

Layout::

    RUN_DIR/
      recipe.yaml          resolved recipe (every default filled in); --resume reads it
      recipe_source.yaml   the recipe file as written (plus overrides in run.json)
      run.json             status, command line, timestamps, the resolved recipe's digest
      .sedkit.lock         advisory lock held while a process runs or resumes the run
      environment.json     versions, device, host
      plugins.json         loaded plugins and what they register
      train.log            the log
      metrics.jsonl        one JSON object per epoch
      metrics.json         final metrics
      checkpoints/last.pt, checkpoints/best.pt   one commit per epoch (sedkit.checkpoint)
      predictions/         validation detections (TSV) at the decision threshold and for PSDS
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import yaml

from sedkit.checkpoint import append_line, atomic_write
from sedkit.doctor import REPORTED, installed_version
from sedkit.errors import UserError

log = logging.getLogger("sedkit")


def create_run_dir(root: Path, name: str, explicit: str | None = None) -> Path:
    """A new, empty run directory: ``explicit`` if given (must not exist), else
    ``root/name/<timestamp>`` with a numeric suffix when that is taken. ``name`` must keep the
    run inside ``root`` (no ``..``). A folder that cannot be made (read-only, a file in its
    place) is one clear error naming it."""
    if explicit is not None:
        path = Path(explicit)
        if path.exists() and not path.is_dir():
            raise UserError(f"run.dir: {path} is a file, not a folder; never overwritten")
        if path.exists() and any(path.iterdir()):
            raise UserError(f"run.dir: {path} already exists and is not empty; never overwritten")
        _mkdir(path, "run.dir", parents=True, exist_ok=True)
        return path
    stamp = time.strftime("%Y%m%d-%H%M%S")
    parent = Path(root) / name
    if not parent.resolve().is_relative_to(Path(root).resolve()):
        raise UserError(
            f"run.name: {name!r} would put the run outside run.root ({root}); use a plain name"
        )
    _mkdir(parent, "run.root", parents=True, exist_ok=True)
    for i in range(1000):
        path = parent / (stamp if i == 0 else f"{stamp}-{i}")
        try:
            _mkdir(path, "run.root")
            return path
        except FileExistsError:
            continue
    raise UserError(f"{parent}: could not create a new run directory")


def _mkdir(path: Path, key: str, **kwargs: bool) -> None:
    """``path.mkdir`` with one clear error instead of a traceback (FileExistsError passes)."""
    try:
        path.mkdir(**kwargs)
    except FileExistsError:
        if kwargs.get("exist_ok"):  # a file where the folder should be
            raise UserError(f"{key}: cannot create {path}: a file stands in its way") from None
        raise
    except OSError as exc:
        raise UserError(f"{key}: cannot create {path}: {exc.strerror or exc}") from None


LOCK_FILE = ".sedkit.lock"


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock (``flock``) on ``run_dir`` while a run or resume
    writes it. A second process is refused with one line naming the holder (process and
    host). The kernel drops the lock when its holder dies, even by SIGKILL: a stale lock file
    never blocks a resume."""
    path = Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UserError(f"{path}: cannot lock the run folder ({exc.strerror or exc})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode(errors="replace").strip() or "another process"
            raise UserError(
                f"{run_dir}: in use by {holder} (lock {path}); wait until it ends"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} on host {platform.node()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


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
    versions = {dist: installed_version(dist) for dist in ("sedkit", *REPORTED)}
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
    """Per-epoch metrics as JSON lines; on resume, lines past the resumed epoch are dropped,
    and so is a last line that a kill cut short."""

    def __init__(self, path: Path, keep_until_epoch: int | None = None):
        self.path = path
        if keep_until_epoch is not None and path.exists():
            kept = [
                line
                for line, record in _parsed_lines(path)
                if record is not None and record.get("epoch", 0) <= keep_until_epoch
            ]
            text = "".join(line + "\n" for line in kept)
            atomic_write(path, lambda f: f.write(text.encode()))

    def append(self, record: dict[str, Any]) -> None:
        append_line(self.path, json.dumps(to_jsonable(record)))

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [record for _, record in _parsed_lines(self.path) if record is not None]


def _parsed_lines(path: Path) -> list[tuple[str, dict[str, Any] | None]]:
    """Each non-blank line with its record; None for a last line cut short by a kill."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    out: list[tuple[str, dict[str, Any] | None]] = []
    for i, line in enumerate(lines):
        try:
            out.append((line, json.loads(line)))
        except json.JSONDecodeError:
            if i < len(lines) - 1:
                raise UserError(f"{path}:{i + 1}: not a JSON line") from None
            out.append((line, None))
    return out


def attach_log_file(path: Path) -> logging.Handler:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger("sedkit").addHandler(handler)
    return handler
