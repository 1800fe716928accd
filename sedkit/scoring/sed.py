"""Sound event detection scores of thresholded detections: sed_eval event- and segment-based
F1, PSDS and intersection-based F1 as psds_eval defines them.

Event- and segment-based scores are sed_eval's, computed over all clips at once by
:mod:`sedkit.scoring.sed_eval_metrics`; PSDS and the intersection-based F1 by
:mod:`sedkit.scoring.operating_points`, all operating points at once, equal to psds_eval
(both tested on the DCASE 2019 example). This module prepares the inputs (parsed, validated)
and runs independent evaluations side by side. Conventions follow the DCASE task 4 baselines:

- event-based metrics (Mesaros et al., 2016, sed_eval): onset collar 200 ms, offset collar
  max(200 ms, 20 % of the reference event's length), evaluated clip by clip over every clip of
  the ground truth (clips without events included), ``empty_system_output_handling="zero_score"``;
- segment-based metrics: 1 s segments, clip by clip, each clip's evaluated length being its last
  reference or detected offset (as the baselines call sed_eval);
- PSDS (Bilen et al., ICASSP 2020, psds_eval) for the DCASE 2021+ scenarios :data:`PSDS1` and
  :data:`PSDS2`, or any :class:`PSDSParams`;
- psds_eval's intersection-based macro F1 (dtc = gtc = 0.5, cttc = 0.3 as in the baselines).
  Note psds_eval's own rule: a class without any true positive gets F1 = NaN and is left out
  of that macro average; an empty detection table scores 0.0 (as the DCASE baselines do).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sedkit.errors import InputFileError, UserError
from sedkit.scoring.io import (
    check_event_frame,
    check_events_within_durations,
    read_detections,
    read_durations,
    read_ground_truth,
)
from sedkit.scoring.scenarios import (  # noqa: F401 (re-exported: sedkit.scoring's public names)
    INTERSECTION_F1,
    PSDS1,
    PSDS2,
    PSDSParams,
    ScoringWarning,
)

TableLike = pd.DataFrame | str | os.PathLike

#: File suffixes taken as detection tables inside an ``--est`` folder.
DETECTION_SUFFIXES = (".tsv", ".csv", ".txt")

# sed_eval imports dcase_util, which imports the deprecated pkg_resources (kept working by the
# setuptools<81 pin); its warning means nothing to a sedkit user.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------
def _load_events(table: TableLike, reader: Callable[[Any], pd.DataFrame], what: str):
    if isinstance(table, pd.DataFrame):
        return check_event_frame(table, what=what)
    return reader(table)


def _row_name(df: pd.DataFrame, position: int) -> tuple[int | None, str]:
    """(line, prefix) naming a row: its line in the source file, else its position."""
    if df.index.name == "line":
        return int(df.index[position]), ""
    return None, f"row {position}: "


def _source(df: pd.DataFrame, what: str) -> str:
    return str(df.attrs.get("source", f"<{what} DataFrame>"))


def _check_against_reference(
    det: pd.DataFrame,
    *,
    classes: Sequence[str],
    clips: set[str],
    allow_unknown_labels: bool,
    allow_unknown_clips: bool,
    gt_source: str,
) -> pd.DataFrame:
    """Detections whose labels and clips the ground truth knows (or an error naming the line)."""
    source = _source(det, "detections")
    keep = np.ones(len(det), dtype=bool)
    checks = (
        (
            "event_label",
            det["event_label"].notna().to_numpy() & ~det["event_label"].isin(classes).to_numpy(),
            allow_unknown_labels,
            "--allow-unknown-labels",
            lambda v: (
                f"event_label {v!r} is not a class of the ground truth {gt_source} "
                f"(classes: {', '.join(classes)})"
            ),
        ),
        (
            "filename",
            ~det["filename"].isin(clips).to_numpy(),
            allow_unknown_clips,
            "--allow-unknown-clips",
            lambda v: f"clip {v!r} is not in the ground truth {gt_source}",
        ),
    )
    for column, unknown, allowed, flag, describe in checks:
        if not unknown.any():
            continue
        first = int(np.flatnonzero(unknown)[0])
        value = det[column].iloc[first]
        n_rows = int(unknown.sum())
        values = sorted(map(str, det[column][unknown].unique()))
        if not allowed:
            line, prefix = _row_name(det, first)
            message = (
                f"{prefix}{describe(value)}; {n_rows} row(s) have unknown {column}s "
                f"({', '.join(values[:10])}{', ...' if len(values) > 10 else ''}). "
                f"Pass {flag} to drop them with a warning"
            )
            raise InputFileError(source, message, line=line)
        warnings.warn(
            f"{source}: dropped {n_rows} detection(s) with {column}s unknown to the ground "
            f"truth: {', '.join(values[:10])}{', ...' if len(values) > 10 else ''}",
            ScoringWarning,
            stacklevel=4,
        )
        keep &= ~unknown
    return det[keep] if not keep.all() else det


def _check_no_overlaps(df: pd.DataFrame, what: str) -> None:
    """Two events of one class that overlap in one clip (which PSDS, as psds_eval defines
    it, refuses): say where."""
    events = df[df["event_label"].notna()]
    if events.empty:
        return
    order = np.lexsort(
        (
            events["offset"].to_numpy(),
            events["onset"].to_numpy(),
            events["event_label"].to_numpy(str),
            events["filename"].to_numpy(str),
        )
    )
    ev = events.iloc[order]
    filename, label = ev["filename"].to_numpy(), ev["event_label"].to_numpy()
    onsets, offsets = ev["onset"].to_numpy(), ev["offset"].to_numpy()
    same = (filename[1:] == filename[:-1]) & (label[1:] == label[:-1])
    # Sorted by onset, events of one class overlap somewhere exactly when some event starts
    # before the previous one ends. Identical copies are no overlap (psds_eval skips them).
    identical = same & (onsets[1:] == onsets[:-1]) & (offsets[1:] == offsets[:-1])
    keep = np.concatenate(([True], ~identical))
    order, ev = order[keep], ev[keep]
    filename, label = filename[keep], label[keep]
    onsets, offsets = onsets[keep], offsets[keep]
    same = (filename[1:] == filename[:-1]) & (label[1:] == label[:-1])
    overlap = same & (onsets[1:] < offsets[:-1])
    if overlap.any():
        i = int(np.flatnonzero(overlap)[0]) + 1
        position = int(order[i])
        line, prefix = _row_name(events, position)
        row = ev.iloc[i]
        raise InputFileError(
            _source(df, what),
            f"{prefix}{row['event_label']!r} event at {row['onset']:g}-{row['offset']:g} s in "
            f"{row['filename']} overlaps another {row['event_label']!r} event of the same clip; "
            "PSDS (psds_eval) needs the events of one class not to overlap: merge them",
            line=line,
        )


@dataclass
class _Inputs:
    ground_truth: pd.DataFrame  # event rows only
    clips: list[str]  # every clip of the ground truth, in file order
    classes: list[str]
    detections: pd.DataFrame  # event rows only, known labels and clips
    durations: pd.DataFrame | None
    psds_detections: dict[float, pd.DataFrame]


def _prepare(
    *,
    ground_truth: TableLike,
    detections: TableLike,
    durations: TableLike | None,
    psds_detections: Mapping[float, TableLike] | None,
    allow_unknown_labels: bool,
    allow_unknown_clips: bool,
    need_durations: bool,
    classes: Sequence[str] | None = None,
) -> _Inputs:
    gt = _load_events(ground_truth, read_ground_truth, "ground truth")
    gt_source = _source(gt, "ground truth")
    clips = list(dict.fromkeys(gt["filename"]))
    clip_set = set(clips)
    gt_events = gt[gt["event_label"].notna()]
    if classes is None:
        classes = sorted(gt_events["event_label"].unique())
    else:
        classes = list(classes)
        unknown = sorted(set(gt_events["event_label"]) - set(classes))
        if unknown:
            raise InputFileError(
                gt_source,
                f"event label(s) {', '.join(unknown)} are not among the classes "
                f"{', '.join(classes)}",
            )
    if gt_events.empty:
        raise InputFileError(gt_source, "the ground truth holds no event, nothing to score")

    def load_detections(table: TableLike) -> pd.DataFrame:
        det = _load_events(table, read_detections, "detections")
        det = _check_against_reference(
            det,
            classes=classes,
            clips=clip_set,
            allow_unknown_labels=allow_unknown_labels,
            allow_unknown_clips=allow_unknown_clips,
            gt_source=gt_source,
        )
        return det[det["event_label"].notna()]

    det = load_detections(detections)
    psds_dets: dict[float, pd.DataFrame] = {}
    for threshold, table in sorted((psds_detections or {}).items()):
        same = table is detections or (
            not isinstance(table, pd.DataFrame)
            and not isinstance(detections, pd.DataFrame)
            and Path(table).resolve() == Path(detections).resolve()
        )
        psds_dets[float(threshold)] = det if same else load_detections(table)

    dur = None
    if durations is not None:
        if isinstance(durations, pd.DataFrame):
            missing = [c for c in ("filename", "duration") if c not in durations.columns]
            if missing:
                raise UserError(f"durations DataFrame: missing column(s) {', '.join(missing)}")
            dur = durations[["filename", "duration"]].drop_duplicates("filename")
        else:
            dur = read_durations(durations)
        known = set(dur["filename"])
        absent = [c for c in clips if c not in known]
        if absent:
            raise InputFileError(
                _source(dur, "durations"),
                f"no duration for {len(absent)} clip(s) of the ground truth {gt_source}, "
                f"e.g. {', '.join(absent[:3])}",
            )
        check_events_within_durations(gt, dur)
    elif need_durations:
        raise UserError(
            "PSDS and the intersection-based F1 need clip durations: pass --meta DURATIONS.tsv "
            "(durations=...)"
        )
    return _Inputs(
        _bare(gt_events),
        clips,
        classes,
        _bare(det),
        None if dur is None else _bare(dur),
        {t: _bare(d) for t, d in psds_dets.items()},
    )


def _bare(df: pd.DataFrame) -> pd.DataFrame:
    """A view with only the source path in ``attrs`` (pandas deep-copies them often)."""
    out = df.copy(deep=False)
    out.attrs = {"source": df.attrs["source"]} if "source" in df.attrs else {}
    return out


# --------------------------------------------------------------------------------------------
# Jobs (module level so that worker processes can run them)
# --------------------------------------------------------------------------------------------
def _sed_eval_job(
    kind: str,
    gt: pd.DataFrame,
    det: pd.DataFrame,
    clips: list[str],
    classes: list[str],
    t_collar: float,
    percentage_of_length: float,
    time_resolution: float,
) -> dict[str, Any]:
    """sed_eval's event- or segment-based metrics (``kind``), computed over all clips at once
    by :mod:`sedkit.scoring.sed_eval_metrics` (equal to sed_eval)."""
    from sedkit.scoring.sed_eval_metrics import event_based, segment_based

    if kind == "event":
        return event_based(gt, det, clips, classes, t_collar, percentage_of_length)
    return segment_based(gt, det, clips, classes, time_resolution)


def _psds_job(
    gt: pd.DataFrame,
    durations: pd.DataFrame,
    detections: dict[float, pd.DataFrame],
    params: PSDSParams,
    with_class_curves: bool,
) -> dict[str, Any]:
    """PSDS over the operating points, computed as psds_eval does (all points at once)."""
    from sedkit.scoring.operating_points import psds_operating_points

    result = psds_operating_points(gt, durations, detections, params)
    if not with_class_curves:
        result.pop("tpr_vs_efpr")
    return result


def _intersection_f1_job(
    gt: pd.DataFrame,
    durations: pd.DataFrame,
    detections: dict[str, pd.DataFrame],
    params: PSDSParams,
) -> dict[str, tuple[float, dict[str, float]]]:
    """psds_eval's intersection-based macro F1 of each table (all tables at once)."""
    from sedkit.scoring.operating_points import counts_for, macro_f1_of_counts

    counts = counts_for(params, gt, durations, detections.values())
    out = {}
    for (key, det), f1 in zip(detections.items(), macro_f1_of_counts(counts), strict=True):
        # An empty table scores 0.0, as the DCASE baselines report it.
        out[key] = (0.0, {}) if det.empty else f1
    return out


def _run_jobs(
    jobs: dict[str, tuple[Callable[..., Any], tuple[Any, ...]]], n_jobs: int
) -> dict[str, Any]:
    """Run ``jobs`` inline (``n_jobs`` 1) or in a pool of processes; results by key."""
    if n_jobs == 1 or len(jobs) == 1:
        futures = {key: _run_inline(fn, *args) for key, (fn, args) in jobs.items()}
        return {key: f.result() for key, f in futures.items()}
    with _process_pool(min(n_jobs, len(jobs))) as pool:
        futures = {key: pool.submit(fn, *args) for key, (fn, args) in jobs.items()}
        return {key: f.result() for key, f in futures.items()}


def _run_inline(fn: Callable[..., Any], *args: Any) -> Future:
    future: Future = Future()
    try:
        future.set_result(fn(*args))
    except BaseException as e:  # re-raised by .result(), as from a pool
        future.set_exception(e)
    return future


def _process_pool(n_jobs: int) -> Executor:
    # fork starts workers in milliseconds and they inherit the imported libraries; the jobs
    # touch only numpy/pandas, so forking a process that also holds torch is safe.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    return ProcessPoolExecutor(max_workers=n_jobs, mp_context=context)


# --------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------
def score_sed(
    *,
    ground_truth: TableLike,
    detections: TableLike,
    durations: TableLike | None = None,
    psds_detections: Mapping[float, TableLike] | None = None,
    psds_scenarios: Sequence[PSDSParams] = (PSDS1, PSDS2),
    n_jobs: int = 1,
    t_collar: float = 0.2,
    percentage_of_length: float = 0.2,
    time_resolution: float = 1.0,
    intersection_f1: PSDSParams = INTERSECTION_F1,
    allow_unknown_labels: bool = False,
    allow_unknown_clips: bool = False,
    plot_dir: str | os.PathLike | None = None,
    classes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Score detections against a strong-label ground truth with sed_eval and psds_eval.

    ``ground_truth``, ``detections`` and ``durations`` are paths or DataFrames (see
    :mod:`sedkit.scoring.io`). ``psds_detections`` maps decision thresholds to detection tables
    (operating points); PSDS is computed for each of ``psds_scenarios`` when it is given, and the
    intersection-based macro F1 of ``detections`` (and per threshold) whenever ``durations`` is.
    Both need ``durations``. ``n_jobs`` > 1 runs the independent evaluations (event, segment,
    each PSDS scenario, F1) in that many processes.

    Detections with labels or clips unknown to the ground truth are an error naming the line,
    or dropped with a :class:`ScoringWarning` when ``allow_unknown_labels``/``allow_unknown_clips``.
    Clips of the ground truth absent from the detections count as all misses.

    Returns plain floats (NaN where a metric is undefined): ``event_f1_macro``,
    ``event_f1_micro``, ``event_{precision,recall,er}_{macro,micro}``, the same for
    ``segment_``; ``<scenario name>`` (``psds1``, ``psds2``) for each PSDS scenario;
    ``intersection_f1_macro``; ``intersection_f1_macro_by_threshold`` (threshold string ->
    float); and ``classwise``: class -> ``event_f1``, ``event_precision``, ``event_recall``,
    ``event_er``, the same for ``segment_``, and ``intersection_f1``. With ``plot_dir``, the
    PSD-ROC of each scenario is saved there as PNG (``<name>_roc.png``,
    ``<name>_roc_per_class.png``).

    ``classes`` fixes the class list (a system's classes, some of which a small reference may
    lack); by default it is the set of labels in the ground truth.
    """
    if n_jobs < 1:
        raise ValueError(f"n_jobs must be >= 1, got {n_jobs}")
    names = [p.name for p in psds_scenarios]
    if len(set(names)) != len(names):
        raise ValueError(f"PSDS scenario names must be unique, got {names}")
    inputs = _prepare(
        ground_truth=ground_truth,
        detections=detections,
        durations=durations,
        psds_detections=psds_detections,
        allow_unknown_labels=allow_unknown_labels,
        allow_unknown_clips=allow_unknown_clips,
        need_durations=bool(psds_detections) and bool(psds_scenarios),
        classes=classes,
    )
    gt, det = inputs.ground_truth, inputs.detections

    # Longest jobs first, so two workers finish together.
    jobs: dict[str, tuple[Callable[..., Any], tuple[Any, ...]]] = {}
    sed_args = (inputs.clips, inputs.classes, t_collar, percentage_of_length, time_resolution)
    jobs["event"] = (_sed_eval_job, ("event", gt, det, *sed_args))
    jobs["segment"] = (_sed_eval_job, ("segment", gt, det, *sed_args))
    if inputs.durations is not None:
        if inputs.psds_detections:
            for params in psds_scenarios:
                jobs[f"psds:{params.name}"] = (
                    _psds_job,
                    (gt, inputs.durations, inputs.psds_detections, params, plot_dir is not None),
                )
        # The table at the chosen threshold is usually one of the operating points: score once.
        f1_tables = {f"{t:g}": d for t, d in inputs.psds_detections.items()}
        main_key = next((k for k, d in f1_tables.items() if d is det), None)
        if main_key is None:
            main_key = "detections"
            f1_tables[main_key] = det
        jobs["intersection_f1"] = (
            _intersection_f1_job,
            (gt, inputs.durations, f1_tables, intersection_f1),
        )

    if inputs.durations is not None:
        # PSDS (as psds_eval defines it) needs the events of one class not to overlap.
        _check_no_overlaps(inputs.ground_truth, "ground truth")
        for table in [inputs.detections, *inputs.psds_detections.values()]:
            _check_no_overlaps(table, "detections")
    results = _run_jobs(jobs, n_jobs)

    metrics: dict[str, Any] = {}
    classwise: dict[str, dict[str, float]] = {c: {} for c in inputs.classes}
    for kind in ("event", "segment"):
        part = dict(results[kind])
        for label, values in part.pop("classwise").items():
            classwise[label].update(values)
        metrics.update(part)
    psds_results = {}
    for params in psds_scenarios:
        key = f"psds:{params.name}"
        if key in results:
            metrics[params.name] = results[key]["value"]
            psds_results[params.name] = results[key]
    if "intersection_f1" in results:
        f1 = dict(results["intersection_f1"])
        f1_macro, f1_per_class = f1[main_key] if main_key != "detections" else f1.pop(main_key)
        metrics["intersection_f1_macro"] = f1_macro
        for label in inputs.classes:
            classwise[label]["intersection_f1"] = f1_per_class.get(label, math.nan)
        if f1:
            metrics["intersection_f1_macro_by_threshold"] = {k: v[0] for k, v in f1.items()}
    metrics["classwise"] = classwise

    if plot_dir is not None and psds_results:
        from sedkit.scoring.plots import plot_psd_roc

        for name, result in psds_results.items():
            # The per-class curves are psds_eval's, one per class *it* knows: with ``classes``
            # naming classes without reference events, that is fewer than inputs.classes.
            plot_psd_roc(result, result["classes"], Path(plot_dir), name=name)
    return _plain(metrics)


def _plain(value: Any) -> Any:
    """Plain Python floats (and dicts of them), so the result is JSON-serialisable."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, bool | str) or value is None:
        return value
    return float(value)


def metrics_to_json(metrics: dict[str, Any]) -> str:
    """Strict JSON of a metrics dict: NaN (undefined metric) becomes null."""

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value

    return json.dumps(clean(metrics), indent=2, allow_nan=False)


# --------------------------------------------------------------------------------------------
# Detection folders (one table per decision threshold)
# --------------------------------------------------------------------------------------------
def threshold_from_name(path: str | os.PathLike) -> float | None:
    """The decision threshold that ends a detection file's name, or None.

    ``baseline_0.5.csv`` -> 0.5, ``predictions_th_0.25.tsv`` -> 0.25, ``gt.tsv`` -> None.
    Raises :class:`~sedkit.errors.InputFileError` when the number lies outside [0, 1].
    """
    match = re.search(r"(\d+(?:\.\d+)?|\.\d+)$", Path(path).stem)
    if match is None:
        return None
    threshold = float(match.group(1))
    if not 0.0 <= threshold <= 1.0:
        raise InputFileError(
            path, f"decision threshold {match.group(1)} read from the file name is not in [0, 1]"
        )
    return threshold


def detection_files_by_threshold(
    folder: str | os.PathLike, *, exclude: Iterable[str | os.PathLike | None] = ()
) -> dict[float, Path]:
    """The detection tables of a folder, keyed by the threshold that ends their names.

    Files in ``exclude`` (the ground truth and durations, when they share the folder) are
    skipped; other files whose name ends in no number are skipped with a warning.
    """
    root = Path(folder)
    excluded = {Path(p).resolve() for p in exclude if p is not None}
    files = sorted(
        p
        for p in root.iterdir()
        if p.is_file() and p.suffix.lower() in DETECTION_SUFFIXES and p.resolve() not in excluded
    )
    by_threshold: dict[float, Path] = {}
    skipped = []
    for path in files:
        threshold = threshold_from_name(path)
        if threshold is None:
            skipped.append(path.name)
            continue
        if threshold in by_threshold:
            raise InputFileError(
                path, f"threshold {threshold:g} also read from {by_threshold[threshold].name}"
            )
        by_threshold[threshold] = path
    if not by_threshold:
        raise InputFileError(
            root,
            "no detection files named NAME_THRESHOLD"
            f"{{{','.join(DETECTION_SUFFIXES)}}} (e.g. detections_0.5.tsv) in this folder",
        )
    if skipped:
        warnings.warn(
            f"{root}: skipped file(s) without a threshold at the end of the name: "
            + ", ".join(skipped),
            ScoringWarning,
            stacklevel=2,
        )
    return dict(sorted(by_threshold.items()))
