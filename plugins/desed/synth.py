"""The embedded DESED-like benchmark: ``sedkit synth desed OUT_DIR``.

Builds a small, fully synthetic stand-in for DESED / DCASE 2019 task 4 so that the dcase2019 recipe
can run without downloading anything, and deterministically for a seed.

How it is made:

1. **Source sounds.** One numpy generator per DESED class draws a new instance of the class on each
   call, with real within-class variation (pitch, duration, timbre, envelope). Five classes are long
   and stationary (Blender, Electric_shaver_toothbrush, Frying, Running_water, Vacuum_cleaner),
   five short and impulsive (Alarm_bell_ringing, Cat, Dishes, Dog, Speech), as in DESED.
2. **Two domains.** The *synthetic* domain is clean: dry sources, its own backgrounds (noise
   colours, mains hum), DESED 2019's SNR range. The *real* domain differs the way recordings differ
   from clean synthesis: other backgrounds, shifted source parameters (lower, slower, duller
   sounds), room reverberation (synthetic RIRs), device colouring (band limits, EQ, soft
   clipping, self noise), other SNRs and levels.
3. **Mixing.** scaper mixes each 10 s soundscape (events placed by this module's seeded planner) and
   reports its strong labels; real-domain mixtures are then "recorded" in numpy. Labels stay valid
   (reverb tails slightly extend events, as in real recordings).
4. **Writing.** DESED 2019 layout, 16 kHz mono 16-bit WAV, tab-separated metadata, hidden true
   labels of weak/unlabeled clips (for pseudo-label quality only) and a dataset card.

Every random draw comes from a numpy Generator seeded by ``SeedSequence([seed, stream, ...])``, so
files are byte-identical for a seed whatever the number of worker processes.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sedkit.data.synthesis import (
    build_into,
    check_preset,
    message_function,
    run_jobs,
    seeded_rng,
    write_json,
)

# The generator's public names, from the modules of its concerns (config, sources, recording,
# plan, writer): callers import them from here.
from sedkit.errors import UserError
from sedkit_plugins.desed.config import (
    BACKGROUND_KINDS,
    CLASSES,
    GENERATOR_VERSION,
    LONG_CLASSES,
    PRESETS,
    REAL_DOMAIN,
    SYNTHETIC_DOMAIN,
    DeviceConfig,
    DomainConfig,
    Log,
    RoomConfig,
    SynthConfig,
)
from sedkit_plugins.desed.distractors import DISTRACTOR_GENERATORS
from sedkit_plugins.desed.plan import (
    _POOLS,
    _STREAM_BACKGROUND,
    _STREAM_DISTRACTOR,
    _STREAM_EMPTY,
    _STREAM_PLAN,
    _STREAM_SOURCE,
    _SUBSETS,
    _ClipPlan,
    _make_source,
    _plan_clip,
    _render_clip,
    _SourceJob,
    labeled_events,
)
from sedkit_plugins.desed.recording import (
    device_response,
    generate_background,
    record,
    room_impulse_response,
)
from sedkit_plugins.desed.sources import SourceStyle, generate_source
from sedkit_plugins.desed.writer import _card, _card_markdown, _write_metadata


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------
def _write_dataset(
    staging: Path, cfg: SynthConfig, *, seed: int, preset: str, say: Log, sounds: Any = None
) -> str:
    """Generate sources in a temporary work folder, mix and write every clip, the metadata and
    the card into ``staging``; returns the summary line (how many clips). ``sounds``: a
    :class:`real_sources.RealSounds` that replaces some sources by recordings (``--source real``).
    """
    sr = cfg.sample_rate
    with tempfile.TemporaryDirectory(prefix="sedkit-synth-") as work_name:
        work = Path(work_name)
        # 1. Source pools: foreground sounds per class and backgrounds per kind.
        jobs: list[_SourceJob] = []
        for p, (pool, domain_attr) in enumerate(_POOLS):
            domain = getattr(cfg, domain_attr)
            # (role, class or kind, seed stream, its index, files, name digits, max duration)
            per_class = (
                cfg.sources_per_class_real_train if pool == "real_train" else cfg.sources_per_class
            )
            kinds = (
                [
                    ("fg", label, _STREAM_SOURCE, c, per_class, 4, cfg.clip_duration_s)
                    for c, label in enumerate(CLASSES)
                ]
                + [
                    (
                        "fg",
                        kind,
                        _STREAM_DISTRACTOR,
                        sorted(DISTRACTOR_GENERATORS).index(kind),
                        cfg.distractors_per_kind,
                        4,
                        cfg.clip_duration_s,
                    )
                    for kind in domain.distractors
                ]
                + [
                    (
                        "bg",
                        kind,
                        _STREAM_BACKGROUND,
                        BACKGROUND_KINDS.index(kind),
                        cfg.backgrounds_per_kind,
                        3,
                        cfg.clip_duration_s + 2.0,
                    )
                    for kind in domain.backgrounds
                ]
            )
            for role, label, stream, index, count, digits, max_duration_s in kinds:
                jobs += [
                    _SourceJob(
                        work / pool / role / label / f"{label}_{i:0{digits}d}.wav",
                        label,
                        domain,
                        (stream, p, index, i),
                        seed,
                        sr,
                        max_duration_s,
                    )
                    for i in range(count)
                ]
        make: Callable[[Any], float] = _make_source
        if sounds is not None:
            from sedkit_plugins.desed.real_sources import make_source

            jobs, make = sounds.source_jobs(jobs), make_source
        say(f"synth: generating {len(jobs)} source sounds ({cfg.n_workers} worker(s))")
        durations = run_jobs(make, jobs, cfg.n_workers)
        pools: dict[str, dict[str, dict[str, list[tuple[str, float]]]]] = {
            pool: {"fg": {}, "bg": {}} for pool, _ in _POOLS
        }
        for job, seconds in zip(jobs, durations, strict=True):
            role = job.path.parent.parent.name
            pools[job.path.parents[2].name][role].setdefault(job.label, []).append(
                (str(job.path), seconds)
            )

        # 2. Clip plans, drawn in the parent from per-clip seeds.
        plans: list[_ClipPlan] = []
        names: list[tuple[str, str]] = []
        for s, subset in enumerate(_SUBSETS):
            domain = getattr(cfg, dict(_POOLS)[subset.pool])
            n_clips = getattr(cfg, subset.count_field)
            fraction = getattr(cfg, subset.empty_field) if subset.empty_field else 0.0
            n_empty = max(1, round(fraction * n_clips)) if fraction > 0 else 0
            empty = set(seeded_rng(seed, _STREAM_EMPTY, s).permutation(n_clips)[:n_empty].tolist())
            (staging / subset.audio_dir).mkdir(parents=True, exist_ok=True)
            for i in range(n_clips):
                name = f"{subset.prefix}_{i:05d}.wav"
                background, events, room = _plan_clip(
                    seeded_rng(seed, _STREAM_PLAN, s, i),
                    cfg,
                    domain,
                    pools[subset.pool]["fg"],
                    pools[subset.pool]["bg"],
                    i in empty,
                )
                scaper_seed = int(np.random.SeedSequence([seed, s, i]).generate_state(1)[0])
                plans.append(
                    _ClipPlan(
                        staging / subset.audio_dir / name,
                        work / subset.pool / "fg",
                        work / subset.pool / "bg",
                        background,
                        tuple(events),
                        domain,
                        sr,
                        cfg.clip_duration_s,
                        seed,
                        (s, i),
                        scaper_seed,
                        room,
                    )
                )
                names.append((subset.name, name))

        # 3. Mix, record and write the clips.
        say(f"synth: mixing {len(plans)} soundscapes with scaper")
        annotations = run_jobs(_render_clip, plans, cfg.n_workers)

    clips: dict[str, list[tuple[str, list[tuple[float, float, str]]]]] = {
        subset.name: [] for subset in _SUBSETS
    }
    for (subset_name, name), events in zip(names, annotations, strict=True):
        clips[subset_name].append((name, events))
    _write_metadata(staging, cfg, clips)
    card = _card(cfg, preset, seed, clips)
    if sounds is not None:
        sounds.extend_card(card)
    markdown = _card_markdown(card)
    if sounds is not None:
        markdown += "\n".join(sounds.card_lines()) + "\n"
    write_json(staging / "dataset_card.json", card)
    (staging / "dataset_card.md").write_text(markdown, encoding="utf-8")
    return f"synth desed: {len(names)} clips"


def build(
    out_dir: Path | str,
    config: SynthConfig,
    *,
    seed: int = 0,
    preset: str = "custom",
    log: Log | None = None,
    sounds: Any = None,
) -> Path:
    """Build the benchmark described by ``config`` into ``out_dir``; returns the card JSON path.

    ``out_dir`` must be absent or empty. The tree is assembled next to it and moved into place
    at the end, so an interrupted build never leaves a half dataset that looks complete.
    ``sounds``: real recordings for some sources (see :mod:`.real_sources`).
    """
    return build_into(
        out_dir,
        log,
        lambda staging, say: _write_dataset(
            staging, config, seed=seed, preset=preset, say=say, sounds=sounds
        ),
    )


def synthesize(
    out_dir: Path | str,
    *,
    preset: str = "default",
    seed: int = 0,
    log: Log | None = None,
    source: str | None = None,
    fetch: bool = False,
) -> Path:
    """Build the embedded DESED-like benchmark (preset from :data:`PRESETS`) into ``out_dir``.

    Returns the path of the dataset card (``dataset_card.json``; ``dataset_card.md`` lies next
    to it). The same preset and seed give byte-identical files. ``source``: ``procedural``
    (default) or ``real`` (recordings from Debian packages where they exist,
    :mod:`.real_sources`; ``fetch`` downloads them first).
    """
    config = check_preset(preset, PRESETS)
    if source not in (None, "procedural", "real"):
        raise UserError(f"synth desed: unknown --source {source!r}; choose from procedural, real")
    if source != "real":
        if fetch:
            raise UserError("synth desed: --fetch needs --source real")
        return build(out_dir, config, seed=seed, preset=preset, log=log)
    from sedkit_plugins.desed.real_sources import RealSounds

    sounds = RealSounds.load(seed, fetch=fetch, say=message_function(log))
    return build(out_dir, config, seed=seed, preset=preset, log=log, sounds=sounds)


__all__ = [
    "CLASSES",
    "GENERATOR_VERSION",
    "LONG_CLASSES",
    "PRESETS",
    "REAL_DOMAIN",
    "SYNTHETIC_DOMAIN",
    "DeviceConfig",
    "DomainConfig",
    "RoomConfig",
    "SourceStyle",
    "SynthConfig",
    "build",
    "device_response",
    "generate_background",
    "generate_source",
    "labeled_events",
    "record",
    "room_impulse_response",
    "synthesize",
]
