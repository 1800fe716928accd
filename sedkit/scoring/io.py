"""Reading and writing DESED-style event tables, with errors that name the file and line.

A scorer sees hand-edited and machine-written files (BOM, CRLF, columns in any order, clips
without events, stray empty labels) and must report every problem as ``FILE:LINE: what is
wrong``. Clean files take a fast path (pandas' C parser, then vectorised checks); a file that
fails any check is re-read as text to find and name each faulty line. Both paths accept the
same files and return the same frame.

Conventions of the returned frames:

- event tables have the columns ``filename, onset, offset, event_label`` (float seconds); the
  index is the 1-based line number in the source file (name ``line``), so later checks (unknown
  labels, unknown clips) can still name the line;
- a clip that holds no event appears as one row whose ``onset``, ``offset`` and ``event_label``
  are NaN (the DESED convention for ground truth), so ``df["filename"].unique()`` lists every
  clip the file mentions, in file order; ``df.attrs["source"]`` is the path. (Only that short
  string goes in ``attrs``: pandas deep-copies ``attrs`` on every operation.)
"""

from __future__ import annotations

import csv
import io
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sedkit.errors import InputFileError, UserError

EVENT_COLUMNS = ("filename", "onset", "offset", "event_label")
DURATION_COLUMNS = ("filename", "duration")

#: At most this many problems are listed in one error message; the rest are counted.
MAX_PROBLEMS_LISTED = 10

PathLike = str | os.PathLike

#: The class list a run writes beside its predictions, read by ``sedkit score``: detections of
#: classes without reference events are then counted as false positives, not refused.
CLASSES_FILE = "classes.txt"


class _Problems:
    """Collects ``(line, message)`` problems of one file and raises them as one error."""

    def __init__(self, path: object):
        self.path = str(path)
        self.items: list[tuple[int | None, str]] = []

    def add(self, line: int | None, message: str) -> None:
        self.items.append((line, message))

    def sort(self) -> None:
        """Order problems by line, so the message reads top to bottom."""
        self.items.sort(key=lambda item: (item[0] is None, item[0] or 0))

    def raise_if_any(self) -> None:
        if not self.items:
            return
        line, message = self.items[0]
        described = [
            f"{self.path}{'' if ln is None else f':{ln}'}: {msg}" for ln, msg in self.items
        ]
        listed = described[1:MAX_PROBLEMS_LISTED]
        extra = len(self.items) - MAX_PROBLEMS_LISTED
        if extra > 0:
            listed.append(f"... and {extra} more problems in {self.path}")
        error = InputFileError(self.path, "\n".join([message, *listed]), line=line)
        error.problems = described
        raise error


def _read_lines(path: PathLike) -> list[str]:
    """The file's lines: BOM stripped, any line ending (LF, CRLF, CR) accepted."""
    p = Path(path)
    if not p.is_file():
        raise InputFileError(p, "file not found" if not p.exists() else "not a regular file")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputFileError(p, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    return text.splitlines()


def _parse_header(path: PathLike, header: str, required: Sequence[str]) -> dict[str, int]:
    """Map each required column name to its position in the tab-separated header."""
    names = [name.strip() for name in header.split("\t")]
    missing = [c for c in required if c not in names]
    if missing:
        hint = ""
        if "\t" not in header and ("," in header or " " in header.strip()):
            hint = " (columns must be separated by tabs)"
        raise InputFileError(
            path,
            f"missing column(s) {', '.join(missing)} in header {names!r}; "
            f"expected {', '.join(required)} in any order{hint}",
            line=1,
        )
    duplicated = sorted({n for n in names if names.count(n) > 1 and n in required})
    if duplicated:
        raise InputFileError(path, f"duplicated column(s) {', '.join(duplicated)}", line=1)
    return {c: names.index(c) for c in required}


def _parse_times(
    column: str, texts: pd.Series, check: np.ndarray, problems: _Problems, lines: np.ndarray
) -> np.ndarray:
    """Seconds parsed from ``texts``; rows in ``check`` that are not finite non-negative
    numbers become problems (named by ``lines``)."""
    values = pd.to_numeric(texts, errors="coerce").to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        empty = check & (texts == "").to_numpy()
        not_number = check & ~empty & np.isnan(values)
        not_finite = check & np.isinf(values)
        negative = check & (values < 0)
    for mask, describe in (
        (empty, lambda i: f"{column} is empty"),
        (not_number, lambda i: f"{column} {texts.iloc[i]!r} is not a number"),
        (not_finite, lambda i: f"{column} {texts.iloc[i]!r} is not a finite number"),
        (negative, lambda i: f"{column} {values[i]:g} is negative"),
    ):
        for i in np.flatnonzero(mask):
            problems.add(int(lines[i]), describe(i))
    return values


def _has_padded_field(body: str) -> bool:
    """Whether some field starts or ends with spaces (plain substring scans: fast)."""
    return (
        any(pad in body for pad in (" \t", "\t ", " \n", "\n "))
        or body[:1] == " "
        or (body[-1:] == " ")
    )


def _read_fields(
    path: PathLike, lines: list[str], n_fields: int
) -> tuple[pd.DataFrame, np.ndarray]:
    """The body of a tab-separated table as strings, and each row's 1-based line number.

    pandas' C parser does the splitting (the slow part in Python); blank lines are dropped,
    short rows padded with empty fields (editors strip trailing tabs), long rows an error.
    """
    body = "\n".join(lines[1:])
    try:
        table = _parse_tsv_body(body, n_fields, dtype=str, na_filter=False)
    except pd.errors.ParserError:
        problems = _Problems(path)
        for line_no, raw in enumerate(lines[1:], start=2):
            n = len(raw.split("\t"))
            if n > n_fields:
                problems.add(line_no, f"{n} fields, but the header has {n_fields}")
        problems.raise_if_any()
        raise
    line_numbers = np.arange(2, len(table) + 2)
    if _has_padded_field(body):  # rare; stripping every field costs more than parsing
        table = table.apply(lambda column: column.str.strip())
    blank = (table == "").all(axis=1).to_numpy()
    if blank.any():
        table, line_numbers = table[~blank], line_numbers[~blank]
    return table.reset_index(drop=True), line_numbers


def _parse_tsv_body(body: str, n_fields: int, **options: Any) -> pd.DataFrame:
    """The rows of a table without its header, split by pandas' C parser: tab-separated,
    ``n_fields`` columns named 0.., no quoting, blank lines kept (to name them), no default
    NA strings; ``options`` add the column types and what counts as missing."""
    return pd.read_csv(
        io.StringIO(body),
        sep="\t",
        header=None,
        names=range(n_fields),
        keep_default_na=False,
        skip_blank_lines=False,
        quoting=csv.QUOTE_NONE,
        engine="c",
        **options,
    )


def _read_clean_event_table(
    lines: list[str], columns: dict[str, int], n_fields: int
) -> pd.DataFrame | None:
    """The fast path: pandas parses the times; None unless every row is valid.

    Most files are clean, so they cost one pass of pandas' C parser; any doubt (a bad number,
    a blank line, padded fields, a check failing) returns None and the caller re-reads the
    text to name the line at fault.
    """
    body = "\n".join(lines[1:])
    if _has_padded_field(body):
        return None
    i_on, i_off = columns["onset"], columns["offset"]
    try:
        table = _parse_tsv_body(
            body,
            n_fields,
            dtype={i: (float if i in (i_on, i_off) else str) for i in range(n_fields)},
            na_values={i_on: [""], i_off: [""]},
        )
    except (ValueError, pd.errors.ParserError):
        return None
    filename = table[columns["filename"]].to_numpy(dtype=object)
    label = table[columns["event_label"]].to_numpy(dtype=object)
    onset, offset = table[i_on].to_numpy(dtype=float), table[i_off].to_numpy(dtype=float)
    no_label = label == ""
    with np.errstate(invalid="ignore"):
        valid_event = np.isfinite(onset) & np.isfinite(offset) & (onset >= 0) & (onset <= offset)
    no_event = no_label & np.isnan(onset) & np.isnan(offset)
    if (
        pd.isna(filename).any()
        or pd.isna(label).any()
        or (filename == "").any()
        or not np.where(no_label, no_event, valid_event).all()
    ):
        return None
    label = label.copy()
    label[no_label] = np.nan
    return pd.DataFrame(
        {"filename": filename, "onset": onset, "offset": offset, "event_label": label},
        index=pd.Index(np.arange(2, len(table) + 2), name="line", dtype=np.int64),
    )


def _read_event_table(path: PathLike, *, what: str) -> pd.DataFrame:
    lines = _read_lines(path)
    if not lines or not lines[0].strip():
        raise InputFileError(
            path, f"empty {what} file: expected a header {' '.join(EVENT_COLUMNS)}", line=1
        )
    columns = _parse_header(path, lines[0], EVENT_COLUMNS)
    n_fields = len(lines[0].split("\t"))
    df = _read_clean_event_table(lines, columns, n_fields)
    if df is not None:
        df.attrs["source"] = str(path)
        return df
    # Something is wrong (or unusual): parse as text to say what, and where.
    table, line_numbers = _read_fields(path, lines, n_fields)
    filename, onset_s, offset_s, label = (table[columns[c]] for c in EVENT_COLUMNS)
    problems = _Problems(path)
    no_filename = (filename == "").to_numpy()
    no_label = (label == "").to_numpy()
    no_times = ((onset_s == "") & (offset_s == "")).to_numpy()
    # A row with a filename and nothing else is a clip without events (the DESED convention).
    events = ~no_filename & ~no_label
    for i in np.flatnonzero(no_filename):
        problems.add(int(line_numbers[i]), "empty filename")
    for i in np.flatnonzero(~no_filename & no_label & ~no_times):
        problems.add(int(line_numbers[i]), "empty event_label on a row with onset/offset")
    onset = _parse_times("onset", onset_s, events, problems, line_numbers)
    offset = _parse_times("offset", offset_s, events, problems, line_numbers)
    with np.errstate(invalid="ignore"):
        reversed_ = events & (onset > offset)
    for i in np.flatnonzero(reversed_):
        problems.add(int(line_numbers[i]), f"onset {onset[i]:g} is after offset {offset[i]:g}")
    problems.sort()
    problems.raise_if_any()
    df = pd.DataFrame(
        {
            "filename": filename.to_numpy(dtype=object),
            "onset": np.where(events, onset, np.nan),
            "offset": np.where(events, offset, np.nan),
            "event_label": np.where(events, label.to_numpy(dtype=object), np.nan),
        },
        index=pd.Index(line_numbers, name="line", dtype=np.int64),
    )
    df.attrs["source"] = str(path)
    return df


def read_ground_truth(path: PathLike) -> pd.DataFrame:
    """Read a strong-label ground truth (``filename onset offset event_label``, any order).

    Clips without events (DESED writes them as a row with an empty label) are kept as a row of
    NaN, so every clip of the set is known: ``df["filename"].unique()`` lists them all.
    Raises :class:`~sedkit.errors.InputFileError` naming file and line on any malformed row.
    """
    gt = _read_event_table(path, what="ground truth")
    _refuse_repeated_events(gt, path)
    return gt


def _refuse_repeated_events(gt: pd.DataFrame, path: PathLike) -> None:
    """A ground-truth event listed twice is two events to detect, one of which no system can
    match: every repeated row is named with the line it repeats."""
    events = gt[gt["event_label"].notna()]
    if not events.duplicated().any():
        return
    problems = _Problems(path)
    first: dict[tuple, int] = {}
    for line, *row in events.itertuples():
        key = tuple(row)
        if key in first:
            problems.add(int(line), f"repeats line {first[key]}: an event listed twice")
        else:
            first[key] = int(line)
    problems.raise_if_any()


def check_events_within_durations(gt: pd.DataFrame, durations: pd.DataFrame) -> None:
    """Ground-truth events against their clips' durations: an event that starts at or after
    its clip's end can never be detected and is refused naming its line; one that only ends
    after it (DCASE 2019's validation set has 4, by up to 0.115 s) is scored as given, with
    one warning naming the first and the largest overrun."""
    source = str(gt.attrs.get("source", "<ground truth DataFrame>"))
    dur_source = durations.attrs.get("source", "the durations")
    events = gt[gt["event_label"].notna()]
    length = events["filename"].map(durations.set_index("filename")["duration"]).to_numpy()
    onset, offset = events["onset"].to_numpy(), events["offset"].to_numpy()
    from_file = gt.index.name == "line" and "source" in gt.attrs

    def where(i: int) -> str:
        row = f"{events.index[i]}" if from_file else f" row {i}"
        return f"{source}:{row}: {events['filename'].iloc[i]} {onset[i]:g}-{offset[i]:g} s"

    with np.errstate(invalid="ignore"):
        after = np.flatnonzero(onset >= length)
        over = np.flatnonzero(offset > length + 1e-6)
    if len(after):
        i = after[0]
        more = f" ({len(after)} events do)" if len(after) > 1 else ""
        raise UserError(
            f"{where(i)} starts at or after the clip's end ({length[i]:g} s in {dur_source})"
            f"{more}; no detection can match it"
        )
    if len(over):
        worst = over[np.argmax(offset[over] - length[over])]
        message = (
            f"{where(over[0])}: {len(over)} ground-truth event(s) end after their clip "
            f"(durations in {dur_source}), by up to {offset[worst] - length[worst]:.3f} s "
            f"({where(worst)}); scored as given"
        )
        if message not in _WARNED:
            _WARNED.add(message)
            logging.getLogger("sedkit").warning("%s", message)


#: Warnings already given in this process (the trainer scores every epoch).
_WARNED: set[str] = set()


def read_detections(path: PathLike) -> pd.DataFrame:
    """Read a detection table (``filename onset offset event_label``, any column order).

    Same format and checks as :func:`read_ground_truth`; a header-only file means "nothing
    detected" (as a system at threshold 1.0 writes).
    """
    return _read_event_table(path, what="detections")


def read_durations(path: PathLike) -> pd.DataFrame:
    """Read clip durations (``filename duration``, any order), one row per clip.

    A clip listed more than once (DESED metadata repeats a clip once per event) is kept once if
    every listing agrees, and is an error otherwise.
    """
    lines = _read_lines(path)
    if not lines or not lines[0].strip():
        raise InputFileError(
            path, "empty durations file: expected a header filename duration", line=1
        )
    columns = _parse_header(path, lines[0], DURATION_COLUMNS)
    table, line_numbers = _read_fields(path, lines, len(lines[0].split("\t")))
    filename, duration_s = table[columns["filename"]], table[columns["duration"]]
    problems = _Problems(path)
    no_filename = (filename == "").to_numpy()
    for i in np.flatnonzero(no_filename):
        problems.add(int(line_numbers[i]), "empty filename")
    duration = _parse_times("duration", duration_s, ~no_filename, problems, line_numbers)
    for i in np.flatnonzero(~no_filename & (duration == 0)):
        problems.add(int(line_numbers[i]), f"duration of {filename.iloc[i]} is zero")
    problems.raise_if_any()
    df = pd.DataFrame(
        {"filename": filename.to_numpy(dtype=object), "duration": duration},
        index=pd.Index(line_numbers, name="line", dtype=np.int64),
    )
    first = df.drop_duplicates("filename")
    conflicts = df[~df.index.isin(first.index)]
    conflicts = conflicts[
        conflicts["duration"].to_numpy()
        != first.set_index("filename").loc[conflicts["filename"], "duration"].to_numpy()
    ]
    for line, row in conflicts.iterrows():
        earlier = first[first["filename"] == row["filename"]]
        problems.add(
            int(line),
            f"duration {row['duration']:g} of {row['filename']} differs from "
            f"{earlier['duration'].iloc[0]:g} on line {earlier.index[0]}",
        )
    problems.raise_if_any()
    first = first.copy()
    first.attrs["source"] = str(path)
    return first


def check_event_frame(df: pd.DataFrame, *, what: str) -> pd.DataFrame:
    """Validate an event table given as a DataFrame (not read by this module).

    Same checks as the file readers, vectorised (the trainer passes tables of thousands of
    rows per threshold). Rows are named by their line when the frame came from
    :func:`read_detections` (index ``line``), else by position (``row N``, 0-based). Returns a
    copy with the four columns in standard order and float times.
    """
    source = str(df.attrs.get("source", f"<{what} DataFrame>"))
    missing = [c for c in EVENT_COLUMNS if c not in df.columns]
    if missing:
        raise UserError(f"{source}: missing column(s) {', '.join(missing)}")
    out = df[list(EVENT_COLUMNS)].copy()
    out.attrs = {"source": source}
    from_file = df.index.name == "line" and "source" in df.attrs
    filename = out["filename"]
    no_filename = (filename.isna() | (filename.astype(str) == "")).to_numpy()
    label = out["event_label"]
    no_label = (label.isna() | (label.astype(str) == "")).to_numpy()
    onset = pd.to_numeric(out["onset"], errors="coerce").astype(float).to_numpy()
    offset = pd.to_numeric(out["offset"], errors="coerce").astype(float).to_numpy()
    times_given = ~(out["onset"].isna().to_numpy() & out["offset"].isna().to_numpy())
    bad_times = ~(np.isfinite(onset) & np.isfinite(offset))
    with np.errstate(invalid="ignore"):
        negative = ~bad_times & ((onset < 0) | (offset < 0))
        reversed_ = ~bad_times & ~negative & (onset > offset)
    events = ~no_filename & ~no_label
    checks = [
        (no_filename, lambda i: "empty filename"),
        (
            ~no_filename & no_label & times_given,
            lambda i: "empty event_label on a row with onset/offset",
        ),
        (events & bad_times, lambda i: "onset/offset is not a finite number"),
        (events & negative, lambda i: "negative onset/offset"),
        (events & reversed_, lambda i: f"onset {onset[i]:g} is after offset {offset[i]:g}"),
    ]
    problems = _Problems(source)
    found = sorted((int(i), describe) for mask, describe in checks for i in np.flatnonzero(mask))
    for position, describe in found:
        line = int(df.index[position]) if from_file else None
        prefix = "" if from_file else f"row {position}: "
        problems.add(line, prefix + describe(position))
    problems.raise_if_any()
    out["onset"] = np.where(no_label, np.nan, onset)
    out["offset"] = np.where(no_label, np.nan, offset)
    out["event_label"] = label.where(~no_label, np.nan)
    return out


def write_detections(df: pd.DataFrame, path: PathLike, *, overwrite: bool = False) -> None:
    """Write detections as a DESED TSV (``filename onset offset event_label``).

    Refuses to replace an existing file unless ``overwrite`` (a finished run's outputs must not
    be lost by a typo). The file is written next to its destination and moved into place, so a
    crash never leaves half a table. Rows of clips without events (NaN label) are kept as a row
    with empty fields, as DESED does.
    """
    p = Path(path)
    if p.exists() and not overwrite:
        raise UserError(f"{p}: already exists; refusing to overwrite it (pass overwrite=True)")
    missing = [c for c in EVENT_COLUMNS if c not in df.columns]
    if missing:
        raise UserError(f"detections to write to {p}: missing column(s) {', '.join(missing)}")
    p.parent.mkdir(parents=True, exist_ok=True)
    table = df[list(EVENT_COLUMNS)]
    fd, tmp_name = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write("\t".join(EVENT_COLUMNS) + "\n")
            for filename, onset, offset, label in table.itertuples(index=False):
                if pd.isna(label) or label == "":
                    f.write(f"{filename}\t\t\t\n")
                else:
                    f.write(f"{filename}\t{float(onset)!r}\t{float(offset)!r}\t{label}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, p)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
