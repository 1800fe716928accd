"""Building blocks shared by the embedded benchmark generators (``sedkit synth NAME OUT_DIR``).

Seeded random streams, spectral shapes on an rfft grid, FFT-friendly lengths, a job runner
whose output does not depend on the number of worker processes, and the staged output folder
that an interrupted build never leaves looking complete. numpy and the standard library only,
so that a generator stays importable without torch.

The generators' files must stay byte-identical for a preset and seed: a change to any helper
here that alters a result changes every generator's output and must bump their
``GENERATOR_VERSION``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import json
import multiprocessing
import os
import shutil
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from sedkit.errors import UserError

__all__ = [
    "band",
    "build_into",
    "check_preset",
    "config_for_card",
    "fast_len_at_least",
    "fast_len_at_most",
    "filter_magnitude",
    "message_function",
    "rfft_freqs",
    "run_jobs",
    "seeded_rng",
    "staged_output",
    "tilt",
    "unit_rms",
    "write_json",
    "write_lines",
    "write_table",
]

T = TypeVar("T")
R = TypeVar("R")


# --------------------------------------------------------------------------------------------
# Seeds, logging, presets
# --------------------------------------------------------------------------------------------
def _name_key(name: str) -> int:
    """A stable integer for a name (seed material that does not depend on PYTHONHASHSEED)."""
    return zlib.crc32(name.encode("utf-8"))


def seeded_rng(seed: int, *parts: int | str) -> np.random.Generator:
    """A generator keyed by ``(seed, *parts)``; string parts enter through their CRC-32.

    Keying every draw by what is drawn (a clip, a location) makes it independent of the
    order and the process in which the work is done.
    """
    return np.random.default_rng(
        np.random.SeedSequence([seed, *(p if isinstance(p, int) else _name_key(p) for p in parts)])
    )


def message_function(log: Any) -> Callable[[str], None]:
    """A one-argument message function from a logger (its ``info``), a callable or None."""
    if log is None:
        return lambda message: None
    info = getattr(log, "info", None)
    return info if callable(info) else log


def check_preset(preset: str, presets: Mapping[str, T]) -> T:
    """The configuration of ``preset``; UserError naming the choices when it is unknown."""
    if preset not in presets:
        raise UserError(f"unknown synth preset {preset!r}; choose from {', '.join(presets)}")
    return presets[preset]


# --------------------------------------------------------------------------------------------
# Spectral shapes
# --------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def rfft_freqs(n: int, sr: int) -> np.ndarray:
    """The rfft frequency grid of ``n`` samples at ``sr`` (cached and read-only: the clips of
    one build share their length)."""
    f = np.fft.rfftfreq(n, 1.0 / sr)
    f.flags.writeable = False
    return f


def band(f: np.ndarray, low_hz: float, high_hz: float, order: int = 2) -> np.ndarray:
    """Butterworth-like band-pass magnitude response."""
    f = np.maximum(f, 1e-3)
    return 1.0 / np.sqrt((1.0 + (low_hz / f) ** (2 * order)) * (1.0 + (f / high_hz) ** (2 * order)))


def tilt(f: np.ndarray, exponent: float, ref_hz: float = 1000.0) -> np.ndarray:
    """Power-law magnitude (-0.5: pink, -1: brown)."""
    return (np.maximum(f, 20.0) / ref_hz) ** exponent


def filter_magnitude(x: np.ndarray, magnitude: np.ndarray) -> np.ndarray:
    """Zero-phase filtering of ``x`` by a magnitude response on its rfft grid."""
    return np.fft.irfft(np.fft.rfft(x) * magnitude, len(x))


def unit_rms(x: np.ndarray) -> np.ndarray:
    """``x`` scaled to unit RMS (silence stays silence)."""
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def fast_len_at_least(n: int) -> int:
    """The smallest 5-smooth number (2^a 3^b 5^c) >= ``n``: a fast FFT length for padding."""
    best = 1 << int(np.ceil(np.log2(n)))
    p5 = 1
    while p5 < 2 * n:
        p35 = p5
        while p35 < 2 * n:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def fast_len_at_most(n: int) -> int:
    """The largest 5-smooth number (2^a 3^b 5^c) <= ``n``: FFTs of such lengths are fast,
    while lengths with a large prime factor can be 100 times slower."""
    best, power2 = 1, 1
    while power2 <= n:
        power3 = power2
        while power3 <= n:
            power5 = power3
            while power5 <= n:
                best = max(best, power5)
                power5 *= 5
            power3 *= 3
        power2 *= 2
    return best


# --------------------------------------------------------------------------------------------
# Running jobs and writing the tree
# --------------------------------------------------------------------------------------------
def run_jobs(fn: Callable[[T], R], jobs: Sequence[T], n_workers: int) -> list[R]:
    """``[fn(job) for job in jobs]``, in order, over ``n_workers`` processes when > 1.

    Every job carries its own seed, so the results do not depend on ``n_workers``. Processes
    are spawned: safe even when the caller has started threads (torch), and the same on
    every OS (``fn`` and the jobs must be picklable).
    """
    if n_workers <= 1 or len(jobs) < 2:
        return [fn(job) for job in jobs]
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(n_workers, mp_context=context) as pool:
        return list(pool.map(fn, jobs, chunksize=max(1, len(jobs) // (8 * n_workers))))


@contextlib.contextmanager
def staged_output(out_dir: Path) -> Iterator[Path]:
    """A staging folder next to ``out_dir`` that becomes ``out_dir`` when the block succeeds.

    ``out_dir`` must be absent or empty (else UserError). On any exception the staging folder
    is removed, so an interrupted build never leaves a half dataset that looks complete.
    """
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise UserError(f"{out_dir}: output folder exists and is not empty; choose another one")
    staging = out_dir.parent / f".{out_dir.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir(parents=True)
    except OSError as error:  # a read-only folder or file system (root passes os.access)
        raise UserError(f"{out_dir}: cannot be written ({error.strerror})") from None
    try:
        yield staging
        if out_dir.exists():
            out_dir.rmdir()  # empty, checked above
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def build_into(
    out_dir: str | Path, log: Any, write: Callable[[Path, Callable[[str], None]], str]
) -> Path:
    """Build a benchmark into ``out_dir`` (absent or empty); returns its dataset card's path.

    ``write(staging, say)`` fills the staging folder of :func:`staged_output` and returns what
    it wrote (``"synth scenes: 120 clips"``), logged through ``log`` with the time taken.
    """
    say = message_function(log)
    out_dir = Path(out_dir).resolve()
    started = time.time()
    with staged_output(out_dir) as staging:
        summary = write(staging, say)
    say(f"{summary} in {time.time() - started:.1f} s -> {out_dir}")
    return out_dir / "dataset_card.json"


def write_lines(path: Path, lines: Sequence[str]) -> None:
    """Text lines, each ending with a newline (UTF-8); parent folders are created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_table(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A tab-separated table with a header line."""
    write_lines(path, ["\t".join(header)] + ["\t".join(str(v) for v in row) for row in rows])


def write_json(path: Path, document: Mapping[str, Any]) -> None:
    """A JSON document (a dataset card), indented, with a final newline."""
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def config_for_card(config: Any) -> dict[str, Any]:
    """A build configuration (dataclass) as recorded in its dataset card: ``n_workers`` is
    left out, since it never changes the files and the card is one of them."""
    return {k: v for k, v in dataclasses.asdict(config).items() if k != "n_workers"}
