"""Distributed data parallel on CPU: two gloo processes started by torchrun follow the same loss
trajectory, and end with the same parameters, as one process with the same global batch.

The toy model has no dropout here (each rank draws its own masks), every example is strongly
labeled and the global batch of 4 splits into two equal shares, so the averaged gradients of
the two ranks equal the gradient of the whole batch.

Run as a script under torchrun, this file trains the toy recipe in RUN_DIR:
``torchrun --standalone --nproc_per_node=2 test_ddp.py RECIPE RUN_DIR``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).parent
OVERRIDES = ["model.params.dropout=0.0"]


def train(recipe: Path, run_dir: Path) -> None:
    """Train the toy recipe in ``run_dir`` (created beforehand), in this process's role."""
    sys.path.insert(0, str(HERE))
    import toy_plugin

    from sedkit.plugins import Plugins
    from sedkit.recipe import load_recipe
    from sedkit.trainer import Trainer

    plugins = Plugins.load(builtins_only=True, extra=[("toy", toy_plugin)])
    loaded = load_recipe(recipe, OVERRIDES, plugins=plugins)
    trainer = Trainer(loaded, plugins, run_dir)
    trainer.setup(resume=False)
    seen: list[list[str]] = []  # the clips of each step in this process
    step = trainer.train_step
    trainer.train_step = lambda batch, *a: seen.append(batch.filenames) or step(batch, *a)
    trainer.fit()
    rank = int(os.environ.get("RANK", "0"))
    (run_dir / f"clips_rank{rank}.json").write_text(json.dumps(seen))


def _epochs(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_two_cpu_processes_equal_one_process(toy_recipe, tmp_path):
    recipe = toy_recipe(2)
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    single.mkdir()
    ddp.mkdir()
    train(recipe, single)
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [*launch, __file__, str(recipe), str(ddp)],
        env=env, capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]

    # Each rank trained on its own half of every global batch.
    whole = json.loads((single / "clips_rank0.json").read_text())
    halves = [json.loads((ddp / f"clips_rank{r}.json").read_text()) for r in (0, 1)]
    assert len(whole) == 8 and all(len(h) == 8 for h in halves)
    for batch, a, b in zip(whole, *halves, strict=True):
        assert len(a) == len(b) == 2 and sorted(a + b) == sorted(batch)

    one, two = _epochs(single), _epochs(ddp)
    assert [e["epoch"] for e in two] == [1, 2]  # rank 0 alone wrote the metrics
    for a, b in zip(one, two, strict=True):
        for key in ("train_loss", "train_frame_bce", "train_clip_bce", "grad_norm_max"):
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-6), key
        assert b["event_f1_macro"] == pytest.approx(a["event_f1_macro"], abs=1e-6)
    ref = torch.load(single / "checkpoints" / "last.pt", weights_only=True)["modules"]
    got = torch.load(ddp / "checkpoints" / "last.pt", weights_only=True)["modules"]
    for key in ref:
        torch.testing.assert_close(got[key], ref[key], rtol=1e-5, atol=1e-5)
    assert json.loads((ddp / "metrics.json").read_text())["status"] == "completed"


def test_shard_batch_splits_every_per_example_field():
    from sedkit.components import Batch
    from sedkit.distributed import shard_batch

    batch = Batch(
        filenames=["a", "b", "c", "d"], stream=["s"] * 4, domain=torch.arange(4.0),
        audio=torch.arange(8.0).reshape(4, 2), hidden={"strong": torch.arange(4)},
    )  # fmt: skip
    parts = [shard_batch(batch, r, 2) for r in range(2)]
    assert [p.filenames for p in parts] == [["a", "c"], ["b", "d"]]
    assert torch.equal(parts[1].audio, torch.tensor([[2.0, 3.0], [6.0, 7.0]]))
    assert torch.equal(parts[0].hidden["strong"], torch.tensor([0, 2]))
    assert parts[0].strong is None


if __name__ == "__main__":
    train(Path(sys.argv[1]), Path(sys.argv[2]))
