"""Reproduce Table 1 of the tri-training paper on the embedded benchmark (or DESED).

    python tools/reproduce_table1.py --seeds 1 2 3 --jobs 2 --write docs/table1.md

Runs every variant of recipes/dcase2019_task4/ for every seed (``--jobs`` runs side by side,
each with ``2 // jobs`` CPU threads unless
``--threads`` says), skipping variant/seed pairs that already completed under
``--root``, then tabulates event-based macro F1, segment-based macro F1, PSDS1 and PSDS2 (mean
and standard deviation over seeds, from ``sedkit compare``) beside the paper's figures.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from reproduction import train

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ROOT / "recipes" / "dcase2019_task4"

#: variant -> (row name in the paper, event-based macro F1 %, segment-based macro F1 %)
PAPER = {
    "baseline": ("own baseline", 24.15, 57.70),
    "adv_whole": ("Adv.whole", 30.65, 59.06),
    "adv_time": ("Adv.time", 31.33, 59.26),
    "tri": ("tri-training", 30.23, 62.86),
    "adv_whole_tri": ("Adv.whole + tri-training", 32.64, 60.48),
    "adv_time_tri": ("Adv.time + tri-training", 35.10, 60.67),
    "mean_teacher": ("mean teacher (DCASE baseline method; not in Table 1)", None, None),
}
METRICS = ["event_f1_macro", "segment_f1_macro", "psds1", "psds2"]


def run_one(run_root: Path, variant: str, seed: int, threads: int, extra: list[str]) -> str:
    run_dir = run_root / f"dcase2019_task4-{variant}" / f"seed{seed}"
    recipe = RECIPES / f"{variant}.yaml"
    return train(f"{variant} seed {seed}", run_dir, recipe, [f"seed={seed}", *extra], threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--variants", nargs="+", default=list(PAPER))
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument(
        "--threads", type=int, help="CPU threads per run (default: 2 // jobs, at least 1)"
    )
    parser.add_argument("--root", default="runs/table1")
    parser.add_argument("--write", help="markdown file for the table")
    parser.add_argument("overrides", nargs="*", help="recipe overrides for every run")
    args = parser.parse_args()
    run_root = Path(args.root)
    threads = args.threads or max(1, 2 // args.jobs)
    pairs = [(v, s) for s in args.seeds for v in args.variants]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for line in pool.map(lambda p: run_one(run_root, *p, threads, args.overrides), pairs):
            print(line, flush=True)
    dirs = [
        str(run_root / f"dcase2019_task4-{v}")
        for v in args.variants
        if (run_root / f"dcase2019_task4-{v}").is_dir()
    ]
    table = subprocess.run(
        [
            sys.executable,
            "-m",
            "sedkit.cli",
            "compare",
            *dirs,
            "--format",
            "markdown",
            "--metrics",
            *METRICS,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    print(table)
    if args.write:
        paper = [
            "| variant | paper row | paper event F1 (%) | paper segment F1 (%) |",
            "|---|---|---|---|",
        ]
        for variant in args.variants:
            name, ev, seg = PAPER[variant]
            paper.append(
                f"| {variant} | {name} | {ev if ev is not None else '-'} | "
                f"{seg if seg is not None else '-'} |"
            )
        Path(args.write).write_text(
            "# Table 1 of the tri-training paper, reproduced on the embedded benchmark\n\n"
            f"Command: `python tools/reproduce_table1.py --seeds {' '.join(map(str, args.seeds))}"
            f" --jobs {args.jobs}{' ' + ' '.join(args.overrides) if args.overrides else ''}`"
            f" (seeds {', '.join(map(str, args.seeds))}; mean ± standard deviation over seeds;"
            " F1 as fractions, not %).\n\n## sedkit\n\n" + table + "\n## The paper (DCASE 2019 "
            "validation, real DESED data)\n\n" + "\n".join(paper) + "\n"
        )


if __name__ == "__main__":
    main()
