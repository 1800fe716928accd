"""Magnitude pruning (sedkit_plugins.pruned_asc.pruning) and the ``pruning`` callback: the
METHODS.md section 5 checks (schedule values, the 21 update epochs, non-zero counts and sizes),
per-layer masks from the target sparsity, re-application after optimizer steps, logging, and
exact resume."""

from __future__ import annotations

import io
import logging
from types import SimpleNamespace

import pytest
import torch
from shared_support import build_context
from torch import nn

from sedkit.components import BuildContext, ModelContext
from sedkit_plugins.pruned_asc import pruning_callback as pruning_plugin
from sedkit_plugins.pruned_asc.inception import Inception, InceptionParams
from sedkit_plugins.pruned_asc.pruning import (
    PolynomialDecaySchedule,
    apply_masks,
    compute_masks,
    count_nonzero_parameters,
    count_parameters,
    kept_count,
    magnitude_mask,
    make_permanent,
    prunable_weights,
    size_kb,
    weight_sparsity,
)
from sedkit_plugins.pruned_asc.pruning_callback import Pruning, PruningParams
from sedkit_plugins.pruned_asc.vgg import VGG, VGGParams

LOG = logging.getLogger("test")


def model_context() -> ModelContext:
    return build_context(ModelContext, "classification", n_classes=3, n_mels=48, n_frames=467)


def callback(**params) -> Pruning:
    ctx = BuildContext(task="classification", recipe_path=None, sample_rate=8000, seed=0, log=LOG)
    return Pruning(PruningParams(**params), ctx)


def like_trained(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every counted value a generic non-zero value, as training does (fresh models have
    zero biases and zero running means, which would hide the count being checked)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in list(model.parameters()) + [
            b for n, b in model.named_buffers() if n.endswith(("running_mean", "running_var"))
        ]:
            tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.1)
            tensor.mul_(torch.where(torch.rand(tensor.shape, generator=gen) < 0.5, -1.0, 1.0))
    return model


class TinyNet(nn.Module):
    """Conv + batch norm + dense: every kind of counted value, small enough for 400 epochs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 4, 3, padding=1)
        self.norm = nn.BatchNorm1d(4)
        self.dense = nn.Linear(4 * 5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(torch.relu(self.norm(self.conv(x))).flatten(1))


# --------------------------------------------------------------------------------------------
# Schedule
# --------------------------------------------------------------------------------------------
def test_schedule_values_match_methods() -> None:
    schedule = PolynomialDecaySchedule()  # s_i 0.1, s_f 0.8, t0 100, n 20, dt 10
    expected = {100: 0.1, 110: 0.1998, 150: 0.5047, 200: 0.7125, 250: 0.7891, 290: 0.7999}
    expected.update({300: 0.8, 400: 0.8})
    for epoch, s in expected.items():
        assert round(schedule.sparsity(epoch), 4) == s
        assert round(schedule.sparsity_in_effect(epoch), 4) == s
    assert schedule.sparsity_in_effect(99) == 0.0
    assert schedule.sparsity_in_effect(109) == schedule.sparsity(100)  # fixed between updates
    assert schedule.sparsity_in_effect(355) == schedule.sparsity(300)


def test_schedule_updates_at_the_21_scheduled_epochs() -> None:
    schedule = PolynomialDecaySchedule()
    expected = list(range(100, 301, 10))
    assert schedule.update_epochs() == expected and len(expected) == 21
    assert [e for e in range(1, 401) if schedule.is_update_epoch(e)] == expected
    assert schedule.end_epoch == 300


def test_schedule_checks_its_values() -> None:
    with pytest.raises(ValueError, match="sparsities"):
        PolynomialDecaySchedule(initial_sparsity=0.9, final_sparsity=0.8)
    with pytest.raises(ValueError, match="begin_epoch"):
        PolynomialDecaySchedule(begin_epoch=0)


# --------------------------------------------------------------------------------------------
# Masks and counts
# --------------------------------------------------------------------------------------------
def test_mask_keeps_exactly_the_largest_magnitudes() -> None:
    weight = torch.randn(7, 5, 3, generator=torch.Generator().manual_seed(3))
    for s in (0.0, 0.1, 0.5, 0.8, 0.99):
        mask = magnitude_mask(weight, s)
        keep = kept_count(weight.numel(), s)
        assert int(mask.sum()) == keep == max(1, round(105 * (1 - s)))
        threshold = weight.abs().flatten().sort(descending=True).values[keep - 1]
        assert torch.equal(mask, weight.abs() >= threshold)  # no ties in random values


def test_masks_are_per_layer_and_touch_only_conv_and_dense_weights() -> None:
    model = like_trained(TinyNet())
    with torch.no_grad():
        model.dense.weight.mul_(100.0)  # a global ranking would prune the conv away
    before = {k: v.clone() for k, v in model.state_dict().items()}
    masks = compute_masks(model, 0.5)
    assert set(masks) == {"conv.weight", "dense.weight"} == set(prunable_weights(model))
    apply_masks(model, masks)
    for name in masks:
        n = before[name].numel()
        assert int(torch.count_nonzero(model.state_dict()[name])) == round(n * 0.5)
    for name in ("conv.bias", "dense.bias", "norm.weight", "norm.bias", "norm.running_mean"):
        assert torch.equal(model.state_dict()[name], before[name])


def test_masks_come_from_the_target_sparsity_not_from_the_remaining_weights() -> None:
    model = like_trained(TinyNet())
    for s in (0.1, 0.5, 0.8):
        apply_masks(model, compute_masks(model, s))
    assert int(torch.count_nonzero(model.dense.weight)) == round(60 * 0.2)
    # What repeated torch.nn.utils.prune calls would do: 0.8 of the remaining 0.5 * 0.9.
    from torch.nn.utils import prune

    other = like_trained(TinyNet())
    for s in (0.1, 0.5, 0.8):
        prune.l1_unstructured(other.dense, "weight", amount=s)
    assert int(torch.count_nonzero(other.dense.weight)) < round(60 * 0.2)
    make_permanent(other)
    assert "weight" in dict(other.dense.named_parameters())


def test_vgg_at_80_percent_has_17115_nonzero_values() -> None:
    model = like_trained(VGG(VGGParams(), model_context()))
    apply_masks(model, compute_masks(model, 0.8))
    assert count_nonzero_parameters(model) == 17_115
    assert round(size_kb(17_115), 1) == 66.9
    assert count_parameters(model) == 80_839
    assert weight_sparsity(model) == pytest.approx(0.8, abs=1e-4)


def test_inception_at_80_percent_has_about_34183_nonzero_values() -> None:
    model = like_trained(Inception(InceptionParams(), model_context()))
    apply_masks(model, compute_masks(model, 0.8))
    # The paper's trained model had 34,181: two of its values happened to be exactly zero.
    assert count_nonzero_parameters(model) == 34_183
    assert round(size_kb(34_183), 1) == 133.5


# --------------------------------------------------------------------------------------------
# The callback
# --------------------------------------------------------------------------------------------
class FakeTrainer:
    """The parts of sedkit.trainer.Trainer the callback uses, with a deterministic loop."""

    def __init__(self, seed: int = 0, max_epochs: int = 6):
        torch.manual_seed(seed)
        self.model = TinyNet()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=0.05)
        self.tp = SimpleNamespace(max_epochs=max_epochs)
        self.best_value, self.best_epoch = 0.9, 1

    def run(self, cb: Pruning, epochs: range, steps: int = 3) -> list[dict]:
        logged = []
        for epoch in epochs:
            cb.on_epoch_start(self, epoch)
            gen = torch.Generator().manual_seed(epoch)
            for _ in range(steps):
                x = torch.randn(8, 2, 5, generator=gen)
                y = torch.randint(0, 3, (8,), generator=gen)
                loss = nn.functional.cross_entropy(self.model(x), y)
                self.optimizer.zero_grad()
                loss.backward()
                self.optimizer.step()
                cb.after_optimizer_step(self)
            metrics: dict = {}
            cb.on_epoch_end(self, epoch, metrics)
            logged.append(metrics)
        return logged


def test_callback_updates_masks_only_at_the_21_scheduled_epochs(monkeypatch) -> None:
    calls = []
    real = pruning_plugin.compute_masks
    monkeypatch.setattr(pruning_plugin, "compute_masks", lambda m, s: calls.append(s) or real(m, s))
    trainer, cb = FakeTrainer(max_epochs=400), callback()
    logged = trainer.run(cb, range(1, 401), steps=0)
    assert cb.update_epochs == list(range(100, 301, 10))
    assert len(calls) == 21
    targets = {e: logged[e - 1]["callbacks/target_sparsity"] for e in (99, 100, 110, 150, 400)}
    assert targets[99] == 0.0
    assert [round(targets[e], 4) for e in (100, 110, 150, 400)] == [0.1, 0.1998, 0.5047, 0.8]


def test_callback_reapplies_masks_logs_and_makes_them_permanent() -> None:
    trainer = FakeTrainer()
    cb = callback(initial_sparsity=0.2, final_sparsity=0.6, begin_epoch=2, n_pruning_steps=2,
                  frequency_epochs=2)  # fmt: skip
    logged = trainer.run(cb, range(1, 7))
    assert cb.update_epochs == [2, 4, 6]
    assert logged[0]["callbacks/sparsity"] == 0.0
    for metrics in logged:
        names = {"target_sparsity", "sparsity", "nonzero_params", "size_kb"}
        assert set(metrics) >= {f"callbacks/{name}" for name in names}
        size, nonzero = metrics["callbacks/size_kb"], metrics["callbacks/nonzero_params"]
        assert size == pytest.approx(nonzero * 4 / 1024)
    # Adam moved the weights for three steps after each update, yet the masks held.
    mask = cb.masks["dense.weight"]
    assert torch.count_nonzero(trainer.model.dense.weight[~mask]) == 0
    assert int(torch.count_nonzero(trainer.model.dense.weight)) == round(60 * 0.4)
    assert logged[-1]["callbacks/nonzero_params"] == count_nonzero_parameters(trainer.model)
    # The best checkpoint is chosen again among epochs under the latest masks.
    assert trainer.best_value is None
    cb.on_fit_end(trainer)
    assert cb.masks == {}
    assert int(torch.count_nonzero(trainer.model.dense.weight)) == round(60 * 0.4)


def test_resumed_run_continues_identically() -> None:
    schedule = dict(initial_sparsity=0.2, final_sparsity=0.6, begin_epoch=2, n_pruning_steps=2,
                    frequency_epochs=2)  # fmt: skip
    whole, cb_whole = FakeTrainer(), callback(**schedule)
    whole.run(cb_whole, range(1, 7))

    first, cb_first = FakeTrainer(), callback(**schedule)
    first.run(cb_first, range(1, 4))  # stops after epoch 3, between two updates
    buffer = io.BytesIO()
    state = {
        "model": first.model.state_dict(),
        "optimizer": first.optimizer.state_dict(),
        "callback": cb_first.state_dict(),
    }
    torch.save(state, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)  # what sedkit checkpoints allow
    assert all(isinstance(m, torch.Tensor) for m in state["callback"]["masks"].values())

    resumed, cb_resumed = FakeTrainer(seed=99), callback(**schedule)
    resumed.model.load_state_dict(state["model"])
    resumed.optimizer.load_state_dict(state["optimizer"])
    cb_resumed.load_state_dict(state["callback"])
    cb_resumed.on_fit_start(resumed)
    resumed.run(cb_resumed, range(4, 7))
    assert cb_resumed.update_epochs == cb_whole.update_epochs
    expected, got = whole.model.state_dict(), resumed.model.state_dict()
    for name in expected:
        assert torch.equal(expected[name], got[name]), name


def test_registered_through_the_hook() -> None:
    registered = {}
    pruning_plugin.sedkit_register_callbacks(lambda name, cls: registered.setdefault(name, cls))
    assert registered == {"pruning": Pruning}


# --------------------------------------------------------------------------------------------
# With the real trainer (the engine tests' toy data and model)
# --------------------------------------------------------------------------------------------
TOY_RECIPE = """\
seed: 3
data: {{name: toy_data, params: {{n_train: 8, n_val: 4, batch_size: 4}}}}
model: {{name: toy_model, params: {{hidden: 8}}}}
features: {{sample_rate: 8000, n_fft: 256, hop_length: 64, n_mels: 16}}
callbacks:
  - name: pruning
    params: {{initial_sparsity: 0.2, final_sparsity: 0.6, begin_epoch: 2, n_pruning_steps: 2,
              frequency_epochs: 1}}
trainer:
  max_epochs: {epochs}
  device: cpu
  progress_bar: false
  optimizer: {{name: adam, lr: 0.01}}
decoding: {{median_filter_s: 0.0, psds_thresholds: 2}}
run: {{root: {root}}}
"""


@pytest.fixture(scope="module")
def toy_setup(tmp_path_factory):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))
    import toy_plugin

    from sedkit.plugins import Plugins

    tmp = tmp_path_factory.mktemp("pruning_toy")
    plugins = Plugins.load(builtins_only=True, extra=[("toy", toy_plugin)])
    return tmp, plugins


def _trainer(tmp, plugins, epochs: int, run_dir):
    from sedkit.recipe import load_recipe
    from sedkit.trainer import Trainer

    recipe = tmp / f"toy_prune_{epochs}.yaml"
    recipe.write_text(TOY_RECIPE.format(epochs=epochs, root=tmp / "runs"))
    run_dir.mkdir(parents=True, exist_ok=True)
    return Trainer(load_recipe(recipe, [], plugins=plugins), plugins, run_dir)


def test_trainer_run_prunes_logs_and_resumes_identically(toy_setup) -> None:
    import json

    from sedkit.checkpoint import load_checkpoint

    tmp, plugins = toy_setup
    whole = _trainer(tmp, plugins, 4, tmp / "whole")
    whole.setup(resume=False)
    whole.fit()
    lines = (tmp / "whole" / "metrics.jsonl").read_text().splitlines()
    logged = [json.loads(line) for line in lines]
    assert [round(m["callbacks/target_sparsity"], 4) for m in logged] == [0.0, 0.2, 0.55, 0.6]
    assert all("callbacks/size_kb" in m and "callbacks/nonzero_params" in m for m in logged)
    assert whole.best_epoch == 4  # chosen among epochs under the final masks
    dense = whole.model.head.weight
    assert int(torch.count_nonzero(dense)) == round(dense.numel() * 0.4)

    first = _trainer(tmp, plugins, 2, tmp / "split")  # stopped after epoch 2
    first.setup(resume=False)
    first.fit()
    resumed = _trainer(tmp, plugins, 4, tmp / "split")
    resumed.setup(resume=True)
    resumed.fit()
    a = load_checkpoint(tmp / "whole" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp / "split" / "checkpoints" / "last.pt")
    assert a["callbacks"][0]["update_epochs"] == b["callbacks"][0]["update_epochs"] == [2, 3, 4]
    for key, value in a["modules"].items():
        assert torch.equal(value, b["modules"][key]), key
