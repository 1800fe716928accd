"""Sparse export: a pruned model's weights in a file whose size reflects its zeros.

A checkpoint stores every zero of a pruned model; this format stores, per floating-point tensor
of the state dict, a bitmask of the non-zero positions (1 bit per value) and the non-zero
values, whenever that is smaller than the dense tensor (at 80 % sparsity a float32 tensor takes
0.2 * 4 + 1/8 = 0.925 bytes per value instead of 4). Other tensors (integers, dense ones) are
stored as they are. The archive is a NumPy ``.npz`` (a zip file, deflate-compressed), written
atomically, and loaded with ``allow_pickle=False``: loading never runs code from the file.

Layout (few arrays, so the zip adds little): ``header`` is a UTF-8 JSON document (as a uint8
array) with the format name, the tensors in state-dict order (name, shape, torch dtype,
encoding, where their values and bitmask lie) and free ``metadata`` (for example the model's
component spec, so a tool can rebuild the model); ``values<f4``, ``values<i8``, ... hold the
stored values of all tensors of one storage dtype end to end; ``bitmask`` all packed bitmasks.
Values are compared with zero exactly, so a tensor loads back bit-identical (except that -0.0
becomes +0.0).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from sedkit.checkpoint import atomic_write
from sedkit.errors import UserError

FORMAT = "sedkit-sparse-state-dict"
FORMAT_VERSION = 1

#: Torch dtypes the format stores; bfloat16 travels as float32 (NumPy has no bfloat16).
_DTYPES = {
    str(dt): dt
    for dt in (
        torch.float64,
        torch.float32,
        torch.float16,
        torch.bfloat16,
        torch.int64,
        torch.int32,
        torch.int16,
        torch.int8,
        torch.uint8,
        torch.bool,
    )
}


@dataclass
class ExportSummary:
    """What :func:`export_sparse` wrote."""

    path: Path
    file_bytes: int  # size on disk
    dense_bytes: int  # the same tensors stored densely (uncompressed)
    total_values: int
    nonzero_values: int
    sparse_tensors: int  # tensors stored as bitmask + values


def _numpy(tensor: Tensor) -> np.ndarray:
    t = tensor.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.numpy()


def export_sparse(
    model: nn.Module | Mapping[str, Tensor],
    path: str | Path,
    *,
    metadata: Mapping[str, Any] | None = None,
) -> ExportSummary:
    """Write ``model``'s state dict (or a state dict) to ``path`` in the sparse format."""
    state = model.state_dict() if isinstance(model, nn.Module) else dict(model)
    values: dict[str, list[np.ndarray]] = {}  # storage dtype -> pieces, concatenated
    value_counts: dict[str, int] = {}
    bitmasks: list[np.ndarray] = []
    bitmask_bytes = 0
    entries = []
    dense_bytes = total = nonzero = n_sparse = 0
    for name, tensor in state.items():
        if str(tensor.dtype) not in _DTYPES:
            raise TypeError(f"export: {name} has unsupported dtype {tensor.dtype}")
        flat = _numpy(tensor).reshape(-1)
        nz = flat != 0
        count = int(nz.sum())
        total += flat.size
        nonzero += count
        dense_bytes += tensor.numel() * tensor.element_size()
        sparse_bytes = (flat.size + 7) // 8 + count * flat.itemsize
        sparse = tensor.is_floating_point() and flat.size > 0 and sparse_bytes < flat.nbytes
        stored = flat[nz] if sparse else flat
        storage = flat.dtype.str  # e.g. "<f4": the key of the array holding these values
        entry = {
            "name": name,
            "shape": list(tensor.shape),
            "dtype": str(tensor.dtype),
            "storage": storage,
            "offset": value_counts.get(storage, 0),
            "count": int(stored.size),
            "encoding": "bitmask" if sparse else "dense",
        }
        values.setdefault(storage, []).append(stored)
        value_counts[storage] = entry["offset"] + stored.size
        if sparse:
            packed = np.packbits(nz)
            entry["bitmask_offset"] = bitmask_bytes
            bitmasks.append(packed)
            bitmask_bytes += packed.size
            n_sparse += 1
        entries.append(entry)
    header = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "tensors": entries,
        "metadata": dict(metadata or {}),
    }
    arrays = {f"values{key}": np.concatenate(pieces) for key, pieces in values.items()}
    arrays["bitmask"] = np.concatenate(bitmasks) if bitmasks else np.zeros(0, np.uint8)
    arrays["header"] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    path = Path(path)
    atomic_write(path, lambda f: np.savez_compressed(f, **arrays))
    return ExportSummary(
        path=path,
        file_bytes=path.stat().st_size,
        dense_bytes=dense_bytes,
        total_values=total,
        nonzero_values=nonzero,
        sparse_tensors=n_sparse,
    )


def load_sparse(path: str | Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The state dict and the metadata stored by :func:`export_sparse`.

    Raises :class:`UserError` naming the file when it is missing or not in this format.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: exported model not found")
    try:
        with np.load(path, allow_pickle=False) as archive:
            header = json.loads(bytes(archive["header"]).decode("utf-8"))
            if header.get("format") != FORMAT or header.get("version") != FORMAT_VERSION:
                raise ValueError(f"format {header.get('format')!r} {header.get('version')!r}")
            arrays = {key: archive[key] for key in archive.files if key != "header"}
        state = {entry["name"]: _restore(arrays, entry) for entry in header["tensors"]}
    except UserError:
        raise
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
        raise UserError(
            f"{path}: not a sedkit sparse export ({type(exc).__name__}: {exc})"
        ) from None
    return state, header.get("metadata", {})


def _restore(arrays: dict[str, np.ndarray], entry: dict[str, Any]) -> Tensor:
    name = entry["name"]
    dtype = _DTYPES.get(entry["dtype"])
    if dtype is None:
        raise ValueError(f"tensor {name!r}: unsupported dtype {entry['dtype']!r}")
    shape = tuple(int(s) for s in entry["shape"])
    n = int(np.prod(shape, dtype=np.int64))
    offset, count = int(entry["offset"]), int(entry["count"])
    pool = arrays[f"values{entry['storage']}"]
    if offset < 0 or offset + count > pool.size:
        raise ValueError(f"tensor {name!r}: values out of range")
    values = pool[offset : offset + count]
    if entry["encoding"] == "bitmask":
        start = int(entry["bitmask_offset"])
        packed = arrays["bitmask"][start : start + (n + 7) // 8]
        nz = np.unpackbits(packed, count=n).astype(bool)
        if int(nz.sum()) != count:
            raise ValueError(f"tensor {name!r}: bitmask and values disagree")
        flat = np.zeros(n, dtype=pool.dtype)
        flat[nz] = values
        values = flat
    elif entry["encoding"] != "dense" or count != n:
        raise ValueError(f"tensor {name!r}: bad encoding {entry['encoding']!r} or size")
    return torch.from_numpy(np.array(values).reshape(shape)).to(dtype)


def load_sparse_into(model: nn.Module, path: str | Path) -> dict[str, Any]:
    """Load an export into ``model`` (all keys must match); returns the metadata."""
    state, metadata = load_sparse(path)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise UserError(f"{path}: does not fit this model: {exc}") from None
    return metadata
