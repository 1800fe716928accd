"""End-to-end runs of the engine with a toy plugin: run directory, checkpoints, resume."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sedkit.checkpoint import load_checkpoint
from sedkit.errors import UserError
from sedkit.run import resume_run, start_run
from sedkit.scoring import read_durations
from sedkit.scoring.cli import main as score_main

HERE = Path(__file__).parent


def _params(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")["modules"]


def _run_toy(recipe: Path, run_dir: Path, *extra: str, env: dict | None = None):
    return subprocess.run(
        [sys.executable, str(HERE / "run_toy.py"), str(recipe), str(run_dir), *extra],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_run_writes_everything(toy_recipe, toy_plugins, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert start_run(toy_recipe(2), [], plugins=toy_plugins, run_dir=str(run_dir)) == 0
    for name in [
        "recipe.yaml",
        "recipe_source.yaml",
        "run.json",
        "environment.json",
        "plugins.json",
        "train.log",
        "metrics.jsonl",
        "metrics.json",
        "checkpoints/last.pt",
        "checkpoints/best.pt",
        "predictions/validation_detections.tsv",
    ]:
        assert (run_dir / name).is_file(), name
    epochs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert all("train_frame_bce" in e and "event_f1_macro" in e for e in epochs)
    final = json.loads((run_dir / "metrics.json").read_text())
    assert final["status"] == "completed"
    assert {"event_f1_macro", "segment_f1_macro", "psds1", "psds2"} <= set(final["validation"])
    assert len(list((run_dir / "predictions" / "psds").glob("*.tsv"))) == 4
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"
    # Frame score tables beside the detections; scoring them again gives the run's exact PSDS.
    scores = run_dir / "predictions" / "scores"
    gt, durations = run_dir / "toy_gt.tsv", run_dir / "toy_durations.tsv"
    assert len(list(scores.glob("*.tsv"))) == len(read_durations(durations))
    argv = ["--ref", gt, "--scores", scores, "--meta", durations, "--json"]
    capsys.readouterr()
    assert score_main([str(a) for a in argv]) == 0
    again = json.loads(capsys.readouterr().out)
    for name in ("psds1", "psds2"):
        assert again[name] == pytest.approx(final["validation"][name], abs=1e-9)
        assert 0 <= final["validation"][f"{name}_psds_eval"] <= 1  # psds_eval's, kept
    # The run's own detections, scored again with the class list written beside them, give the
    # run's F1 figures.
    predictions = run_dir / "predictions"
    from toy_plugin import CLASSES

    assert (predictions / "classes.txt").read_text().split() == list(CLASSES)
    argv = ["--ref", gt, "--est", predictions / "validation_detections.tsv", "--json"]
    assert score_main([str(a) for a in argv]) == 0
    rescored = json.loads(capsys.readouterr().out)
    for name in ("event_f1_macro", "segment_f1_micro", "segment_f1_macro"):
        assert rescored[name] == pytest.approx(final["validation"][name], abs=1e-9), name


def test_run_directory_is_never_reused(toy_recipe, toy_plugins, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "keep.txt").write_text("precious")
    with pytest.raises(UserError, match="already exists"):
        start_run(toy_recipe(1), [], plugins=toy_plugins, run_dir=str(run_dir))
    assert (run_dir / "keep.txt").read_text() == "precious"


def test_same_seed_same_parameters(toy_recipe, toy_plugins, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    start_run(toy_recipe(2), [], plugins=toy_plugins, run_dir=str(a))
    start_run(toy_recipe(2), [], plugins=toy_plugins, run_dir=str(b))
    pa, pb = _params(a), _params(b)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """A 4-epoch toy run in its own process: the reference for the resume tests."""
    tmp = tmp_path_factory.mktemp("ref")
    from conftest import TOY_RECIPE

    recipe = tmp / "toy.yaml"
    recipe.write_text(TOY_RECIPE.format(epochs=4, root=tmp / "runs"))
    result = _run_toy(recipe, tmp / "run")
    assert result.returncode == 0, result.stderr
    return recipe, tmp / "run"


@pytest.mark.parametrize(
    "kill_env",
    [
        {"TOY_KILL_AT_STEP": "10"},  # in the middle of epoch 3 (4 steps per epoch)
        {"TOY_KILL_IN_SAVE": "3"},  # while writing the third checkpoint file
    ],
    ids=["during-step", "during-checkpoint-write"],
)
def test_sigkill_and_resume_equals_uninterrupted(uninterrupted, kill_env, tmp_path):
    recipe, ref_dir = uninterrupted
    run_dir = tmp_path / "run"
    killed = _run_toy(recipe, run_dir, env=kill_env)
    assert killed.returncode == -9, killed.stderr
    # The previous checkpoint is intact and loadable, whatever was being written.
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert 1 <= state["epoch"] < 4
    resumed = _run_toy(recipe, run_dir, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    ref, got = _params(ref_dir), _params(run_dir)
    assert set(ref) == set(got)
    for key in ref:
        assert torch.equal(ref[key], got[key]), key
    ref_metrics = json.loads((ref_dir / "metrics.json").read_text())["validation"]
    got_metrics = json.loads((run_dir / "metrics.json").read_text())["validation"]
    assert got_metrics["event_f1_macro"] == ref_metrics["event_f1_macro"]
    epochs = [json.loads(x)["epoch"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3, 4]


def test_resume_refuses_completed_run(toy_recipe, toy_plugins, tmp_path):
    run_dir = tmp_path / "run"
    start_run(toy_recipe(1), [], plugins=toy_plugins, run_dir=str(run_dir))
    with pytest.raises(UserError, match="already completed"):
        resume_run(run_dir, plugins=toy_plugins)


def test_lifecycle_hooks_see_the_run(toy_recipe, tmp_path):
    import types

    import toy_plugin

    import sedkit
    from sedkit.plugins import Plugins

    calls = []
    observer = types.ModuleType("observer")

    @sedkit.hookimpl
    def sedkit_run_start(run_dir, recipe, device):
        calls.append(("start", recipe["model"]["name"], device))

    @sedkit.hookimpl
    def sedkit_epoch_end(run_dir, epoch, metrics):
        calls.append(("epoch", epoch, "train_loss" in metrics))

    @sedkit.hookimpl
    def sedkit_checkpoint_saved(run_dir, path, kind, epoch):
        calls.append(("checkpoint", kind, epoch, path.is_file()))

    @sedkit.hookimpl
    def sedkit_run_end(run_dir, metrics, status):
        calls.append(("end", status, "validation" in metrics))

    for fn in (sedkit_run_start, sedkit_epoch_end, sedkit_checkpoint_saved, sedkit_run_end):
        fn.__module__ = "observer"
        setattr(observer, fn.__name__, fn)
    plugins = Plugins.load(builtins_only=True, extra=[("toy", toy_plugin), ("obs", observer)])
    start_run(toy_recipe(2), [], plugins=plugins, run_dir=str(tmp_path / "run"))
    assert calls[0] == ("start", "toy_model", "cpu")
    assert ("checkpoint", "last", 1, True) in calls and ("checkpoint", "last", 2, True) in calls
    assert ("epoch", 2, True) in calls
    assert calls[-1] == ("end", "completed", True)
