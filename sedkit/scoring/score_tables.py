"""Frame score tables: one TSV per clip, as sed_scores_eval reads and writes them.

Each file is named ``<audio id>.tsv`` (the clip's file name without its extension) and holds a
header ``onset offset <class 1> <class 2> ...`` and one row per output frame: the frame's onset
and offset in seconds and the system's score of every class. Frames are contiguous (each
onset equals the previous offset). All files of a folder share one header.

Reading tens of thousands of small files one ``pandas.read_csv`` at a time costs about a
millisecond each; :func:`read_score_tables` reads the raw bytes of every file, checks the
headers, and parses all bodies in one pass of pandas' C parser. A file that fails to parse is
then re-read alone to name the line at fault.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from sedkit.errors import InputFileError
from sedkit.frames import mirror_index

SCORE_SUFFIX = ".tsv"


def audio_id(filename: str) -> str:
    """The key of a clip in a score folder: its file name without the extension."""
    return filename.rsplit(".", 1)[0] if "." in filename else filename


@dataclass
class ScoreTables:
    """The score tables of a set of clips, concatenated frame by frame.

    ``scores[starts[k]:starts[k + 1]]`` are the frames of ``clips[k]``, with onsets and offsets
    ``onsets``/``offsets`` of the same rows; ``classes`` names the columns of ``scores``.
    """

    clips: list[str]
    classes: list[str]
    scores: np.ndarray  # (n_frames, n_classes) float64
    onsets: np.ndarray  # (n_frames,)
    offsets: np.ndarray  # (n_frames,)
    starts: np.ndarray  # (n_clips + 1,) int64
    paths: list[Path]

    def select_classes(self, classes: Sequence[str]) -> ScoreTables:
        """The same tables with only ``classes`` (in that order)."""
        index = [self.classes.index(c) for c in classes]
        return ScoreTables(
            self.clips,
            list(classes),
            np.ascontiguousarray(self.scores[:, index]),
            self.onsets,
            self.offsets,
            self.starts,
            self.paths,
        )

    def select_clips(self, keep: np.ndarray) -> ScoreTables:
        """The tables of the clips where ``keep`` (a boolean per clip) is true."""
        lengths = np.diff(self.starts)
        frames = np.repeat(keep, lengths)
        return ScoreTables(
            [c for c, k in zip(self.clips, keep, strict=True) if k],
            self.classes,
            self.scores[frames],
            self.onsets[frames],
            self.offsets[frames],
            np.concatenate(([0], np.cumsum(lengths[keep]))).astype(np.int64),
            [p for p, k in zip(self.paths, keep, strict=True) if k],
        )


def score_files(folder: str | os.PathLike) -> dict[str, Path]:
    """The score tables of a folder by audio id (``*.tsv``, sorted by name)."""
    root = Path(folder)
    if not root.is_dir():
        raise InputFileError(
            root, "score folder not found" if not root.exists() else "not a folder"
        )
    # Sorted by name (strings compare far faster than paths; one folder, so the same order).
    found = sorted(root.glob(f"*{SCORE_SUFFIX}"), key=lambda p: p.name)
    files = {p.name[: -len(SCORE_SUFFIX)]: p for p in found}
    if not files:
        raise InputFileError(root, "no score tables (<audio id>.tsv) in this folder")
    return files


def _header(path: Path, line: bytes) -> list[str]:
    names = line.decode("utf-8-sig").rstrip("\r\n").split("\t")
    if len(names) < 3 or names[0] != "onset" or names[1] != "offset":
        raise InputFileError(
            path, f"header {names!r}: expected onset, offset and one column per class", line=1
        )
    if len(set(names)) != len(names):
        duplicated = sorted({n for n in names if names.count(n) > 1})
        raise InputFileError(path, f"duplicated column(s) {', '.join(duplicated)}", line=1)
    return names[2:]


def _locate_bad_row(path: Path, n_columns: int) -> InputFileError:
    """Re-read one file to name its first malformed line."""
    for line_no, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if line_no == 1:
            continue
        if not line.strip():
            return InputFileError(path, "blank line in a score table", line=line_no)
        fields = line.split("\t")
        if len(fields) != n_columns:
            return InputFileError(
                path, f"{len(fields)} fields, but the header has {n_columns}", line=line_no
            )
        for field in fields:
            try:
                float(field)
            except ValueError:
                return InputFileError(path, f"{field!r} is not a number", line=line_no)
    return InputFileError(path, "could not parse this score table")


def read_score_tables(files: Iterable[Path], *, ids: Sequence[str] | None = None) -> ScoreTables:
    """Read score tables (see the module docstring) into one :class:`ScoreTables`.

    ``ids`` are the audio ids of ``files`` (default: the file names without ``.tsv``). Every
    problem raises :class:`~sedkit.errors.InputFileError` naming the file and line: a header
    that differs from the first file's, a field that is not a number, NaN scores, frames of zero
    or negative length, frames that are not contiguous, a table without frames.
    """
    paths = [Path(p) for p in files]
    if ids is None:
        ids = [
            p.name[: -len(SCORE_SUFFIX)] if p.name.endswith(SCORE_SUFFIX) else p.stem for p in paths
        ]
    bodies: list[bytes] = []
    rows: list[int] = []
    classes: list[str] | None = None
    first_header = b""
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as e:
            raise InputFileError(path, f"cannot read: {e.strerror}") from None
        header, _, body = data.partition(b"\n")
        if header.rstrip(b"\r") != first_header:
            names = _header(path, header)
            if classes is None:
                classes, first_header = names, header.rstrip(b"\r")
            elif names != classes:
                raise InputFileError(
                    path,
                    f"classes {names} differ from {classes} in {paths[0]}: all score tables "
                    "must share one header",
                    line=1,
                )
        if body and not body.endswith(b"\n"):
            body += b"\n"
        n = body.count(b"\n")
        if n == 0:
            raise InputFileError(path, "no frames: a score table needs at least one row")
        bodies.append(body)
        rows.append(n)
    if classes is None:
        raise InputFileError("<score tables>", "no score tables given")
    n_columns = len(classes) + 2
    starts = np.concatenate(([0], np.cumsum(rows))).astype(np.int64)
    joined = b"".join(bodies)
    del bodies  # (half the memory of the text; re-read only to name a file at fault)
    try:
        table = _parse_floats(joined, n_columns)
        if len(table) != starts[-1]:
            raise ValueError("row count")
    except (ValueError, pd.errors.ParserError):
        table = None
    del joined
    if table is None or np.isnan(table).any():
        bad = _first_bad_file(paths, [p.read_bytes().partition(b"\n")[2] for p in paths], n_columns)
        raise (
            _locate_bad_row(paths[bad], n_columns)
            if bad is not None
            else InputFileError("<score tables>", "could not parse the score tables")
        )
    onsets, offsets, scores = table[:, 0], table[:, 1], table[:, 2:]
    _check_frames(paths, starts, onsets, offsets)
    return ScoreTables(list(ids), classes, scores, onsets, offsets, starts, paths)


def _parse_floats(body: bytes, n_columns: int) -> np.ndarray:
    """Tab-separated rows of ``n_columns`` numbers (no header) as float64 ``[rows, n_columns]``;
    a missing or blank cell is NaN; raises ``ValueError`` or ``ParserError`` on text or extra
    columns."""
    return pd.read_csv(
        io.BytesIO(body),
        sep="\t",
        header=None,
        dtype=np.float64,
        engine="c",
        skip_blank_lines=False,
        names=range(n_columns),
    ).to_numpy(dtype=np.float64)


def _first_bad_file(paths: list[Path], bodies: list[bytes], n_columns: int) -> int | None:
    for i, body in enumerate(bodies):
        try:
            values = _parse_floats(body, n_columns)
        except (ValueError, pd.errors.ParserError):
            return i
        if np.isnan(values).any():
            nan_row = int(np.flatnonzero(np.isnan(values).any(axis=1))[0])
            if b"\t\t" in body or body.startswith(b"\t") or b"\n\n" in body:
                return i
            raise InputFileError(paths[i], "NaN score", line=nan_row + 2)
    return None


def _check_frames(
    paths: list[Path], starts: np.ndarray, onsets: np.ndarray, offsets: np.ndarray
) -> None:
    """Frames must have positive length, finite times, and follow each other without gaps."""
    n = len(onsets)
    clip_of_row = np.repeat(np.arange(len(paths)), np.diff(starts))
    line = np.arange(n) - starts[clip_of_row] + 2
    bad = ~np.isfinite(onsets) | ~np.isfinite(offsets) | (onsets < 0) | (offsets <= onsets)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputFileError(
            paths[clip_of_row[i]],
            f"frame {onsets[i]:g}-{offsets[i]:g} s: times must be finite, onset >= 0 and "
            "offset > onset",
            line=int(line[i]),
        )
    follows = np.ones(n, dtype=bool)
    follows[1:] = onsets[1:] == offsets[:-1]
    follows[starts[:-1]] = True
    if not follows.all():
        i = int(np.flatnonzero(~follows)[0])
        raise InputFileError(
            paths[clip_of_row[i]],
            f"frame onset {onsets[i]!r} differs from the previous frame's offset "
            f"{offsets[i - 1]!r}: frames must be contiguous",
            line=int(line[i]),
        )


def median_filtered(scores: np.ndarray, length: int, *, axis: int = -2) -> np.ndarray:
    """Running median of ``length`` frames (made odd) along ``axis``, edges mirrored
    (``d c b a | a b c d``) like the decoder's filter of decisions: thresholding the filtered
    scores gives exactly the filtered decisions (a median commutes with thresholds)."""
    scores = np.asarray(scores, dtype=np.float64)
    n = scores.shape[axis]
    if length <= 1 or n == 0:
        return scores.copy()
    if length % 2 == 0:
        length += 1
    padded = np.take(scores, mirror_index(n, length // 2), axis=axis)
    windows = np.lib.stride_tricks.sliding_window_view(padded, length, axis=axis)
    return np.median(windows, axis=-1)


def tables_from_probs(
    filenames: Sequence[str],
    probs: np.ndarray,
    classes: Sequence[str],
    *,
    frame_hop: float,
    duration: float | None = None,
    median_filter_frames: Sequence[int] | None = None,
) -> ScoreTables:
    """Score tables of ``[clips, frames, classes]`` probabilities: frame ``j`` spans
    ``[j * frame_hop, (j + 1) * frame_hop)`` (the last offset cut at ``duration`` when that is
    shorter); per class, a median filter of ``median_filter_frames[k]`` frames first; scores
    rounded to 6 decimals, as :func:`write_score_tables` writes them."""
    probs = np.asarray(probs, dtype=np.float64)
    n_clips, n_frames, n_classes = probs.shape
    if median_filter_frames is not None:
        probs = probs.copy()
        for k, length in enumerate(median_filter_frames):
            if length > 1:
                probs[:, :, k] = median_filtered(probs[:, :, k], length, axis=1)
    # Rounded as written (6 decimals): scores in memory and read back from the files then
    # have the same order and ties, hence the same PSDS.
    probs = np.round(probs, 6)
    edges = np.round(np.arange(n_frames + 1) * float(frame_hop), 6)
    if duration is not None and edges[-2] < duration < edges[-1]:
        edges[-1] = duration
    return ScoreTables(
        [audio_id(str(f)) for f in filenames],
        list(classes),
        probs.reshape(n_clips * n_frames, n_classes),
        np.tile(edges[:-1], n_clips),
        np.tile(edges[1:], n_clips),
        np.arange(n_clips + 1, dtype=np.int64) * n_frames,
        [Path(f"{audio_id(str(f))}{SCORE_SUFFIX}") for f in filenames],
    )


def write_score_tables(folder: str | os.PathLike, tables: ScoreTables, *, decimals: int = 6):
    """Write every clip of ``tables`` as ``<folder>/<audio id>.tsv`` (see the module
    docstring), each file written beside its destination and moved into place."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    header = "\t".join(["onset", "offset", *tables.classes]) + "\n"
    fmt = "\t".join(["%.6f", "%.6f"] + [f"%.{int(decimals)}f"] * len(tables.classes))
    for k, clip in enumerate(tables.clips):
        lo, hi = tables.starts[k], tables.starts[k + 1]
        table = np.column_stack((tables.onsets[lo:hi], tables.offsets[lo:hi], tables.scores[lo:hi]))
        path = root / f"{clip}{SCORE_SUFFIX}"
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=root)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
                f.write(header)
                np.savetxt(f, table, fmt=fmt, delimiter="\t")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return root
