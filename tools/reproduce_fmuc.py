"""Reproduce Tables I and II of the FMUC paper on the embedded benchmarks (scenes, instruments).

    python tools/reproduce_fmuc.py --seeds 1 2 3 --write docs/fmuc.md

Table II (test accuracy of FM, FMUC and fully supervised, mean ± standard deviation over
``--seeds``) runs recipes/fmuc/<dataset>/{fixmatch,fmuc,supervised}.yaml; Table I (pseudo-label
quality and quantity) runs every variant of
:data:`sedkit_plugins.fixmatch.labeler.TABLE1_VARIANTS` for ``--table1-seeds`` as the
fixmatch or fmuc recipe with the variant's ``pseudo_labeler.params`` overrides (FM and FMUC
share the Table II runs). Runs go one after another with ``--threads`` CPU threads each (or
``--jobs`` side by side) and are skipped when already completed under ``--root``; an
interrupted run resumes from its last checkpoint.

Table I per run: quantity = share of the unlabeled clips kept, over all epochs (every epoch sees
the same number of unlabeled clips, so this is the mean of the per-epoch
``pseudo_labeler/quantity``); quality = accuracy of all pseudo-labels kept during the run (the
per-epoch ``pseudo_labeler/quality`` weighted by the quantity); also both at the last epoch.
Cells are means over seeds. Runs written before metrics were named by recipe section
(``pl_quantity``) read the same (``read_epochs`` renames their metrics).
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reproduction import completed, train

from sedkit_plugins.fixmatch.labeler import TABLE1_VARIANTS
from sedkit_plugins.reporting.commands import summarize
from sedkit_plugins.reporting.rundata import as_number, read_epochs, read_run

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ROOT / "recipes" / "fmuc"
DATASETS = ["scenes", "instruments"]
#: The per-epoch pseudo-label metrics of FixMatch and FMUC (named by the recipe section).
QUANTITY, QUALITY = "pseudo_labeler/quantity", "pseudo_labeler/quality"
#: Table II columns: recipe stem -> column name.
METHODS = {"fixmatch": "FM", "fmuc": "FMUC", "supervised": "Fully supervised"}
#: The paper's dataset each embedded benchmark stands in for.
PAPER_DATASET = {"scenes": "TUT2017", "instruments": "NSynth"}
#: The paper's Table I: variant -> dataset -> (quality %, quantity %).
PAPER_TABLE1: dict[str, dict[str, tuple[float, float]]] = {
    "FM": {"instruments": (78.4, 91.1), "scenes": (87.9, 97.3)},
    "FM thresh. 0.99": {"instruments": (80.7, 75.8), "scenes": (89.9, 90.8)},
    "FMUC": {"instruments": (86.7, 78.1), "scenes": (89.9, 88.7)},
    "FMUC thresh. 0.95": {"instruments": (85.1, 69.2), "scenes": (91.9, 72.8)},
    "FMUC two thresh.": {"instruments": (84.1, 77.5), "scenes": (90.4, 87.9)},
    "FMUC w/o temp.": {"instruments": (77.2, 90.1), "scenes": (89.3, 94.1)},
    "FMUC w. temp. 4": {"instruments": (92.3, 34.1), "scenes": (94.0, 38.6)},
    "FMUC w/o MC-Dr.": {"instruments": (82.6, 78.8), "scenes": (89.8, 89.2)},
}
#: The paper's Table II (test sets): dataset -> method -> (mean %, std %).
PAPER_TABLE2: dict[str, dict[str, tuple[float, float]]] = {
    "scenes": {"fmuc": (70.8, 0.4), "fixmatch": (69.2, 0.3), "supervised": (77.2, 1.2)},
    "instruments": {"fmuc": (72.1, 0.7), "fixmatch": (71.0, 1.9), "supervised": (77.1, 0.2)},
}


@dataclass(frozen=True)
class Job:
    """One run: a recipe of recipes/fmuc/<dataset>/ with overrides, in its own folder."""

    dataset: str
    recipe: str  # stem: fixmatch, fmuc or supervised
    slug: str  # run folder and run name
    seed: int
    overrides: tuple[str, ...] = ()

    def run_dir(self, run_root: Path) -> Path:
        return run_root / self.dataset / self.slug / f"seed{self.seed}"


def variant_slug(variant: str) -> str:
    """Folder name of a Table I variant: the recipe stem for the defaults (shared with Table II),
    else the variant's name in lower case with runs of other characters as ``_``."""
    labeler, params = TABLE1_VARIANTS[variant]
    if not params:
        return labeler
    return re.sub(r"[^a-z0-9]+", "_", variant.lower()).strip("_")


def variant_job(dataset: str, variant: str, seed: int) -> Job:
    labeler, params = TABLE1_VARIANTS[variant]
    overrides = tuple(f"pseudo_labeler.params.{k}={v}" for k, v in params.items())
    return Job(dataset, labeler, variant_slug(variant), seed, overrides)


def plan(
    datasets: Sequence[str],
    seeds: Sequence[int],
    table1_seeds: Sequence[int],
    table1_datasets: Sequence[str] | None = None,
) -> list[Job]:
    """Every run, without duplicates: Table II first (per dataset and seed), then the Table I
    variants for ``table1_seeds`` on ``table1_datasets`` (default: all ``datasets``)."""
    table1_datasets = datasets if table1_datasets is None else table1_datasets
    jobs = [Job(d, method, method, seed) for d in datasets for seed in seeds for method in METHODS]
    for dataset in table1_datasets:
        for seed in table1_seeds:
            jobs += [variant_job(dataset, variant, seed) for variant in TABLE1_VARIANTS]
    return list(dict.fromkeys(jobs))


def run_one(job: Job, run_root: Path, threads: int, extra: Sequence[str]) -> str:
    overrides = [f"seed={job.seed}", f"run.name=fmuc-{job.dataset}-{job.slug}", *job.overrides]
    return train(
        f"{job.dataset}/{job.slug} seed {job.seed}",
        job.run_dir(run_root),
        RECIPES / job.dataset / f"{job.recipe}.yaml",
        [*overrides, *extra],
        threads,
    )


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------
@dataclass
class PseudoLabelSummary:
    """Pseudo-label quality and quantity of one run (fractions; NaN where undefined)."""

    quality: float
    quantity: float
    last_quality: float
    last_quantity: float
    epochs: int
    kept: float = math.nan  # pseudo-labels kept in the run (NaN: unlabeled clips per epoch unknown)


def _number(value: Any) -> float:
    number = as_number(value)
    return math.nan if number is None else number


def summarize_pseudo_labels(
    epochs: Sequence[Mapping[str, Any]], unlabeled_per_epoch: int | None = None
) -> PseudoLabelSummary:
    """Quality and quantity of a run from its per-epoch records (``metrics.jsonl``).

    quantity: mean of ``pseudo_labeler/quantity`` over the epochs; quality: mean of
    ``pseudo_labeler/quality`` weighted by the quantity (the accuracy of every pseudo-label kept
    in the run, as each epoch sees the same number of unlabeled clips; NaN when none was kept);
    ``last_*``: the last epoch's values; ``kept``: the number of pseudo-labels kept, given the
    unlabeled clips of an epoch.
    """
    records = [r for r in epochs if QUANTITY in r]
    if not records:
        return PseudoLabelSummary(math.nan, math.nan, math.nan, math.nan, 0)
    quantities = [_number(r[QUANTITY]) for r in records]
    qualities = [_number(r.get(QUALITY)) for r in records]
    weighted = [(q, n) for q, n in zip(qualities, quantities, strict=True) if n > 0]
    kept = sum(n for _, n in weighted)
    quality = sum(q * n for q, n in weighted) / kept if kept > 0 else math.nan
    return PseudoLabelSummary(
        quality=quality,
        quantity=sum(quantities) / len(quantities),
        last_quality=qualities[-1],
        last_quantity=quantities[-1],
        epochs=len(records),
        kept=math.nan if unlabeled_per_epoch is None else sum(quantities) * unlabeled_per_epoch,
    )


def _pct(values: Sequence[float], *, with_std: bool = False) -> str:
    """Mean (± sample std with ``with_std`` and several values) in %, one decimal; NaN skipped."""
    found = [100 * v for v in values if not math.isnan(v)]
    if not found:
        return "n/a"
    mean, std = summarize(found)
    return f"{mean:.1f} ± {std:.1f}" if with_std and std is not None else f"{mean:.1f}"


def pooled_quality(runs: Sequence[PseudoLabelSummary]) -> float:
    """Accuracy of all pseudo-labels kept in ``runs`` (runs of one recipe see equally many
    unlabeled clips, so each run's quality weighs by its quantity); NaN when none was kept."""
    kept = [(s.quality, s.quantity) for s in runs if s.quantity > 0 and not math.isnan(s.quality)]
    total = sum(n for _, n in kept)
    return sum(q * n for q, n in kept) / total if total > 0 else math.nan


def _count(values: Sequence[float]) -> str:
    """The total of ``values`` as a whole number; n/a when none is known."""
    known = [v for v in values if not math.isnan(v)]
    return f"{round(sum(known))}" if known else "n/a"


def table1_markdown(
    summaries: Mapping[str, Mapping[str, Sequence[PseudoLabelSummary]]],
    datasets: Sequence[str],
) -> str:
    """Table I: per variant and dataset, the number of runs (seeds) and of pseudo-labels they
    kept, the quality (pooled over those pseudo-labels) and quantity (mean over the runs) in %,
    and both at the last epoch (means over the runs), beside the paper's figures.
    ``summaries[dataset][variant]``: one summary per run."""
    head = ["variant"]
    for d in datasets:
        head += [
            f"{d} runs",
            f"{d} kept",
            f"{d} quality",
            f"{d} quantity",
            f"{d} last epoch quality / quantity",
        ]
    head += [f"paper {PAPER_DATASET[d]} quality / quantity" for d in datasets]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for variant in TABLE1_VARIANTS:
        cells = [variant]
        for d in datasets:
            runs = summaries.get(d, {}).get(variant, [])
            cells += [
                str(len(runs)),
                _count([s.kept for s in runs]),
                _pct([pooled_quality(runs)]),
                _pct([s.quantity for s in runs]),
                f"{_pct([s.last_quality for s in runs])} / {_pct([s.last_quantity for s in runs])}",
            ]
        for d in datasets:
            quality, quantity = PAPER_TABLE1[variant][d]
            cells.append(f"{quality} / {quantity}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def table2_markdown(
    accuracies: Mapping[str, Mapping[str, Sequence[float]]], datasets: Sequence[str]
) -> str:
    """Table II: test accuracy in %, mean ± sample standard deviation over seeds (n in
    brackets), beside the paper's test-set figures. ``accuracies[dataset][method]``."""
    head = ["dataset", *[f"{METHODS[m]}" for m in METHODS], "paper dataset"]
    head += [f"paper {METHODS[m]}" for m in METHODS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for d in datasets:
        cells = [d]
        for method in METHODS:
            values = list(accuracies.get(d, {}).get(method, []))
            cells.append(f"{_pct(values, with_std=True)} (n={len(values)})")
        cells.append(f"{PAPER_DATASET[d]} test")
        for method in METHODS:
            mean, std = PAPER_TABLE2[d][method]
            cells.append(f"{mean} ± {std}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@dataclass
class Results:
    """What the run folders hold, gathered for the tables."""

    summaries: dict[str, dict[str, list[PseudoLabelSummary]]] = field(default_factory=dict)
    accuracies: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    train_time_s: dict[str, list[float]] = field(default_factory=dict)


def collect(run_root: Path, datasets: Sequence[str], seeds: Sequence[int]) -> Results:
    """Read the completed runs for ``seeds`` (others are left out of the tables). A Table I
    cell pools every completed seed of its variant (FM and FMUC: the Table II runs)."""
    results = Results()
    for dataset in datasets:
        for method in METHODS:
            for seed in seeds:
                run_dir = Job(dataset, method, method, seed).run_dir(run_root)
                if not completed(run_dir):
                    continue
                run = read_run(run_dir)
                accuracy = run.metric("accuracy")
                if accuracy is not None:
                    results.accuracies.setdefault(dataset, {}).setdefault(method, []).append(
                        accuracy
                    )
                seconds = run.metric("train_time_s")
                if seconds is not None:
                    results.train_time_s.setdefault(f"{dataset}/{method}", []).append(seconds)
        for variant in TABLE1_VARIANTS:
            for seed in seeds:
                run_dir = variant_job(dataset, variant, seed).run_dir(run_root)
                if completed(run_dir):
                    data = (read_run(run_dir).recipe.get("data") or {}).get("params") or {}
                    per_epoch = data.get("batches_per_epoch", 0) * data.get(
                        "unlabeled_batch_size", 0
                    )
                    summary = summarize_pseudo_labels(read_epochs(run_dir), per_epoch or None)
                    results.summaries.setdefault(dataset, {}).setdefault(variant, []).append(
                        summary
                    )
    return results


def add_run_arguments(parser: argparse.ArgumentParser, root: str) -> None:
    """The options of how to run and tabulate, shared with ``reproduce_fmuc_sampled``: jobs
    side by side, threads per run, the runs' folder (default ``root``), the markdown file,
    tables only, and recipe overrides for every run."""
    parser.add_argument("--jobs", type=int, default=1, help="runs side by side")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per run")
    parser.add_argument("--root", default=root)
    parser.add_argument("--write", help="markdown file for the tables")
    parser.add_argument("--tables-only", action="store_true", help="run nothing; tabulate")
    parser.add_argument("overrides", nargs="*", help="recipe overrides for every run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="Table II")
    parser.add_argument("--table1-seeds", type=int, nargs="+", default=[1], help="Table I")
    parser.add_argument("--datasets", nargs="+", default=DATASETS, choices=DATASETS)
    parser.add_argument(
        "--table1-datasets", nargs="+", choices=DATASETS, help="Table I (default: --datasets)"
    )
    add_run_arguments(parser, "runs/fmuc")
    args = parser.parse_args()
    run_root = Path(args.root)
    if not args.tables_only:
        jobs = plan(args.datasets, args.seeds, args.table1_seeds, args.table1_datasets)
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for line in pool.map(
                lambda job: run_one(job, run_root, args.threads, args.overrides), jobs
            ):
                print(line, flush=True)
    results = collect(run_root, args.datasets, sorted({*args.seeds, *args.table1_seeds}))
    table1 = table1_markdown(results.summaries, args.datasets)
    table2 = table2_markdown(results.accuracies, args.datasets)
    print(table1 + "\n" + table2)
    if args.write:
        command = (
            "python tools/reproduce_fmuc.py"
            f" --seeds {' '.join(map(str, args.seeds))}"
            f" --table1-seeds {' '.join(map(str, args.table1_seeds))}"
            + (
                f" --table1-datasets {' '.join(args.table1_datasets)}"
                if args.table1_datasets
                else ""
            )
            + (" " + " ".join(args.overrides) if args.overrides else "")
        )
        write_tables(Path(args.write), command, table1, table2)


def table_markers(name: str = "tables") -> tuple[str, str]:
    """The comments that enclose a generated block of a document; each benchmark's tables have
    their own (``tables`` for the procedural ones), so writing one leaves the others."""
    return f"<!-- {name} -->", f"<!-- end of {name} -->"


def write_tables(path: Path, command: str, table1: str, table2: str, name: str = "tables") -> None:
    """Put the tables between the markers ``name`` of ``path``, keeping the rest of the document
    (the reading of the numbers, other blocks); without those markers they are appended."""
    block = (
        f"Generated by `{command}`.\n\n"
        f"### Table I: pseudo-label quality and quantity (%)\n\n{table1}\n"
        f"### Table II: test accuracy (%)\n\n{table2}"
    )
    start, end = table_markers(name)
    text = path.read_text() if path.is_file() else "# FixMatch and FMUC\n\n"
    head, found, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    if not found:
        head = text.rstrip() + "\n\n"
    path.write_text(f"{head}{start}\n{block}{end}{tail or chr(10)}")


if __name__ == "__main__":
    main()
