"""``sedkit synth desed OUT_DIR --source real``: the DESED-like benchmark with real recordings.

An opt-in variant of :mod:`.synth` (the default build and its bytes are unchanged). The
source pools that the generator fills with procedural sounds are filled instead, where Debian
packages hold recordings of a class, with excerpts of those recordings:

- **Events.** A class is *real* when its recordings come from at least two independent
  recordings (:data:`MANIFEST`; cuts of one freesound upload count as one). Its recordings are
  split by recording, with the seed: the training pools (synthetic and real domain) draw from
  one group, the validation and evaluation pools from the others (from a third group each when
  there are three or more), so no recording is heard in both training and evaluation. Both
  domains use them; the real domain's room, device and level still apply on top. The other
  classes stay procedural; the card flags each class.
- **Backgrounds.** The real domain's backgrounds are real ambience recordings, split by recording
  in the same way (the background kind names of the plan stay, their audio is replaced).
- **Bandwidth.** Recordings below 16 kHz are left out (listed in the card), the rest are
  resampled to the build's rate by FFT, and every source of the build, procedural ones
  included, is low-passed at :data:`CUTOFF_HZ`: a source's original sample rate is no cue to
  its class or domain.

The packages are fetched by the explicit step ``--fetch`` (:mod:`debian_sounds`); without them
the build stops with one line naming the missing package. Only this manifest, with the
attribution of every recording, is committed; the audio is built from the packages.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from sedkit.data import debian_sounds
from sedkit.data.synthesis import seeded_rng

__all__ = ["CUTOFF_HZ", "FETCH_COMMAND", "MANIFEST", "RealSounds", "Recording", "make_source"]

FETCH_COMMAND = "sedkit synth desed OUT_DIR --source real --fetch"
#: Every source of a ``--source real`` build is band-limited here (below 16 kHz's Nyquist).
CUTOFF_HZ = 7000.0
#: Recordings at lower sample rates are left out (they could not fill the band).
MIN_SAMPLE_RATE = 16000
#: Which group of a class's recordings feeds each source pool of desed_synth.
POOL_GROUP = {
    "synthetic_train": "train",
    "real_train": "train",
    "real_validation": "validation",
    "real_eval": "eval",
    "synthetic_eval": "eval",
}


@dataclass(frozen=True)
class Recording:
    """Files of one recording in a Debian package (``pattern`` may hold ``*`` and ``**``)."""

    role: str  # "event" or "background"
    label: str  # DESED class of an event; "" for a background
    recording: str  # files with the same id are cuts of one recording
    package: str
    pattern: str
    license: str
    attribution: str


#: The recordings used, with their licenses and authors (from the packages' copyright files).
MANIFEST: tuple[Recording, ...] = (
    Recording(
        "event",
        "Speech",
        "tuxpaint-speech-en",
        "tuxpaint-stamps-default",
        "usr/share/tuxpaint/stamps/animals/**/*_desc.ogg",
        "GPL-2",
        "Tux Paint stamps: spoken descriptions, en (Bill Kendrick and the Tux Paint translators)",
    ),
    Recording(
        "event",
        "Speech",
        "tuxpaint-speech-be",
        "tuxpaint-stamps-default",
        "usr/share/tuxpaint/stamps/animals/**/*_desc_be.ogg",
        "GPL-2",
        "Tux Paint stamps: spoken descriptions, be (Bill Kendrick and the Tux Paint translators)",
    ),
    Recording(
        "event",
        "Speech",
        "tuxpaint-speech-bg",
        "tuxpaint-stamps-default",
        "usr/share/tuxpaint/stamps/animals/**/*_desc_bg.ogg",
        "GPL-2",
        "Tux Paint stamps: spoken descriptions, bg (Bill Kendrick and the Tux Paint translators)",
    ),
    Recording(
        "event",
        "Speech",
        "tuxpaint-speech-ca",
        "tuxpaint-stamps-default",
        "usr/share/tuxpaint/stamps/animals/**/*_desc_ca.ogg",
        "GPL-2",
        "Tux Paint stamps: spoken descriptions, ca (Bill Kendrick and the Tux Paint translators)",
    ),
    Recording(
        "event",
        "Speech",
        "tuxpaint-speech-da",
        "tuxpaint-stamps-default",
        "usr/share/tuxpaint/stamps/animals/**/*_desc_da.ogg",
        "GPL-2",
        "Tux Paint stamps: spoken descriptions, da (Bill Kendrick and the Tux Paint translators)",
    ),
    Recording(
        "event",
        "Speech",
        "tuxpaint-speech-el",
        "tuxpaint-stamps-default",
        "usr/share/tuxpaint/stamps/animals/**/*_desc_el.ogg",
        "GPL-2",
        "Tux Paint stamps: spoken descriptions, el (Bill Kendrick and the Tux Paint translators)",
    ),
    Recording(
        "event",
        "Speech",
        "tuxpaint-speech-es",
        "tuxpaint-stamps-default",
        "usr/share/tuxpaint/stamps/animals/**/*_desc_es.ogg",
        "GPL-2",
        "Tux Paint stamps: spoken descriptions, es (Bill Kendrick and the Tux Paint translators)",
    ),
    Recording(
        "event",
        "Speech",
        "tuxpaint-speech-fr",
        "tuxpaint-stamps-default",
        "usr/share/tuxpaint/stamps/animals/**/*_desc_fr.ogg",
        "GPL-2",
        "Tux Paint stamps: spoken descriptions, fr (Bill Kendrick and the Tux Paint translators)",
    ),
    Recording(
        "event",
        "Speech",
        "tuxpaint-speech-nl",
        "tuxpaint-stamps-default",
        "usr/share/tuxpaint/stamps/animals/**/*_desc_nl.ogg",
        "GPL-2",
        "Tux Paint stamps: spoken descriptions, nl (Bill Kendrick and the Tux Paint translators)",
    ),
    Recording(
        "event",
        "Speech",
        "tuxpaint-speech-ro",
        "tuxpaint-stamps-default",
        "usr/share/tuxpaint/stamps/animals/**/*_desc_ro.ogg",
        "GPL-2",
        "Tux Paint stamps: spoken descriptions, ro (Bill Kendrick and the Tux Paint translators)",
    ),
    Recording(
        "event",
        "Speech",
        "tuxpaint-speech-ru",
        "tuxpaint-stamps-default",
        "usr/share/tuxpaint/stamps/animals/**/*_desc_ru.ogg",
        "GPL-2",
        "Tux Paint stamps: spoken descriptions, ru (Bill Kendrick and the Tux Paint translators)",
    ),
    Recording(
        "event",
        "Dog",
        "scratch-dog",
        "scratch",
        "usr/share/scratch/Media/Sounds/Animal/Dog[12].wav",
        "CC-BY-SA-3.0",
        "Scratch 1.4 media library, MIT Media Lab (Dog1, Dog2: one dog assumed)",
    ),
    Recording(
        "event",
        "Dog",
        "tuxpaint-dog",
        "tuxpaint-stamps-default",
        "usr/share/tuxpaint/stamps/animals/mammals/dogs/dog.ogg",
        "GPL-2",
        "Tux Paint stamps: dog (Bill Kendrick)",
    ),
    Recording(
        "event",
        "Cat",
        "scratch-kitten",
        "scratch",
        "usr/share/scratch/Media/Sounds/Animal/Kitten.wav",
        "CC-BY-SA-3.0",
        "Scratch 1.4 media library, MIT Media Lab (Kitten)",
    ),
    Recording(
        "event",
        "Cat",
        "scratch-meow",
        "scratch",
        "usr/share/scratch/Media/Sounds/Animal/Meow.wav",
        "CC-BY-SA-3.0",
        "Scratch 1.4 media library, MIT Media Lab (Meow, 11 kHz)",
    ),
    Recording(
        "event",
        "Cat",
        "tuxpaint-blackcat",
        "tuxpaint-stamps-default",
        "usr/share/tuxpaint/stamps/seasonal/halloween/blackcat.ogg",
        "GPL-2",
        "Tux Paint stamps: black cat (8 kHz)",
    ),
    Recording(
        "event",
        "Alarm_bell_ringing",
        "freedesktop-alarm-clock",
        "sound-theme-freedesktop",
        "usr/share/sounds/freedesktop/stereo/alarm-clock-elapsed.oga",
        "CC-BY-SA-3.0",
        "freedesktop sound theme: alarm-clock-elapsed (Tim/corsica_s)",
    ),
    Recording(
        "event",
        "Alarm_bell_ringing",
        "freedesktop-phone-ring",
        "sound-theme-freedesktop",
        "usr/share/sounds/freedesktop/stereo/phone-incoming-call.oga",
        "GPL-2+",
        "freedesktop sound theme: phone-incoming-call (Damien Sandras)",
    ),
    Recording(
        "event",
        "Alarm_bell_ringing",
        "scratch-bell-toll",
        "scratch",
        "usr/share/scratch/Media/Sounds/Effects/BellToll.wav",
        "CC-BY-SA-3.0",
        "Scratch 1.4 media library, MIT Media Lab (BellToll, 11 kHz)",
    ),
    Recording(
        "event",
        "Running_water",
        "freesound-yuval-197023",
        "minetest-data",
        "usr/share/games/minetest/games/minetest_game/mods/env_sounds/sounds/env_sounds_water.*.ogg",
        "CC0-1.0",
        "Yuval, freesound.org/s/197023 (Minetest env_sounds: four cuts of one recording)",
    ),
    Recording(
        "event",
        "Vacuum_cleaner",
        "tuxpaint-vacuum",
        "tuxpaint-stamps-default",
        "usr/share/tuxpaint/stamps/household/vacuum_cleaner.ogg",
        "GPL-2",
        "Tux Paint stamps: vacuum cleaner (0.85 s)",
    ),
    Recording(
        "background",
        "",
        "freesound-dynamicell-17548",
        "minetest-data",
        "usr/share/games/minetest/games/minetest_game/mods/fire/sounds/fire_fire.*.ogg",
        "CC-BY-3.0",
        "Dynamicell, freesound.org/s/17548 (Minetest fire: fire_fire.*, fire_large)",
    ),
    Recording(
        "background",
        "",
        "freesound-dynamicell-17548",
        "minetest-data",
        "usr/share/games/minetest/games/minetest_game/mods/fire/sounds/fire_large.ogg",
        "CC-BY-3.0",
        "Dynamicell, freesound.org/s/17548 (Minetest fire: fire_fire.*, fire_large)",
    ),
    Recording(
        "background",
        "",
        "freesound-dobroide-4211",
        "minetest-data",
        "usr/share/games/minetest/games/minetest_game/mods/fire/sounds/fire_small.ogg",
        "CC-BY-3.0",
        "dobroide, freesound.org/s/4211 (Minetest fire_small)",
    ),
    Recording(
        "background",
        "",
        "freesound-halion-17785",
        "minetest-data",
        "usr/share/games/minetest/games/minetest_game/mods/env_sounds/sounds/env_sounds_lava.*.ogg",
        "CC0-1.0",
        "Halion, freesound.org/s/17785 (Minetest lava bubbling)",
    ),
    Recording(
        "background",
        "",
        "scratch-crickets",
        "scratch",
        "usr/share/scratch/Media/Sounds/Animal/Crickets.wav",
        "CC-BY-SA-3.0",
        "Scratch 1.4 media library, MIT Media Lab (Crickets)",
    ),
)

_GROUPS = ("train", "validation", "eval")


@dataclass(frozen=True)
class ExcerptJob:
    """Write one source file cut from a recording (the fields desed_synth's pools read:
    ``path``, ``label``)."""

    path: Path
    label: str
    recording: str
    words: tuple[int, ...]
    seed: int
    sr: int
    max_duration_s: float
    #: Backgrounds and stationary classes loop the recording to the length they need.
    loop: bool
    background: bool
    #: The Debian package of ``recording`` (named when the file cannot be read).
    package: str = ""


def _lowpass(f: np.ndarray) -> np.ndarray:
    """Magnitude of the common band limit: flat to 0.9 CUTOFF_HZ, raised-cosine to 0 at it."""
    ramp = np.clip((f - 0.9 * CUTOFF_HZ) / (0.1 * CUTOFF_HZ), 0.0, 1.0)
    return np.cos(0.5 * np.pi * ramp) ** 2


def _resample(x: np.ndarray, rate: int, sr: int) -> np.ndarray:
    """``x`` at ``rate`` resampled to ``sr`` and band-limited at CUTOFF_HZ, in one FFT."""
    from sedkit.data.synthesis import fast_len_at_least

    size = fast_len_at_least(len(x))
    spectrum = np.fft.rfft(x, size) * _lowpass(np.fft.rfftfreq(size, 1.0 / rate))
    size_out = max(2, round(size * sr / rate))
    out = np.zeros(size_out // 2 + 1, complex)
    k = min(len(out), len(spectrum))
    out[:k] = spectrum[:k]
    return np.fft.irfft(out, size_out)[: round(len(x) * sr / rate)] * (size_out / size)


def _trim(x: np.ndarray, sr: int) -> np.ndarray:
    """Without leading and trailing near-silence (below -40 dB of the peak), so that an event's
    label spans the sound (10 ms margins kept)."""
    loud = np.flatnonzero(np.abs(x) > 0.01 * (np.max(np.abs(x)) + 1e-12))
    if loud.size == 0:
        return x
    margin = int(0.01 * sr)
    return x[max(0, loud[0] - margin) : loud[-1] + margin + 1]


def _loop(x: np.ndarray, n: int, sr: int) -> np.ndarray:
    """``x`` repeated to ``n`` samples with 50 ms raised-cosine crossfades."""
    fade = max(1, min(int(0.05 * sr), len(x) // 4))
    window = np.ones(len(x))
    window[:fade] = np.sin(np.linspace(0.0, 0.5 * np.pi, fade)) ** 2
    window[-fade:] = np.cos(np.linspace(0.0, 0.5 * np.pi, fade)) ** 2
    out = np.zeros(n + len(x))
    for start in range(0, n, len(x) - fade):
        out[start : start + len(x)] += x * window
    return out[:n]


def _excerpt(job: ExcerptJob) -> np.ndarray:
    from sedkit_plugins.desed.sources import _long_length

    x, rate = _decode(sf.read, job.recording, job.package, always_2d=True, dtype="float64")
    x = _trim(_resample(x.mean(axis=1), rate, job.sr), job.sr)
    rng = seeded_rng(job.seed, *job.words)
    n_max = int(job.max_duration_s * job.sr)
    if job.loop:
        n = n_max if job.background else _long_length(rng, job.sr, job.max_duration_s)
        x = _loop(np.roll(x, -int(rng.integers(len(x)))), n, job.sr)
    elif len(x) > n_max:
        start = int(rng.integers(len(x) - n_max + 1))
        x = x[start : start + n_max]
    return x


def _decode(call: Callable[..., Any], path: str | Path, package: str, **kwargs: Any) -> Any:
    """``call(path, **kwargs)`` (``sf.read``, ``sf.info``), or, when the file cannot be decoded
    (a truncated or corrupt copy), a UserError naming it and how to replace it."""
    try:
        return call(str(path), **kwargs)
    except sf.SoundFileError as error:
        why = str(error).rsplit(": ", 1)[-1].rstrip(".")
        raise debian_sounds.damaged(package, path, why, FETCH_COMMAND) from None


def make_source(job: Any) -> float:
    """Write one source file (an excerpt of a recording, or a procedural sound band-limited
    like the recordings); returns its duration in seconds."""
    from sedkit_plugins.desed.plan import _make_source

    if isinstance(job, ExcerptJob):
        x, sr = _excerpt(job), job.sr
        job.path.parent.mkdir(parents=True, exist_ok=True)
    else:
        _make_source(job)
        x, sr = sf.read(job.path, dtype="float64")
        size = len(x)
        x = np.fft.irfft(np.fft.rfft(x) * _lowpass(np.fft.rfftfreq(size, 1.0 / sr)), size)
    x = 0.5 * x / (np.max(np.abs(x)) + 1e-12)  # the generator's level
    sf.write(job.path, x.astype(np.float32), sr, subtype="FLOAT")
    return len(x) / sr


def _split(recordings: Sequence[str], rng: np.random.Generator) -> dict[str, list[str]]:
    """Recordings of one class (or of the backgrounds) by group: train gets what validation
    and eval (a fifth each, at least one) leave; with two recordings, validation and eval
    share the second."""
    order = [recordings[i] for i in rng.permutation(len(recordings))]
    if len(order) == 2:
        return {"train": order[:1], "validation": order[1:], "eval": order[1:]}
    k = max(1, round(0.2 * len(order)))
    return {"validation": order[:k], "eval": order[k : 2 * k], "train": order[2 * k :]}


@dataclass
class RealSounds:
    """The recordings of a build, by class (``""``: backgrounds) and group, and what was left
    out and why."""

    #: label -> group -> recording ids, and recording id -> its files.
    groups: dict[str, dict[str, list[str]]]
    files: dict[str, list[str]]
    left_out: list[dict[str, str]]

    @classmethod
    def load(cls, seed: int, *, fetch: bool, say: Callable[[str], None]) -> RealSounds:
        """Find (after fetching, with ``fetch``) the manifest's files and split them."""
        packages = sorted({r.package for r in MANIFEST})
        if fetch:
            debian_sounds.fetch(packages, renderer=False, say=say)
        files: dict[str, list[str]] = {}
        left_out: list[dict[str, str]] = []
        for r in MANIFEST:
            for path in _glob(r):
                if _decode(sf.info, path, r.package).samplerate < MIN_SAMPLE_RATE:
                    left_out.append({"file": str(path.name), "why": "below 16 kHz"})
                else:
                    files.setdefault(r.recording, []).append(str(path))
        groups: dict[str, dict[str, list[str]]] = {}
        for label in sorted({r.label for r in MANIFEST}):
            ids = sorted({r.recording for r in MANIFEST if r.label == label} & set(files))
            if len(ids) < 2:
                why = f"{len(ids)} usable recording(s): stays procedural"
                left_out.append({"label": label, "why": why})
                continue
            groups[label] = _split(ids, seeded_rng(seed, "desed_real", label))
        return cls(groups, files, left_out)

    def source_jobs(self, jobs: Sequence[Any]) -> list[Any]:
        """desed_synth's source jobs, with those of real classes and of the real domain's
        backgrounds replaced by excerpts of the recordings of their pool's group."""
        from sedkit_plugins.desed.config import LONG_CLASSES

        package = {f: r.package for r in MANIFEST for f in self.files.get(r.recording, [])}
        out = []
        for job in jobs:
            pool, role = job.path.parents[2].name, job.path.parent.parent.name
            background = role == "bg"
            key = "" if background and job.domain.name == "real" else job.label
            if background and key or key not in self.groups:
                out.append(job)
                continue
            ids = self.groups[key][POOL_GROUP[pool]]
            pool_files = [f for i in ids for f in self.files[i]]
            recording = pool_files[job.words[-1] % len(pool_files)]
            loop = background or job.label in LONG_CLASSES
            fields = (job.path, job.label, recording, job.words, job.seed, job.sr)
            extra = (job.max_duration_s, loop, background, package[recording])
            out.append(ExcerptJob(*fields, *extra))
        return out

    def extend_card(self, card: dict[str, Any]) -> None:
        """Add the sources of every class, the recordings' split, licenses and authors."""
        from sedkit_plugins.desed.config import CLASSES

        card["name"] += " (real recordings where available)"
        card["source"] = "real"
        card["real_sounds"] = {
            "cutoff_hz": CUTOFF_HZ,
            "min_sample_rate": MIN_SAMPLE_RATE,
            "classes": {
                c: {"sources": "real" if c in self.groups else "procedural"}
                | ({"recordings": self.groups[c]} if c in self.groups else {})
                for c in CLASSES
            },
            "backgrounds_real_domain": self.groups.get(""),
            "files_per_recording": {i: len(f) for i, f in sorted(self.files.items())},
            "manifest": [dataclasses.asdict(r) for r in MANIFEST],
            "left_out": self.left_out,
        }

    def card_lines(self) -> list[str]:
        """The card's markdown section: the source of every class and the recordings' split."""
        from sedkit_plugins.desed.config import CLASSES

        lines = [
            "",
            "## Real recordings (`--source real`)",
            "",
            f"Every source is band-limited at {CUTOFF_HZ:.0f} Hz; recordings below "
            f"{MIN_SAMPLE_RATE} Hz are left out. Split by recording: training pools draw from "
            "`train`, validation and eval pools from the others.",
            "",
            "| class | sources | train | validation | eval |",
            "|---|---|---|---|---|",
        ]
        for c in (*CLASSES, ""):
            g = self.groups.get(c)
            name = c or "backgrounds (real domain)"
            if g is None:
                lines.append(f"| {name} | procedural | | | |")
            else:
                cells = " | ".join(", ".join(g[k]) for k in _GROUPS)
                lines.append(f"| {name} | real | {cells} |")
        lines += ["", "| recording | package | files | license | attribution |"]
        lines.append("|---|---|---|---|---|")
        seen = set()
        for r in MANIFEST:
            if r.recording in seen:
                continue
            seen.add(r.recording)
            n = len(self.files.get(r.recording, []))
            lines.append(f"| {r.recording} | {r.package} | {n} | {r.license} | {r.attribution} |")
        return lines


def _glob(r: Recording) -> list[Path]:
    """The files of a manifest row: the installed package's, else the fetched copy's."""
    for root in (Path("/"), debian_sounds.cache_dir() / "root"):
        found = sorted(root.glob(r.pattern))
        if found:
            return found
    raise debian_sounds.MissingSoundsError(r.package, FETCH_COMMAND)
