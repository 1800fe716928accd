"""Label files and label encoding: DESED TSV readers, frame/clip targets, decoding to events.

Time grid (one convention for encoding and decoding). The feature extractor's input frame ``i``
is centred at ``i * hop`` (``center=True``) and is given the span ``[i * hop, (i + 1) * hop)``,
as in the DCASE baselines. A model that pools time by ``p`` makes output frame ``j`` out of
input frames ``[j * p, (j + 1) * p)``, so output frame ``j`` spans
``[j * frame_hop_s, (j + 1) * frame_hop_s)`` with ``frame_hop_s = p * hop``. An event
``(onset, offset)`` activates every output frame its span overlaps:
``floor(onset / frame_hop_s) <= j < ceil(offset / frame_hop_s)``; decoding maps a run of active
frames ``[a, b)`` back to ``(a * frame_hop_s, b * frame_hop_s)``. The round trip therefore moves
an onset earlier and an offset later by less than one output frame.
"""

from __future__ import annotations

import codecs
import csv
import io
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from sedkit import class_lists
from sedkit.errors import InputFileError
from sedkit.frames import median_filter_frames, mirror_index

__all__ = [
    "DESED_CLASSES",
    "Event",
    "LabelEncoder",
    "binary_median_filter",
    "read_durations_tsv",
    "read_strong_tsv",
    "read_unlabeled_tsv",
    "read_weak_tsv",
]

#: The ten DESED classes in DESED's (alphabetical) order.
DESED_CLASSES: list[str] = list(class_lists.DESED_CLASSES)


@dataclass(frozen=True)
class Event:
    """One strongly labeled event, in seconds from the clip start."""

    onset: float
    offset: float
    event_label: str


# --------------------------------------------------------------------------------------------
# TSV readers
# --------------------------------------------------------------------------------------------
def _decode_text(path: Path) -> str:
    """The whole file as text. UTF-8 with an optional byte order mark (spreadsheet exports
    start with one); the file is decoded at once so that an undecodable byte is reported on its
    own line (``csv`` decodes ahead in blocks and would blame an earlier line)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputFileError(path, f"cannot open: {exc}") from exc
    start = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        return raw[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = start + exc.start
        if b"\x00" in raw:  # NUL bytes and not UTF-8: audio or another binary file
            raise InputFileError(
                path, f"not a text TSV file (binary data; {exc.reason} at byte {at})", line=1
            ) from None
        raise InputFileError(
            path,
            f"not UTF-8 text ({exc.reason}: 0x{raw[at]:02x} at byte {at}); save it as UTF-8",
            line=raw[:at].count(b"\n") + 1,
        ) from None


def _read_rows(path: Path, required: Sequence[str]) -> Iterable[tuple[int, dict[str, str]]]:
    """Rows of a tab-separated file with a header, as ``(line number, {column: value})``.

    Columns may come in any order (DESED detection files put ``event_label`` first); blank lines
    are skipped; a row with more fields than the header, or a column named twice in the header,
    is an error.
    """
    if not path.is_file():
        raise InputFileError(path, "file not found")
    text = _decode_text(path)
    # newline="": lines end at \n, \r\n or \r, as csv expects of files opened that way.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise InputFileError(path, "empty file (expected a header line)", line=1) from None
    except csv.Error as exc:
        raise InputFileError(path, f"not a text TSV file: {exc}", line=1) from None
    repeated = [name for name, count in Counter(header).items() if name and count > 1]
    if repeated:
        raise InputFileError(path, f"duplicated column(s) {', '.join(repeated)}", line=1)
    missing = [c for c in required if c not in header]
    if missing:
        raise InputFileError(
            path,
            f"header must name the columns {', '.join(required)} (tab-separated); "
            f"missing {', '.join(missing)}, found {header}",
            line=1,
        )
    line = 1
    try:
        for fields in reader:
            line = reader.line_num
            if not any(f.strip() for f in fields):
                continue
            if len(fields) > len(header):
                raise InputFileError(
                    path, f"{len(fields)} fields but the header has {len(header)}", line=line
                )
            fields = fields + [""] * (len(header) - len(fields))
            yield line, {h: f.strip() for h, f in zip(header, fields, strict=True)}
    except csv.Error as exc:
        raise InputFileError(path, f"unreadable row: {exc}", line=line + 1) from None


def _check_filename(path: Path, line: int, filename: str) -> str:
    if not filename:
        raise InputFileError(path, "empty filename", line=line)
    return filename


def _check_label(path: Path, line: int, label: str, classes: Sequence[str] | None) -> str:
    if classes is not None and label not in classes:
        raise InputFileError(
            path, f"unknown event label {label!r}; known: {', '.join(classes)}", line=line
        )
    return label


def read_strong_tsv(
    path: str | Path, classes: Sequence[str] | None = None
) -> dict[str, list[Event]]:
    """Strong labels ``filename onset offset event_label`` -> ``{filename: [Event, ...]}``.

    Filenames keep their first-appearance order. A row with an empty label (and empty or any
    onset/offset) lists a clip without events, which maps to an empty list. An exactly repeated
    event (same clip, onset, offset and label) is kept once: twice in a reference it would be a
    second event that no detection can match. Raises InputFileError naming the file and line
    for a malformed row or, with ``classes``, an unknown label.
    """
    path = Path(path)
    clips: dict[str, list[Event]] = {}
    seen: set[tuple[str, Event]] = set()
    for line, row in _read_rows(path, ("filename", "onset", "offset", "event_label")):
        filename = _check_filename(path, line, row["filename"])
        events = clips.setdefault(filename, [])
        label = row["event_label"]
        if not label:
            continue
        _check_label(path, line, label, classes)
        try:
            onset, offset = float(row["onset"]), float(row["offset"])
        except ValueError:
            raise InputFileError(
                path,
                f"onset/offset must be numbers, got {row['onset']!r}, {row['offset']!r}",
                line=line,
            ) from None
        if not (math.isfinite(onset) and math.isfinite(offset)) or onset < 0 or offset < onset:
            raise InputFileError(
                path, f"need 0 <= onset <= offset, got onset {onset}, offset {offset}", line=line
            )
        event = Event(onset, offset, label)
        if (filename, event) not in seen:
            seen.add((filename, event))
            events.append(event)
    return clips


def read_weak_tsv(path: str | Path, classes: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Weak labels ``filename event_labels`` (comma-separated) -> ``{filename: [labels]}``."""
    path = Path(path)
    clips: dict[str, list[str]] = {}
    for line, row in _read_rows(path, ("filename", "event_labels")):
        filename = _check_filename(path, line, row["filename"])
        if filename in clips:
            raise InputFileError(path, f"{filename} is listed twice", line=line)
        labels = [x.strip() for x in row["event_labels"].split(",") if x.strip()]
        clips[filename] = [_check_label(path, line, x, classes) for x in labels]
    return clips


def read_unlabeled_tsv(path: str | Path) -> list[str]:
    """Unlabeled clips ``filename`` -> list of filenames (duplicates dropped)."""
    path = Path(path)
    seen: dict[str, None] = {}
    for line, row in _read_rows(path, ("filename",)):
        seen[_check_filename(path, line, row["filename"])] = None
    return list(seen)


def read_durations_tsv(path: str | Path) -> dict[str, float]:
    """Durations ``filename duration`` -> ``{filename: seconds}``.

    A clip listed twice with the same duration is accepted; with two different durations it is
    an error naming the second row (which one is right cannot be told).
    """
    path = Path(path)
    durations: dict[str, float] = {}
    first_line: dict[str, int] = {}
    for line, row in _read_rows(path, ("filename", "duration")):
        filename = _check_filename(path, line, row["filename"])
        try:
            value = float(row["duration"])
        except ValueError:
            raise InputFileError(
                path, f"duration must be a number, got {row['duration']!r}", line=line
            ) from None
        if not math.isfinite(value) or value <= 0:
            raise InputFileError(path, f"duration must be positive, got {value}", line=line)
        if filename in durations and durations[filename] != value:
            raise InputFileError(
                path,
                f"{filename} has duration {value} here but {durations[filename]} on line "
                f"{first_line[filename]}",
                line=line,
            )
        first_line.setdefault(filename, line)
        durations[filename] = value
    return durations


# --------------------------------------------------------------------------------------------
# Median filter
# --------------------------------------------------------------------------------------------
def binary_median_filter(active: np.ndarray, length: int, *, axis: int = 0) -> np.ndarray:
    """Median filter of boolean decisions along ``axis`` over ``length`` frames (made odd).

    For binary input the median is a majority vote, computed here with running sums, so whole
    ``[B, T]`` arrays are filtered at once. Edges are mirrored (``d c b a | a b c d``), like
    ``scipy.ndimage.median_filter``'s default mode, which the DESED baselines use. Filtering
    thresholded decisions equals thresholding filtered probabilities for an odd window, since
    a median commutes with monotone maps.
    """
    active = np.asarray(active, dtype=bool)
    n = active.shape[axis]
    if length <= 1 or n == 0:
        return active.copy()
    if length % 2 == 0:
        length += 1
    half = length // 2
    padded = np.take(active.astype(np.int32), mirror_index(n, half), axis=axis)
    zero_shape = list(padded.shape)
    zero_shape[axis] = 1
    cumulative = np.concatenate(
        [np.zeros(zero_shape, dtype=np.int64), np.cumsum(padded, axis=axis)], axis=axis
    )
    sums = np.take(cumulative, np.arange(length, n + length), axis=axis) - np.take(
        cumulative, np.arange(n), axis=axis
    )
    return sums > half


# --------------------------------------------------------------------------------------------
# Encoder
# --------------------------------------------------------------------------------------------
class LabelEncoder:
    """Strong events <-> frame targets at the model's output frame rate; weak labels <-> clip
    targets. See the module docstring for the time grid.

    ``frame_hop_s`` is the model's output hop (feature hop times time pooling); ``n_frames`` the
    output frames per clip. With ``clip_duration_s``, decoded offsets are clipped to it.
    """

    def __init__(
        self,
        classes: list[str],
        *,
        frame_hop_s: float,
        n_frames: int,
        clip_duration_s: float | None = None,
    ):
        if not classes or len(set(classes)) != len(classes):
            raise ValueError(f"classes must be non-empty and unique, got {classes}")
        if frame_hop_s <= 0 or n_frames <= 0:
            raise ValueError("frame_hop_s and n_frames must be positive")
        self.classes = list(classes)
        self.class_index = {c: i for i, c in enumerate(self.classes)}
        self.frame_hop_s = float(frame_hop_s)
        self.n_frames = int(n_frames)
        self.clip_duration_s = clip_duration_s

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def _index(self, label: str) -> int:
        try:
            return self.class_index[label]
        except KeyError:
            raise ValueError(f"unknown event label {label!r}; known: {self.classes}") from None

    def frame_span(self, onset: float, offset: float) -> tuple[int, int]:
        """Output frames ``[first, stop)`` an event overlaps, clipped to the clip's frames."""
        # A tiny tolerance keeps times that are exact frame boundaries (3 * 0.064) from
        # spilling into the neighbouring frame through floating-point error.
        eps = 1e-6
        first = math.floor(onset / self.frame_hop_s + eps)
        stop = math.ceil(offset / self.frame_hop_s - eps)
        stop = max(stop, first + 1)  # a zero-length event still marks its frame
        return max(0, min(first, self.n_frames)), max(0, min(stop, self.n_frames))

    def encode_strong(self, events: Iterable[Event | tuple[float, float, str | None]]) -> Tensor:
        """Events ``(onset, offset, label)`` -> many-hot ``[n_frames, C]`` float32 targets.

        Events without a label (a clip with no events) are ignored.
        """
        target = torch.zeros(self.n_frames, self.n_classes)
        for event in events:
            if isinstance(event, Event):
                onset, offset, label = event.onset, event.offset, event.event_label
            else:
                onset, offset, label = event
            if not label:
                continue
            first, stop = self.frame_span(float(onset), float(offset))
            target[first:stop, self._index(label)] = 1.0
        return target

    def encode_weak(self, labels: Iterable[str]) -> Tensor:
        """Clip labels -> many-hot ``[C]`` float32 target."""
        target = torch.zeros(self.n_classes)
        for label in labels:
            if label:
                target[self._index(label)] = 1.0
        return target

    def strong_to_weak(self, strong: Tensor) -> Tensor:
        """Clip targets implied by frame targets (``[..., T', C]`` -> ``[..., C]``)."""
        return strong.amax(dim=-2)

    def median_filter_lengths(self, median_filter_s: float | Mapping[str, float]) -> list[int]:
        """The decoder's median filter length in frames for each class (nearest odd number of
        output frames, :func:`median_filter_frames`); score tables are filtered the same way."""
        seconds = self._per_class(median_filter_s, "median_filter_s")
        return [median_filter_frames(s, self.frame_hop_s) for s in seconds]

    def _per_class(self, value: float | Sequence[float] | Mapping[str, float], name: str):
        if isinstance(value, Mapping):
            unknown = set(value) - set(self.classes)
            if unknown:
                raise ValueError(f"{name}: unknown classes {sorted(unknown)}")
            return [float(value.get(c, 0.0)) for c in self.classes]
        if isinstance(value, int | float):
            return [float(value)] * self.n_classes
        values = [float(v) for v in value]
        if len(values) != self.n_classes:
            raise ValueError(f"{name}: expected {self.n_classes} values, got {len(values)}")
        return values

    def decode_strong(
        self,
        frame_probs: Tensor | np.ndarray,
        *,
        threshold: float | Sequence[float] | Mapping[str, float] = 0.5,
        median_filter_s: float | Mapping[str, float] = 0.0,
        merge_gap_s: float = 0.0,
    ) -> list[tuple[float, float, str]]:
        """Frame probabilities ``[T', C]`` -> events ``(onset, offset, label)`` in seconds.

        A frame is active when its probability is strictly greater than the class threshold
        (``p > threshold``); decisions are median filtered per class (window in seconds,
        rounded to whole frames); runs of active frames become events, and runs of one class
        separated by at most ``merge_gap_s`` are merged. Events are sorted by onset, then label.
        """
        probs = _as_numpy(frame_probs)
        if probs.ndim != 2:
            raise ValueError(f"expected frame_probs [T', {self.n_classes}], got {probs.shape}")
        rows = self._decode(probs[None], threshold, median_filter_s, merge_gap_s)
        return [(onset, offset, label) for _, onset, offset, label in rows]

    def decode_batch(
        self,
        filenames: Sequence[str],
        frame_probs: Tensor | np.ndarray,
        **kwargs,
    ) -> pd.DataFrame:
        """Decode ``[B, T', C]`` probabilities of ``filenames`` into a DataFrame with columns
        ``filename onset offset event_label`` (clips without events contribute no rows).
        Same keyword arguments as :meth:`decode_strong`; the whole batch is decoded at once."""
        probs = _as_numpy(frame_probs)
        if probs.ndim != 3 or len(filenames) != probs.shape[0]:
            raise ValueError(f"{len(filenames)} filenames for frame_probs {probs.shape}")
        rows = self._decode(probs, **kwargs)
        table = [(filenames[b], onset, offset, label) for b, onset, offset, label in rows]
        return pd.DataFrame(table, columns=["filename", "onset", "offset", "event_label"])

    def _decode(
        self,
        probs: np.ndarray,
        threshold: float | Sequence[float] | Mapping[str, float] = 0.5,
        median_filter_s: float | Mapping[str, float] = 0.0,
        merge_gap_s: float = 0.0,
    ) -> list[tuple[int, float, float, str]]:
        """``[B, T', C]`` -> ``(clip index, onset, offset, label)`` sorted by clip, onset,
        label."""
        if probs.shape[2] != self.n_classes:
            raise ValueError(f"expected {self.n_classes} classes, got frame_probs {probs.shape}")
        thresholds = np.asarray(self._per_class(threshold, "threshold"))
        active = probs > thresholds
        for k, length in enumerate(self.median_filter_lengths(median_filter_s)):
            if length > 1:
                active[:, :, k] = binary_median_filter(active[:, :, k], length, axis=1)
        # Run boundaries: +1 where a run starts, -1 one past where it ends.
        edges = np.diff(np.pad(active.astype(np.int8), ((0, 0), (1, 1), (0, 0))), axis=1)
        starts, stops = np.argwhere(edges == 1), np.argwhere(edges == -1)  # (b, t, c) rows
        # Pair starts and stops per (clip, class) in time order.
        starts = starts[np.lexsort((starts[:, 1], starts[:, 2], starts[:, 0]))]
        stops = stops[np.lexsort((stops[:, 1], stops[:, 2], stops[:, 0]))]
        gap_frames = int(round(merge_gap_s / self.frame_hop_s))
        if gap_frames > 0 and len(starts) > 1:
            same = (starts[1:, 0] == starts[:-1, 0]) & (starts[1:, 2] == starts[:-1, 2])
            merge = same & (starts[1:, 1] - stops[:-1, 1] <= gap_frames)
            keep_start = np.concatenate([[True], ~merge])
            keep_stop = np.concatenate([~merge, [True]])
            starts, stops = starts[keep_start], stops[keep_stop]
        end_s = probs.shape[1] * self.frame_hop_s
        if self.clip_duration_s is not None:
            end_s = min(end_s, self.clip_duration_s)
        rows = [
            (int(b), t0 * self.frame_hop_s, min(t1 * self.frame_hop_s, end_s), self.classes[k])
            for (b, t0, k), t1 in zip(starts.tolist(), stops[:, 1].tolist(), strict=True)
        ]
        rows = [r for r in rows if r[2] > r[1]]
        rows.sort(key=lambda r: (r[0], r[1], r[3]))
        return rows


def _as_numpy(frame_probs: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(frame_probs, Tensor):
        return frame_probs.detach().float().cpu().numpy()
    return np.asarray(frame_probs, dtype=np.float32)
