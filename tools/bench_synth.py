"""Time and size of the embedded DESED-like benchmark per preset.

Builds each preset into a temporary folder, measures wall time and the files written, and records
the table under "## Synthetic benchmark" in docs/benchmarks.md (that section only is replaced;
the other sections stay as they are).

    python tools/bench_synth.py                    # tiny and default
    python tools/bench_synth.py --presets tiny --no-write
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from sedkit_plugins.desed.synth import GENERATOR_VERSION, PRESETS, synthesize

SECTION = "## Synthetic benchmark"
DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def bench(preset: str, seed: int) -> dict[str, object]:
    """Build ``preset`` once; returns its timing and size figures."""
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as tmp:
        out = Path(tmp) / "desed"
        start = time.perf_counter()
        card_path = synthesize(out, preset=preset, seed=seed, log=print)
        seconds = time.perf_counter() - start
        sizes = [p.stat().st_size for p in out.rglob("*") if p.is_file()]
        card = json.loads(card_path.read_text())
    clips = sum(s["n_clips"] for s in card["subsets"].values())
    return {
        "preset": preset,
        "clips": clips,
        "audio_hours": sum(s["total_duration_s"] for s in card["subsets"].values()) / 3600,
        "files": len(sizes),
        "mib": sum(sizes) / 2**20,
        "seconds": seconds,
        "clips_per_s": clips / seconds,
        "workers": PRESETS[preset].n_workers,
        # other work on the machine slows the build: record how busy it was
        "load_1min": os.getloadavg()[0],
    }


def section(rows: list[dict[str, object]], seed: int) -> str:
    """The markdown section with the measurements."""
    lines = [
        SECTION,
        "",
        f"`sedkit synth desed OUT_DIR --preset P --seed {seed}` (generator version "
        f"{GENERATOR_VERSION}), measured by `python tools/bench_synth.py` on "
        f"{platform.node() or 'this machine'}: {os.cpu_count()} CPU cores, Python "
        f"{platform.python_version()}, {platform.machine()}. Wall time includes scaper's import "
        "in every worker process.",
        "",
        "| preset | clips | audio (h) | files | size (MiB) | workers | time (s) | clips/s "
        "| load avg (1 min, at end) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['preset']} | {r['clips']} | {r['audio_hours']:.2f} | {r['files']} | "
        f"{r['mib']:.1f} | {r['workers']} | {r['seconds']:.1f} | {r['clips_per_s']:.2f} | "
        f"{r['load_1min']:.1f} |"
        for r in rows
    ]
    return "\n".join(lines) + "\n"


def write_section(text: str, doc: Path = DOC) -> None:
    """Replace the section in ``doc`` (or append it; create the file if absent)."""
    old = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n"
    start = old.find(SECTION + "\n")
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = old.find("\n## ", start + len(SECTION))
        new = old[:start] + text + (old[end:] if end >= 0 else "")
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(new, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "default"], choices=PRESETS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    rows = [bench(preset, args.seed) for preset in args.presets]
    text = section(rows, args.seed)
    print(text)
    if not args.no_write:
        write_section(text)
        print(f"recorded in {DOC}")


if __name__ == "__main__":
    main()
