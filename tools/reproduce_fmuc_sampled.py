"""FMUC Tables I and II on the sampled-instrument benchmark (real recorded instruments).

    python tools/reproduce_fmuc_sampled.py --seeds 1 2 3 --epochs 50 --write docs/fmuc.md

The runs of tools/reproduce_fmuc.py (recipes/fmuc/instruments/{fixmatch,fmuc,supervised}.yaml
for Table II over ``--seeds``, every Table I variant for ``--table1-seeds``) on the notes of
``sedkit synth instruments DATA --source sampled`` instead of the procedural ones: built first
into ``--data`` when that folder is missing (``--fetch`` downloads the Debian packages), then
read with ``clip_duration_s`` from its card (4 s notes). Resumable: completed runs under
``--root`` are skipped and an interrupted run resumes from its checkpoint, so the same command
continues where it stopped. ``--epochs`` sets the training budget of every run (stated with the
tables); extra recipe overrides go at the end.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import reproduce_fmuc as fmuc

from sedkit_plugins.classification_data import sampled_instruments

SAMPLED_TABLES = "tables: sampled instruments"  # their block in docs/fmuc.md


def prepare_data(data: Path, preset: str, seed: int, fetch: bool) -> float:
    """Build the sampled-instrument benchmark into ``data`` unless it is there; returns its note
    length in seconds (from the dataset card)."""
    card = data / "dataset_card.json"
    if not card.is_file():
        sampled_instruments.synthesize(data, preset=preset, seed=seed, fetch=fetch, log=print)
    return float(json.loads(card.read_text())["clip_duration_s"])


def data_overrides(data: Path, clip_duration_s: float, epochs: int | None) -> list[str]:
    """Recipe overrides that point the instruments recipes at the sampled notes."""
    overrides = [
        f"data.params.root={data}",
        "data.params.synthesize_if_missing=false",
        f"data.params.clip_duration_s={clip_duration_s}",
    ]
    if epochs is not None:
        overrides += [f"trainer.max_epochs={epochs}", f"trainer.validate_every={epochs}"]
    return overrides


def command_line(args: argparse.Namespace) -> str:
    """The command that regenerates the tables, as written above them."""
    parts = ["python tools/reproduce_fmuc_sampled.py", f"--preset {args.preset}"]
    parts.append(f"--seeds {' '.join(map(str, args.seeds))}")
    parts.append(f"--table1-seeds {' '.join(map(str, args.table1_seeds))}")
    if args.epochs is not None:
        parts.append(f"--epochs {args.epochs}")
    return " ".join(parts + list(args.overrides))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="Table II")
    parser.add_argument("--table1-seeds", type=int, nargs="+", default=[1], help="Table I")
    parser.add_argument("--data", default="data/instruments_sampled", help="benchmark folder")
    parser.add_argument("--preset", default="default", choices=sorted(sampled_instruments.PRESETS))
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the benchmark build")
    parser.add_argument("--fetch", action="store_true", help="download the Debian packages")
    parser.add_argument("--epochs", type=int, help="training budget (default: the recipes')")
    fmuc.add_run_arguments(parser, "runs/fmuc_sampled")
    args = parser.parse_args(argv)
    run_root, data = Path(args.root), Path(args.data).resolve()
    if not args.tables_only:
        clip_s = prepare_data(data, args.preset, args.data_seed, args.fetch)
        extra = [*data_overrides(data, clip_s, args.epochs), *args.overrides]
        jobs = fmuc.plan(["instruments"], args.seeds, args.table1_seeds)
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for line in pool.map(lambda j: fmuc.run_one(j, run_root, args.threads, extra), jobs):
                print(line, flush=True)
    results = fmuc.collect(run_root, ["instruments"], sorted({*args.seeds, *args.table1_seeds}))
    table1 = fmuc.table1_markdown(results.summaries, ["instruments"])
    table2 = fmuc.table2_markdown(results.accuracies, ["instruments"])
    print(table1 + "\n" + table2)
    if args.write:
        fmuc.write_tables(Path(args.write), command_line(args), table1, table2, SAMPLED_TABLES)


if __name__ == "__main__":
    main()
