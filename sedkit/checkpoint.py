"""Atomic, resumable, safely loadable checkpoints, and the protocol that commits an epoch.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, written with
``torch.save`` to a temporary file in the target folder, flushed and fsynced, then renamed over
the target with ``os.replace`` (atomic on POSIX), and the folder fsynced. A crash or a full disk
during the write leaves the previous checkpoint intact. Loading uses ``weights_only=True``, which
never unpickles arbitrary objects.

**One commit per epoch** (:func:`commit_epoch`). ``last.pt`` is the commit point and names the
best checkpoint it belongs to by epoch and SHA-256 digest:

1. when the epoch improved, its state goes to ``best.pending.pt`` (atomic write);
2. ``last.pt`` is written (atomic), recording the best checkpoint's epoch and digest;
3. ``best.pending.pt`` is renamed to ``best.pt``.

A kill between any two steps leaves a folder that :func:`reconcile` brings back to the last
commit: a pending best that ``last.pt`` names is rolled forward, one it does not name is
dropped, and leftover temporary files are removed. Loading the best checkpoint checks its
digest against the record (:func:`load_checkpoint` with ``sha256``), so a final evaluation can
never run on another epoch's weights.

Every durable write passes :func:`write_boundary` before and after each of its steps: a no-op
that the reliability tests replace to stop a run at every one of them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sedkit.errors import UserError

LAST, BEST, PENDING_BEST = "last.pt", "best.pt", "best.pending.pt"


class CheckpointWriteError(RuntimeError):
    """Writing a checkpoint failed; the previous checkpoint at that path is intact."""


class CheckpointMismatchError(UserError):
    """A checkpoint file is not the one its run recorded (changed, replaced or missing)."""


def write_boundary(step: str, path: Path) -> None:
    """Called at every step of every durable write (``step``: ``begin``, ``written``,
    ``replaced``, ``appended``). Does nothing: the fault-injection tests replace it to
    interrupt a run at each boundary and resume it from what is on disk there."""


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace(src: Path, dst: Path) -> None:
    os.replace(src, dst)
    fsync_dir(dst.parent)
    write_boundary("replaced", dst)


def atomic_write(path: Path, write: Callable[[Any], Any]) -> None:
    """Call ``write(file_object)`` into a temporary file beside ``path``, then rename it."""
    path = Path(path)
    write_boundary("begin", path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        write_boundary("written", path)
        _replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise CheckpointWriteError(
                f"could not write {path}: {exc.strerror or exc}; the previous file is intact"
            ) from exc
        raise


def append_line(path: Path, line: str) -> None:
    """Append one line durably (flushed and fsynced). A kill in the middle can leave the
    line cut short: readers drop a last line that does not parse."""
    write_boundary("begin", path)
    try:
        with Path(path).open("a") as f:
            f.write(line.rstrip("\n") + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise CheckpointWriteError(f"could not write {path}: {exc.strerror or exc}") from exc
    write_boundary("appended", path)


def remove_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files an interrupted :func:`atomic_write` left in ``folder``."""
    removed = []
    for tmp in Path(folder).glob(".*.tmp"):
        if tmp.is_file():
            tmp.unlink()
            removed.append(tmp)
    return removed


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, as hex."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_checkpoint(path: Path, state: dict[str, Any]) -> str:
    """Write ``state`` atomically (see module docstring); returns the file's SHA-256."""
    path = Path(path)
    atomic_write(path, lambda f: torch.save(state, f))
    return file_digest(path)


def load_checkpoint(
    path: Path, map_location: str | torch.device = "cpu", *, sha256: str | None = None
) -> dict[str, Any]:
    """Load a checkpoint without unpickling arbitrary objects; with ``sha256``, only the file
    with that digest (else :class:`CheckpointMismatchError`)."""
    path = Path(path)
    if not path.is_file():
        if sha256 is not None:
            raise CheckpointMismatchError(f"{path}: the run recorded this checkpoint; it is gone")
        raise UserError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt file, or one holding pickled objects
        raise UserError(
            f"{path}: not a loadable sedkit checkpoint ({type(exc).__name__}: {exc})"
        ) from None
    if sha256 is not None and file_digest(path) != sha256:
        raise CheckpointMismatchError(
            f"{path}: not the checkpoint the run recorded (SHA-256 differs); "
            "it was changed outside sedkit"
        )
    return state


def commit_epoch(
    folder: Path, state: dict[str, Any], *, improved: bool, best: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Commit one epoch: ``state`` becomes ``last.pt`` and, when ``improved``, ``best.pt``
    (protocol in the module docstring). ``best`` is the record of the current best checkpoint
    (``{"epoch", "sha256"}``, None before the first); returns the record after the commit."""
    folder = Path(folder)
    try:
        if improved:
            digest = save_checkpoint(folder / PENDING_BEST, state)
            best = {"epoch": int(state["epoch"]), "sha256": digest}
        save_checkpoint(folder / LAST, {**state, "best": best})
        if improved:
            _replace(folder / PENDING_BEST, folder / BEST)
    except BaseException:
        # A full disk or Ctrl-C: leave the folder at whichever commit last.pt holds now, as
        # a resume would find it (no pending file, no temporaries).
        with contextlib.suppress(Exception):
            reconcile(folder, recorded_best(folder))
        raise
    return best


def recorded_best(folder: Path) -> dict[str, Any] | None:
    """The best-checkpoint record of ``folder``'s ``last.pt`` (None without one)."""
    path = Path(folder) / LAST
    return load_checkpoint(path).get("best") if path.is_file() else None


def reconcile(folder: Path, best: dict[str, Any] | None) -> list[str]:
    """Bring ``folder`` back to its last commit, whose best record is ``best``: roll a
    pending best forward or drop it, remove temporaries. Returns what was done, for the log.
    A best checkpoint that matches neither is refused (:class:`CheckpointMismatchError`)."""
    folder = Path(folder)
    done = [f"removed {p.name}" for p in remove_temporaries(folder)]
    pending, final = folder / PENDING_BEST, folder / BEST
    if best is not None and not (final.is_file() and file_digest(final) == best["sha256"]):
        if pending.is_file() and file_digest(pending) == best["sha256"]:
            _replace(pending, final)
            done.append(f"completed the commit of {BEST} (epoch {best['epoch']})")
        else:
            raise CheckpointMismatchError(
                f"{final}: not the best checkpoint {LAST} records (epoch {best['epoch']}); "
                "the run folder was changed outside sedkit"
            )
    if pending.is_file():
        pending.unlink()
        done.append(f"dropped an uncommitted {PENDING_BEST}")
    return done


def rng_state() -> dict[str, Any]:
    """Every random generator's state, as checkpoint-safe values."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    np_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
