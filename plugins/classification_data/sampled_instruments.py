"""``sedkit synth instruments OUT_DIR --source sampled``: NSynth-like notes of real sampled
instruments from Debian's soundfonts and patch sets.

Each General MIDI program of a sample set whose instrument belongs to one of NSynth's ten
acoustic families (:data:`GM_FAMILIES`; synthesizers, percussion and effects are left out) is
played over its pitch range (every ``pitch_step`` semitones within the recorded roots +- an
octave, inside NSynth's 21..108) at several velocities: ``clip_duration_s`` notes, held for
``held_s`` then released, as NSynth's 4 s notes (3 s held). Each note is peak-normalised (the
level of a sample set is no cue).

- **train / valid**: FluidR3 GM (``fluid-soundfont-gm``, MIT). Programs that play the same
  recordings form one *instrument* and stay on one side; about ``valid_fraction`` of each
  family's instruments go to ``valid``.
- **test**: independent sample sets, TimGM6mb (``timgm6mb-soundfont``) and FreePats
  (``freepats``), as NSynth tests on instruments it never trained on; a program that shares a
  recording with FluidR3 is dropped (none does in bookworm's packages).

The packages are fetched by an explicit step (``--fetch``, see :mod:`debian_sounds`);
without them the build stops with one line naming the missing package. Files are
byte-identical for a preset and seed (every note is rendered from a reset synthesizer, and
the seed only chooses the valid instruments).

Layout as the procedural ``instruments`` benchmark: ``audio/<family>_<source>_<program>-<pitch>-
<velocity>.wav``, ``meta.tsv``, ``evaluation_setup/train.tsv`` / ``valid.tsv`` / ``test.tsv``
(filename, label, location = instrument), ``dataset_card.json`` / ``.md`` listing every
instrument with its family, package and license.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

import sedkit
from sedkit.data import debian_sounds
from sedkit.data.synthesis import (
    build_into,
    check_preset,
    config_for_card,
    message_function,
    run_jobs,
    seeded_rng,
    write_json,
    write_lines,
    write_table,
)
from sedkit.errors import InputFileError
from sedkit_plugins.classification_data.classes import INSTRUMENT_FAMILIES
from sedkit_plugins.classification_data.soundfont import (
    FluidRenderer,
    read_gus_patch,
    read_sf2_presets,
    render_gus_note,
)
from sedkit_plugins.classification_data.synth import card_head

__all__ = [
    "FETCH_COMMAND",
    "GM_FAMILIES",
    "GENERATOR_VERSION",
    "PRESETS",
    "SOURCES",
    "SampledInstrumentConfig",
    "build_sampled_instruments",
    "fetch_sounds",
    "synthesize",
]

#: Bumped whenever a change alters the generated files for a given seed and preset.
GENERATOR_VERSION = "1.0"

FETCH_COMMAND = "sedkit synth instruments OUT_DIR --source sampled --fetch"


def _programs(first: int, last: int, family: str) -> dict[int, str]:
    return dict.fromkeys(range(first, last + 1), family)


#: General MIDI program -> NSynth family, for the programs that are recordings of an acoustic
#: (or electro-acoustic) instrument of one of NSynth's ten families. Left out: synth bass,
#: synth strings, synth voice, orchestra hit, synth brass, leads, pads, effects, timpani,
#: percussion and sound effects.
GM_FAMILIES: dict[int, str] = {
    **_programs(0, 7, "keyboard"),  # pianos, electric pianos, harpsichord, clavinet
    **_programs(8, 14, "mallet"),  # celesta, glockenspiel, music box, vibraphone, ... bells
    **_programs(16, 20, "organ"),  # drawbar, percussive, rock, church, reed organ
    **_programs(21, 23, "reed"),  # accordion, harmonica, tango accordion
    **_programs(24, 31, "guitar"),
    **_programs(32, 37, "bass"),  # acoustic, finger, pick, fretless, slap basses
    **_programs(40, 46, "string"),  # violin .. contrabass, tremolo, pizzicato, harp
    **_programs(48, 49, "string"),  # string ensembles
    **_programs(52, 53, "vocal"),  # choir aahs, voice oohs
    **_programs(56, 61, "brass"),  # trumpet .. brass section
    **_programs(64, 71, "reed"),  # saxophones, oboe, english horn, bassoon, clarinet
    **_programs(72, 79, "flute"),  # piccolo .. ocarina
    104: "string",  # sitar
    105: "guitar",  # banjo
    108: "mallet",  # kalimba
    109: "reed",  # bagpipe
    110: "string",  # fiddle
    111: "reed",  # shanai
    114: "mallet",  # steel drums
}


@dataclass(frozen=True)
class Source:
    """A sample set: its package, the file or folder used in it, format and split."""

    package: str
    path: str
    kind: str  # "sf2" (libfluidsynth) or "gus" (a folder of GUS patches)
    split: str  # "train" (train and valid) or "test"


#: The sample sets, by short name.
SOURCES: dict[str, Source] = {
    "fluidr3": Source("fluid-soundfont-gm", "usr/share/sounds/sf2/FluidR3_GM.sf2", "sf2", "train"),
    "timgm6mb": Source("timgm6mb-soundfont", "usr/share/sounds/sf2/TimGM6mb.sf2", "sf2", "test"),
    "freepats": Source("freepats", "usr/share/midi/freepats/Tone_000", "gus", "test"),
}


@dataclass(frozen=True)
class SampledInstrumentConfig:
    """Size of a sampled ``instruments`` build."""

    sample_rate: int = 16000
    clip_duration_s: float = 4.0
    #: The note is released after this long (NSynth: 3 s of a 4 s note).
    held_s: float = 3.0
    #: Semitones between the notes of a program, over its pitch range.
    pitch_step: int = 6
    velocities: tuple[int, ...] = (40, 80, 120)
    #: Share of each family's FluidR3 instruments held out as ``valid``.
    valid_fraction: float = 0.2
    #: Sample sets of the test split (keys of :data:`SOURCES`).
    test_sources: tuple[str, ...] = ("timgm6mb", "freepats")
    #: Keep at most this many instruments per family and split (None: all); for quick builds.
    max_instruments_per_family: int | None = None
    #: Keep at most this many notes per program, evenly over its grid (None: all).
    max_notes_per_program: int | None = None
    #: Worker processes; the files are identical for any value.
    n_workers: int = 2


PRESETS: dict[str, SampledInstrumentConfig] = {
    "tiny": SampledInstrumentConfig(
        clip_duration_s=1.0,
        held_s=0.75,
        velocities=(100,),
        test_sources=("timgm6mb", "freepats"),
        max_instruments_per_family=1,
        max_notes_per_program=2,
        n_workers=1,
    ),
    "default": SampledInstrumentConfig(),
}


@dataclass
class Program:
    """One program of a sample set, as listed in the card."""

    source: str
    program: int
    name: str
    family: str
    instrument: str  # programs that share recordings share this name
    pitches: list[int]
    samples: set[str]
    split: str = ""


def fetch_sounds(config: SampledInstrumentConfig, say: Callable[[str], None]) -> None:
    """Fetch the packages a build with ``config`` reads (and the renderer)."""
    names = ["fluidr3", *config.test_sources]
    debian_sounds.fetch([SOURCES[n].package for n in names], say=say)


def _source_path(name: str) -> Path:
    s = SOURCES[name]
    return debian_sounds.package_file(s.package, s.path, FETCH_COMMAND)


@contextlib.contextmanager
def _reading(name: str) -> Iterator[None]:
    """A sample-set file that cannot be read (truncated, corrupt) is a damaged copy of its
    package: one line naming the file and how to replace it."""
    try:
        yield
    except InputFileError as error:
        why = str(error).removeprefix(f"{error.path}: ")
        raise debian_sounds.damaged(SOURCES[name].package, error.path, why, FETCH_COMMAND) from None


def _read_programs(name: str, config: SampledInstrumentConfig) -> tuple[list[Program], list]:
    """The family programs of a sample set and the ones left out, with why."""
    path = _source_path(name)
    kept, dropped = [], []
    if SOURCES[name].kind == "sf2":
        with _reading(name):
            presets = read_sf2_presets(path)
        listed = [(p.program, p.name, p.samples, p.pitch_range()) for p in presets if p.bank == 0]
    else:
        listed = []
        for pat in sorted(path.glob("[0-9][0-9][0-9]_*.pat")):
            with _reading(name):
                samples = read_gus_patch(pat)
            roots = [69 + 12 * np.log2(s.root_hz / 440.0) for s in samples]
            low, high = max(21, round(min(roots)) - 12), min(108, round(max(roots)) + 12)
            digest = {hashlib.sha1(x.data.tobytes()).hexdigest()[:16] for x in samples}
            listed.append((int(pat.name[:3]), pat.stem[4:], digest, range(low, high + 1)))
    for program, title, samples, pitch_range in listed:
        family = GM_FAMILIES.get(program)
        if family is None:
            dropped.append((name, program, title, "not an acoustic NSynth family"))
            continue
        pitches = list(pitch_range[:: config.pitch_step])
        if config.max_notes_per_program is not None and len(pitches) > 1:
            k = max(1, config.max_notes_per_program // len(config.velocities))
            picks = np.linspace(0, len(pitches) - 1, min(k, len(pitches))).round().astype(int)
            pitches = [pitches[i] for i in sorted(set(picks))]
        if not pitches:
            dropped.append((name, program, title, "no pitch in 21..108 near a recorded root"))
            continue
        kept.append(Program(name, program, title, family, "", pitches, set(samples)))
    _name_instruments(kept)
    return kept, dropped


def _name_instruments(programs: list[Program]) -> None:
    """Programs of one sample set that share any recording form one instrument (union-find),
    named after its lowest program."""
    parent = list(range(len(programs)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for i, p in enumerate(programs):
        for h in sorted(p.samples):
            if h in owner:
                parent[root(i)] = root(owner[h])
            else:
                owner[h] = i
    for i, p in enumerate(programs):
        first = programs[min(j for j in range(len(programs)) if root(j) == root(i))]
        p.instrument = f"{p.source}_{first.program:03d}"


def _assign_splits(
    programs: list[Program], config: SampledInstrumentConfig, seed: int
) -> list[Program]:
    """Split of each program (train / valid by instrument, test for the test sets), capped
    at ``max_instruments_per_family``; returns the programs kept."""
    kept: list[Program] = []
    for family in INSTRUMENT_FAMILIES:
        for source in ["fluidr3", *config.test_sources]:
            mine = [p for p in programs if p.family == family and p.source == source]
            instruments = sorted({p.instrument for p in mine})
            if SOURCES[source].split == "test":
                sides = {"test": instruments}
            else:
                order = seeded_rng(seed, "sampled", "valid", family).permutation(len(instruments))
                n_valid = round(config.valid_fraction * len(instruments))
                n_valid = min(max(n_valid, 1), len(instruments) - 1) if len(instruments) > 1 else 0
                valid = {instruments[i] for i in order[:n_valid]}
                sides = {
                    "train": [i for i in instruments if i not in valid],
                    "valid": [i for i in instruments if i in valid],
                }
            for split, names in sides.items():
                names = names[: config.max_instruments_per_family]
                for p in mine:
                    if p.instrument in names:
                        p.split = split
                        kept.append(p)
    return sorted(kept, key=lambda p: (p.source, p.program))


def _render_job(job: tuple) -> list[str]:
    """Render and write the notes of one program; returns the files written (silent notes,
    which some soundfonts have at some velocities, are skipped)."""
    source, path, program, notes, n, held, sr, fetch_command = job
    written = []
    if SOURCES[source].kind == "sf2":
        with _reading(source):
            renderer = _fluid_renderer(path, sr, fetch_command)
        render = lambda pitch, vel: renderer.note(0, program, pitch, vel, n, held)  # noqa: E731
    else:
        with _reading(source):
            patch = read_gus_patch(path)
        render = lambda pitch, vel: render_gus_note(patch, pitch, vel, n, held, sr)  # noqa: E731
    for filename, pitch, velocity in notes:
        x = np.asarray(render(pitch, velocity), np.float64)
        peak = float(np.max(np.abs(x)))
        if peak < 1e-4:
            continue
        Path(filename).parent.mkdir(parents=True, exist_ok=True)
        sf.write(filename, (x * (0.891 / peak)).astype(np.float32), sr, subtype="PCM_16")
        written.append(filename)
    return written


#: One renderer per soundfont and sample rate in each process (loading FluidR3 takes 0.1 s).
_RENDERERS: dict[tuple[str, int], FluidRenderer] = {}


def _fluid_renderer(path: str, sr: int, fetch_command: str) -> FluidRenderer:
    key = (path, sr)
    if key not in _RENDERERS:
        _RENDERERS[key] = FluidRenderer(debian_sounds.load_fluidsynth(fetch_command), path, sr)
    return _RENDERERS[key]


def _program_file(p: Program) -> str:
    """The soundfont, or the GUS patch of the program."""
    path = _source_path(p.source)
    if SOURCES[p.source].kind == "sf2":
        return str(path)
    return str(next(path.glob(f"{p.program:03d}_*.pat")))


def _write(
    staging: Path,
    say: Callable[[str], None],
    config: SampledInstrumentConfig,
    preset: str,
    seed: int,
) -> str:
    sr = config.sample_rate
    n, held = round(config.clip_duration_s * sr), round(config.held_s * sr)
    programs, dropped = [], []
    for source in ["fluidr3", *config.test_sources]:
        kept, left_out = _read_programs(source, config)
        programs += kept
        dropped += left_out
    train_samples = set().union(*(p.samples for p in programs if p.source == "fluidr3"))
    for p in [p for p in programs if p.source != "fluidr3" and p.samples & train_samples]:
        programs.remove(p)
        dropped.append((p.source, p.program, p.name, "shares a recording with FluidR3"))
    programs = _assign_splits(programs, config, seed)
    jobs, labels = [], {}
    for p in programs:
        notes = []
        for pitch in p.pitches:
            for velocity in config.velocities:
                stem = f"{p.family}_{p.source}_{p.program:03d}-{pitch:03d}-{velocity:03d}"
                filename = staging / f"audio/{stem}.wav"
                notes.append((str(filename), pitch, velocity))
                labels[str(filename)] = p
        jobs.append((p.source, _program_file(p), p.program, notes, n, held, sr, FETCH_COMMAND))
    say(f"synth instruments (sampled): rendering {len(labels)} notes of {len(jobs)} programs")
    written = [f for files in run_jobs(_render_job, jobs, config.n_workers) for f in files]
    rows: dict[str, list[tuple[str, str, str]]] = {"train": [], "valid": [], "test": []}
    for filename in written:
        p = labels[filename]
        rows[p.split].append((str(Path(filename).relative_to(staging)), p.family, p.instrument))
    meta = [(f, lab, split, loc) for split in rows for f, lab, loc in rows[split]]
    write_table(staging / "meta.tsv", ("filename", "label", "fold", "location"), meta)
    for split, split_rows in rows.items():
        header = ("filename", "label", "location")
        write_table(staging / f"evaluation_setup/{split}.tsv", header, split_rows)
    card = _card(config, preset, seed, programs, dropped, rows, len(labels) - len(written))
    _write_card(staging, card)
    return f"synth instruments (sampled): {len(meta)} notes"


def _card(
    config: SampledInstrumentConfig,
    preset: str,
    seed: int,
    programs: list[Program],
    dropped: list,
    rows: dict[str, list[tuple[str, str, str]]],
    n_silent: int,
) -> dict[str, Any]:
    counts = {
        split: {c: sum(1 for r in rows[split] if r[1] == c) for c in INSTRUMENT_FAMILIES}
        for split in rows
    }
    packages = {s: SOURCES[s].package for s in ["fluidr3", *config.test_sources]}
    return {
        "name": "sedkit sampled instrument families (NSynth-like, real recordings)",
        "generator": (
            "sedkit_plugins.classification_data.sampled_instruments.build_sampled_instruments"
        ),
        "generator_version": GENERATOR_VERSION,
        "sedkit_version": sedkit.__version__,
        "numpy_version": np.__version__,
        "preset": preset,
        "seed": seed,
        "source": "sampled",
        "sample_rate": config.sample_rate,
        "clip_duration_s": config.clip_duration_s,
        "config": config_for_card(config),
        "classes": list(INSTRUMENT_FAMILIES),
        "n_clips": sum(len(r) for r in rows.values()),
        "n_silent_notes_skipped": n_silent,
        "clips_per_class": counts,
        "files": [
            "meta.tsv",
            "evaluation_setup/train.tsv",
            "evaluation_setup/valid.tsv",
            "evaluation_setup/test.tsv",
        ],
        "packages": {
            s: {
                "package": pkg,
                "version": debian_sounds.SOUND_PACKAGES[pkg].version,
                "license": debian_sounds.SOUND_PACKAGES[pkg].license,
                "attribution": debian_sounds.SOUND_PACKAGES[pkg].attribution,
            }
            for s, pkg in packages.items()
        },
        "instruments": [
            {
                "instrument": p.instrument,
                "source": p.source,
                "program": p.program,
                "name": p.name,
                "family": p.family,
                "split": p.split,
                "pitches": [p.pitches[0], p.pitches[-1]],
                "package": SOURCES[p.source].package,
                "license": debian_sounds.SOUND_PACKAGES[SOURCES[p.source].package].license,
            }
            for p in programs
        ],
        "left_out": [
            {"source": s, "program": prog, "name": title, "why": why}
            for s, prog, title, why in dropped
        ],
    }


def _write_card(staging: Path, card: dict[str, Any]) -> None:
    write_json(staging / "dataset_card.json", card)
    description = [
        "Single notes rendered from real sampled instruments of Debian packages: train and "
        "valid from FluidR3 GM (programs that share recordings stay on one side), test from "
        "independent sample sets, so test instruments were never heard in training (as in "
        "NSynth)."
    ]
    summary = (
        f"{card['sample_rate']} Hz mono 16-bit WAV notes of {card['clip_duration_s']} s "
        f"(held {card['config']['held_s']} s), peak-normalised; {card['n_clips']} notes "
        f"({card['n_silent_notes_skipped']} silent ones skipped)."
    )
    lines = card_head(card, description, summary)
    lines += ["", "## Packages", "", "| source | package | version | license | attribution |"]
    lines.append("|---|---|---|---|---|")
    for s, p in card["packages"].items():
        lines.append(
            f"| {s} | {p['package']} | {p['version']} | {p['license']} | {p['attribution']} |"
        )
    lines += ["", "## Instruments", "", "| instrument | source | program | name | family | "]
    lines[-1] += "split | pitches | license |"
    lines.append("|---|---|---|---|---|---|---|---|")
    for i in card["instruments"]:
        lines.append(
            f"| {i['instrument']} | {i['source']} | {i['program']} | {i['name']} | "
            f"{i['family']} | {i['split']} | {i['pitches'][0]}-{i['pitches'][1]} | "
            f"{i['license']} |"
        )
    lines += ["", f"{len(card['left_out'])} programs left out (see `left_out` in the JSON card)."]
    write_lines(staging / "dataset_card.md", lines)


def build_sampled_instruments(
    out_dir: str | Path,
    config: SampledInstrumentConfig,
    *,
    preset: str = "custom",
    seed: int = 0,
    fetch: bool = False,
    log: Any = None,
) -> Path:
    """Build the sampled-instrument benchmark into ``out_dir``; returns the card path.

    With ``fetch``, the Debian packages are downloaded into the cache first; without it, a
    missing one stops the build with :class:`debian_sounds.MissingSoundsError`.
    """
    say = message_function(log)
    if fetch:
        fetch_sounds(config, say)
    for source in ["fluidr3", *config.test_sources]:
        _source_path(source)  # fail on a missing package before the output folder is made
    return build_into(out_dir, log, lambda staging, s: _write(staging, s, config, preset, seed))


def synthesize(
    out_dir: str | Path,
    *,
    preset: str = "default",
    seed: int = 0,
    fetch: bool = False,
    log: Any = None,
) -> Path:
    """``sedkit synth instruments OUT_DIR --source sampled [--fetch]`` with a preset (``tiny``,
    ``default``); returns the dataset card path."""
    config = check_preset(preset, PRESETS)
    return build_sampled_instruments(
        out_dir, config, preset=preset, seed=seed, fetch=fetch, log=log
    )
