"""The DESED-like benchmark's planner and workers: which clips, which events where, rendered
by scaper in worker processes, each draw keyed by (seed, stream, ...)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from sedkit.compat import import_scaper
from sedkit.data.synthesis import (
    seeded_rng,
)
from sedkit_plugins.desed.config import CLASSES, LONG_CLASSES, DomainConfig, SynthConfig
from sedkit_plugins.desed.distractors import DISTRACTOR_GENERATORS, generate_distractor
from sedkit_plugins.desed.recording import generate_background, record
from sedkit_plugins.desed.sources import SOURCE_GENERATORS, SourceStyle, generate_source

# --------------------------------------------------------------------------------------------
# Plans and workers
# --------------------------------------------------------------------------------------------
# Seed streams: every random draw is keyed by (seed, stream, ...) so that it depends on nothing
# else (not on the number of workers, nor on the order in which work finishes).
_STREAM_SOURCE, _STREAM_BACKGROUND, _STREAM_PLAN, _STREAM_RECORD, _STREAM_EMPTY = range(5)
_STREAM_DISTRACTOR = 5

#: Disjoint source pools: (name, domain attribute of SynthConfig).
_POOLS: tuple[tuple[str, str], ...] = (
    ("synthetic_train", "synthetic"),
    ("synthetic_eval", "synthetic"),
    ("real_train", "real"),
    ("real_validation", "real"),
    ("real_eval", "real"),
)


@dataclass(frozen=True)
class _Subset:
    name: str
    audio_dir: str
    prefix: str
    pool: str
    count_field: str
    empty_field: str | None
    labels: str  # what a training recipe may see: "strong", "weak" or "none"


_SUBSETS: tuple[_Subset, ...] = (
    _Subset(
        "synthetic",
        "audio/train/synthetic",
        "synth",
        "synthetic_train",
        "n_synthetic",
        None,
        "strong",
    ),
    _Subset("weak", "audio/train/weak", "weak", "real_train", "n_weak", None, "weak"),
    _Subset(
        "unlabel_in_domain",
        "audio/train/unlabel_in_domain",
        "unlabel",
        "real_train",
        "n_unlabeled",
        "empty_fraction_unlabeled",
        "none",
    ),
    _Subset(
        "validation",
        "audio/validation",
        "val",
        "real_validation",
        "n_validation",
        "empty_fraction_validation",
        "strong",
    ),
    _Subset(
        "eval",
        "audio/eval/public",
        "eval",
        "real_eval",
        "n_eval",
        "empty_fraction_validation",
        "strong",
    ),
    _Subset(
        "eval_synthetic",
        "audio/eval/synthetic",
        "eval_synth",
        "synthetic_eval",
        "n_eval_synthetic",
        None,
        "strong",
    ),
)


@dataclass(frozen=True)
class _SourceJob:
    path: Path
    label: str  # class name, or background kind
    domain: DomainConfig
    words: tuple[int, ...]
    seed: int
    sr: int
    max_duration_s: float


def _make_source(job: _SourceJob) -> float:
    """Write one foreground or background source file; returns its duration in seconds."""
    rng = seeded_rng(job.seed, *job.words)
    if job.label in DISTRACTOR_GENERATORS:
        x = generate_distractor(job.label, rng, job.sr, job.max_duration_s)
    elif job.label in SOURCE_GENERATORS:
        d = job.domain
        style = SourceStyle(
            pitch_semitones=rng.uniform(*d.pitch_shift_semitones),
            tempo=rng.uniform(*d.tempo_factor),
            brightness_octaves=rng.uniform(*d.brightness_octaves),
        )
        x = generate_source(job.label, rng, style, job.sr, job.max_duration_s)
    else:
        x = generate_background(job.label, rng, job.sr, job.max_duration_s)
    job.path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(job.path, x, job.sr, subtype="FLOAT")
    return len(x) / job.sr


@dataclass(frozen=True)
class _EventPlan:
    label: str
    source_file: str
    source_time: float
    event_time: float
    event_duration: float
    snr_db: float


@dataclass(frozen=True)
class _ClipPlan:
    out_path: Path
    fg_dir: Path
    bg_dir: Path
    background: tuple[str, str, float]  # kind, file, source_time
    events: tuple[_EventPlan, ...]
    domain: DomainConfig
    sr: int
    duration_s: float
    seed: int
    words: tuple[int, int]  # (subset index, clip index)
    scaper_seed: int
    room: tuple[float, float] | None = None  # (rt60 s, DRR dB) of a real-domain clip


def _floor_ms(seconds: float) -> float:
    return float(np.floor(seconds * 1000.0) / 1000.0)


def _plan_clip(
    rng: np.random.Generator,
    cfg: SynthConfig,
    domain: DomainConfig,
    sources: dict[str, list[tuple[str, float]]],
    backgrounds: dict[str, list[tuple[str, float]]],
    empty: bool,
) -> tuple[tuple[str, str, float], list[_EventPlan], tuple[float, float] | None]:
    """Draw a background, the events (target classes, then non-target distractors) and the
    room of one clip. Events of one class never overlap."""
    clip_s = cfg.clip_duration_s
    kind = domain.backgrounds[rng.integers(len(domain.backgrounds))]
    bg_file, bg_s = backgrounds[kind][rng.integers(len(backgrounds[kind]))]
    # A multiple of 1/16 s is exact in binary, so scaper's int(start * sr) and int(stop * sr)
    # differ by exactly the clip length (an off-by-one there breaks its mixing).
    bg_time = np.floor(rng.uniform(0.0, max(0.0, bg_s - clip_s)) * 16.0) / 16.0
    background = (kind, bg_file, float(bg_time))
    events: list[_EventPlan] = []
    if empty:
        n_events = 0
    elif domain.extra_events_mean is None:
        n_events = int(rng.integers(max(1, cfg.min_events), cfg.max_events + 1))
    else:
        n_events = int(min(cfg.max_events_real, 1 + rng.poisson(domain.extra_events_mean)))
    if domain.class_weights is None:
        prior = np.full(len(CLASSES), 1.0 / len(CLASSES))
    else:
        prior = np.asarray(domain.class_weights) / np.sum(domain.class_weights)
    labels = [CLASSES[i] for i in rng.choice(len(CLASSES), size=n_events, p=prior)]
    n_distractors = int(rng.poisson(domain.distractors_per_clip)) if domain.distractors else 0
    labels += [
        domain.distractors[i] for i in rng.integers(len(domain.distractors), size=n_distractors)
    ]
    for label in labels:
        source_file, source_s = sources[label][rng.integers(len(sources[label]))]
        duration = source_s * rng.uniform(0.4, 1.0) if label in LONG_CLASSES else source_s
        duration = _floor_ms(min(duration, clip_s - 0.01, source_s))
        source_time = _floor_ms(rng.uniform(0.0, source_s - duration))
        same_class = [
            (e.event_time, e.event_time + e.event_duration) for e in events if e.label == label
        ]
        snr_range = domain.snr_db if label in CLASSES else domain.distractor_snr_db
        for _attempt in range(10):
            onset = _floor_ms(rng.uniform(0.0, clip_s - duration - 0.002))
            if all(onset + duration <= a or onset >= b for a, b in same_class):
                snr = float(rng.uniform(*snr_range))
                events.append(_EventPlan(label, source_file, source_time, onset, duration, snr))
                break
    room = None
    if domain.room is not None:
        room = (float(rng.uniform(*domain.room.rt60_s)), float(rng.uniform(*domain.room.drr_db)))
    return background, events, room


def labeled_events(
    plan_events: Sequence[_EventPlan],
    annotation: Sequence[tuple[float, float, str]],
    domain: DomainConfig,
    room: tuple[float, float] | None,
    clip_s: float,
) -> list[tuple[float, float, str]]:
    """The clip's strong labels from scaper's annotation: target classes only (distractors are
    unlabeled), each offset extended by the audible reverberation tail when the domain says so
    (``label_reverb_tail``), and same-class events that then touch merged, as an annotator would
    mark one longer event. Check: rt60 0.6 s, DRR 4 dB, SNR 14 dB -> +0.1 s."""
    snr = {(round(e.event_time, 3), e.label): e.snr_db for e in plan_events}
    events = []
    for onset, offset, label in annotation:
        if label not in CLASSES:
            continue
        if domain.label_reverb_tail and room is not None:
            rt60, drr = room
            tail = rt60 * max(0.0, snr.get((round(onset, 3), label), 0.0) - drr) / 60.0
            offset = min(clip_s, offset + tail)
        events.append((round(float(onset), 3), round(float(offset), 3), str(label)))
    merged: list[tuple[float, float, str]] = []
    for onset, offset, label in sorted(events, key=lambda e: (e[2], e[0])):
        if merged and merged[-1][2] == label and onset <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], offset), label)
        else:
            merged.append((onset, offset, label))
    return sorted(merged)


def _render_clip(plan: _ClipPlan) -> list[tuple[float, float, str]]:
    """Mix one clip with scaper, record it in the real domain, write it; returns its events."""
    scaper = import_scaper()
    sc = scaper.Scaper(
        plan.duration_s, str(plan.fg_dir), str(plan.bg_dir), random_state=plan.scaper_seed
    )
    sc.sr, sc.n_channels, sc.ref_db = plan.sr, 1, plan.domain.ref_db
    kind, bg_file, bg_time = plan.background
    sc.add_background(
        label=("const", kind), source_file=("const", bg_file), source_time=("const", bg_time)
    )
    for e in plan.events:
        sc.add_event(
            label=("const", e.label),
            source_file=("const", e.source_file),
            source_time=("const", e.source_time),
            event_time=("const", e.event_time),
            event_duration=("const", e.event_duration),
            snr=("const", e.snr_db),
            pitch_shift=None,
            time_stretch=None,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # clipping fixes and the like: expected, not actionable
        audio, _jams, annotation, _events = sc.generate(
            fix_clipping=True, disable_instantiation_warnings=True
        )
    x = np.asarray(audio, dtype=np.float64)[:, 0]
    rng = seeded_rng(plan.seed, _STREAM_RECORD, *plan.words)
    x = record(x, rng, plan.sr, plan.domain, plan.room)
    _write_pcm16(plan.out_path, x, plan.sr)
    return labeled_events(plan.events, annotation, plan.domain, plan.room, plan.duration_s)


def _write_pcm16(path: Path, x: np.ndarray, sr: int) -> None:
    """16-bit PCM WAV; quantised here (clipped, rounded) so the bytes never depend on libsndfile's
    float conversion."""
    pcm = np.round(np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2")
    sf.write(path, pcm, sr, subtype="PCM_16")
