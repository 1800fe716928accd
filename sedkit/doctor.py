"""Is this environment able to run sedkit? ``sedkit doctor`` and the start-up import check.

Both work in a broken environment: this module imports nothing compiled at import time, reads
versions from package metadata (no import), and imports the compiled stack (torch, torchaudio,
numpy, pandas, soundfile) only inside :func:`check_compiled_stack`, catching what it raises.

Why a start-up check: pip happily installs a torchaudio whose ``libtorchaudio.so`` needs a newer
torch (torchaudio 2.11.1 beside torch 2.11.0 fails with ``undefined symbol``); without this check
every plugin that imports torchaudio failed to load and the CLI then crashed with a traceback.
"""

from __future__ import annotations

import importlib
import os
import platform
import shutil
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from sedkit.errors import UserError

#: Compiled packages imported together at start-up, in dependency order.
COMPILED_STACK = ("numpy", "torch", "torchaudio", "pandas", "soundfile")

#: Distributions whose versions ``sedkit doctor`` reports.
REPORTED = (
    "torch",
    "torchaudio",
    "numpy",
    "pandas",
    "sed_eval",
    "psds_eval",
    "scaper",
    "soundfile",
    "pluggy",
)

FIX = (
    "run `bash tools/install.sh` in the sedkit checkout "
    "(it installs the locked versions into .venv)"
)


def installed_version(dist: str) -> str | None:
    """The installed version of distribution ``dist`` from its metadata, or None."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def pinned_requirements() -> dict[str, str]:
    """sedkit's own requirement strings by distribution name (lower case), from its metadata."""
    try:
        requires = metadata.requires("sedkit") or []
    except metadata.PackageNotFoundError:
        return {}
    out: dict[str, str] = {}
    for line in requires:
        if "extra ==" in line:
            continue
        spec = line.split(";")[0].strip()
        name = spec
        for sep in ("==", ">=", "<=", "~=", "!=", ">", "<", "["):
            name = name.split(sep)[0]
        out[_normalise(name)] = spec
    return out


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


def _expected(dist: str) -> str:
    return pinned_requirements().get(_normalise(dist), dist)


def check_compiled_stack(importer=importlib.import_module) -> None:
    """Import the compiled dependencies together; raise one clear :class:`UserError` if not.

    The message names the versions found, what sedkit expects (its own pins) and the fix.
    ``importer`` is for tests, which make one import fail.
    """
    for module in COMPILED_STACK:
        try:
            importer(module)
        except (ImportError, OSError) as exc:
            lines = [x.strip() for x in str(exc).splitlines() if x.strip()] or [type(exc).__name__]
            cause = exc.__cause__ or exc.__context__
            while cause is not None:
                lines += [x.strip() for x in str(cause).splitlines() if x.strip()]
                cause = cause.__cause__ or cause.__context__
            # The loader's own words name the cause (e.g. "undefined symbol: ..."): prefer them.
            reason = next((x for x in lines if "undefined symbol" in x), lines[-1])
            if len(reason) > 160:
                reason = reason[:157] + "..."
            found = ", ".join(
                f"{d} {installed_version(d) or 'missing'}" for d in ("torch", "torchaudio")
            )
            if module not in ("torch", "torchaudio"):
                found = f"{module} {installed_version(module) or 'missing'}, {found}"
            wanted = ", ".join(_expected(d) for d in ("torch", "torchaudio"))
            install = " ".join(f"'{_expected(d)}'" for d in ("torch", "torchaudio"))
            raise UserError(
                f"broken environment: `import {module}` fails ({reason}); found {found}; "
                f"sedkit expects {wanted}; fix: {FIX} (outside a checkout: pip install {install})"
            ) from None


# ------------------------------------------------------------------------------------ doctor
@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        mark = "OK  " if self.ok else "FAIL"
        text = f"[{mark}] {self.name}: {self.detail}"
        if not self.ok and self.fix:
            text += f"  -> fix: {self.fix}"
        return text


def find_lock_file() -> Path | None:
    """``requirements.lock`` of the checkout sedkit runs from (editable installs), if any."""
    here = Path(__file__).resolve().parent.parent / "requirements.lock"
    return here if here.is_file() else None


def read_lock(path: Path) -> dict[str, str]:
    """``name -> version`` of every ``name==version`` line of a pip/uv lock file."""
    pins: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "-")) or "==" not in line:
            continue
        spec = line.split(";")[0].split(" ")[0].rstrip("\\").strip()
        name, _, version = spec.partition("==")
        pins[_normalise(name.split("[")[0])] = version.strip()
    return pins


def _base_version(version: str) -> str:
    return version.split("+")[0]


def check_pins() -> Check:
    """sedkit's own requirements against the installed versions (packaging's specifiers)."""
    from packaging.requirements import Requirement

    bad = []
    for name, spec in sorted(pinned_requirements().items()):
        version = installed_version(name)
        req = Requirement(spec)
        if version is None:
            bad.append(f"{name} missing (wants {spec})")
        elif not req.specifier.contains(version, prereleases=True):
            bad.append(f"{name} {version} (wants {spec})")
    if not pinned_requirements():
        return Check("pins", False, "sedkit's metadata not found", FIX)
    if bad:
        return Check("pins", False, "; ".join(bad), FIX)
    return Check("pins", True, f"{len(pinned_requirements())} requirements satisfied")


def check_lock() -> Check:
    lock = find_lock_file()
    if lock is None:
        return Check("lock", True, "no requirements.lock beside sedkit (not a checkout): skipped")
    pins = read_lock(lock)
    bad = []
    for name, version in sorted(pins.items()):
        have = installed_version(name)
        if have is None or _base_version(have) != _base_version(version):
            bad.append(f"{name} {have or 'missing'} (lock: {version})")
    if bad:
        shown = "; ".join(bad[:6]) + (f"; and {len(bad) - 6} more" if len(bad) > 6 else "")
        return Check("lock", False, f"{len(bad)} of {len(pins)} differ: {shown}", FIX)
    return Check("lock", True, f"{len(pins)} packages match {lock.name}")


def check_imports() -> Check:
    try:
        check_compiled_stack()
    except UserError as exc:
        return Check("imports", False, str(exc).split("; fix:")[0], FIX)
    return Check("imports", True, ", ".join(COMPILED_STACK) + " import together")


def check_accelerator() -> Check:
    try:
        import torch
    except (ImportError, OSError):
        return Check("cuda", False, "torch does not import", FIX)
    if not torch.cuda.is_available():
        return Check("cuda", True, f"no GPU (torch {torch.__version__}): training runs on the CPU")
    names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return Check(
        "cuda",
        True,
        f"CUDA {torch.version.cuda}, cuDNN {cudnn}, {len(names)} device(s): {', '.join(names)}",
    )


def check_sox() -> Check:
    path = shutil.which("sox")
    if path is None:
        return Check(
            "sox", False, "the sox program is not on PATH (scaper needs it)", "apt-get install sox"
        )
    return Check("sox", True, path)


def check_writable(name: str, folder: Path) -> Check:
    """``folder`` (or its nearest existing parent) accepts a new file."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return Check(name, False, f"{folder}: {probe} is not a folder", f"remove or rename {probe}")
    try:
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".sedkit-doctor-"):
            pass
    except OSError as exc:
        return Check(
            name, False, f"{folder}: cannot write in {probe} ({exc.strerror})", "choose a folder"
        )
    where = "" if probe == folder else f" (will be created in {probe})"
    return Check(name, True, f"{folder} is writable{where}")


def run_checks(data_dir: Path, runs_dir: Path) -> list[Check]:
    versions = ", ".join(f"{d} {installed_version(d) or 'missing'}" for d in REPORTED)
    python_ok = sys.version_info >= (3, 11)
    checks = [
        Check(
            "python",
            python_ok,
            f"{platform.python_version()} ({sys.executable})",
            "use Python 3.11 or newer",
        ),
        Check("versions", True, versions),
        check_pins(),
        check_lock(),
        check_imports(),
        check_accelerator(),
        check_sox(),
        check_writable("data folder", data_dir),
        check_writable("runs folder", runs_dir),
    ]
    return checks


def doctor_main(argv: list[str]) -> int:
    """``sedkit doctor [--data DIR] [--runs DIR]``: one OK/FAIL line per check; exit 0 or 2."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="sedkit doctor", description="check that this environment can run sedkit"
    )
    parser.add_argument("--data", default="data", help="data folder to check (default: data)")
    parser.add_argument("--runs", default="runs", help="runs folder to check (default: runs)")
    args = parser.parse_args(argv)
    checks = run_checks(Path(args.data), Path(args.runs))
    for check in checks:
        print(check.line())
    failed = [c.name for c in checks if not c.ok]
    if failed:
        print(f"sedkit doctor: {len(failed)} check(s) failed: {', '.join(failed)}")
        return 2
    print(f"sedkit doctor: all {len(checks)} checks passed ({os.cpu_count()} CPU cores)")
    return 0
