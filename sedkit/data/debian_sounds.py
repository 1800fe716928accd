"""Real recorded sounds from Debian packages: an explicit fetch step, lookup and the renderer.

Some Debian (bookworm) packages ship freely licensed recordings: sampled instruments
(soundfonts, GUS patches, pipe-organ stops) and everyday sounds. sedkit never downloads them on
import nor commits them: :func:`fetch` (``sedkit synth instruments OUT --source sampled
--fetch`` or ``tools/fetch_debian_sounds.sh``) runs ``apt-get download`` into a cache folder
and unpacks each ``.deb`` there with ``dpkg-deb -x``; no root is needed. A package installed
system-wide is used in place. When a sound package is absent, the build stops with one line
naming it and the command that fetches it (:class:`MissingSoundsError`, exit code 2).

The cache is ``$SEDKIT_SOUNDS_DIR`` when set, else ``~/.cache/sedkit/debian_sounds``:
``debs/`` (the downloaded packages), ``root/`` (their files, laid out as on the system).

``libfluidsynth3`` renders the soundfonts. Where it is not installed, its missing runtime
libraries (the closure ``apt-get -s install libfluidsynth3`` reports) are fetched with it and
loaded from the cache through ctypes, dependencies first.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import struct
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sedkit.errors import UserError

__all__ = [
    "FLUIDSYNTH_PACKAGE",
    "SOUND_PACKAGES",
    "MissingSoundsError",
    "SoundPackage",
    "cache_dir",
    "damaged",
    "fetch",
    "load_fluidsynth",
    "package_file",
]

#: The Debian package of the soundfont renderer.
FLUIDSYNTH_PACKAGE = "libfluidsynth3"


@dataclass(frozen=True)
class SoundPackage:
    """A Debian package with recordings: where its files lie and under which license."""

    package: str
    version: str
    license: str
    #: Copyright holders / origin, as the package's copyright file names them.
    attribution: str


#: The sound packages sedkit knows, by package name (facts from their ``copyright`` files).
SOUND_PACKAGES: dict[str, SoundPackage] = {
    p.package: p
    for p in (
        SoundPackage(
            "fluid-soundfont-gm",
            "3.1-5.3",
            "MIT",
            "FluidR3 GM soundfont, Frank Wen and contributors",
        ),
        SoundPackage(
            "timgm6mb-soundfont",
            "1.3-5",
            "GPL-2+",
            "TimGM6mb soundfont, Tim Brechbill",
        ),
        SoundPackage(
            "freepats",
            "20060219-4",
            "GPL-2+",
            "FreePats project (freepats.opensrc.org), Eric A. Welsh and contributors",
        ),
        SoundPackage(
            "grandorgue-demo",
            "3.9.5-1",
            "GPL-2+ or CC-BY-SA-2.5",
            "GrandOrgue demo organ sample set, the GrandOrgue project",
        ),
    )
}


class MissingSoundsError(UserError):
    """A Debian sound package (or the renderer) is neither installed nor fetched."""

    def __init__(self, package: str, command: str):
        mark = cache_dir() / "unpacked" / package
        if mark.exists():  # unpacked once, files deleted since: --fetch alone would skip it
            message = (
                f"Debian package {package!r} is incomplete in {cache_dir()} (files deleted "
                f"since it was unpacked); unpack it again: rm {mark}, then {command}"
            )
        else:
            message = (
                f"Debian package {package!r} is not fetched (looked in / and {cache_dir()}); "
                f"fetch it with: {command}"
            )
        super().__init__(message)
        self.package = package


def damaged(package: str, path: str | Path, why: str, fetch_command: str) -> UserError:
    """The error for a file of ``package`` that cannot be read (a truncated or corrupt copy):
    one line naming the file and how to replace it (a fetched copy is unpacked again only
    once its mark in ``unpacked/`` is gone)."""
    path = Path(path)
    cache = cache_dir()
    if path.is_relative_to(cache / "root"):
        fix = f"unpack it again: rm {cache / 'unpacked' / package}, then {fetch_command}"
    else:
        fix = f"reinstall it: apt-get install --reinstall {package}"
    # A plain UserError (message only): it may be raised in a worker process and unpickled.
    return UserError(f"{path}: {why}; this copy of Debian package {package!r} is damaged, {fix}")


def cache_dir() -> Path:
    """The folder that holds fetched packages: ``$SEDKIT_SOUNDS_DIR`` or the user cache."""
    override = os.environ.get("SEDKIT_SOUNDS_DIR")
    return Path(override) if override else Path.home() / ".cache/sedkit/debian_sounds"


def package_file(package: str, relative: str, fetch_command: str) -> Path:
    """The path of ``relative`` (e.g. ``usr/share/sounds/sf2/FluidR3_GM.sf2``) shipped by
    ``package``: the installed copy when there is one, else the fetched one, else
    :class:`MissingSoundsError` naming the package and ``fetch_command``."""
    for root in (Path("/"), cache_dir() / "root"):
        path = root / relative
        if path.exists():
            return path
    raise MissingSoundsError(package, fetch_command)


def _run(command: Sequence[str], cwd: Path | None = None) -> str:
    """Output of a command; UserError naming it and its last error line when it fails."""
    if shutil.which(command[0]) is None:
        raise UserError(f"{command[0]} not found: fetching Debian packages needs apt and dpkg")
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        hint = " (run `apt-get update` first?)" if command[0] == "apt-get" else ""
        raise UserError(f"`{' '.join(command)}` failed: {last}{hint}")
    return done.stdout


def _missing_runtime(package: str) -> list[str]:
    """The packages that installing ``package`` would add (itself included when absent)."""
    out = _run(["apt-get", "-s", "-q", "install", package])
    return [line.split()[1] for line in out.splitlines() if line.startswith("Inst ")]


def fetch(packages: Sequence[str], *, renderer: bool = True, say: Callable[[str], None]) -> Path:
    """Download ``packages`` (and, with ``renderer``, the missing runtime of libfluidsynth3)
    with ``apt-get download`` and unpack them into the cache; returns the cache folder.

    Packages already unpacked there are skipped, so a second call costs nothing.
    """
    cache = cache_dir()
    debs, root, done_marks = cache / "debs", cache / "root", cache / "unpacked"
    try:
        for folder in (debs, root, done_marks):
            folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(
            f"sounds cache {cache} (SEDKIT_SOUNDS_DIR or ~/.cache/sedkit/debian_sounds) is not "
            f"a writable folder: {error.strerror}"
        ) from None
    wanted = list(packages)
    # The renderer's runtime was fetched with it: apt-get is not asked again (nor needed).
    fetched = (done_marks / FLUIDSYNTH_PACKAGE).exists()
    if renderer and ctypes.util.find_library("fluidsynth") is None and not fetched:
        wanted += [p for p in _missing_runtime(FLUIDSYNTH_PACKAGE) if p not in wanted]
    todo = [p for p in wanted if not (done_marks / p).exists()]
    if not todo:
        say(f"debian sounds: {', '.join(wanted)} already in {cache}")
        return cache
    say(f"debian sounds: apt-get download {' '.join(todo)} -> {debs}")
    _run(["apt-get", "download", "-q", *todo], cwd=debs)
    for package in todo:
        found = sorted(debs.glob(f"{package}_*.deb"))
        if not found:
            raise UserError(f"apt-get download left no {package}_*.deb in {debs}")
        try:
            _run(["dpkg-deb", "-x", str(found[-1]), str(root)])
        except UserError as error:
            # A truncated or corrupt download: without it, the next fetch downloads it anew.
            found[-1].unlink(missing_ok=True)
            raise UserError(f"{error}; removed {found[-1].name}, fetch again") from None
        (done_marks / package).write_text(found[-1].name + "\n", encoding="utf-8")
    say(f"debian sounds: unpacked {len(todo)} packages into {root}")
    return cache


_FLUIDSYNTH: ctypes.CDLL | None = None


def load_fluidsynth(fetch_command: str) -> ctypes.CDLL:
    """libfluidsynth (loaded once per process): the system's, else the fetched copy with its
    fetched dependencies; :class:`MissingSoundsError` when neither is there."""
    global _FLUIDSYNTH
    if _FLUIDSYNTH is not None:
        return _FLUIDSYNTH
    name = ctypes.util.find_library("fluidsynth")
    if name is None:
        found = sorted((cache_dir() / "root/usr/lib").glob("*/libfluidsynth.so.3"))
        if not found:  # the multiarch folder: x86_64-linux-gnu, aarch64-linux-gnu, ...
            raise MissingSoundsError(FLUIDSYNTH_PACKAGE, fetch_command)
        libdir = found[0].parent
        # The dynamic linker reuses a library already loaded under its soname, so loading
        # every fetched library globally, retrying those whose own dependencies are not yet
        # loaded, satisfies libfluidsynth without LD_LIBRARY_PATH.
        pending = sorted(p for p in libdir.glob("*.so.*") if p.name.count(".") <= 3)
        for path in pending:
            if _elf_cut_short(path):  # dlopen would die of SIGBUS, past any except clause
                raise UserError(
                    f"{path}: truncated shared library; unpack the renderer again: rm "
                    f"{cache_dir() / 'unpacked'}/lib*, then {fetch_command}"
                )
        while pending:
            failed = []
            for path in pending:
                try:
                    ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
                except OSError:
                    failed.append(path)
            if len(failed) == len(pending):
                break  # the rest need something not fetched; libfluidsynth may not
            pending = failed
        name = str(libdir / "libfluidsynth.so.3")
    try:
        lib = ctypes.CDLL(name)
    except OSError as error:
        why = f"cannot be loaded ({str(error).rsplit(': ', 1)[-1]})"
        raise damaged(FLUIDSYNTH_PACKAGE, name, why, fetch_command) from None
    _declare(lib)
    _FLUIDSYNTH = lib
    return lib


def _elf_cut_short(path: Path) -> bool:
    """Whether a 64-bit little-endian ELF file ends before the segments or the section table
    its header places (a truncated copy); False for anything else, left to the loader."""
    with open(path, "rb") as handle:
        head = handle.read(64)
        if len(head) < 64 or head[:6] != b"\x7fELF\x02\x01":
            return len(head) < 64 and head.startswith(b"\x7fELF"[: len(head)])
        phoff, shoff = struct.unpack_from("<QQ", head, 32)
        phentsize, phnum, shentsize, shnum = struct.unpack_from("<HHHH", head, 54)
        size = os.fstat(handle.fileno()).st_size
        ends = [shoff + shnum * shentsize, phoff + phnum * phentsize]
        handle.seek(phoff)
        table = handle.read(phnum * phentsize)
    for k in range(len(table) // max(phentsize, 1)):
        p_type, _, offset, _, _, filesz = struct.unpack_from("<IIQQQQ", table, k * phentsize)
        if p_type == 1:  # PT_LOAD: mapped from the file
            ends.append(offset + filesz)
    return max(ends) > size


def _declare(lib: ctypes.CDLL) -> None:
    """Argument and result types of the few libfluidsynth calls used (pointers stay 64-bit)."""
    vp, cp, i, d = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_double
    signatures = {
        "new_fluid_settings": ([], vp),
        "delete_fluid_settings": ([vp], None),
        "fluid_settings_setnum": ([vp, cp, d], i),
        "fluid_settings_setint": ([vp, cp, i], i),
        "new_fluid_synth": ([vp], vp),
        "delete_fluid_synth": ([vp], None),
        "fluid_synth_sfload": ([vp, cp, i], i),
        "fluid_synth_get_sfont_by_id": ([vp, i], vp),
        "fluid_synth_add_sfont": ([vp, vp], i),
        "fluid_synth_remove_sfont": ([vp, vp], i),
        "fluid_synth_program_select": ([vp, i, i, i, i], i),
        "fluid_synth_noteon": ([vp, i, i, i], i),
        "fluid_synth_noteoff": ([vp, i, i], i),
        "fluid_synth_system_reset": ([vp], i),
        "fluid_synth_write_float": ([vp, i, vp, i, i, vp, i, i], i),
        "fluid_set_log_function": ([i, vp, vp], vp),
    }
    for fn, (args, result) in signatures.items():
        getattr(lib, fn).argtypes = args
        getattr(lib, fn).restype = result
    for level in range(5):  # quiet: fluidsynth logs soundfont warnings on stderr
        lib.fluid_set_log_function(level, None, None)
