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
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sedkit.scoring.score_tables import ScoreTables

#: Times are compared after rounding to this many decimals (sed_scores_eval's time_decimals).
TIME_DECIMALS = 6
#: Frames per block of clips processed together: bounds the working memory.
BLOCK_FRAMES = 1 << 20


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
    (sorted by key, then value) where ``(q_key, q_value)`` would go (``side`` as numpy's)."""
    n = len(keys)
    tie = np.concatenate(
        (np.ones(n, np.int8), np.zeros(len(q_keys), np.int8))
        if side == "left"
        else (np.zeros(n, np.int8), np.ones(len(q_keys), np.int8))
    )
    all_keys = np.concatenate((keys, q_keys))
    order = np.lexsort((tie, np.concatenate((values, q_values)), all_keys))
    is_element = order < n
    before = np.cumsum(is_element) - is_element
    out = np.empty(len(q_keys), np.int64)
    out[order[~is_element] - n] = before[~is_element]
    return out


def _expand(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All pairs ``(i, j)`` with ``lo[i] <= j < hi[i]``, as two index arrays."""
    counts = np.maximum(hi - lo, 0)
    owner = np.repeat(np.arange(len(lo)), counts)
    start = np.cumsum(counts) - counts
    return owner, np.arange(counts.sum()) - np.repeat(start - lo, counts)


def _nearest_lower(s: np.ndarray, real: np.ndarray, step: int, strict: bool) -> np.ndarray:
    """Index of each frame's nearest neighbour (``step`` -1: before, +1: after) with a lower
    score (``strict``) or a lower-or-equal one. ``s`` holds -inf between clips, so the search
    never leaves a clip. Pointer jumping: while a frame's pointer is not lower, it moves to
    that neighbour's own pointer (everything skipped is known to be no lower)."""
    p = np.arange(len(s)) + step
    p[~real] = np.flatnonzero(~real)
    active = np.flatnonzero(real)
    while active.size:
        q = p[active]
        still = s[q] >= s[active] if strict else s[q] > s[active]
        active = active[still]
        p[active] = p[p[active]]
    return p


@dataclass
class _Runs:
    """Every detection (run of frames above a threshold) of one class in a block of clips."""

    clip: np.ndarray  # clip index (global)
    onset: np.ndarray  # seconds
    offset: np.ndarray
    birth: np.ndarray  # alive for thresholds in (death, birth]
    death: np.ndarray  # -inf: alive down to the lowest threshold


def _runs(s: np.ndarray, real: np.ndarray, t_on: np.ndarray, t_off: np.ndarray, clip: np.ndarray):
    before = _nearest_lower(s, real, -1, strict=True)
    after = _nearest_lower(s, real, +1, strict=True)
    before_or_equal = _nearest_lower(s, real, -1, strict=False)
    # Frames of equal score in one run describe the same run: keep its first such frame.
    first = real & (before_or_equal == before)
    i = np.flatnonzero(first)
    a, b = before[i] + 1, after[i] - 1
    return _Runs(clip[i], t_on[a], t_off[b], s[i], np.maximum(s[before[i]], s[after[i]]))


# ----------------------------------------------------------------------------------------------
# Change points: (score, changes of the counts) per class, summed over clips at the end
# ----------------------------------------------------------------------------------------------
@dataclass
class _Changes:
    """Changes of integer counts (and optional float rates) at scores, for one class."""

    scores: list[np.ndarray] = field(default_factory=list)
    counts: list[np.ndarray] = field(default_factory=list)  # (n, k) int64
    rates: list[np.ndarray] = field(default_factory=list)  # (n,) float64 (cross-trigger rate)

    def add(self, scores: np.ndarray, counts: np.ndarray, rates: np.ndarray | None = None):
        self.scores.append(scores)
        self.counts.append(counts)
        if rates is not None:
            self.rates.append(rates)

    def curve(self, n_counts: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(unique scores ascending plus +inf, counts at each (threshold falling to that
        score), rates at each); the +inf point has nothing detected."""
        scores = np.concatenate(self.scores) if self.scores else np.empty(0)
        counts = np.concatenate(self.counts) if self.counts else np.empty((0, n_counts), np.int64)
        unique, inverse = np.unique(scores, return_inverse=True)
        summed = np.zeros((len(unique) + 1, n_counts), np.int64)
        np.add.at(summed, inverse, counts)
        totals = np.cumsum(summed[::-1], axis=0)[::-1]
        totals[-1] = 0
        rates = None
        if self.rates:
            r = np.zeros(len(unique) + 1)
            np.add.at(r, inverse, np.concatenate(self.rates))
            rates = np.cumsum(r[::-1])[::-1]
            rates[-1] = 0.0
        return np.concatenate((unique, [np.inf])), totals, rates


def _per_clip_nonzero(
    clip: np.ndarray, score: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum changes per (clip, score) and drop those that cancel: the change points of a clip
    are the scores where its counts change (sed_scores_eval keeps exactly those)."""
    if len(clip) == 0:
        return clip, score, counts
    order = np.lexsort((score, clip))
    clip, score, counts = clip[order], score[order], counts[order]
    new = np.ones(len(clip), bool)
    new[1:] = (clip[1:] != clip[:-1]) | (score[1:] != score[:-1])
    starts = np.flatnonzero(new)
    summed = np.add.reduceat(counts, starts, axis=0)
    keep = np.any(summed != 0, axis=1)
    return clip[starts][keep], score[starts][keep], summed[keep]


# ----------------------------------------------------------------------------------------------
# Intersection-based counts (PSDS)
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Criteria:
    dtc: float
    gtc: float
    cttc: float | None


def _intersection_changes(
    runs: _Runs,
    target: np.ndarray,
    ref: Reference,
    criteria: _Criteria,
    class_index: int,
    ct_weight: np.ndarray | None,
    changes: _Changes,
) -> None:
    """Add the changes of (true positives, false positives) and of the weighted cross-trigger
    rate of one class in one block of clips to ``changes``."""
    n = len(runs.clip)
    length = runs.offset - runs.onset
    g_clip, g_on, g_off = ref.clip[target], ref.onset[target], ref.offset[target]
    # Reference events of this class that overlap each run (events of one class are disjoint,
    # so their offsets are sorted within a clip too).
    lo = _grouped_searchsorted(g_clip, g_off, runs.clip, runs.onset, "right")
    hi = _grouped_searchsorted(g_clip, g_on, runs.clip, runs.offset, "left")
    pair_run, pair_event = _expand(lo, hi)
    overlap = np.minimum(runs.offset[pair_run], g_off[pair_event]) - np.maximum(
        runs.onset[pair_run], g_on[pair_event]
    )
    overlap = np.maximum(overlap, 0.0)
    covered = np.bincount(pair_run, weights=overlap, minlength=n)
    relevant = _round(covered) >= _round(criteria.dtc * length)
    if criteria.cttc is None:
        # sed_scores_eval's shortcut for clips without a reference event of the class: every
        # detection there is a false positive.
        relevant &= np.isin(runs.clip, g_clip)

    counts = np.zeros((n, 2), np.int64)
    counts[:, 1] = ~relevant
    rates = None
    if criteria.cttc is not None and ct_weight is not None:
        rates = _cross_trigger_rates(
            runs, relevant, length, ref, criteria.cttc, class_index, ct_weight
        )

    # Births add, deaths (growth into a larger run) remove.
    alive_until = np.isfinite(runs.death)
    score = np.concatenate((runs.birth, runs.death[alive_until]))
    clip = np.concatenate((runs.clip, runs.clip[alive_until]))
    delta = np.concatenate((counts, -counts[alive_until]))
    rate_delta = None if rates is None else np.concatenate((rates, -rates[alive_until]))

    # True positives: per reference event, the overlap summed over the relevant runs alive at
    # once, swept from high to low thresholds.
    keep = relevant[pair_run]
    tp_event, tp_score = _coverage_changes(
        pair_event[keep],
        pair_run[keep],
        overlap[keep],
        runs,
        criteria.gtc * (g_off - g_on),
    )
    score = np.concatenate((score, tp_score))
    clip = np.concatenate((clip, g_clip[tp_event[0]]))
    delta = np.concatenate((delta, np.column_stack((tp_event[1], np.zeros_like(tp_event[1])))))
    if rate_delta is not None:
        changes.add(score, delta, np.concatenate((rate_delta, np.zeros(len(tp_score)))))
    else:
        # Only the change points of each clip (they decide the best-F1 thresholds).
        _, score, delta = _per_clip_nonzero(clip, score, delta)
        changes.add(score, delta)


def _coverage_changes(
    event: np.ndarray,
    run: np.ndarray,
    overlap: np.ndarray,
    runs: _Runs,
    needed: np.ndarray,
) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """Where each reference event becomes (or stops being) a true positive: its overlap with the
    relevant runs alive at a threshold must reach ``needed`` (gtc times its length).

    Returns ((event index, +1/-1), score) for every change."""
    alive_until = np.isfinite(runs.death[run])
    ev = np.concatenate((event, event[alive_until]))
    sc = np.concatenate((runs.birth[run], runs.death[run][alive_until]))
    dx = np.concatenate((overlap, -overlap[alive_until]))
    if len(ev) == 0:
        return (ev, ev.copy()), sc
    order = np.lexsort((-sc, ev))
    ev, sc, dx = ev[order], sc[order], dx[order]
    first_of_event = np.ones(len(ev), bool)
    first_of_event[1:] = ev[1:] != ev[:-1]
    last_of_group = np.ones(len(ev), bool)
    last_of_group[:-1] = (ev[1:] != ev[:-1]) | (sc[1:] != sc[:-1])
    # Sum per event: cumulative sum restarted at each event (offset by the sum before it).
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
    return (ev_g[nonzero], change[nonzero]), sc_g[nonzero]


def _cross_trigger_rates(
    runs: _Runs,
    relevant: np.ndarray,
    length: np.ndarray,
    ref: Reference,
    cttc: float,
    class_index: int,
    ct_weight: np.ndarray,
) -> np.ndarray:
    """Per run, the sum over other classes of [the run is a cross-trigger of that class]
    times that class's weight (1 / its total reference duration)."""
    rates = np.zeros(len(runs.clip))
    candidates = np.flatnonzero(~relevant)
    if candidates.size == 0 or len(ref.clip) == 0:
        return rates
    n_clips = int(max(ref.clip.max(), runs.clip.max())) + 1
    first = np.searchsorted(ref.clip, np.arange(n_clips), side="left")
    last = np.searchsorted(ref.clip, np.arange(n_clips), side="right")
    c = runs.clip[candidates]
    owner, event = _expand(first[c], last[c])
    other = ref.label[event] != class_index
    owner, event = owner[other], event[other]
    r = candidates[owner]
    overlap = np.maximum(
        np.minimum(runs.offset[r], ref.offset[event]) - np.maximum(runs.onset[r], ref.onset[event]),
        0.0,
    )
    if len(r) == 0:
        return rates
    # Events come grouped by run, then class (the reference is sorted by clip, class, onset).
    label = ref.label[event]
    new = np.ones(len(r), bool)
    new[1:] = (r[1:] != r[:-1]) | (label[1:] != label[:-1])
    starts = np.flatnonzero(new)
    summed = np.add.reduceat(overlap, starts)
    run_g, label_g = r[starts], label[starts]
    trigger = _round(summed) >= _round(cttc * length[run_g])
    np.add.at(rates, run_g[trigger], ct_weight[label_g[trigger]])
    return rates


# ----------------------------------------------------------------------------------------------
# Collar-based counts
# ----------------------------------------------------------------------------------------------
def _collar_changes(
    runs: _Runs,
    target: np.ndarray,
    ref: Reference,
    onset_collar: float,
    offset_collar: float,
    offset_collar_rate: float,
    changes: _Changes,
) -> None:
    """Add the changes of (true positives, false positives) of collar-based matching."""
    n = len(runs.clip)
    g_clip, g_on, g_off = ref.clip[target], ref.onset[target], ref.offset[target]
    # Candidate events: onset within the collar of the run's onset (plus a margin for rounding).
    margin = onset_collar + 10.0**-TIME_DECIMALS
    lo = _grouped_searchsorted(g_clip, g_on, runs.clip, runs.onset - margin, "left")
    hi = _grouped_searchsorted(g_clip, g_on, runs.clip, runs.onset + margin, "right")
    pair_run, pair_event = _expand(lo, hi)
    collars = np.maximum(offset_collar, offset_collar_rate * (g_off - g_on))[pair_event]
    hit = (_round(np.abs(runs.onset[pair_run] - g_on[pair_event]) - onset_collar) <= 0) & (
        _round(np.abs(runs.offset[pair_run] - g_off[pair_event]) - collars) <= 0
    )
    pair_run, pair_event = pair_run[hit], pair_event[hit]

    # Where a run hits two events, or an event is hit by two runs alive at once, the count is a
    # maximum matching: those clips are counted threshold by threshold.
    hard = np.zeros(n, bool)
    hits_per_run = np.bincount(pair_run, minlength=n)
    hard[hits_per_run > 1] = True
    hard |= _shared_event_conflict(pair_event, pair_run, runs, n)
    hard_clips = np.unique(runs.clip[hard])
    easy_run = ~np.isin(runs.clip, hard_clips)
    easy_pair = easy_run[pair_run]

    counts = np.zeros((n, 2), np.int64)
    counts[:, 1] = 1
    tp_runs = pair_run[easy_pair]
    counts[tp_runs, 0] += 1
    counts[tp_runs, 1] -= 1
    alive_until = np.isfinite(runs.death) & easy_run
    score = np.concatenate((runs.birth[easy_run], runs.death[alive_until]))
    clip = np.concatenate((runs.clip[easy_run], runs.clip[alive_until]))
    delta = np.concatenate((counts[easy_run], -counts[alive_until]))
    clip, score, delta = _per_clip_nonzero(clip, score, delta)
    changes.add(score, delta)
    for k in hard_clips:
        _collar_changes_by_threshold(runs, pair_run, pair_event, int(k), changes)


def _shared_event_conflict(
    pair_event: np.ndarray, pair_run: np.ndarray, runs: _Runs, n: int
) -> np.ndarray:
    """Runs that hit an event also hit by another run alive at some common threshold."""
    out = np.zeros(n, bool)
    if len(pair_event) < 2:
        return out
    order = np.lexsort((-runs.birth[pair_run], pair_event))
    ev, r = pair_event[order], pair_run[order]
    multi = np.zeros(len(ev), bool)
    multi[1:] = ev[1:] == ev[:-1]
    multi[:-1] |= ev[:-1] == ev[1:]
    for e in np.unique(ev[multi]):
        rs = r[ev == e]
        # Sorted by birth (descending): a later run overlaps an earlier one in lifetime when it
        # is born before all earlier ones have died.
        lowest_death = np.inf
        for j, run in enumerate(rs):
            if j and runs.birth[run] > lowest_death:
                out[rs] = True
                break
            lowest_death = min(lowest_death, runs.death[run])
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


def _collar_changes_by_threshold(
    runs: _Runs, pair_run: np.ndarray, pair_event: np.ndarray, k: int, changes: _Changes
) -> None:
    in_clip = np.flatnonzero(runs.clip == k)
    thresholds = np.unique(runs.birth[in_clip])[::-1]
    pairs = [
        (int(r), int(e)) for r, e in zip(pair_run, pair_event, strict=True) if runs.clip[r] == k
    ]
    previous = np.zeros(2, np.int64)
    out_scores, out_counts = [], []
    for t in thresholds:
        alive = in_clip[(runs.birth[in_clip] >= t) & (runs.death[in_clip] < t)]
        alive_set = set(alive.tolist())
        tp = _max_matching([(r, e) for r, e in pairs if r in alive_set])
        now = np.array([tp, len(alive) - tp], np.int64)
        if (now != previous).any():
            out_scores.append(t)
            out_counts.append(now - previous)
        previous = now
    if out_scores:
        changes.add(np.array(out_scores), np.array(out_counts, np.int64))


# ----------------------------------------------------------------------------------------------
# Driver: blocks of clips, one class at a time
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CollarParams:
    """Collar-based matching (sed_eval's event-based criteria)."""

    onset_collar: float = 0.2
    offset_collar: float = 0.2
    offset_collar_rate: float = 0.2


def _blocks(starts: np.ndarray) -> list[tuple[int, int]]:
    """Clip ranges of about BLOCK_FRAMES frames each."""
    blocks, first = [], 0
    n_clips = len(starts) - 1
    while first < n_clips:
        last = int(np.searchsorted(starts, starts[first] + BLOCK_FRAMES, side="right")) - 1
        last = min(max(last, first + 1), n_clips)
        blocks.append((first, last))
        first = last
    return blocks


def intermediate_statistics(
    tables: ScoreTables,
    ref: Reference,
    *,
    intersection: Mapping[str, _Criteria] | None = None,
    collar: CollarParams | None = None,
) -> dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]]:
    """Counts at every threshold, per class: for each intersection criteria set (by name) and
    for ``"collar"``, a list over classes of (scores ascending with +inf, counts (n, 2):
    true positives and false positives at each, weighted cross-trigger rate or None)."""
    n_classes = len(tables.classes)
    t_ref = np.bincount(ref.label, weights=ref.offset - ref.onset, minlength=n_classes)
    ct_weight = 1.0 / np.maximum(t_ref, 1e-12)
    intersection = intersection or {}
    out: dict[str, list] = {name: [] for name in intersection}
    if collar is not None:
        out["collar"] = []
    blocks = _blocks(tables.starts)
    for c in range(n_classes):
        changes = {name: _Changes() for name in out}
        for first, last in blocks:
            lo, hi = tables.starts[first], tables.starts[last]
            n_frames, n_clips = hi - lo, last - first
            # Layout: -inf, clip frames, -inf, clip frames, ..., -inf.
            pos = np.arange(n_frames) + np.repeat(
                np.arange(1, n_clips + 1), np.diff(tables.starts[first : last + 1])
            )
            size = n_frames + n_clips + 1
            s = np.full(size, -np.inf)
            s[pos] = tables.scores[lo:hi, c]
            real = np.zeros(size, bool)
            real[pos] = True
            t_on = np.zeros(size)
            t_off = np.zeros(size)
            t_on[pos] = tables.onsets[lo:hi]
            t_off[pos] = tables.offsets[lo:hi]
            clip = np.zeros(size, np.int64)
            clip[pos] = np.repeat(np.arange(first, last), np.diff(tables.starts[first : last + 1]))
            runs = _runs(s, real, t_on, t_off, clip)
            in_block = (ref.clip >= first) & (ref.clip < last)
            target = np.flatnonzero(in_block & (ref.label == c))
            block_ref = ref
            if not in_block.all():
                sel = np.flatnonzero(in_block)
                block_ref = Reference(
                    ref.clip[sel], ref.label[sel], ref.onset[sel], ref.offset[sel], None
                )
                target = np.flatnonzero(block_ref.label == c)
            for name, criteria in intersection.items():
                _intersection_changes(
                    runs, target, block_ref, criteria, c, ct_weight, changes[name]
                )
            if collar is not None:
                _collar_changes(
                    runs,
                    target,
                    block_ref,
                    collar.onset_collar,
                    collar.offset_collar,
                    collar.offset_collar_rate,
                    changes["collar"],
                )
        for name, ch in changes.items():
            out[name].append(ch.curve(2))
    return out


def segment_statistics(
    tables: ScoreTables, ref: Reference, segment_length: float = 1.0
) -> list[tuple[np.ndarray, np.ndarray, None]]:
    """Segment-based counts at every threshold, per class (as :func:`intermediate_statistics`).

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
    seg_clip = np.repeat(np.arange(n_clips), n_segments)
    seg_index = np.arange(n_segments.sum()) - np.repeat(
        np.cumsum(n_segments) - n_segments, n_segments
    )
    seg_on = _round(seg_index * segment_length)
    seg_off = _round((seg_index + 1) * segment_length)
    # Frames of each segment: timestamps (frame onsets plus the last offset) rounded, then
    # [first timestamp > onset, minus one; first timestamp >= offset), clipped to the clip.
    onsets_r = _round(tables.onsets)
    ends_r = _round(ends)
    ts_clip = np.concatenate(
        (np.repeat(np.arange(n_clips), np.diff(tables.starts)), np.arange(n_clips))
    )
    ts_val = np.concatenate((onsets_r, ends_r))
    order = np.lexsort((ts_val, ts_clip))
    ts_clip, ts_val = ts_clip[order], ts_val[order]
    ts_start = np.searchsorted(ts_clip, np.arange(n_clips))
    n_ts = np.diff(tables.starts) + 1
    idx_on = (
        _grouped_searchsorted(ts_clip, ts_val, seg_clip, seg_on, "right") - ts_start[seg_clip] - 1
    )
    idx_on = np.maximum(idx_on, 0)
    idx_off = _grouped_searchsorted(ts_clip, ts_val, seg_clip, seg_off, "left") - ts_start[seg_clip]
    idx_off = np.minimum(idx_off, n_ts[seg_clip] - 1)
    empty = idx_off <= idx_on
    first_frame = tables.starts[seg_clip] + idx_on
    last_frame = tables.starts[seg_clip] + np.maximum(idx_off, idx_on + 1)
    # Highest score per segment over its frames (reduceat over consecutive ranges).
    bounds = np.empty(2 * len(seg_clip), np.int64)
    bounds[0::2], bounds[1::2] = first_frame, last_frame
    padded = np.vstack((tables.scores, np.zeros((1, n_classes))))
    seg_scores = (
        np.maximum.reduceat(padded, bounds, axis=0)[0::2]
        if len(bounds)
        else np.empty((0, n_classes))
    )
    seg_scores[empty] = 0.0
    out = []
    for c in range(n_classes):
        t = ref.label == c
        active = np.zeros(len(seg_clip), bool)
        if t.any():
            seg_start = np.cumsum(n_segments) - n_segments
            e_clip = ref.clip[t]
            # Segments [i] with seg_on < g_off and seg_off > g_on.
            first = np.floor(ref.onset[t] / segment_length).astype(np.int64) - 1
            last = np.ceil(ref.offset[t] / segment_length).astype(np.int64) + 1
            owner, i = _expand(np.maximum(first, 0), np.minimum(last, n_segments[e_clip]))
            g = np.flatnonzero(t)[owner]
            s_idx = seg_start[ref.clip[g]] + i
            overlaps = (seg_on[s_idx] < ref.offset[g]) & (seg_off[s_idx] > ref.onset[g])
            active[s_idx[overlaps]] = True
        counts = np.column_stack((active, ~active)).astype(np.int64)
        ch = _Changes()
        ch.add(seg_scores[:, c], counts)
        out.append(ch.curve(2))
    return out


# ----------------------------------------------------------------------------------------------
# Curves and scores
# ----------------------------------------------------------------------------------------------
def _staircase_area(y: np.ndarray, x: np.ndarray, max_x: float) -> float:
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    cut = int(np.argmax(np.append(x > max_x, True)))
    x = np.concatenate((x[:cut], [max_x]))
    return float(np.sum(y[:cut] * np.diff(x)))


def psd_roc_of_class(
    scores: np.ndarray,
    counts: np.ndarray,
    ct_rate: np.ndarray | None,
    *,
    n_ref: int,
    dataset_duration: float,
    alpha_ct: float,
    n_other: int,
    max_efpr: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(TPR, eFPR per hour, score) of one class: the upper staircase up to ``max_efpr``."""
    tpr = counts[:, 0] / max(n_ref, 1)
    efpr = counts[:, 1] / dataset_duration
    if alpha_ct != 0.0 and ct_rate is not None and n_other > 0:
        efpr = efpr + alpha_ct * ct_rate / n_other
    efpr = efpr * 3600.0
    order = np.lexsort((tpr, efpr))
    tpr, efpr, scores = tpr[order], efpr[order], scores[order]
    running = np.maximum.accumulate(tpr)
    keep = np.concatenate(([0], np.flatnonzero(running[1:] > running[:-1]) + 1))
    tpr, efpr, scores = tpr[keep], efpr[keep], scores[keep]
    # Per eFPR, the last point (the highest TPR).
    last = np.append(efpr[1:] != efpr[:-1], True)
    tpr, efpr, scores = tpr[last], efpr[last], scores[last]
    inside = efpr <= max_efpr
    return tpr[inside], efpr[inside], scores[inside]


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
    return _staircase_area(etpr, grid, max_efpr) / max_efpr, etpr, grid


def f_score(tp: Any, fp: Any, n_ref: Any) -> tuple[float, float, float]:
    """(F1, precision, recall); precision is 1 where nothing is detected."""
    tp, fp = np.asarray(tp, float), np.asarray(fp, float)
    p = np.where(tp + fp == 0, 1.0, tp / np.maximum(tp + fp, 1))
    r = tp / n_ref
    f = 2 * p * r / np.maximum(p + r, 1e-15)
    return f, p, r


def f1_at_threshold(scores: np.ndarray, counts: np.ndarray, threshold: float) -> np.ndarray:
    """Counts (tp, fp) of the operating point where scores ``> threshold`` are detected."""
    index = int(np.searchsorted(scores, threshold, side="right"))
    return counts[min(index, len(scores) - 1)]


def best_f1(scores: np.ndarray, counts: np.ndarray, n_ref: int) -> tuple[float, float, np.ndarray]:
    """(best F1, threshold reaching it, its counts): the highest-scoring operating point among
    those with the best F1; the threshold lies halfway to the next lower change point."""
    f, _, _ = f_score(counts[:, 0], counts[:, 1], n_ref)
    best = len(f) - 1 - int(np.argmax(f[::-1]))
    threshold = (scores[best] + scores[best - 1]) / 2 if best > 0 else -np.inf
    return float(f[best]), float(threshold), counts[best]


def _average(per_class: Mapping[str, Mapping[str, float]], key: str) -> float:
    values = [v[key] for v in per_class.values()]
    return float(np.mean(values)) if values else math.nan


def f1_report(
    curves: Sequence[tuple[np.ndarray, np.ndarray, Any]],
    classes: Sequence[str],
    n_ref: np.ndarray,
    threshold: float | Mapping[str, float],
    prefix: str,
) -> dict[str, Any]:
    """F1 at ``threshold`` and the best F1 per class, with macro and micro averages."""
    classwise: dict[str, dict[str, float]] = {}
    at, best = [], []
    for c, (scores, counts, _) in zip(range(len(classes)), curves, strict=True):
        name = classes[c]
        t = threshold[name] if isinstance(threshold, Mapping) else threshold
        tp_fp = f1_at_threshold(scores, counts, t)
        f, p, r = (float(x) for x in f_score(tp_fp[0], tp_fp[1], n_ref[c]))
        bf, bt, b_counts = best_f1(scores, counts, int(n_ref[c]))
        classwise[name] = {
            f"{prefix}_f1": f,
            f"{prefix}_precision": p,
            f"{prefix}_recall": r,
            f"{prefix}_best_f1": bf,
            f"{prefix}_best_threshold": bt,
        }
        at.append(tp_fp)
        best.append(b_counts)
    out: dict[str, Any] = {
        f"{prefix}_f1_macro": _average(classwise, f"{prefix}_f1"),
        f"{prefix}_precision_macro": _average(classwise, f"{prefix}_precision"),
        f"{prefix}_recall_macro": _average(classwise, f"{prefix}_recall"),
        f"{prefix}_best_f1_macro": _average(classwise, f"{prefix}_best_f1"),
    }
    for key, rows in (("f1_micro", at), ("best_f1_micro", best)):
        tp = float(sum(x[0] for x in rows))
        fp = float(sum(x[1] for x in rows))
        n = float(sum(n_ref))
        p = tp / max(tp + fp, 1.0)
        r = tp / max(n, 1.0)
        out[f"{prefix}_{key}"] = float(2 * p * r / max(p + r, 1e-15))
    out["classwise"] = classwise
    return out


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
) -> dict[str, Any]:
    """All score-based metrics of ``tables`` against ``ref``.

    ``psds_scenarios`` are :class:`~sedkit.scoring.sed.PSDSParams`; the cross-trigger criterion
    is used only where ``alpha_ct`` is not 0 (as sed_scores_eval does). Returns plain floats:
    per scenario name its PSDS; ``collar_f1_macro`` ... (F1 at ``threshold``),
    ``collar_best_f1_macro`` and the same for ``segment_`` (and ``intersection_`` with
    ``intersection_f1``); ``classwise`` per class (``<name>_psds`` too). With
    ``with_curves``, ``"curves"`` holds each scenario's PSD-ROC (effective TPR, eFPR) and
    per-class curves, for plots.
    """
    n_classes = len(tables.classes)
    n_ref = np.bincount(ref.label, minlength=n_classes)
    criteria = {}
    for params in psds_scenarios:
        _check_positive(params)
        cttc = params.cttc_threshold if params.alpha_ct != 0 else None
        criteria[params.name] = _Criteria(params.dtc_threshold, params.gtc_threshold, cttc)
    if intersection_f1 is not None:
        criteria["intersection"] = _Criteria(
            intersection_f1.dtc_threshold, intersection_f1.gtc_threshold, None
        )
    stats = intermediate_statistics(tables, ref, intersection=criteria, collar=collar)
    metrics: dict[str, Any] = {}
    classwise: dict[str, dict[str, float]] = {c: {} for c in tables.classes}
    curves: dict[str, Any] = {}
    if psds_scenarios:
        if ref.durations is None:
            raise ValueError("PSDS needs clip durations")
        duration = float(np.sum(ref.durations))
        for params in psds_scenarios:
            rocs = []
            for c, (scores, counts, rate) in enumerate(stats[params.name]):
                tpr, efpr, _ = psd_roc_of_class(
                    scores,
                    counts,
                    rate,
                    n_ref=int(n_ref[c]),
                    dataset_duration=duration,
                    alpha_ct=params.alpha_ct,
                    n_other=n_classes - 1,
                    max_efpr=params.max_efpr,
                )
                rocs.append((tpr, efpr))
                classwise[tables.classes[c]][f"{params.name}"] = (
                    _staircase_area(tpr, efpr, params.max_efpr) / params.max_efpr
                )
            value, etpr, efpr = psds_from_class_rocs(
                rocs, alpha_st=params.alpha_st, max_efpr=params.max_efpr
            )
            metrics[params.name] = value
            if with_curves:
                curves[params.name] = {"etpr": etpr, "efpr": efpr, "classes": rocs}
    parts = []
    if intersection_f1 is not None:
        parts.append(("intersection", stats["intersection"]))
    if collar is not None:
        parts.append(("collar", stats["collar"]))
    if segment_length is not None:
        segment_curves = segment_statistics(tables, ref, segment_length)
        seg_ref = np.array([int(counts[0, 0]) for _, counts, _ in segment_curves])
        parts.append(("segment", segment_curves))
    for prefix, part in parts:
        refs = seg_ref if prefix == "segment" else n_ref
        report = f1_report(part, tables.classes, refs, threshold, prefix)
        for name, values in report.pop("classwise").items():
            classwise[name].update(values)
        metrics.update(report)
    metrics["classwise"] = classwise
    if with_curves:
        metrics["curves"] = curves
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
    from sedkit.scoring.score_tables import audio_id
    from sedkit.scoring.sed import ScoringWarning

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
) -> dict[str, Any]:
    """Score a folder of score tables (or a :class:`ScoreTables`) against a ground truth.

    ``ground_truth`` and ``durations`` are paths or frames as :mod:`sedkit.scoring.io` reads
    them. ``psds_scenarios`` defaults to the DCASE scenarios PSDS1 and PSDS2 when durations
    are given (PSDS needs them), none otherwise; ``intersection_f1`` defaults to the DCASE
    baselines' criteria (dtc = gtc = 0.5). See :func:`score_tables_metrics` for the result.
    """
    import os

    from sedkit.scoring.io import read_durations, read_ground_truth
    from sedkit.scoring.score_tables import read_score_tables, score_files
    from sedkit.scoring.sed import INTERSECTION_F1, PSDS1, PSDS2

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
    )
    metrics["n_clips"] = len(tables.clips)
    return metrics
