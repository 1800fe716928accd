"""Output files of commands: never replaced without ``--overwrite``, never outside their root.

Every command that writes a file the user named (or a file derived from one, such as
``predict``'s ``X.uncertainty.tsv``) checks it with :func:`check_output` before any work is
done, so that a refusal costs nothing and leaves the disk as it was, and writes it with
:func:`write_output` (atomically: a crash never leaves half a file).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sedkit.checkpoint import CheckpointWriteError, atomic_write
from sedkit.errors import UserError


def check_output(
    path: str | Path, *, overwrite: bool, root: str | Path | None = None, what: str = "file"
) -> Path:
    """``path`` if a ``what`` ("file" or "folder") may be written there, else one clear
    :class:`UserError`: it exists (without ``overwrite``), it is the other kind, it lies
    outside ``root``, or its folder cannot be made or written (a file in place of a folder,
    a read-only file system)."""
    p = Path(path)
    if root is not None and not p.resolve().is_relative_to(Path(root).resolve()):
        raise UserError(f"{p}: outside {root}, where it belongs; use a path inside it")
    if p.exists():
        if what == "file" and p.is_dir():
            raise UserError(f"{p}: is a folder; give a file name")
        if what == "folder" and not p.is_dir():
            raise UserError(f"{p}: is a file; give a folder")
        if not overwrite:
            raise UserError(f"{p}: exists; use --overwrite to replace it")
    ancestor = p.parent if not p.is_dir() else p
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserError(f"{p}: cannot be written: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UserError(f"{p}: cannot be written: {ancestor} is not writable")
    return p


def write_output(
    path: str | Path,
    write: Callable[[Any], Any],
    *,
    overwrite: bool,
    root: str | Path | None = None,
) -> Path:
    """Check ``path`` (:func:`check_output`), then ``write(binary_file)`` into it atomically."""
    p = check_output(path, overwrite=overwrite, root=root)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(p, write)
    except (OSError, CheckpointWriteError) as exc:
        raise UserError(f"{p}: cannot be written ({exc})") from None
    return p
