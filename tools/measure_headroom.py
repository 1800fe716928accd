"""Measure what the embedded benchmark leaves the methods to win, with the baseline CRNN alone.

    python tools/measure_headroom.py [--data data/dcase2019] [--seeds 1 2 3] [--jobs 1] \
        [--root runs/headroom] [--write docs/benchmark.md] [KEY=VALUE ...]

Three trainings of `recipes/dcase2019_task4/baseline.yaml` per seed, every checkpoint selected on
the validation split and scored with `sedkit predict` + `sedkit score` on the held-out splits:

- `synthetic_only`: strong synthetic clips only (stream_proportions [1, 0, 0]).
  **G1** = event F1 on held-out synthetic clips (eval_synthetic) minus event F1 on the real eval
  split: the domain gap that adaptation could close.
- `baseline`: the plain recipe (strong synthetic + weak; unlabeled clips pass unused).
- `oracle`: the same with the hidden true strong labels of the weak and unlabeled clips
  (`data.params.oracle_labels=true`). **G2** = oracle minus baseline on the real eval split:
  what perfect pseudo-labels could add.

Targets, fixed before any method runs (issue 15): G1 >= 0.10 and G2 >= 0.10 event F1, mean of 3
seeds. Runs are resumable (`tools/reproduction.py`): re-running skips finished ones.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reproduction import (  # noqa: E402
    SED_METRICS,
    epoch_records,
    last_quarter_gain,
    mean_std,
    score_split,
    sedkit_cli,
    train,
)

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes/dcase2019_task4/baseline.yaml"
METRICS = SED_METRICS
CONFIGS = {
    "synthetic_only": ["data.params.stream_proportions=[1.0, 0.0, 0.0]"],
    "baseline": [],
    "oracle": ["data.params.oracle_labels=true"],
}
TARGETS = {"G1": 0.10, "G2": 0.10}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/dcase2019")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--root", default="runs/headroom")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per run")
    parser.add_argument("--write", help="markdown file for the results")
    parser.add_argument("overrides", nargs="*", help="recipe overrides for every run")
    args = parser.parse_args()
    data, root = Path(args.data).resolve(), Path(args.root)
    if not (data / "dataset_card.json").is_file():
        sedkit_cli("synth", "desed", str(data))
    jobs = [(config, seed) for seed in args.seeds for config in CONFIGS]

    def run(job: tuple[str, int]) -> str:
        config, seed = job
        run_dir = root / config / f"seed{seed}"
        overrides = [f"data.params.root={data}", f"seed={seed}", *CONFIGS[config], *args.overrides]
        status = train(f"{config} seed {seed}", run_dir, RECIPE, overrides, args.threads)
        print(status, flush=True)
        return status

    started = time.time()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        statuses = list(pool.map(run, jobs))
    if any("FAILED" in s for s in statuses):
        raise SystemExit("some runs failed; fix them and run again (finished runs are kept)")

    scores: dict[str, dict[int, dict[str, dict[str, float]]]] = {c: {} for c in CONFIGS}
    for config, seed in jobs:
        run_dir = root / config / f"seed{seed}"
        splits = ("eval", "eval_synthetic") if config == "synthetic_only" else ("eval",)
        scores[config][seed] = {s: score_split(run_dir, data, s) for s in splits}
    seeds = args.seeds
    f1 = "event_f1_macro"
    g1 = [
        scores["synthetic_only"][s]["eval_synthetic"][f1] - scores["synthetic_only"][s]["eval"][f1]
        for s in seeds
    ]
    g2 = [scores["oracle"][s]["eval"][f1] - scores["baseline"][s]["eval"][f1] for s in seeds]
    lines = [
        "| training | evaluated on | " + " | ".join(METRICS) + " |",
        "|---|---|" + "---|" * len(METRICS),
    ]
    for config in CONFIGS:
        splits = ("eval_synthetic", "eval") if config == "synthetic_only" else ("eval",)
        for split in splits:
            cells = [mean_std([scores[config][s][split][m] for s in seeds]) for m in METRICS]
            lines.append(f"| {config} | {split} | " + " | ".join(cells) + " |")
    verdict = []
    for name, values in (("G1", g1), ("G2", g2)):
        met = statistics.mean(values) >= TARGETS[name]
        per_seed = ", ".join(f"{v:+.3f}" for v in values)
        verdict.append(
            f"- **{name}** = {mean_std(values)} event F1 (per seed {per_seed}); target >= "
            f"{TARGETS[name]:.2f}: {'met' if met else 'NOT met'}"
        )
    for config in CONFIGS:
        records = [epoch_records(root / config / f"seed{s}") for s in seeds]
        gains = [last_quarter_gain(r) for r in records]
        smoothed = [last_quarter_gain(r, window=5) for r in records]
        per_seed = ", ".join(f"{g:+.3f}" for g in gains)
        verdict.append(
            f"- {config}: validation event F1 gained {mean_std(gains)} over the last quarter of "
            f"its epochs (per seed {per_seed}; converged when the mean is < 0.01); mean of the "
            f"last 5 epochs minus mean of the 5 before the last quarter: {mean_std(smoothed)}"
        )
    report = "\n".join(lines + ["", *verdict])
    print(report)
    if args.write:
        card = json.loads((data / "dataset_card.json").read_text())
        command = "python tools/measure_headroom.py --seeds " + " ".join(map(str, seeds))
        if card.get("source", "procedural") != "procedural":
            command += f" --data {args.data} --root {args.root}"
        if args.overrides:
            command += " " + " ".join(args.overrides)
        body = (
            f"Data: generator {card['generator_version']}, preset `{card['preset']}`, seed "
            f"{card['seed']}, sources `{card.get('source', 'procedural')}`. Command: `{command} "
            f"--write {args.write}` ({time.time() - started:.0f} s for the runs not already done; "
            f"CPU threads per run: {args.threads}, runs at once: {args.jobs}). Checkpoints "
            "selected on validation; scores on the eval splits from frame score tables (`sedkit "
            "predict` + `sedkit score --scores`: F1 at 0.5, exact PSDS over all thresholds).\n\n"
            + report
            + "\n"
        )
        path = Path(args.write)
        text = path.read_text() if path.is_file() else "# The embedded DESED-like benchmark\n\n"
        path.write_text(replace_section(text, section_title(card), body))


def section_title(card: dict) -> str:
    """The heading of the headroom section for the benchmark ``card`` describes: one section per
    source kind, so the real-source measurement does not replace the procedural one."""
    source = card.get("source", "procedural")
    if source == "procedural":
        return "## Headroom, measured with the baseline only"
    return f"## Headroom with `--source {source}`, measured with the baseline only"


def replace_section(text: str, title: str, body: str) -> str:
    """``text`` with the section headed ``title`` (up to the next ``## `` heading) replaced by
    ``body``, or with the section appended when there is none."""
    start = text.find(title + "\n")
    if start < 0:
        return text.rstrip() + "\n\n" + title + "\n\n" + body
    following = text.find("\n## ", start + len(title))
    rest = text[following + 1 :] if following >= 0 else ""
    return text[:start] + title + "\n\n" + body + ("\n" + rest if rest else "")


if __name__ == "__main__":
    main()
