"""Transfer learning: partial loading by name with a report, freezing by name pattern, and
unfreezing at a chosen epoch with a lower learning rate for the reused layers."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from sedkit.checkpoint import load_checkpoint
from sedkit.errors import UserError
from sedkit.recipe import load_recipe
from sedkit.run import start_run
from sedkit.trainer import Trainer

LR0 = 0.01


def make_trainer(toy_recipe, toy_plugins, tmp_path, overrides, epochs=2, name="run") -> Trainer:
    loaded = load_recipe(toy_recipe(epochs), overrides, plugins=toy_plugins)
    run_dir = tmp_path / name
    run_dir.mkdir()
    trainer = Trainer(loaded, toy_plugins, run_dir)
    trainer.setup(resume=False)
    return trainer


def params_of(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.modules.named_parameters()}


@pytest.fixture
def source_checkpoint(toy_recipe, toy_plugins, tmp_path):
    """A trained toy model's modules, edited so that loading it has something to report: the
    head has another shape (a new class list), conv.bias is absent, one key is foreign."""
    trainer = make_trainer(toy_recipe, toy_plugins, tmp_path, [], epochs=1, name="source")
    trainer.train_epoch(1)
    modules = {k: v.clone() for k, v in trainer.modules.state_dict().items()}
    modules["model.head.weight"] = torch.zeros(5, modules["model.head.weight"].shape[1])
    del modules["model.conv.bias"]
    modules["model.extra.weight"] = torch.ones(2)
    path = tmp_path / "source.pt"
    torch.save({"modules": modules}, path)
    return path, modules


def test_init_from_loads_by_name_and_reports(
    toy_recipe, toy_plugins, tmp_path, source_checkpoint, caplog
):
    caplog.set_level(logging.INFO, logger="sedkit")  # as the command line sets it
    path, _ = source_checkpoint
    run_dir = tmp_path / "target"
    code = start_run(
        toy_recipe(1),
        [f"trainer.transfer.init_from={path}", "trainer.max_steps_per_epoch=1"],
        plugins=toy_plugins,
        run_dir=str(run_dir),
    )
    assert code == 0
    report = json.loads((run_dir / "transfer.json").read_text())
    assert report["missing"] == ["model.conv.bias"]
    assert report["unexpected"] == ["model.extra.weight"]
    assert list(report["mismatched"]) == ["model.head.weight"]
    assert "checkpoint [5, 16] vs model [3, 16]" in report["mismatched"]["model.head.weight"]
    assert set(report["loaded"]) == {"model.conv.weight", "model.head.bias"}
    log_text = (run_dir / "train.log").read_text()
    assert "missing 1 ['model.conv.bias']" in log_text
    assert "unexpected 1 ['model.extra.weight']" in log_text


def test_init_from_copies_the_matching_tensors(toy_recipe, toy_plugins, tmp_path):
    """A plain model state_dict (no ``model.`` prefix) loads as the model's own."""
    torch.manual_seed(123)
    donor = make_trainer(toy_recipe, toy_plugins, tmp_path, [], epochs=1, name="donor")
    with torch.no_grad():
        for p in donor.model.parameters():
            p.normal_()
    torch.save(donor.model.state_dict(), tmp_path / "plain.pt")
    trainer = make_trainer(
        toy_recipe, toy_plugins, tmp_path,
        [f"trainer.transfer.init_from={tmp_path / 'plain.pt'}"], epochs=1, name="target",
    )  # fmt: skip
    for name, p in donor.model.state_dict().items():
        assert torch.equal(trainer.model.state_dict()[name], p), name
    report = json.loads((trainer.run_dir / "transfer.json").read_text())
    assert report["missing"] == report["unexpected"] == [] and report["mismatched"] == {}


def test_frozen_parameters_do_not_change_while_the_others_do(toy_recipe, toy_plugins, tmp_path):
    trainer = make_trainer(
        toy_recipe, toy_plugins, tmp_path, ["trainer.transfer.freeze=[model.conv]"], epochs=2
    )
    before = params_of(trainer)
    trainer.train_epoch(1)
    trainer.train_epoch(2)
    after = params_of(trainer)
    assert trainer.frozen_names == {"model.conv.weight", "model.conv.bias"}
    for name in before:
        changed = not torch.equal(before[name], after[name])
        assert changed == (name not in trainer.frozen_names), name


def test_unfreezing_at_an_epoch_with_a_lower_learning_rate(toy_recipe, toy_plugins, tmp_path):
    trainer = make_trainer(
        toy_recipe,
        toy_plugins,
        tmp_path,
        [
            "trainer.transfer={freeze: ['model.conv.*'], unfreeze_epoch: 2, "
            "unfreeze_lr_scale: 0.1}",
            "trainer.scheduler={name: exponential, interval: step, s: 4}",
        ],
    )
    group_lrs: list[tuple[float, ...]] = []
    trainer.optimizer.register_step_pre_hook(
        lambda opt, a, k: group_lrs.append(tuple(g["lr"] for g in opt.param_groups))
    )
    start = params_of(trainer)
    trainer.train_epoch(1)
    after_1 = params_of(trainer)
    assert torch.equal(start["model.conv.weight"], after_1["model.conv.weight"])
    assert not torch.equal(start["model.head.weight"], after_1["model.head.weight"])
    trainer.train_epoch(2)
    after_2 = params_of(trainer)
    assert not torch.equal(after_1["model.conv.weight"], after_2["model.conv.weight"])
    # The reused layers follow the same schedule at a tenth of the rate.
    assert [lrs[1] / lrs[0] for lrs in group_lrs] == pytest.approx([0.1] * 8)
    assert [lrs[0] for lrs in group_lrs] == pytest.approx([LR0 * 0.1 ** (t / 4) for t in range(8)])
    # What a plain Adam step at that rate does to the first update of conv.weight.
    assert (after_2["model.conv.weight"] - after_1["model.conv.weight"]).abs().max() <= (
        4 * 0.1 * LR0 * (1 + 1e-4)
    )


def test_unfrozen_state_survives_resume(toy_recipe, toy_plugins, tmp_path):
    """After a resume in the unfrozen phase, the reused layers train (state from the epoch)."""
    overrides = ["trainer.transfer={freeze: [model.conv], unfreeze_epoch: 2}"]
    trainer = make_trainer(toy_recipe, toy_plugins, tmp_path, overrides, epochs=3)
    trainer.fit()
    loaded = load_recipe(toy_recipe(3), overrides, plugins=toy_plugins)
    resumed = Trainer(loaded, toy_plugins, trainer.run_dir)
    state = load_checkpoint(trainer.checkpoint_dir / "last.pt")
    resumed.load_state(state)
    resumed._set_frozen(3)
    assert all(p.requires_grad for p in resumed.modules.parameters())


def test_a_freeze_pattern_matching_nothing_is_a_user_error(toy_recipe, toy_plugins, tmp_path):
    with pytest.raises(UserError, match="'model.cnn' matches no parameter"):
        make_trainer(toy_recipe, toy_plugins, tmp_path, ["trainer.transfer.freeze=[model.cnn]"])
