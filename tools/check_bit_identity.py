"""Train a few tiny runs and save, or compare bit for bit, every tensor they end with.

    python tools/check_bit_identity.py --save before.pt     # on the code before a change
    python tools/check_bit_identity.py --compare before.pt  # after it: exit 1 on any difference

For restructurings that must not change behaviour (moving code between modules, splitting
files). Each case trains a recipe of the repository for a few steps on the CPU with sizes
overridden down, on an embedded benchmark synthesized once under ``--data`` (tiny presets,
seed 0), and keeps every tensor of its ``last.pt`` (model, extra modules such as labelers and
discriminators, feature normalization, optimizer, scheduler) and the numbers of its
``metrics.jsonl`` (times left out). ``--compare`` checks them with ``torch.equal``, so a moved
random-number draw or a reordered sum shows. The cases together cover the CRNN, tri-training,
the gradient reversal layer, mean teacher, FixMatch and FMUC (SED and classification), CNN420,
VGG, Inception, the ensemble, block mixing and pruning. About 2 minutes on one CPU core.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from sedkit_plugins.reporting.rundata import section_names

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ROOT / "recipes"

#: The SED sizes of tests/plugins/test_paper_recipes.py: one epoch in a second or two.
SED_SMOKE = [
    "data.params.clip_duration_s=4.0",
    "data.params.batch_size=4",
    "data.params.batches_per_epoch=2",
    "data.params.num_workers=0",
    "data.params.cache_features=false",
    "model.params.filters=[4, 4, 4, 4, 4, 4, 4]",
    "model.params.rnn_hidden=8",
    "trainer.max_epochs=2",
    "trainer.device=cpu",
    "trainer.amp=none",
    "trainer.progress_bar=false",
    "decoding.psds_thresholds=3",
]
CLASSIFICATION_SMOKE = [
    "data.params.cache_features=false",
    "trainer.device=cpu",
    "trainer.progress_bar=false",
]

#: The FMUC recipes (CNN420, labeled and unlabeled streams) at a few steps.
FMUC_SMOKE = [
    *CLASSIFICATION_SMOKE,
    "data.params.labeled_fraction=0.5",
    "data.params.labeled_batch_size=2",
    "data.params.unlabeled_batch_size=4",
    "data.params.batches_per_epoch=2",
    "model.params.channels=[4, 8]",
    "model.params.blocks=[1, 1]",
    "trainer.max_epochs=2",
    "trainer.validate_every=1",
]

#: name -> (benchmark, recipe, overrides)
CASES: dict[str, tuple[str, str, list[str]]] = {
    "adv_time_tri": (
        "desed",
        "dcase2019_task4/paper/adv_time_tri.yaml",
        [*SED_SMOKE, "pseudo_labeler.params.stage1_epochs=1", "pseudo_labeler.params.hidden=8"],
    ),
    "mean_teacher": ("desed", "dcase2019_task4/mean_teacher.yaml", SED_SMOKE),
    "fmuc_sed": ("desed", "dcase2019_task4/fmuc.yaml", SED_SMOKE),
    "fixmatch_scenes": (
        "scenes",
        "fmuc/scenes/fixmatch.yaml",
        [*FMUC_SMOKE, "pseudo_labeler.params.threshold=0.3"],
    ),
    "fmuc_instruments": (
        "instruments",
        "fmuc/instruments/fmuc.yaml",
        FMUC_SMOKE,
    ),
    "pruned_ensemble": (
        "scenes3",
        "dcase2020_task1b/model4.yaml",
        [
            *CLASSIFICATION_SMOKE,
            "data.params.labeled_batch_size=4",
            "data.params.block_mixing_segments=2",
            "trainer.max_epochs=3",
            "trainer.validate_every=3",
            "callbacks=[{name: pruning, params: {begin_epoch: 1, n_pruning_steps: 2}}]",
        ],
    ),
}


def tensors(value: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor in a nested checkpoint structure, by its path (``modules.model.fc.weight``)."""
    found: dict[str, torch.Tensor] = {}
    if isinstance(value, torch.Tensor):
        found[prefix] = value.detach().cpu().clone()
    elif isinstance(value, dict):
        for key, item in value.items():
            found.update(tensors(item, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found.update(tensors(item, f"{prefix}.{i}"))
    return found


def numbers(record: Any, prefix: str = "") -> dict[str, float]:
    """The numbers of one metrics record, times (keys naming seconds) left out."""
    found: dict[str, float] = {}
    if isinstance(record, dict):
        for key, item in record.items():
            if "time" not in key and not key.endswith("_s"):
                found.update(numbers(item, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(record, list):
        for i, item in enumerate(record):
            found.update(numbers(item, f"{prefix}.{i}"))
    elif isinstance(record, int | float) and not isinstance(record, bool):
        found[prefix] = float(record)
    return found


def synthesize(benchmark: str, data: Path) -> Path:
    """The benchmark's tiny preset (seed 0) under ``data``, built on first use."""
    root = data / benchmark
    if not root.exists():
        cmd = [sys.executable, "-m", "sedkit.cli", "synth", benchmark, str(root), "--preset=tiny"]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return root


def run_case(name: str, data: Path, work: Path) -> dict[str, Any]:
    """Train one case; its final tensors and metric numbers."""
    from sedkit.plugins import Plugins
    from sedkit.run import start_run

    benchmark, recipe, overrides = CASES[name]
    root = synthesize(benchmark, data)
    run_dir = work / name
    overrides = [*overrides, f"data.params.root={root}", f"run.root={work}", "seed=3"]
    plugins = Plugins.load(builtins_only=True, disabled={"reporting"})
    if start_run(RECIPES / recipe, overrides, plugins=plugins, run_dir=str(run_dir)) != 0:
        raise SystemExit(f"case {name}: the run failed")
    state = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    metrics = [numbers(json.loads(line)) for line in lines]
    return {"tensors": tensors(state), "metrics": metrics}


def today_names(record: dict[str, float]) -> dict[str, float]:
    """A saved record (flattened: ``pl_confusion.0.1``) with today's metric names, so a file
    saved before metrics were named by recipe section compares with a run of today."""
    tops = list(dict.fromkeys(key.split(".", 1)[0] for key in record))
    renamed = dict(zip(tops, section_names(dict.fromkeys(tops)), strict=True))
    out = {}
    for key, value in record.items():
        top, dot, rest = key.partition(".")
        out[renamed[top] + dot + rest] = value
    return out


def differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """One line per tensor or metric that is not identical (names missing on one side too;
    the saved metrics under today's names, :func:`today_names`)."""
    out = []
    for key in sorted(before["tensors"].keys() | after["tensors"].keys()):
        a, b = before["tensors"].get(key), after["tensors"].get(key)
        if a is None or b is None:
            out.append(f"{key}: only {'after' if a is None else 'before'}")
        elif a.dtype != b.dtype or a.shape != b.shape or not torch.equal(a, b):
            out.append(f"{key}: differs")
    if len(before["metrics"]) != len(after["metrics"]):
        out.append(f"metrics: {len(before['metrics'])} records before, {len(after['metrics'])}")
    for epoch, (a, b) in enumerate(zip(before["metrics"], after["metrics"], strict=False), 1):
        a = today_names(a)
        for key in sorted(a.keys() | b.keys()):
            x, y = a.get(key), b.get(key)
            if x is None or y is None or not (x == y or (math.isnan(x) and math.isnan(y))):
                out.append(f"metrics record {epoch} {key}: {x} before, {y} after")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--save", type=Path, help="write the tensors of every case to this file")
    action.add_argument("--compare", type=Path, help="compare every case with this saved file")
    parser.add_argument("--data", type=Path, default=ROOT / "build" / "bit_identity_data")
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=sorted(CASES))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.data.mkdir(parents=True, exist_ok=True)
    saved = torch.load(args.compare, weights_only=False) if args.compare else None
    results, failed = {}, 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.cases:
            results[name] = run_case(name, args.data, Path(tmp))
            if saved is None:
                n = len(results[name]["tensors"])
                print(f"{name}: {n} tensors, {len(results[name]['metrics'])} metric records")
                continue
            diff = differences(saved[name], results[name])
            n = len(results[name]["tensors"])
            print(f"{name}: {'identical' if not diff else 'DIFFERENT'} ({n} tensors compared)")
            for line in diff[:20]:
                print(f"  {line}")
            failed += bool(diff)
    if args.save:
        torch.save(results, args.save)
        print(f"saved {len(results)} cases to {args.save}")
        return 0
    print(f"{len(args.cases) - failed} of {len(args.cases)} cases bit-identical")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
