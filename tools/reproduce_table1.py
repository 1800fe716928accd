"""Reproduce Table 1 of the tri-training paper on the embedded benchmark (or DESED).

    python tools/reproduce_table1.py [--data data/dcase2019] --seeds 1 2 3 --jobs 2 \
        --write docs/table1.md [KEY=VALUE ...]

Runs every variant of recipes/dcase2019_task4/ for every seed (``--jobs`` runs side by side,
each with ``2 // jobs`` CPU threads unless ``--threads`` says), skipping variant/seed pairs that
already completed under ``--root``. Checkpoints are selected on the validation split; the table
reports the **eval** split, which selected nothing: event- and segment-based macro F1 and PSDS1/2
(mean ± std over seeds), each variant's per-seed difference from the baseline with its sign
count, and the diagnostics that explain each row: pseudo-label precision and recall when stage 2
starts, Omega at the end of stage 1, the domain classifier's (balanced) accuracy over the last
five epochs, training time. The paper's figures stand beside them.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from reproduction import SED_METRICS, epoch_records, mean_std, score_split, train

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
#: Diagnostics read from metrics.jsonl: (column, metric, which epochs).
DIAGNOSTICS = (
    ("PL clip precision", "pseudo_labeler/clip_precision", "first"),
    ("PL clip recall", "pseudo_labeler/clip_recall", "first"),
    ("PL frame precision", "pseudo_labeler/frame_precision", "first"),
    ("PL frame recall", "pseudo_labeler/frame_recall", "first"),
    ("Omega (end of stage 1)", "pseudo_labeler/omega", "last"),
    ("D balanced accuracy (last 5)", "domain_adapter/balanced_accuracy", "last5"),
    # Ft's validation F1 when stage 1 ends (tri.yaml: epoch 20 of 40), in every row: does
    # training the labelers beside Ft slow Ft down in stage 1?
    ("val event F1 at epoch 20", "event_f1_macro", "epoch20"),
    ("val event F1 at the end", "event_f1_macro", "last"),
)


def run_dir_of(run_root: Path, variant: str, seed: int) -> Path:
    return run_root / f"dcase2019_task4-{variant}" / f"seed{seed}"


def diagnostic(records: list[dict], metric: str, which: str) -> float | None:
    """``metric`` at the first or last epoch that has it, its mean over the last five, or its
    value at epoch N (``which`` = "epochN")."""
    if which.startswith("epoch"):
        at = [r[metric] for r in records if r.get("epoch") == int(which[5:]) and metric in r]
        return at[0] if at else None
    values = [r[metric] for r in records if isinstance(r.get(metric), int | float)]
    if not values:
        return None
    if which == "first":
        return values[0]
    if which == "last":
        return values[-1]
    return statistics.mean(values[-5:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/dcase2019")
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
    data, run_root = Path(args.data).resolve(), Path(args.root)
    threads = args.threads or max(1, 2 // args.jobs)
    pairs = [(v, s) for s in args.seeds for v in args.variants]
    started = time.time()

    def run_one(pair: tuple[str, int]) -> str:
        variant, seed = pair
        overrides = [f"data.params.root={data}", f"seed={seed}", *args.overrides]
        recipe = RECIPES / f"{variant}.yaml"
        return train(f"{variant} seed {seed}", run_dir_of(run_root, variant, seed), recipe,
                     overrides, threads)  # fmt: skip

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        statuses = list(pool.map(run_one, pairs))
    for line in statuses:
        print(line, flush=True)
    seconds = {
        m.group(1): float(m.group(2))
        for line in statuses
        if (m := re.match(r"(.+): ok in (\d+) s", line))
    }

    scores = {
        (v, s): score_split(run_dir_of(run_root, v, s), data, "eval")
        for v, s in pairs
        if (run_dir_of(run_root, v, s) / "checkpoints" / "best.pt").is_file()
    }
    variants = [v for v in args.variants if all((v, s) in scores for s in args.seeds)]
    lines = ["| variant | " + " | ".join(SED_METRICS) + " |", "|---|" + "---|" * len(SED_METRICS)]
    for v in variants:
        cells = [mean_std([scores[v, s][m] for s in args.seeds]) for m in SED_METRICS]
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    if "baseline" in variants:
        lines += ["", "Per-seed difference from the baseline (eval split), with how many seeds "
                  "are above it:", "", "| variant | " + " | ".join(SED_METRICS) + " |",
                  "|---|" + "---|" * len(SED_METRICS)]  # fmt: skip
        for v in variants:
            if v == "baseline":
                continue
            cells = []
            for m in SED_METRICS:
                diffs = [scores[v, s][m] - scores["baseline", s][m] for s in args.seeds]
                per_seed = ", ".join(f"{d:+.3f}" for d in diffs)
                cells.append(f"{mean_std(diffs)} ({per_seed}; {sum(d > 0 for d in diffs)}/"
                             f"{len(diffs)} up)")  # fmt: skip
            lines.append(f"| {v} | " + " | ".join(cells) + " |")
    lines += ["", "Diagnostics (mean ± std over seeds; '-' where the variant has none):", "",
              "| variant | " + " | ".join(d[0] for d in DIAGNOSTICS) + " | train time (s) |",
              "|---|" + "---|" * (len(DIAGNOSTICS) + 1)]  # fmt: skip
    for v in variants:
        records = {s: epoch_records(run_dir_of(run_root, v, s)) for s in args.seeds}
        cells = []
        for _, metric, which in DIAGNOSTICS:
            values = [diagnostic(records[s], metric, which) for s in args.seeds]
            cells.append("-" if None in values else mean_std(values))
        times = [seconds.get(f"{v} seed {s}") for s in args.seeds]
        cells.append("-" if None in times else f"{statistics.mean(times):.0f}")
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
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
        extra = " " + " ".join(args.overrides) if args.overrides else ""
        Path(args.write).write_text(
            "# Table 1 of the tri-training paper, reproduced on the embedded benchmark\n\n"
            f"Command: `python tools/reproduce_table1.py --seeds {' '.join(map(str, args.seeds))}"
            f" --jobs {args.jobs}{extra}` ({time.time() - started:.0f} s for the runs not "
            f"already done, {threads} CPU thread(s) per run). Checkpoints selected on validation; "
            "scores on the eval split from frame score tables (`sedkit predict` + `sedkit score "
            "--scores`: F1 at 0.5, exact PSDS over all thresholds; F1 as fractions, not %)."
            "\n\n## sedkit\n\n" + table + "\n\n## The paper "
            "(DCASE 2019 validation, real DESED data)\n\n" + "\n".join(paper) + "\n"
        )


if __name__ == "__main__":
    main()
