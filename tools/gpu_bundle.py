"""Pack what tools/gpu_check.py and `sedkit synth desed` need on a GPU machine with no registry.

    python tools/gpu_bundle.py [--python-version 3.11] [--part-mib 60]

The GPU machine has torch and torchaudio (CUDA builds) and nothing of sedkit's. This writes:

- ``build/gpu_bundle/``: ``install.sh`` (the offline install), ``requirements.txt``,
  ``manifest.json``, the sedkit wheel, the embedded tiny DESED-like data set
  (``data/desed_tiny``, preset ``tiny``, seed 0), the sox program as Debian packages
  (``debs/``, for scaper; fetched with ``apt-get download``, so build on Debian or Ubuntu) and
  the first part of the dependency wheels;
- ``build/gpu_bundle_2/``, ...: the other wheels, as few folders as fit ``--part-mib`` each
  (the device tool carries at most 64 MiB of ignored paths per command).

The wheels are the locked versions (``requirements.lock``, hash-checked) of :data:`RUNTIME`, for
CPython ``--python-version`` on x86_64 manylinux; source-only packages are built here into
wheels, which must then be pure Python. Installed with ``--no-deps``: the dependency closure of
the lock would add numba, scikit-learn and more that no path of the check imports, and would
not fit.

On the GPU machine, in the checkout with every ``build/gpu_bundle*`` folder present:
``bash build/gpu_bundle/install.sh`` (a venv at ``build/gpu_venv`` that sees the system torch,
and the sox program in ``build/gpu_sox``), then ``build/gpu_venv/bin/python tools/gpu_check.py``
or ``build/gpu_venv/bin/python -m sedkit.cli synth desed DIR`` (the full benchmark is too large
to carry; it is synthesized there).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "build"
MIB = 2**20

#: The distributions that tools/gpu_check.py's processes import (measured: a sitecustomize hook
#: listed sys.modules at the exit of every process of its CPU dry run, mapped to distributions),
#: less torch and torchaudio, plus what those import lazily (pycparser for cffi, contourpy and
#: pillow for matplotlib, tzdata for pandas).
RUNTIME = (
    "cffi", "contourpy", "cycler", "dcase-util", "fonttools", "future", "iniconfig", "kiwisolver",
    "lazy-loader", "librosa", "matplotlib", "numpy", "packaging", "pandas", "pillow",
    "platformdirs", "pluggy", "psds-eval", "pycparser", "pygments", "pyparsing", "pytest",
    "python-dateutil", "pytz", "pyyaml", "scipy", "sed-eval", "setuptools", "six", "soundfile",
    "tqdm", "tzdata", "validators",
    # sedkit synth desed (scaper and its closure, measured the same way on the tiny preset);
    # soxbindings is left out: it has no wheel and compiles against libsox, so scaper falls
    # back to pysox (``sox``), which runs the sox program that the bundle carries as .deb files.
    "attrs", "decorator", "jams", "jsonschema", "jsonschema-specifications", "mir-eval",
    "pyloudnorm", "referencing", "rpds-py", "scaper", "sortedcontainers", "sox",
    "typing-extensions",
)  # fmt: skip

#: The sox program that scaper runs through pysox, and the libraries it links that a bare machine
#: may lack (glibc, zlib, bzip2 and xz it is sure to have), as Debian packages of this machine's
#: release: install.sh unpacks them into build/gpu_sox. soxbindings (scaper's in-process libsox,
#: which has no wheel) would give the same audio; on the tiny preset 3 of 45 files differ from it,
#: each in 1 sample by 1 LSB (measured with both here).
SOX_DEBS = (
    "sox", "libsox3", "libgomp1", "libgsm1", "libltdl7", "libmagic1", "libmagic-mgc",
    "libpng16-16",
)  # fmt: skip

#: Already on the GPU machine (and far too large to carry).
PROVIDED = re.compile(r"^(torch|torchaudio|triton|nvidia-.*|cuda-.*)$")

PLATFORMS = [
    "manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64",
    "manylinux_2_17_x86_64", "manylinux2014_x86_64",
]  # fmt: skip

INSTALL_SH = """\
#!/usr/bin/env bash
# Offline install of sedkit for tools/gpu_check.py, written by tools/gpu_bundle.py.
# For a machine that has torch and torchaudio and reaches no package registry:
#   bash build/gpu_bundle/install.sh        (from anywhere; the checkout is two folders up)
# Makes a venv (SEDKIT_GPU_VENV, default build/gpu_venv) that sees the system's torch
# (--system-site-packages), then installs the bundle's wheels with no index and no
# dependency resolution (the bundle holds exactly what the check imports).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PYTHON="${{PYTHON:-python3}}"
VENV="${{SEDKIT_GPU_VENV:-$ROOT/build/gpu_venv}}"
want="{python_version}"
have="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ "$have" != "$want" ]; then
    echo "install.sh: the bundle holds wheels for Python $want but $PYTHON is $have;" \\
        "rebuild it with: python tools/gpu_bundle.py --python-version $have" >&2
    exit 2
fi
finds=()
for part in {parts}; do
    if [ ! -d "$ROOT/build/$part/wheels" ]; then
        echo "install.sh: build/$part/wheels is missing: carry build/$part here too" >&2
        exit 2
    fi
    finds+=(--find-links "$ROOT/build/$part/wheels")
done
if [ ! -x "$VENV/bin/python" ]; then
    # Without ensurepip (Debian without python3-venv) the venv gets no pip of its own and
    # $PYTHON's pip installs into it (--python, pip >= 22.3).
    "$PYTHON" -m venv --system-site-packages "$VENV" 2>/dev/null ||
        "$PYTHON" -m venv --system-site-packages --without-pip "$VENV"
fi
if ! "$VENV/bin/python" -c 'import torch, torchaudio' 2>/dev/null; then
    # $PYTHON is itself a venv: --system-site-packages shows its base, not its torch.
    "$PYTHON" -c 'import site; print("\\n".join(site.getsitepackages()))' \\
        > "$("$VENV/bin/python" -c 'import site; print(site.getsitepackages()[0])')/_gpu_torch.pth"
fi
if ! "$VENV/bin/python" -c 'import torch, torchaudio' 2>/dev/null; then
    echo "install.sh: torch and torchaudio are not importable in $VENV" \\
        "(they must come with $PYTHON)" >&2
    exit 2
fi
if "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    pip=("$VENV/bin/python" -m pip)
else
    pip=("$PYTHON" -m pip --python "$VENV/bin/python")
fi
"${{pip[@]}}" install --quiet --no-index --no-deps "${{finds[@]}}" -r "$HERE/requirements.txt"
"${{pip[@]}}" install --quiet --no-index --no-deps "$HERE"/{sedkit_wheel}
# scaper (sedkit synth) runs the sox program: unpack the bundled one, call it through a wrapper
# that finds its libraries, and put the venv's bin/ first on PATH in every process of the venv
# (a .pth line) so that `$VENV/bin/python -m sedkit.cli synth ...` finds it unactivated.
SOX="$ROOT/build/gpu_sox"
rm -rf "$SOX"
mkdir -p "$SOX"
for deb in "$HERE"/debs/*.deb; do
    dpkg-deb -x "$deb" "$SOX" || {{ echo "install.sh: cannot unpack $deb (dpkg-deb)" >&2; exit 2; }}
done
sed "s|@SOX@|$SOX|" > "$VENV/bin/sox" <<'WRAPPER'
#!/bin/sh
SOX="@SOX@"
lib="$SOX/usr/lib/x86_64-linux-gnu:$SOX/lib/x86_64-linux-gnu"
export LD_LIBRARY_PATH="$lib${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}"
export MAGIC="$SOX/usr/lib/file/magic.mgc"
exec "$SOX/usr/bin/sox" "$@"
WRAPPER
chmod +x "$VENV/bin/sox"
site="$("$VENV/bin/python" -c 'import site; print(site.getsitepackages()[0])')"
pth="import os; p = os.environ.get('PATH', ''); d = '$VENV/bin'; "
pth+="os.environ['PATH'] = p if p.split(os.pathsep)[0] == d else d + os.pathsep + p"
echo "$pth" > "$site/_gpu_sox.pth"
"$VENV/bin/python" -c 'import torch, sedkit, sed_eval, psds_eval, shutil, subprocess
from sedkit.compat import import_scaper
scaper = import_scaper()
sox = subprocess.run(["sox", "--version"], capture_output=True, text=True, check=True)
print("sedkit", sedkit.__version__, "torch", torch.__version__,
      "cuda", torch.cuda.is_available(), "scaper", scaper.__version__,
      "sox", shutil.which("sox"), sox.stdout.strip())'
echo "install.sh: done; now: $VENV/bin/python tools/gpu_check.py"
"""


def fetch_debs(dest: Path) -> dict[str, str]:
    """:data:`SOX_DEBS` from this machine's apt sources into ``dest``, under names the device
    tool carries (letters, digits, '.', '_', '-'); ``{file: sha256}``."""
    if shutil.which("apt-get") is None:
        raise SystemExit("gpu_bundle: apt-get is needed to fetch the sox program (Debian/Ubuntu)")
    dest.mkdir(parents=True)
    done = subprocess.run(["apt-get", "download", *SOX_DEBS], cwd=dest, capture_output=True,
                          text=True)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"gpu_bundle: apt-get download failed:\n{done.stderr[-2000:]}")
    out = {}
    for deb in sorted(dest.glob("*.deb")):
        name = re.sub(r"[^A-Za-z0-9._-]", "_", deb.name)
        deb = deb.rename(dest / name)
        out[name] = sha256(deb)
    return out


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(lock: Path) -> dict[str, tuple[str, str]]:
    """``{name: (version, requirement lines with hashes)}`` of every package in the lock."""
    out: dict[str, tuple[str, str]] = {}
    name = ""
    for line in lock.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        if m:
            name = normalise(m.group(1))
            out[name] = (m.group(2), f"{m.group(1)}=={m.group(2)} \\\n")
        elif name and line.strip().startswith("--hash="):
            version, text = out[name]
            out[name] = (version, text + line.rstrip(" \\") + " \\\n")
    return {n: (v, t.rstrip(" \\\n") + "\n") for n, (v, t) in out.items()}


def pip(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    return subprocess.run(cmd, capture_output=True, text=True)


def fetch_wheel(name: str, requirement: str, python_version: str, dest: Path) -> Path:
    """The locked wheel of ``name`` for ``python_version``; a source-only package is built
    here and must give a pure-Python wheel."""
    with tempfile.TemporaryDirectory() as tmp:
        req = Path(tmp) / "req.txt"
        req.write_text(requirement)
        got = Path(tmp) / "got"
        platforms = [a for p in PLATFORMS for a in ("--platform", p)]
        done = pip(
            "download", "--quiet", "--no-deps", "--only-binary=:all:", "--require-hashes",
            "--python-version", python_version, "--implementation", "cp", *platforms,
            "-r", str(req), "-d", str(got),
        )  # fmt: skip
        built = done.returncode != 0
        if built:  # no wheel on the registry: build one from the source
            done = pip("wheel", "--quiet", "--no-deps", "--require-hashes", "-r", str(req),
                       "-w", str(got))  # fmt: skip
            if done.returncode != 0:
                raise SystemExit(f"gpu_bundle: no wheel for {name}:\n{done.stderr[-2000:]}")
        (wheel,) = got.glob("*.whl")
        if built and not wheel.name.endswith("-none-any.whl"):
            raise SystemExit(f"gpu_bundle: {wheel.name} was built here and is not pure Python")
        return Path(shutil.copy2(wheel, dest / wheel.name))


def pack(sizes: dict[str, int], first_room: int, room: int) -> list[list[str]]:
    """Files into parts, largest first, each into the first part with room (first-fit
    decreasing); part 0 has ``first_room`` bytes, the others ``room``."""
    parts: list[list[str]] = [[]]
    free = [first_room]
    for name in sorted(sizes, key=lambda n: (-sizes[n], n)):
        if sizes[name] > room:
            raise SystemExit(f"gpu_bundle: {name} ({sizes[name] / MIB:.1f} MiB) fits no part")
        for i, left in enumerate(free):
            if sizes[name] <= left:
                parts[i].append(name)
                free[i] -= sizes[name]
                break
        else:
            parts.append([name])
            free.append(room - sizes[name])
    return parts


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_version = ".".join(platform.python_version_tuple()[:2])
    parser.add_argument("--python-version", default=default_version,
                        help="the GPU machine's Python (default: this one's)")  # fmt: skip
    parser.add_argument("--part-mib", type=float, default=60.0, help="largest folder (MiB)")
    args = parser.parse_args(argv)

    lock = locked(ROOT / "requirements.lock")
    missing = [n for n in RUNTIME if n not in lock]
    if missing:
        raise SystemExit(f"gpu_bundle: not in requirements.lock: {', '.join(missing)}")
    assert not any(PROVIDED.match(n) for n in RUNTIME)

    for old in BUILD.glob("gpu_bundle*"):
        shutil.rmtree(old)
    staging = BUILD / "gpu_bundle_staging"
    wheels = staging / "wheels"
    wheels.mkdir(parents=True)
    for name in RUNTIME:
        wheel = fetch_wheel(name, lock[name][1], args.python_version, wheels)
        print(f"gpu_bundle: {wheel.name} ({wheel.stat().st_size / MIB:.1f} MiB)", flush=True)

    first = BUILD / "gpu_bundle"
    first.mkdir(parents=True)
    done = pip("wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(first), str(ROOT))
    if done.returncode != 0:
        raise SystemExit(f"gpu_bundle: building the sedkit wheel failed:\n{done.stderr[-2000:]}")
    (sedkit_wheel,) = first.glob("sedkit-*.whl")
    from sedkit_plugins.desed.synth import synthesize

    synthesize(first / "data" / "desed_tiny", preset="tiny", seed=0)
    debs = fetch_debs(first / "debs")
    (first / "requirements.txt").write_text("".join(f"{n}=={lock[n][0]}\n" for n in RUNTIME))

    sizes = {p.name: p.stat().st_size for p in wheels.iterdir()}
    room = int(args.part_mib * MIB)
    fixed = folder_size(first) + 64 * 1024  # + install.sh and manifest.json
    parts = pack(sizes, room - fixed, room)
    names = ["gpu_bundle"] + [f"gpu_bundle_{i + 1}" for i in range(1, len(parts))]
    manifest: dict = {
        "python_version": args.python_version,
        "platforms": PLATFORMS,
        "sedkit_wheel": {"file": sedkit_wheel.name, "sha256": sha256(sedkit_wheel)},
        "data": "data/desed_tiny (sedkit synth desed --preset tiny --seed 0)",
        "debs": debs,
        "parts": {},
    }
    for name, files in zip(names, parts, strict=True):
        target = BUILD / name / "wheels"
        target.mkdir(parents=True, exist_ok=True)
        for file in files:
            shutil.move(str(wheels / file), target / file)
        manifest["parts"][name] = {f: sha256(target / f) for f in sorted(files)}
    shutil.rmtree(staging)
    install = first / "install.sh"
    install.write_text(
        INSTALL_SH.format(
            python_version=args.python_version,
            parts=" ".join(names),
            sedkit_wheel=sedkit_wheel.name,
        )
    )
    install.chmod(0o755)
    (first / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    for name in names:
        size = folder_size(BUILD / name)
        print(f"gpu_bundle: build/{name}: {size / MIB:.1f} MiB")
        if size > room:
            raise SystemExit(f"gpu_bundle: build/{name} is over {args.part_mib} MiB")
    print(
        f"gpu_bundle: carry {', '.join('build/' + n for n in names)} (one per command if need be)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
