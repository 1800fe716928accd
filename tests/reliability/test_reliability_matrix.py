"""Kill and resume over the pieces of state a checkpoint carries: a per-step learning-rate
schedule, ReduceLROnPlateau, early stopping, the tri-training stage switch, the mean teacher
and pruning. Each configuration runs 3 epochs uninterrupted, its folder is copied right after
each epoch's commit (what a kill at any point of the next epoch leaves on disk), and each copy
is resumed: metrics.json, metrics.jsonl and the whole last checkpoint (weights, optimizer,
schedulers, callbacks, pseudo-labeler, random generators) must equal the uninterrupted run's."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import reliability_support as rs

from sedkit import checkpoint as checkpoint_module
from sedkit.checkpoint import LAST
from sedkit.run import resume_run, start_run

CONFIGS = {
    "per-step schedule": [
        "trainer.scheduler={name: exponential, s: 6, interval: step, warmup_steps: 3}"
    ],
    "plateau": ["trainer.scheduler={name: plateau, patience: 0, factor: 0.5}"],
    "early stopping": ["callbacks=[{name: early_stopping, params: {patience: 1}}]"],
    "tri-training stage switch": [
        "pseudo_labeler={name: tri_training, params: {stage1_epochs: 1, hidden: 8}}"
    ],
    "mean teacher": ["pseudo_labeler={name: mean_teacher}"],
    "pruning": [
        "callbacks=[{name: pruning, params: {initial_sparsity: 0.2, final_sparsity: 0.6, "
        "begin_epoch: 2, n_pruning_steps: 2, frequency_epochs: 1}}]"
    ],
}


@pytest.mark.parametrize("config", list(CONFIGS))
def test_resume_after_each_epoch_equals_the_uninterrupted_run(
    config, lean_plugins, tmp_path, monkeypatch
):
    copies: list[Path] = []
    run_dir = tmp_path / "run"

    def copy_after_commit(step: str, path: Path) -> None:
        if step == "replaced" and Path(path).name == LAST:
            copies.append(Path(shutil.copytree(run_dir, tmp_path / f"epoch{len(copies) + 1}")))

    with monkeypatch.context() as mp:
        mp.setattr(checkpoint_module, "write_boundary", copy_after_commit)
        recipe = rs.write_toy_recipe(tmp_path, 3)
        assert start_run(recipe, CONFIGS[config], plugins=lean_plugins, run_dir=str(run_dir)) == 0
    ref_final, ref_epochs, ref_state = rs.run_results(run_dir)
    if config == "early stopping":  # stops after epoch 2: the state to carry is the stop
        assert ref_final["status"] == "stopped" and len(ref_epochs) == 2
    if config == "tri-training stage switch":
        assert [e["stage"] for e in ref_epochs] == ["stage1", "stage2", "stage2"]
    if config == "plateau":
        assert ref_state["optimizer"]["param_groups"][0]["lr"] < 0.01  # it reduced
    differences = {}
    for copy in copies:  # after the last commit: only the final evaluation (or the stop) is left
        assert resume_run(copy, plugins=lean_plugins) == 0
        final, epochs, state = rs.run_results(copy)
        found = rs.state_differences(state, ref_state)
        if final != ref_final:
            found.append("metrics.json")
        if epochs != ref_epochs:
            found.append("metrics.jsonl")
        if found:
            differences[copy.name] = found
    assert not differences, differences
