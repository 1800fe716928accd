"""On-disk cache of un-normalised features, keyed so that stale features are never reused.

Layout: ``<cache_dir>/<feature key>/<subset>-<fingerprint>.npy``, one ``[N, M, T]`` array per
subset, read through a memory map. The feature key hashes every feature parameter and the clip
length (:meth:`FeatureExtractor.cache_key`); the fingerprint hashes the ordered list of clips
with each audio file's size and modification time. Changing any parameter, clip or file gives a
new name, so an old file can only be left unused, never read by mistake. Files are written under
a temporary name and renamed when complete, so an interrupted fill leaves no valid-looking file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from sedkit.errors import UserError

__all__ = ["CachedFeatures", "audio_fingerprint", "cache_path", "fill_cache"]


def audio_fingerprint(paths: Sequence[Path]) -> str:
    """Hash of the ordered files with their sizes and modification times."""
    digest = hashlib.sha256()
    for path in paths:
        stat = path.stat()
        digest.update(f"{path.name}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def cache_path(cache_dir: Path, feature_key: str, subset: str, fingerprint: str) -> Path:
    """Where the features of ``subset`` live for this feature key and set of files."""
    return Path(cache_dir) / feature_key / f"{subset}-{fingerprint}.npy"


def fill_cache(
    path: Path,
    shape: tuple[int, int, int],
    chunks: Iterable[tuple[Sequence[int], Tensor]],
    *,
    dtype: str = "float32",
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Write ``[N, M, T]`` features given as ``(row indices, [b, M, T] features)`` chunks.

    Every row must be written; the file appears under its final name only when complete.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    array = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
    written = np.zeros(shape[0], dtype=bool)
    try:
        for rows, features in chunks:
            array[list(rows)] = features.detach().cpu().numpy().astype(dtype, copy=False)
            written[list(rows)] = True
            if progress is not None:
                progress(int(written.sum()))
        if not written.all():
            raise RuntimeError(f"feature cache {path}: {int((~written).sum())} rows not written")
        array.flush()
        del array
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


class DamagedCacheError(UserError, ValueError):
    """A feature-cache file that cannot be read as the array it should hold."""


class CachedFeatures:
    """Read access to one cached subset; the memory map opens lazily in each process (so the
    object can be sent to DataLoader workers)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._array: np.ndarray | None = None
        _ = self.array  # a damaged file is named now, not in a DataLoader worker later

    def __getstate__(self) -> dict:
        return {"path": self.path, "_array": None}

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            try:
                self._array = np.load(self.path, mmap_mode="r")
            except (ValueError, OSError, EOFError) as exc:  # truncated, not .npy, pickled
                raise DamagedCacheError(
                    f"{self.path}: damaged feature cache ({exc}); delete it to rebuild it"
                ) from None
        return self._array

    def __len__(self) -> int:
        return int(self.array.shape[0])

    def __getitem__(self, index: int) -> Tensor:
        """Features ``[M, T]`` of row ``index`` as float32."""
        return torch.from_numpy(np.array(self.array[index], dtype=np.float32))
