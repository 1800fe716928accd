"""Threshold-independent scores from frame score tables (NumPy only).

Follows J. Ebbers, R. Haeb-Umbach and R. Serizel, "Threshold-independent evaluation of sound
event detection scores", ICASSP 2022 (the method of sed_scores_eval, which the DCASE task 4
baselines report PSDS with since 2023): the counts that a metric needs (true positives, false
positives, cross-triggers) change only where the decision threshold crosses a score of the
clip, so they are computed as *changes* at those scores, then summed over all clips with one
sort and a reverse cumulative sum. Every threshold is scored at once, exactly.

How the changes are found without trying every threshold of every clip: for one class of one
clip, the detections at threshold ``t`` are the maximal runs of frames whose score is ``>= t``.
Every such run, over all thresholds, is the maximal interval around some frame ``i`` in which no
score is lower than ``score[i]``; it exists for thresholds in ``(max(score before, score after),
min(score in the run)]``. A clip of ``T`` frames has at most ``T`` distinct runs, found for all
frames at once from each frame's nearest strictly lower neighbours (pointer jumping). A run's
criteria (its overlap with the ground truth) do not change during its lifetime, so each run
adds its counts where it appears and removes them where it grows into a larger run. Only the
ground-truth criterion of intersection-based PSDS (the share of a reference event covered by
the *relevant* detections alive at once) and the one-to-one matching of collar-based scores
need the runs alive together; both are summed per reference event in the same sorted sweep.

Conventions are sed_scores_eval's (0.0.4), so the figures agree with it to rounding: times are
compared after rounding to 6 decimals; a detection at threshold ``t`` holds the frames with
score ``>= t`` when curves are built, and the metrics "at threshold t" use the operating point
of the lowest score change above ``t`` (scores ``> t``); a clip's score tables must list every
clip of the ground truth, and classes without a reference event are left out (with a warning).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sedkit.scoring.score_tables import ScoreTables

#: Times are compared after rounding to this many decimals (sed_scores_eval's time_decimals).
TIME_DECIMALS = 6
#: Frames per block of clips processed together: bounds the working memory.
BLOCK_FRAMES = 1 << 17


@dataclass
class Reference:
    """Ground-truth events, aligned with the clips of a :class:`ScoreTables`.

    ``clip``/``label`` are indices into the tables' clips and classes; the events are sorted
    by clip, class and onset.
    """

    clip: np.ndarray
    label: np.ndarray
    onset: np.ndarray
    offset: np.ndarray
    durations: np.ndarray | None  # per clip, seconds

    @classmethod
    def from_events(
        cls,
        clip: np.ndarray,
        label: np.ndarray,
        onset: np.ndarray,
        offset: np.ndarray,
        durations: np.ndarray | None = None,
    ) -> Reference:
        order = np.lexsort((onset, label, clip))
        return cls(
            np.asarray(clip, np.int64)[order],
            np.asarray(label, np.int64)[order],
            np.asarray(onset, np.float64)[order],
            np.asarray(offset, np.float64)[order],
            None if durations is None else np.asarray(durations, np.float64),
        )


# ----------------------------------------------------------------------------------------------
# Small array helpers
# ----------------------------------------------------------------------------------------------


def _round(x: np.ndarray | float) -> np.ndarray:
    return np.round(x, TIME_DECIMALS)


def _grouped_searchsorted(
    keys: np.ndarray, values: np.ndarray, q_keys: np.ndarray, q_values: np.ndarray, side: str
) -> np.ndarray:
    """``searchsorted`` within groups: for each query, the position in ``(keys, values)``
    (sorted by key, then value) where ``(q_key, q_value)`` would go (``side`` as numpy's).

    Groups are small (the events of one clip): each query starts at its group and steps over
    the group's lower values, all queries at once; large groups fall back to one integer
    ``searchsorted`` with values replaced by their rank (exact, no float keys)."""
    first = np.searchsorted(keys, q_keys, side="left")
    last = np.searchsorted(keys, q_keys, side="right")
    largest = int((last - first).max()) if len(q_keys) else 0
    if largest > 16:
        unique = np.unique(values)
        width = len(unique) + 1
        element = keys * width + np.searchsorted(unique, values)
        query = q_keys * width + np.searchsorted(unique, q_values, side=side)
        return np.searchsorted(element, query, side="left")
    pos = first
    padded = np.append(values, np.inf)
    for _ in range(largest):
        ahead = padded[np.minimum(pos, len(values))]
        step = (pos < last) & ((ahead < q_values) if side == "left" else (ahead <= q_values))
        if not step.any():
            break
        pos = pos + step
    return pos


def expand_ranges(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All pairs ``(i, j)`` with ``lo[i] <= j < hi[i]``, as two index arrays."""
    counts = np.maximum(hi - lo, 0)
    owner = np.repeat(np.arange(len(lo)), counts)
    start = np.cumsum(counts) - counts
    return owner, np.arange(counts.sum()) - np.repeat(start - lo, counts)


def _reverse_cumsum(x: np.ndarray) -> np.ndarray:
    """``out[i] = x[i:].sum()``, with one more element 0 at the end."""
    out = np.zeros(len(x) + 1, dtype=x.dtype)
    out[:-1] = np.cumsum(x[::-1])[::-1]
    return out


#: Neighbours compared directly (array slices) before the pointer jumping of _nearest_lower:
#: most frames find a lower neighbour within a few frames, and slices cost far less than the
#: gathers of a jump.
NEAR_FRAMES = 8


def _nearest_lower(s: np.ndarray, real: np.ndarray, step: int, strict: bool) -> np.ndarray:
    """Index of each frame's nearest neighbour (``step`` -1: before, +1: after) with a lower
    score (``strict``) or a lower-or-equal one. ``s`` holds -inf between clips, so the search
    never leaves a clip. The nearest NEAR_FRAMES neighbours are compared directly; the other
    frames then jump: while a frame's pointer is not lower, it moves to that neighbour's own
    pointer (everything skipped is known to be no lower)."""
    n = len(s)
    dist = np.zeros(n, np.int8)
    lower = np.less if strict else np.less_equal
    for d in range(NEAR_FRAMES, 0, -1):  # the nearest lower one written last
        here, there, found = (s[d:], s[:-d], dist[d:]) if step < 0 else (s[:-d], s[d:], dist[:-d])
        np.putmask(found, lower(there, here), d)
    # Frames not resolved yet start NEAR_FRAMES + 1 away (every frame closer is no lower);
    # that stays inside the array, as a separator that near would have been found.
    far = real & (dist == 0)
    dist[far] = NEAR_FRAMES + 1
    p = np.arange(n) + step * dist.astype(np.int64)
    p[~real] = np.flatnonzero(~real)
    active = np.flatnonzero(far)
    value = s[active]
    while active.size:
        q = p[active]
        still = s[q] >= value if strict else s[q] > value
        active, value, q = active[still], value[still], q[still]
        p[active] = p[q]
    return p


@dataclass
class _Runs:
    """Every detection (run of frames above a threshold) of one class in some clips."""

    clip: np.ndarray  # clip index
    onset: np.ndarray  # seconds
    offset: np.ndarray
    birth: np.ndarray  # alive for thresholds in (death, birth]
    death: np.ndarray  # -inf: alive down to the lowest threshold

    def select(self, index: np.ndarray) -> _Runs:
        return _Runs(
            *(getattr(self, k)[index] for k in ("clip", "onset", "offset", "birth", "death"))
        )


def _layout(tables: ScoreTables, clips: np.ndarray, column: int):
    """Scores of ``clips`` (indices) in one column, each clip preceded by -inf and one -inf at
    the end, with frame times and clip indices of the same layout."""
    lengths = tables.starts[clips + 1] - tables.starts[clips]
    n = int(lengths.sum())
    frames = np.arange(n) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    frames += np.repeat(tables.starts[clips], lengths)
    pos = np.arange(n) + np.repeat(np.arange(1, len(clips) + 1), lengths)
    size = n + len(clips) + 1
    s = np.full(size, -np.inf)
    s[pos] = tables.scores[frames, column]
    real = np.zeros(size, bool)
    real[pos] = True
    t_on = np.zeros(size)
    t_off = np.zeros(size)
    t_on[pos] = tables.onsets[frames]
    t_off[pos] = tables.offsets[frames]
    clip = np.zeros(size, np.int64)
    clip[pos] = np.repeat(clips, lengths)
    return s, real, t_on, t_off, clip


def _runs(tables: ScoreTables, clips: np.ndarray, column: int) -> _Runs:
    """All runs of one class in ``clips``: for each frame, the maximal interval around it in
    which no score is lower; frames of equal score with the same interval give one run."""
    s, real, t_on, t_off, clip = _layout(tables, clips, column)
    # A frame stands for its run when it is the run's first lowest frame: its nearest
    # lower-or-equal frame before is strictly lower, and then also its nearest lower one.
    before = _nearest_lower(s, real, -1, strict=False)
    i = np.flatnonzero(real & (s[before] < s))
    after = _nearest_lower(s, real, +1, strict=True)
    return _Runs(
        clip[i],
        t_on[before[i] + 1],
        t_off[after[i] - 1],
        s[i],
        np.maximum(s[before[i]], s[after[i]]),
    )


def _detection_count_changes(tables: ScoreTables, column: int):
    """Changes of the number of detections of one class, per clip: +1 where the threshold
    reaches a local maximum (a run appears), -1 at a local minimum (two runs merge). Returns
    (score, change, clip) of the frames where it changes."""
    s = tables.scores[:, column]
    n = len(s)
    rises = np.empty(n + 1, bool)  # rises[t]: s[t] > s[t - 1] (-inf before a clip)
    rises[1:-1] = s[1:] > s[:-1]
    rises[tables.starts[:-1]] = True
    rises[n] = False
    # +1 where the score rises into a frame, -1 where it rises out of it; nothing rises out
    # of a clip's last frame (-inf after it), though the next clip's first frame rises.
    change = rises[:-1].view(np.int8) - rises[1:].view(np.int8)
    change[tables.starts[1:-1] - 1] += 1
    i = np.flatnonzero(change)
    clip = np.searchsorted(tables.starts, i, side="right") - 1
    return s[i], change[i].astype(np.int64), clip


# ----------------------------------------------------------------------------------------------
# Counts at every threshold: a dense part shared by all criteria (how many detections) and a
# sparse part per criteria (detections that count otherwise, true positives, cross-triggers)
# ----------------------------------------------------------------------------------------------
@dataclass
class _Sparse:
    score: list[np.ndarray] = field(default_factory=list)
    tp: list[np.ndarray] = field(default_factory=list)
    fp: list[np.ndarray] = field(default_factory=list)  # correction to "every detection is FP"
    rate: list[np.ndarray] = field(default_factory=list)
    clip: list[np.ndarray] = field(default_factory=list)

    def add(self, score, clip, tp=None, fp=None, rate=None) -> None:
        n = len(score)
        self.score.append(np.asarray(score, float))
        self.clip.append(np.asarray(clip, np.int64))
        self.tp.append(np.zeros(n, np.int64) if tp is None else np.asarray(tp, np.int64))
        self.fp.append(np.zeros(n, np.int64) if fp is None else np.asarray(fp, np.int64))
        self.rate.append(np.zeros(n) if rate is None else np.asarray(rate, float))

    def arrays(self) -> tuple[np.ndarray, ...]:
        if not self.score:
            z = np.zeros(0)
            return z, z.astype(np.int64), z.astype(np.int64), z, z.astype(np.int64)
        return tuple(
            np.concatenate(getattr(self, k)) for k in ("score", "tp", "fp", "rate", "clip")
        )


@dataclass
class Curve:
    """Counts of one class at every change point of the threshold.

    ``scores[i]``: a threshold falling to this score gives ``tp[i]`` true positives,
    ``fp[i]`` false positives (and ``rate[i]``, the summed cross-trigger rate); the last point
    (+inf) detects nothing. Points are unsorted. ``at(threshold)`` gives the counts where
    scores ``> threshold`` are detected; ``next_change_below(score)`` the highest score below
    ``score`` where the counts of some clip change.
    """

    scores: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    rate: np.ndarray
    n_ref: int
    # For at() and next_change_below(): the sorted dense and sparse parts.
    _dense_scores: np.ndarray
    _dense_cum: np.ndarray
    _sparse_scores: np.ndarray
    _sparse_cum: np.ndarray  # (n + 1, 2): tp, fp
    _raw: tuple[np.ndarray, ...]

    def at(self, threshold: float) -> tuple[int, int]:
        i = np.searchsorted(self._dense_scores, threshold, side="right")
        j = np.searchsorted(self._sparse_scores, threshold, side="right")
        tp = int(self._sparse_cum[j, 0])
        return tp, int(self._dense_cum[i] + self._sparse_cum[j, 1])

    def next_change_below(self, score: float) -> float | None:
        d_score, d_change, d_clip, s_score, s_tp, s_fp, s_clip = self._raw
        below = self.scores[self.scores < score]
        while below.size:
            w = below.max()
            clips = np.concatenate((d_clip[d_score == w], s_clip[s_score == w]))
            tp = np.concatenate((np.zeros(np.sum(d_score == w), np.int64), s_tp[s_score == w]))
            fp = np.concatenate((d_change[d_score == w], s_fp[s_score == w]))
            unique, inverse = np.unique(clips, return_inverse=True)
            net_tp = np.bincount(inverse, tp, minlength=len(unique))
            net_fp = np.bincount(inverse, fp, minlength=len(unique))
            if np.any(net_tp != 0) or np.any(net_fp != 0):
                return float(w)
            below = below[below < w]
        return None


def _dense_part(dense: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
    """The detection-count changes with their sorted unique scores and the count at each
    (one sort per class, shared by every criteria set)."""
    d_score, d_change, d_clip = dense
    order = np.argsort(d_score)
    ordered = d_score[order]
    first = np.flatnonzero(np.append(True, ordered[1:] != ordered[:-1]))
    # The count at a score: every change at that score or above (a reverse cumulative sum,
    # read at the first change of each score), and 0 past the highest.
    d_cum = np.append(_reverse_cumsum(np.asarray(d_change, np.int64)[order])[first], 0)
    return d_score, d_change, d_clip, ordered[first], d_cum


def _curve(dense: tuple[np.ndarray, ...], sparse: _Sparse, n_ref: int) -> Curve:
    d_score, d_change, d_clip, d_unique, d_cum = dense
    s_score, s_tp, s_fp, s_rate, s_clip = sparse.arrays()
    s_unique, s_inverse = np.unique(s_score, return_inverse=True)
    sums = np.column_stack([np.bincount(s_inverse, w, len(s_unique)) for w in (s_tp, s_fp, s_rate)])
    s_cum = np.zeros((len(s_unique) + 1, 3))
    s_cum[:-1] = np.cumsum(sums[::-1], axis=0)[::-1]
    # The sparse counts at each dense point: a change at score v counts for thresholds <= v.
    pos = np.searchsorted(d_unique, s_unique, side="right") - 1
    at_dense = np.zeros((len(d_unique), 3))
    inside = pos >= 0
    np.add.at(at_dense, pos[inside], sums[inside])
    at_dense = np.cumsum(at_dense[::-1], axis=0)[::-1]
    # Sparse points that are not dense points.
    extra = ~(inside & (d_unique[np.maximum(pos, 0)] == s_unique)) if len(d_unique) else ~inside
    extra_scores = s_unique[extra]
    extra_dense = d_cum[np.searchsorted(d_unique, extra_scores, side="left")]
    scores = np.concatenate((d_unique, extra_scores, [np.inf]))
    detections = np.concatenate((d_cum[:-1], extra_dense, [0]))
    sparse_at = np.concatenate((at_dense, s_cum[:-1][extra], np.zeros((1, 3))))
    tp = sparse_at[:, 0].round().astype(np.int64)
    fp = detections + sparse_at[:, 1].round().astype(np.int64)
    return Curve(
        scores,
        tp,
        fp,
        sparse_at[:, 2],
        n_ref,
        d_unique,
        d_cum,
        s_unique,
        s_cum[:, :2].round().astype(np.int64),
        (d_score, d_change, d_clip, s_score, s_tp, s_fp, s_clip),
    )


# ----------------------------------------------------------------------------------------------
# Intersection-based criteria (PSDS, intersection F1)
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Criteria:
    dtc: float
    gtc: float
    cttc: float | None


def _birth_and_death(runs: _Runs, index: np.ndarray, values: np.ndarray | None = None):
    """Score, clip and sign of the changes a set of runs makes: +1 at birth, -1 at death."""
    alive_until = np.isfinite(runs.death[index])
    score = np.concatenate((runs.birth[index], runs.death[index][alive_until]))
    clip = np.concatenate((runs.clip[index], runs.clip[index][alive_until]))
    sign = np.concatenate((np.ones(len(index), np.int64), -np.ones(alive_until.sum(), np.int64)))
    if values is None:
        return score, clip, sign
    return score, clip, sign * np.concatenate((values, values[alive_until]))


@dataclass
class _Overlaps:
    """The (run, reference event of the class) pairs that overlap, and by how much."""

    run: np.ndarray
    event: np.ndarray
    overlap: np.ndarray
    covered: np.ndarray  # per run, its total overlap with the class's events
    length: np.ndarray  # per run


def _overlaps(runs: _Runs, target: np.ndarray, ref: Reference) -> _Overlaps:
    g_clip, g_on, g_off = ref.clip[target], ref.onset[target], ref.offset[target]
    # The events of one class are disjoint, so their offsets are sorted within a clip too.
    lo = _grouped_searchsorted(g_clip, g_off, runs.clip, runs.onset, "right")
    hi = _grouped_searchsorted(g_clip, g_on, runs.clip, runs.offset, "left")
    pair_run, pair_event = expand_ranges(lo, hi)
    overlap = np.maximum(
        np.minimum(runs.offset[pair_run], g_off[pair_event])
        - np.maximum(runs.onset[pair_run], g_on[pair_event]),
        0.0,
    )
    covered = np.bincount(pair_run, weights=overlap, minlength=len(runs.clip))
    return _Overlaps(pair_run, pair_event, overlap, covered, runs.offset - runs.onset)


def _intersection_changes(
    runs: _Runs,
    pairs: _Overlaps,
    target: np.ndarray,
    ref: Reference,
    criteria: _Criteria,
    c: int,
    ct_weight: np.ndarray,
    out: _Sparse,
) -> None:
    """Sparse changes of one class under intersection criteria (see the module docstring)."""
    g_clip, g_on, g_off = ref.clip[target], ref.onset[target], ref.offset[target]
    # ``runs`` are those of clips with a reference event of the class: elsewhere every
    # detection is a false positive (sed_scores_eval's shortcut, which matters for dtc = 0).
    relevant = _round(pairs.covered) >= _round(criteria.dtc * pairs.length)
    score, clip, sign = _birth_and_death(runs, np.flatnonzero(relevant))
    out.add(score, clip, fp=-sign)
    if criteria.cttc is not None:
        _add_cross_triggers(runs, relevant, ref, criteria.cttc, c, ct_weight, out)
    keep = relevant[pairs.run]
    event, change, score = _coverage_changes(
        pairs.event[keep],
        pairs.run[keep],
        pairs.overlap[keep],
        runs,
        criteria.gtc * (g_off - g_on),
    )
    out.add(score, g_clip[event], tp=change)


def _coverage_changes(event, run, overlap, runs: _Runs, needed: np.ndarray):
    """Where each reference event becomes (or stops being) a true positive: its overlap with
    the relevant runs alive at a threshold must reach ``needed`` (gtc times its length).
    Returns (event index, +1/-1, score) of every change."""
    alive_until = np.isfinite(runs.death[run])
    ev = np.concatenate((event, event[alive_until]))
    sc = np.concatenate((runs.birth[run], runs.death[run][alive_until]))
    dx = np.concatenate((overlap, -overlap[alive_until]))
    if len(ev) == 0:
        return ev, ev.copy(), sc
    order = np.lexsort((-sc, ev))
    ev, sc, dx = ev[order], sc[order], dx[order]
    first_of_event = np.ones(len(ev), bool)
    first_of_event[1:] = ev[1:] != ev[:-1]
    last_of_group = np.ones(len(ev), bool)
    last_of_group[:-1] = (ev[1:] != ev[:-1]) | (sc[1:] != sc[:-1])
    # Running sum per event: a cumulative sum restarted at each event.
    total = np.cumsum(dx)
    event_start = np.flatnonzero(first_of_event)
    before = np.concatenate(([0.0], total))[event_start]
    total -= np.repeat(before, np.diff(np.append(event_start, len(ev))))
    ev_g, sc_g, total_g = ev[last_of_group], sc[last_of_group], total[last_of_group]
    hit = (_round(total_g) >= _round(needed[ev_g])).astype(np.int64)
    previous = np.zeros_like(hit)
    same_event = np.zeros(len(ev_g), bool)
    same_event[1:] = ev_g[1:] == ev_g[:-1]
    previous[1:] = np.where(same_event[1:], hit[:-1], 0)
    change = hit - previous
    nonzero = change != 0
    return ev_g[nonzero], change[nonzero], sc_g[nonzero]


def _clip_event_ranges(ref: Reference, clips: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference events of each of ``clips`` (clip indices), as ranges of ``ref``: a
    table of every clip between the lowest and the highest, looked up per element (many
    elements share a clip; a lookup costs less than a search)."""
    if len(clips) == 0:
        return clips.copy(), clips.copy()
    low = int(clips.min())
    first = np.searchsorted(ref.clip, np.arange(low, int(clips.max()) + 2))
    return first[clips - low], first[clips - low + 1]


def _add_cross_triggers(runs: _Runs, relevant, ref: Reference, cttc, c, ct_weight, out) -> None:
    """Sparse changes of the summed cross-trigger rate: each run that is not ``relevant``
    adds its rate (see :func:`_cross_trigger_rates`) while it is alive."""
    rates = _cross_trigger_rates(runs, relevant, ref, cttc, c, ct_weight)
    idx = np.flatnonzero(rates)
    score, clip, rate = _birth_and_death(runs, idx, rates[idx])
    out.add(score, clip, rate=rate)


def _cross_trigger_rates(runs: _Runs, relevant, ref: Reference, cttc, c, ct_weight):
    """Per run, the sum over other classes of [the run is a cross-trigger of that class]
    times that class's weight (1 / its total reference duration)."""
    rates = np.zeros(len(runs.clip))
    candidates = np.flatnonzero(~relevant)
    if candidates.size == 0 or len(ref.clip) == 0:
        return rates
    owner, event = expand_ranges(*_clip_event_ranges(ref, runs.clip[candidates]))
    r = candidates[owner]
    overlap = np.minimum(runs.offset[r], ref.offset[event]) - np.maximum(
        runs.onset[r], ref.onset[event]
    )
    keep = (ref.label[event] != c) & (overlap > 0)
    r, event, overlap = r[keep], event[keep], overlap[keep]
    if len(r) == 0:
        return rates
    # Grouped by run, then class (the reference is sorted by clip, class, onset).
    label = ref.label[event]
    new = np.ones(len(r), bool)
    new[1:] = (r[1:] != r[:-1]) | (label[1:] != label[:-1])
    starts = np.flatnonzero(new)
    summed = np.add.reduceat(overlap, starts)
    run_g, label_g = r[starts], label[starts]
    length = runs.offset[run_g] - runs.onset[run_g]
    trigger = _round(summed) >= _round(cttc * length)
    return np.bincount(run_g[trigger], ct_weight[label_g[trigger]], len(rates))


# ----------------------------------------------------------------------------------------------
# Collar-based criteria
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CollarParams:
    """Collar-based matching (sed_eval's event-based criteria)."""

    onset_collar: float = 0.2
    offset_collar: float = 0.2
    offset_collar_rate: float = 0.2


def _collar_changes(runs: _Runs, target: np.ndarray, ref: Reference, collar: CollarParams, out):
    """Sparse changes of collar-based true positives (each one a false positive less)."""
    n = len(runs.clip)
    g_clip, g_on, g_off = ref.clip[target], ref.onset[target], ref.offset[target]
    margin = collar.onset_collar + 10.0**-TIME_DECIMALS
    lo = _grouped_searchsorted(g_clip, g_on, runs.clip, runs.onset - margin, "left")
    hi = _grouped_searchsorted(g_clip, g_on, runs.clip, runs.onset + margin, "right")
    pair_run, pair_event = expand_ranges(lo, hi)
    allowed = np.maximum(collar.offset_collar, collar.offset_collar_rate * (g_off - g_on))
    hit = (_round(np.abs(runs.onset[pair_run] - g_on[pair_event]) - collar.onset_collar) <= 0) & (
        _round(np.abs(runs.offset[pair_run] - g_off[pair_event]) - allowed[pair_event]) <= 0
    )
    pair_run, pair_event = pair_run[hit], pair_event[hit]
    # A run within the collars of two events, or an event within those of two runs alive at
    # once: the count is a maximum matching, done threshold by threshold in those clips.
    hard = np.bincount(pair_run, minlength=n) > 1
    hard |= _shared_event_conflict(pair_event, pair_run, runs, n)
    hard_clips = np.unique(runs.clip[hard])
    easy = ~np.isin(runs.clip[pair_run], hard_clips)
    score, clip, sign = _birth_and_death(runs, pair_run[easy])
    out.add(score, clip, tp=sign, fp=-sign)
    for k in hard_clips:
        _collar_changes_by_threshold(runs, pair_run, pair_event, int(k), out)


def _shared_event_conflict(pair_event, pair_run, runs: _Runs, n: int) -> np.ndarray:
    """Runs that hit an event also hit by another run alive at some common threshold.

    Runs of one clip and class are nested or disjoint; sorted by birth (descending), a run
    shares a threshold with an earlier one when it is born above that one's death."""
    out = np.zeros(n, bool)
    if len(pair_event) < 2:
        return out
    order = np.lexsort((-runs.birth[pair_run], pair_event))
    ev, r = pair_event[order], pair_run[order]
    birth, death = runs.birth[r], runs.death[r]
    conflict = np.zeros(len(ev), bool)
    k = 1
    same = ev[k:] == ev[:-k]
    while same.any():
        conflict[k:] |= same & (birth[k:] > death[:-k])
        k += 1
        same = same[1:] & (ev[k:] == ev[:-k]) if k < len(ev) else np.zeros(0, bool)
    out[r[conflict]] = True
    return out


def _max_matching(edges: list[tuple[int, int]]) -> int:
    """Size of a maximum matching of a bipartite graph (augmenting paths)."""
    adjacency: dict[int, list[int]] = {}
    for left, right in edges:
        adjacency.setdefault(left, []).append(right)
    match_right: dict[int, int] = {}

    def augment(left: int, seen: set[int]) -> bool:
        for right in adjacency[left]:
            if right in seen:
                continue
            seen.add(right)
            if right not in match_right or augment(match_right[right], seen):
                match_right[right] = left
                return True
        return False

    return sum(augment(left, set()) for left in adjacency)


def _collar_changes_by_threshold(runs: _Runs, pair_run, pair_event, k: int, out) -> None:
    in_clip = np.flatnonzero(runs.clip == k)
    mine = runs.clip[pair_run] == k
    pairs = list(zip(pair_run[mine].tolist(), pair_event[mine].tolist(), strict=True))
    previous = 0
    scores, changes = [], []
    for t in np.unique(runs.birth[in_clip])[::-1]:
        alive = set(in_clip[(runs.birth[in_clip] >= t) & (runs.death[in_clip] < t)].tolist())
        tp = _max_matching([(r, e) for r, e in pairs if r in alive])
        if tp != previous:
            scores.append(t)
            changes.append(tp - previous)
        previous = tp
    change = np.array(changes, np.int64)
    out.add(np.array(scores, float), np.full(len(scores), k), tp=change, fp=-change)


# ----------------------------------------------------------------------------------------------
# Driver: one class at a time, in blocks of clips
# ----------------------------------------------------------------------------------------------
def _blocks(clips: np.ndarray, starts: np.ndarray) -> list[np.ndarray]:
    """``clips`` cut into groups of about BLOCK_FRAMES frames."""
    if len(clips) == 0:
        return []
    frames = np.cumsum(starts[clips + 1] - starts[clips])
    cut = np.searchsorted(frames, np.arange(BLOCK_FRAMES, frames[-1], BLOCK_FRAMES))
    return [b for b in np.split(clips, np.unique(cut)) if len(b)]


def _block_reference(ref: Reference, clips: np.ndarray) -> Reference:
    lo, hi = _clip_event_ranges(ref, clips[[0, -1]])
    sel = slice(lo[0], hi[1])
    return Reference(ref.clip[sel], ref.label[sel], ref.onset[sel], ref.offset[sel], None)


def intermediate_statistics(
    tables: ScoreTables,
    ref: Reference,
    *,
    intersection: Mapping[str, _Criteria] | None = None,
    collar: CollarParams | None = None,
) -> dict[str, list[Curve]]:
    """Per criteria set (intersection criteria by name, and ``"collar"``), the
    :class:`Curve` of every class."""
    intersection = intersection or {}
    names = list(intersection) + (["collar"] if collar is not None else [])
    out: dict[str, list[Curve]] = {name: [] for name in names}
    for _, curves in _class_curves(tables, ref, intersection, collar):
        for name in names:
            out[name].append(curves[name])
    return out


def _class_curves(
    tables: ScoreTables,
    ref: Reference,
    intersection: Mapping[str, _Criteria],
    collar: CollarParams | None,
):
    """Per class (one at a time, so that memory holds one class's changes), the
    :class:`Curve` of each criteria set: yields ``(class index, {name: curve})``."""
    for c in range(len(tables.classes)):
        yield c, _curves_of_class(tables, ref, c, intersection, collar)


def _curves_of_class(
    tables: ScoreTables,
    ref: Reference,
    c: int,
    intersection: Mapping[str, _Criteria],
    collar: CollarParams | None,
) -> dict[str, Curve]:
    """The :class:`Curve` of class ``c`` for each criteria set (by name, and ``"collar"``)."""
    n_classes = len(tables.classes)
    t_ref = np.bincount(ref.label, weights=ref.offset - ref.onset, minlength=n_classes)
    ct_weight = 1.0 / np.maximum(t_ref, 1e-12)
    names = list(intersection) + (["collar"] if collar is not None else [])
    cross_trigger = {k: v.cttc for k, v in intersection.items() if v.cttc is not None}
    # Runs are needed only in clips with a reference event of the class (true positives) and,
    # for cross-triggers, in clips with events of other classes; elsewhere every detection is
    # a false positive and the number of detections (the dense part) is all that counts.
    dense = _dense_part(_detection_count_changes(tables, c))
    sparse = {name: _Sparse() for name in names}
    own = np.unique(ref.clip[ref.label == c])
    for clips in _blocks(own, tables.starts):
        runs = _runs(tables, clips, c)
        block_ref = _block_reference(ref, clips)
        target = np.flatnonzero(block_ref.label == c)
        pairs = _overlaps(runs, target, block_ref) if intersection else None
        for name, criteria in intersection.items():
            _intersection_changes(
                runs, pairs, target, block_ref, criteria, c, ct_weight, sparse[name]
            )
        if collar is not None:
            _collar_changes(runs, target, block_ref, collar, sparse["collar"])
    others = np.setdiff1d(np.unique(ref.clip), own, assume_unique=True) if cross_trigger else []
    for clips in _blocks(others, tables.starts):
        runs = _runs(tables, clips, c)
        block_ref = _block_reference(ref, clips)
        unrelated = np.zeros(len(runs.clip), bool)  # no event of the class to overlap
        for name, cttc in cross_trigger.items():
            _add_cross_triggers(runs, unrelated, block_ref, cttc, c, ct_weight, sparse[name])
    n_ref = int(np.sum(ref.label == c))
    return {name: _curve(dense, sparse[name], n_ref) for name in names}


def segment_statistics(
    tables: ScoreTables, ref: Reference, segment_length: float = 1.0
) -> list[Curve]:
    """Segment-based counts at every threshold, per class.

    A segment's score is the highest score of the frames it overlaps; it is a true positive
    when a reference event of the class overlaps it. Each clip is cut into
    ``ceil(duration / segment_length)`` segments (``ref.durations``, or else the later of its
    last frame offset and its last reference offset).
    """
    n_clips, n_classes = len(tables.clips), len(tables.classes)
    ends = tables.offsets[tables.starts[1:] - 1]
    if ref.durations is not None:
        durations = ref.durations
    else:
        last_ref = np.full(n_clips, -np.inf)
        np.maximum.at(last_ref, ref.clip, ref.offset)
        durations = np.maximum(_round(ends), last_ref)
    n_segments = np.ceil(durations / segment_length).astype(np.int64)
    seg_start = np.cumsum(n_segments) - n_segments
    seg_clip = np.repeat(np.arange(n_clips), n_segments)
    seg_index = np.arange(n_segments.sum()) - np.repeat(seg_start, n_segments)
    seg_on = _round(seg_index * segment_length)
    seg_off = _round((seg_index + 1) * segment_length)
    # The frames of each segment, from the clip's rounded timestamps (frame onsets and the
    # last offset): [first timestamp > onset, minus one; first timestamp >= offset).
    n_ts = np.diff(tables.starts) + 1
    ts_clip = np.repeat(np.arange(n_clips), n_ts)
    ts = np.empty(int(n_ts.sum()))
    ts_start = np.cumsum(n_ts) - n_ts
    is_end = np.zeros(len(ts), bool)
    is_end[ts_start + n_ts - 1] = True
    ts[~is_end] = _round(tables.onsets)
    ts[is_end] = _round(ends)
    idx_on = _grouped_searchsorted(ts_clip, ts, seg_clip, seg_on, "right") - ts_start[seg_clip]
    idx_on = np.maximum(idx_on - 1, 0)
    idx_off = _grouped_searchsorted(ts_clip, ts, seg_clip, seg_off, "left") - ts_start[seg_clip]
    idx_off = np.minimum(idx_off, n_ts[seg_clip] - 1)
    empty = idx_off <= idx_on
    first_frame = tables.starts[seg_clip] + idx_on
    stop_frame = tables.starts[seg_clip] + np.maximum(idx_off, idx_on + 1)
    bounds = np.empty(2 * len(seg_clip), np.int64)
    bounds[0::2], bounds[1::2] = first_frame, stop_frame
    padded = np.vstack((tables.scores, np.zeros((1, n_classes))))
    seg_scores = np.maximum.reduceat(padded, bounds, axis=0)[0::2]
    seg_scores[empty] = 0.0
    curves = []
    for c in range(n_classes):
        t = np.flatnonzero(ref.label == c)
        active = np.zeros(len(seg_clip), bool)
        first = np.floor(ref.onset[t] / segment_length).astype(np.int64) - 1
        last = np.ceil(ref.offset[t] / segment_length).astype(np.int64) + 1
        owner, i = expand_ranges(np.maximum(first, 0), np.minimum(last, n_segments[ref.clip[t]]))
        g = t[owner]
        s_idx = seg_start[ref.clip[g]] + i
        overlaps = (seg_on[s_idx] < ref.offset[g]) & (seg_off[s_idx] > ref.onset[g])
        active[s_idx[overlaps]] = True
        # Every segment is a detection (dense part); the active ones are true positives.
        sparse = _Sparse()
        sparse.add(seg_scores[active, c], seg_clip[active], tp=np.ones(active.sum()))
        sparse.add(seg_scores[active, c], seg_clip[active], fp=-np.ones(active.sum()))
        dense = (seg_scores[:, c], np.ones(len(seg_clip), np.int64), seg_clip)
        curves.append(_curve(_dense_part(dense), sparse, int(active.sum())))
    return curves


# ----------------------------------------------------------------------------------------------
# Curves and scores
# ----------------------------------------------------------------------------------------------
def staircase_area(y: np.ndarray, x: np.ndarray, max_x: float) -> float:
    """Area under the step curve that holds ``y[i]`` from ``x[i]`` to the next ``x``, up to
    ``max_x`` (psds_eval's and sed_scores_eval's rectangles alike)."""
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    cut = int(np.argmax(np.append(x > max_x, True)))
    x = np.concatenate((x[:cut], [max_x]))
    return float(np.sum(y[:cut] * np.diff(x)))


def psd_roc_of_class(
    curve: Curve, *, dataset_duration: float, alpha_ct: float, n_other: int, max_efpr: float
) -> tuple[np.ndarray, np.ndarray]:
    """(TPR, eFPR per hour) of one class: the upper staircase of its operating points up to
    ``max_efpr`` (for each TPR level, the lowest eFPR reaching it, kept where it beats every
    lower eFPR)."""
    efpr = curve.fp / dataset_duration
    if alpha_ct != 0.0 and n_other > 0:
        efpr = efpr + alpha_ct * curve.rate / n_other
    efpr = efpr * 3600.0
    # Only the lowest eFPR of each true-positive count can lie on the staircase.
    lowest = np.full(int(curve.tp.max()) + 1, np.inf)
    np.minimum.at(lowest, curve.tp, efpr)
    level = np.flatnonzero(np.isfinite(lowest))
    tpr, efpr = level / max(curve.n_ref, 1), lowest[level]
    order = np.lexsort((tpr, efpr))
    tpr, efpr = tpr[order], efpr[order]
    running = np.maximum.accumulate(tpr)
    keep = np.concatenate(([0], np.flatnonzero(running[1:] > running[:-1]) + 1))
    tpr, efpr = tpr[keep], efpr[keep]
    last = np.append(efpr[1:] != efpr[:-1], True)  # per eFPR, the highest TPR
    tpr, efpr = tpr[last], efpr[last]
    inside = efpr <= max_efpr
    return tpr[inside], efpr[inside]


def psds_from_class_rocs(
    rocs: Sequence[tuple[np.ndarray, np.ndarray]], *, alpha_st: float, max_efpr: float
) -> tuple[float, np.ndarray, np.ndarray]:
    """PSDS of per-class (TPR, eFPR) curves: area under mean - alpha_st * std up to
    ``max_efpr``, normalised; returns (psds, effective TPR, eFPR)."""
    grid = np.unique(np.concatenate([efpr for _, efpr in rocs]))
    interpolated = []
    for tpr, efpr in rocs:
        index = np.searchsorted(efpr, grid, side="right") - 1
        interpolated.append(np.where(index >= 0, tpr[np.maximum(index, 0)], 0.0))
    stacked = np.array(interpolated)
    etpr = np.maximum(stacked.mean(axis=0) - alpha_st * stacked.std(axis=0), 0.0)
    etpr = np.append(etpr, etpr[-1])
    grid = np.append(grid, max_efpr)
    return staircase_area(etpr, grid, max_efpr) / max_efpr, etpr, grid


def f_score(tp: Any, fp: Any, n_ref: Any) -> tuple[Any, Any, Any]:
    """(F1, precision, recall); precision is 1 where nothing is detected."""
    tp, fp = np.asarray(tp, float), np.asarray(fp, float)
    p = np.where(tp + fp == 0, 1.0, tp / np.maximum(tp + fp, 1))
    r = tp / n_ref
    return 2 * p * r / np.maximum(p + r, 1e-15), p, r


def best_f1(curve: Curve) -> tuple[float, float, tuple[int, int]]:
    """(best F1, threshold reaching it, its (tp, fp)): of the operating points with the best
    F1, the one at the highest score; the threshold lies halfway to the next lower score
    where the counts change (-inf if there is none)."""
    f, _, _ = f_score(curve.tp, curve.fp, curve.n_ref)
    best_f = f.max()
    best = np.flatnonzero(f == best_f)
    i = best[np.argmax(curve.scores[best])]
    score = curve.scores[i]
    below = curve.next_change_below(score)
    threshold = -np.inf if below is None else (score + below) / 2
    return float(best_f), float(threshold), (int(curve.tp[i]), int(curve.fp[i]))


def _average(per_class: Mapping[str, Mapping[str, float]], key: str) -> float:
    values = [v[key] for v in per_class.values()]
    return float(np.mean(values)) if values else math.nan


def _micro_f1(rows: Sequence[tuple[int, int]], n_ref: int) -> float:
    tp = float(sum(x[0] for x in rows))
    fp = float(sum(x[1] for x in rows))
    p = tp / max(tp + fp, 1.0)
    r = tp / max(float(n_ref), 1.0)
    return float(2 * p * r / max(p + r, 1e-15))


@dataclass
class _ClassF1:
    """One class's F1 figures, and the counts they came from (for micro averages)."""

    values: dict[str, float]
    at: tuple[int, int]
    best: tuple[int, int]
    n_ref: int


def _class_f1(curve: Curve, threshold: float, prefix: str) -> _ClassF1:
    tp_fp = curve.at(threshold)
    f, p, r = (float(x) for x in f_score(*tp_fp, curve.n_ref))
    bf, bt, best = best_f1(curve)
    values = {
        f"{prefix}_f1": f,
        f"{prefix}_precision": p,
        f"{prefix}_recall": r,
        f"{prefix}_best_f1": bf,
        f"{prefix}_best_threshold": bt,
    }
    return _ClassF1(values, tp_fp, best, curve.n_ref)


def _f1_averages(per_class: Mapping[str, _ClassF1], prefix: str) -> dict[str, float]:
    """Macro averages (mean over classes) and micro averages (from summed counts)."""
    values = {c: r.values for c, r in per_class.items()}
    n_ref = sum(r.n_ref for r in per_class.values())
    return {
        f"{prefix}_f1_macro": _average(values, f"{prefix}_f1"),
        f"{prefix}_precision_macro": _average(values, f"{prefix}_precision"),
        f"{prefix}_recall_macro": _average(values, f"{prefix}_recall"),
        f"{prefix}_f1_micro": _micro_f1([r.at for r in per_class.values()], n_ref),
        f"{prefix}_best_f1_macro": _average(values, f"{prefix}_best_f1"),
        f"{prefix}_best_f1_micro": _micro_f1([r.best for r in per_class.values()], n_ref),
    }


def _figures_of_class(job: tuple, c: int) -> tuple[dict, dict, dict]:
    """Class ``c``'s PSD-ROC per scenario, its PSDS per scenario and its F1 figures (by
    prefix): the curves reduced to what the report keeps, small enough to send between
    processes."""
    tables, ref, criteria, collar, scenarios, threshold = job
    curves = _curves_of_class(tables, ref, c, criteria, collar)
    duration = float(np.sum(ref.durations)) if ref.durations is not None else math.nan
    rocs, psds = {}, {}
    for params in scenarios:
        tpr, efpr = psd_roc_of_class(
            curves[params.name],
            dataset_duration=duration,
            alpha_ct=params.alpha_ct,
            n_other=len(tables.classes) - 1,
            max_efpr=params.max_efpr,
        )
        rocs[params.name] = (tpr, efpr)
        psds[params.name] = staircase_area(tpr, efpr, params.max_efpr) / params.max_efpr
    f1 = {
        prefix: _class_f1(curves[prefix], threshold, prefix)
        for prefix in ("intersection", "collar")
        if prefix in curves
    }
    return rocs, psds, f1


#: What forked workers of :func:`_map_classes` score (set before they fork, never pickled).
_FORKED_JOB: list[tuple] = []


def _forked_figures(c: int) -> tuple[dict, dict, dict]:
    return _figures_of_class(_FORKED_JOB[0], c)


@contextmanager
def _map_classes(job: tuple, n_classes: int, n_jobs: int):
    """Yields a function returning :func:`_figures_of_class` of every class, in order:
    computed inline when called, or started at once in ``n_jobs`` forked processes (which
    share the score tables with this one instead of receiving a copy)."""
    import multiprocessing

    n_jobs = min(n_jobs, n_classes)
    if n_jobs <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        yield lambda: [_figures_of_class(job, c) for c in range(n_classes)]
        return
    _FORKED_JOB[:] = [job]
    try:
        with multiprocessing.get_context("fork").Pool(n_jobs) as pool:
            result = pool.map_async(_forked_figures, range(n_classes), chunksize=1)
            yield result.get
    finally:
        _FORKED_JOB.clear()


def _check_positive(params: Any) -> None:
    for key in ("dtc_threshold", "gtc_threshold"):
        if getattr(params, key) <= 0:
            raise ValueError(
                f"PSDS {params.name}: score-based PSDS needs {key} > 0, got {getattr(params, key)}"
            )
    if params.alpha_ct != 0 and params.cttc_threshold <= 0:
        raise ValueError(f"PSDS {params.name}: score-based PSDS needs cttc_threshold > 0")


def score_tables_metrics(
    tables: ScoreTables,
    ref: Reference,
    *,
    psds_scenarios: Sequence[Any] = (),
    threshold: float = 0.5,
    collar: CollarParams | None = CollarParams(),
    segment_length: float | None = 1.0,
    intersection_f1: Any = None,
    with_curves: bool = False,
    n_jobs: int = 1,
) -> dict[str, Any]:
    """All score-based metrics of ``tables`` against ``ref``.

    ``psds_scenarios`` are :class:`~sedkit.scoring.sed.PSDSParams`; the cross-trigger criterion
    is used only where ``alpha_ct`` is not 0 (as sed_scores_eval does). Returns plain floats:
    per scenario name its PSDS; ``collar_f1_macro``/``_micro`` (F1 at ``threshold``),
    ``collar_best_f1_macro``/``_micro`` and the same for ``segment_`` (and ``intersection_``
    with ``intersection_f1``); ``classwise`` per class (the per-class PSDS under the scenario
    name, F1, precision, recall, best F1 and its threshold). With ``with_curves``, ``"curves"``
    holds each scenario's PSD-ROC (effective TPR, eFPR) and per-class curves, for plots.
    ``n_jobs`` > 1 scores the classes in that many forked processes (same figures).
    """
    criteria = {}
    for params in psds_scenarios:
        _check_positive(params)
        cttc = params.cttc_threshold if params.alpha_ct != 0 else None
        criteria[params.name] = _Criteria(params.dtc_threshold, params.gtc_threshold, cttc)
    if intersection_f1 is not None:
        criteria["intersection"] = _Criteria(
            intersection_f1.dtc_threshold, intersection_f1.gtc_threshold, None
        )
    if psds_scenarios and ref.durations is None:
        raise ValueError("PSDS needs clip durations")
    classwise: dict[str, dict[str, float]] = {c: {} for c in tables.classes}
    rocs: dict[str, list] = {p.name: [] for p in psds_scenarios}
    f1: dict[str, dict[str, _ClassF1]] = {}
    job = (tables, ref, criteria, collar, tuple(psds_scenarios), threshold)
    with _map_classes(job, len(tables.classes), n_jobs) as per_class:
        if segment_length is not None:  # (meanwhile, when the classes run elsewhere)
            for name, curve in zip(
                tables.classes, segment_statistics(tables, ref, segment_length), strict=True
            ):
                f1.setdefault("segment", {})[name] = _class_f1(curve, threshold, "segment")
        for name, (class_rocs, class_psds, class_f1) in zip(
            tables.classes, per_class(), strict=True
        ):
            for scenario, roc in class_rocs.items():
                rocs[scenario].append(roc)
            classwise[name].update(class_psds)
            for prefix, result in class_f1.items():
                f1.setdefault(prefix, {})[name] = result
    metrics: dict[str, Any] = {}
    curves_out: dict[str, Any] = {}
    for params in psds_scenarios:
        value, etpr, efpr = psds_from_class_rocs(
            rocs[params.name], alpha_st=params.alpha_st, max_efpr=params.max_efpr
        )
        metrics[params.name] = value
        curves_out[params.name] = {"etpr": etpr, "efpr": efpr, "classes": rocs[params.name]}
    for prefix in ("intersection", "collar", "segment"):
        if prefix in f1:
            metrics.update(_f1_averages(f1[prefix], prefix))
            for name, result in f1[prefix].items():
                classwise[name].update(result.values)
    metrics["classwise"] = classwise
    if with_curves:
        metrics["curves"] = curves_out
    return metrics


# ----------------------------------------------------------------------------------------------
# Inputs from files
# ----------------------------------------------------------------------------------------------
def align_reference(
    tables: ScoreTables,
    ground_truth: Any,
    durations: Any | None,
    *,
    allow_unknown_clips: bool = False,
) -> tuple[ScoreTables, Reference]:
    """Match a ground truth (and durations) read by :mod:`sedkit.scoring.io` with score tables.

    Clips are matched by audio id (the ground truth's file name without its extension). Every
    clip of the ground truth needs a score table; tables of other clips are an error, or are
    dropped with a :class:`~sedkit.scoring.sed.ScoringWarning` when ``allow_unknown_clips``.
    Classes of the tables without a reference event are left out with a warning (their
    recall is undefined; sed_scores_eval refuses them); ground-truth labels that no table
    scores are an error.
    """
    from sedkit.errors import InputFileError
    from sedkit.scoring.scenarios import ScoringWarning
    from sedkit.scoring.score_tables import audio_id

    gt_source = str(ground_truth.attrs.get("source", "<ground truth>"))
    gt_ids = np.array([audio_id(str(f)) for f in ground_truth["filename"]], dtype=object)
    known = set(gt_ids.tolist())
    have = set(tables.clips)
    missing = sorted(known - have)
    if missing:
        raise InputFileError(
            gt_source,
            f"no score table for {len(missing)} clip(s) of the ground truth, e.g. "
            + ", ".join(f"{m}.tsv" for m in missing[:3]),
        )
    extra = [c for c in tables.clips if c not in known]
    if extra:
        if not allow_unknown_clips:
            raise InputFileError(
                tables.paths[tables.clips.index(extra[0])],
                f"clip {extra[0]!r} is not in the ground truth {gt_source} ({len(extra)} such "
                "score table(s)); pass --allow-unknown-clips to leave them out with a warning",
            )
        warnings.warn(
            f"left out {len(extra)} score table(s) of clips not in the ground truth: "
            + ", ".join(extra[:10]),
            ScoringWarning,
            stacklevel=2,
        )
        tables = tables.select_clips(np.array([c in known for c in tables.clips]))
    events = ground_truth["event_label"].notna().to_numpy()
    labels = ground_truth["event_label"].to_numpy()[events]
    unknown = sorted(set(labels) - set(tables.classes))
    if unknown:
        raise InputFileError(
            gt_source,
            f"event label(s) {', '.join(map(str, unknown))} are not columns of the score "
            f"tables (classes: {', '.join(tables.classes)})",
        )
    absent = [c for c in tables.classes if c not in set(labels)]
    if absent:
        warnings.warn(
            f"class(es) without any reference event left out of the scores: {', '.join(absent)}",
            ScoringWarning,
            stacklevel=2,
        )
        tables = tables.select_classes([c for c in tables.classes if c not in absent])
    if not tables.classes:
        raise InputFileError(gt_source, "the ground truth holds no event, nothing to score")
    clip_index = {c: i for i, c in enumerate(tables.clips)}
    class_index = {c: i for i, c in enumerate(tables.classes)}
    ref_clip = np.array([clip_index[c] for c in gt_ids[events]], np.int64)
    ref_label = np.array([class_index[c] for c in labels], np.int64)
    dur = None
    if durations is not None:
        by_id = {
            audio_id(str(f)): float(d)
            for f, d in zip(durations["filename"], durations["duration"], strict=True)
        }
        lacking = [c for c in tables.clips if c not in by_id]
        if lacking:
            raise InputFileError(
                str(durations.attrs.get("source", "<durations>")),
                f"no duration for {len(lacking)} clip(s), e.g. {', '.join(lacking[:3])}",
            )
        dur = np.array([by_id[c] for c in tables.clips])
    ref = Reference.from_events(
        ref_clip,
        ref_label,
        ground_truth["onset"].to_numpy(float)[events],
        ground_truth["offset"].to_numpy(float)[events],
        dur,
    )
    return tables, ref


def score_folder(
    scores: Any,
    ground_truth: Any,
    durations: Any | None = None,
    *,
    psds_scenarios: Sequence[Any] | None = None,
    threshold: float = 0.5,
    collar: CollarParams | None = CollarParams(),
    segment_length: float | None = 1.0,
    intersection_f1: Any = "default",
    allow_unknown_clips: bool = False,
    with_curves: bool = False,
    n_jobs: int = 1,
) -> dict[str, Any]:
    """Score a folder of score tables (or a :class:`ScoreTables`) against a ground truth.

    ``ground_truth`` and ``durations`` are paths or frames as :mod:`sedkit.scoring.io` reads
    them. ``psds_scenarios`` defaults to the DCASE scenarios PSDS1 and PSDS2 when durations
    are given (PSDS needs them), none otherwise; ``intersection_f1`` defaults to the DCASE
    baselines' criteria (dtc = gtc = 0.5). See :func:`score_tables_metrics` for the result.
    """
    import os

    from sedkit.scoring.io import read_durations, read_ground_truth
    from sedkit.scoring.scenarios import INTERSECTION_F1, PSDS1, PSDS2
    from sedkit.scoring.score_tables import read_score_tables, score_files

    if isinstance(scores, str | os.PathLike):
        files = score_files(scores)
        scores = read_score_tables(files.values(), ids=list(files))
    if isinstance(ground_truth, str | os.PathLike):
        ground_truth = read_ground_truth(ground_truth)
    if isinstance(durations, str | os.PathLike):
        durations = read_durations(durations)
    tables, ref = align_reference(
        scores, ground_truth, durations, allow_unknown_clips=allow_unknown_clips
    )
    if psds_scenarios is None:
        psds_scenarios = (PSDS1, PSDS2) if durations is not None else ()
    if intersection_f1 == "default":
        intersection_f1 = INTERSECTION_F1
    metrics = score_tables_metrics(
        tables,
        ref,
        psds_scenarios=psds_scenarios,
        threshold=threshold,
        collar=collar,
        segment_length=segment_length,
        intersection_f1=intersection_f1,
        with_curves=with_curves,
        n_jobs=n_jobs,
    )
    metrics["n_clips"] = len(tables.clips)
    return metrics


def score_tables_psds(
    scores: Any,
    ground_truth: Any,
    durations: Any,
    *,
    psds_scenarios: Sequence[Any] | None = None,
    plot_dir: Any = None,
) -> dict[str, Any]:
    """The exact PSDS of score tables over all thresholds, as a run's validation reports it.

    ``scores`` is a :class:`ScoreTables` or a folder of them; ``ground_truth`` and
    ``durations`` paths or frames (:mod:`sedkit.scoring.io`). ``psds_scenarios`` defaults to
    PSDS1 and PSDS2. Classes without a reference event and tables of clips outside the ground
    truth are left out silently, as psds_eval leaves them out. Returns each scenario's PSDS by
    name and ``classwise`` (the per-class PSDS); with ``plot_dir``, draws each scenario's
    PSD-ROC from the score tables there (``<name>_roc.png``, ``<name>_roc_per_class.png``).
    """
    from sedkit.scoring.scenarios import ScoringWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScoringWarning)
        metrics = score_folder(
            scores,
            ground_truth,
            durations,
            psds_scenarios=psds_scenarios,
            collar=None,
            segment_length=None,
            intersection_f1=None,
            allow_unknown_clips=True,
            with_curves=plot_dir is not None,
        )
    curves = metrics.pop("curves", None)
    if plot_dir is not None and curves:
        from sedkit.scoring.plots import plot_score_psd_rocs

        plot_score_psd_rocs(curves, list(metrics["classwise"]), plot_dir)
    return metrics
