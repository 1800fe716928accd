"""Training practice of the lecture notes, each shown by its effect on a real (toy) run:
learning-rate schedules equal their formulas step by step, clipped gradients respect the bound,
early stopping restores the best weights, every built-in model takes each activation and runs
without batch norm."""

from __future__ import annotations

import json
import logging
import math

import pytest
import torch
from torch import nn

from sedkit.checkpoint import load_checkpoint
from sedkit.components import ModelContext
from sedkit.recipe import load_recipe
from sedkit.trainer import Trainer

LR0 = 0.01  # the toy recipe's learning rate
STEPS_PER_EPOCH = 4  # 16 training clips in batches of 4


def make_trainer(toy_recipe, toy_plugins, tmp_path, overrides, epochs=2) -> Trainer:
    loaded = load_recipe(toy_recipe(epochs), overrides, plugins=toy_plugins)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    trainer = Trainer(loaded, toy_plugins, run_dir)
    trainer.setup(resume=False)
    return trainer


def record_lrs(trainer: Trainer) -> list[float]:
    """The learning rate each optimizer step uses (read just before the step)."""
    lrs: list[float] = []
    trainer.optimizer.register_step_pre_hook(
        lambda opt, args, kwargs: lrs.append(opt.param_groups[0]["lr"])
    )
    return lrs


def epoch_records(trainer: Trainer) -> list[dict]:
    return [json.loads(x) for x in (trainer.run_dir / "metrics.jsonl").read_text().splitlines()]


# ------------------------------------------------------------------------- LR schedules
TOTAL = 2 * STEPS_PER_EPOCH


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (  # power with a 3-step linear warm-up: eta0 * min(1, (t+1)/3) * (1 + t/s)^-c
            ["trainer.scheduler={name: power, interval: step, s: 2, c: 0.5, warmup_steps: 3}"],
            [LR0 * min(1, (t + 1) / 3) * (1 + t / 2) ** -0.5 for t in range(TOTAL)],
        ),
        (  # exponential per step: eta0 * 0.1^(t/s)
            ["trainer.scheduler={name: exponential, interval: step, s: 4}"],
            [LR0 * 0.1 ** (t / 4) for t in range(TOTAL)],
        ),
        (  # cosine over all steps: eta0 * (1 + cos(pi t / T)) / 2
            ["trainer.scheduler={name: cosine, interval: step}"],
            [LR0 * 0.5 * (1 + math.cos(math.pi * t / TOTAL)) for t in range(TOTAL)],
        ),
        (  # exponential per epoch: constant within epoch e, eta0 * 0.1^((e-1)/s)
            ["trainer.scheduler={name: exponential, interval: epoch, s: 3}"],
            [LR0 * 0.1 ** (e / 3) for e in range(2) for _ in range(STEPS_PER_EPOCH)],
        ),
    ],
    ids=["power-warmup-step", "exponential-step", "cosine-step", "exponential-epoch"],
)
def test_learning_rate_follows_the_formula(toy_recipe, toy_plugins, tmp_path, overrides, expected):
    trainer = make_trainer(toy_recipe, toy_plugins, tmp_path, overrides)
    lrs = record_lrs(trainer)
    for epoch in (1, 2):  # fit() without the validations: the schedule is all that matters
        trainer.train_epoch(epoch)
        trainer.epoch = epoch
        if trainer.tp.scheduler.interval == "epoch":
            trainer._step_schedule()
    assert lrs == pytest.approx(expected, rel=1e-12)


def test_plateau_schedule_cuts_the_rate_when_the_metric_stalls(toy_recipe, toy_plugins, tmp_path):
    """Performance scheduling: the monitored value never improves (training loss falls, mode
    'max'), so with patience 0 every epoch after the first cuts the rate by ``factor``, and
    the step-wise warm-up does not undo the cuts."""
    trainer = make_trainer(
        toy_recipe,
        toy_plugins,
        tmp_path,
        [
            "trainer.scheduler={name: plateau, interval: step, factor: 0.5, patience: 0, "
            "warmup_steps: 2, monitor: train_loss, monitor_mode: max}",
            "trainer.validate_every=10",
        ],
        epochs=3,
    )
    lrs = record_lrs(trainer)
    trainer.fit()
    losses = [r["train_loss"] for r in epoch_records(trainer)]
    assert losses[0] > losses[1] > losses[2]  # precondition: the metric never improves
    warm = [LR0 * 0.5, LR0, LR0, LR0]
    assert lrs == pytest.approx(warm + [LR0] * 4 + [LR0 * 0.5] * 4, rel=1e-12)


# ------------------------------------------------------------------------- clipping
def spy_on_clipping(trainer: Trainer) -> tuple[list[float], list[list[torch.Tensor]]]:
    """Pre-clip total norms (recomputed independently) and the gradients the optimizer uses."""
    pre: list[float] = []
    used: list[list[torch.Tensor]] = []
    params = [p for p in trainer.modules.parameters() if p.requires_grad]
    clip = trainer.clip_gradients

    def clip_and_record() -> None:
        grads = [p.grad.double() for p in params if p.grad is not None]
        pre.append(float(torch.sqrt(sum((g**2).sum() for g in grads))))
        clip()

    trainer.clip_gradients = clip_and_record
    trainer.optimizer.register_step_pre_hook(
        lambda opt, args, kwargs: used.append(
            [p.grad.detach().clone() for p in params if p.grad is not None]
        )
    )
    return pre, used


def test_clipping_by_norm_bounds_the_total_norm(toy_recipe, toy_plugins, tmp_path):
    bound = 0.05
    trainer = make_trainer(
        toy_recipe, toy_plugins, tmp_path, [f"trainer.grad_clip_norm={bound}"], epochs=1
    )
    pre, used = spy_on_clipping(trainer)
    metrics = trainer.train_epoch(1)
    post = [float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads))) for grads in used]
    assert len(post) == STEPS_PER_EPOCH and max(pre) > bound  # clipping really happened
    for before, after in zip(pre, post, strict=True):
        assert after <= bound * (1 + 1e-5)
        assert after == pytest.approx(min(before, bound), rel=1e-4)
    # The logged spike statistics are the pre-clip norms.
    assert metrics["grad_norm_max"] == pytest.approx(max(pre), rel=1e-5)
    assert metrics["grad_norm_mean"] == pytest.approx(sum(pre) / len(pre), rel=1e-5)
    assert metrics["grad_clipped_share"] == sum(n > bound for n in pre) / len(pre)


def _two_part_trainer(scope: str, model_grad: float, labeler_grad: float):
    """Just what Trainer.clip_gradients reads: a model and a labeler with set gradients."""
    import types

    model, labeler = torch.nn.Linear(1, 1, bias=False), torch.nn.Linear(1, 1, bias=False)
    model.weight.grad = torch.full((1, 1), model_grad)
    labeler.weight.grad = torch.full((1, 1), labeler_grad)
    trainable = [model.weight, labeler.weight]
    groups = (
        {"all": trainable}
        if scope == "global"
        else {"model": [model.weight], "pseudo_labeler": [labeler.weight]}
    )
    fake = types.SimpleNamespace(
        scaler=torch.amp.GradScaler("cpu", enabled=False),
        optimizer=torch.optim.SGD(trainable, lr=0.1),
        clip_groups=groups,
        tp=types.SimpleNamespace(grad_clip_norm=5.0, grad_clip_value=None),
        device=torch.device("cpu"),
        grad_norms=[],
    )
    return fake, model, labeler


def test_a_regulariser_cannot_throttle_the_model_under_component_clipping():
    """A labeler gradient of 100 (e.g. tri-training's Omega) scaled the model's gradient of 1
    down to 0.05 under one global norm; clipped per component, the model's stays 1."""
    fake, model, labeler = _two_part_trainer("global", 1.0, 100.0)
    Trainer.clip_gradients(fake)
    assert float(model.weight.grad) == pytest.approx(5.0 / math.hypot(1.0, 100.0), rel=1e-5)
    fake, model, labeler = _two_part_trainer("component", 1.0, 100.0)
    Trainer.clip_gradients(fake)
    assert float(model.weight.grad) == pytest.approx(1.0)
    assert float(labeler.weight.grad) == pytest.approx(5.0)
    assert torch.allclose(fake.grad_norms[0], torch.tensor([1.0, 100.0]))


def test_clip_scope_is_a_recipe_key(toy_recipe, toy_plugins, tmp_path):
    trainer = make_trainer(
        toy_recipe, toy_plugins, tmp_path, ["trainer.grad_clip_scope=global"], epochs=1
    )
    assert list(trainer.clip_groups) == ["all"]
    (tmp_path / "b").mkdir()
    trainer = make_trainer(toy_recipe, toy_plugins, tmp_path / "b", [], epochs=1)
    assert "model" in trainer.clip_groups and "all" not in trainer.clip_groups


def test_clipping_by_value_bounds_every_element(toy_recipe, toy_plugins, tmp_path):
    value = 1e-3
    trainer = make_trainer(
        toy_recipe, toy_plugins, tmp_path, [f"trainer.grad_clip_value={value}"], epochs=1
    )
    _, used = spy_on_clipping(trainer)
    trainer.train_epoch(1)
    largest = max(float(g.abs().max()) for grads in used for g in grads)
    assert largest == pytest.approx(value)  # some elements were cut to exactly the bound
    bound = float(torch.tensor(value))  # the bound as the float32 gradients hold it
    assert all(float(g.abs().max()) <= bound for grads in used for g in grads)


def test_grad_norm_is_logged_every_epoch_without_clipping(toy_recipe, toy_plugins, tmp_path):
    trainer = make_trainer(toy_recipe, toy_plugins, tmp_path, [], epochs=1)
    metrics = trainer.train_epoch(1)
    assert metrics["grad_norm_max"] >= metrics["grad_norm_mean"] > 0
    assert "grad_clipped_share" not in metrics


# ------------------------------------------------------------------------- early stopping
def test_early_stopping_restores_the_best_weights(toy_recipe, toy_plugins, tmp_path):
    """The monitored training loss (mode 'max') is best at epoch 1 and falls after: with
    patience 1 training stops after epoch 2 and the weights are epoch 1's, exactly."""
    trainer = make_trainer(
        toy_recipe,
        toy_plugins,
        tmp_path,
        [
            "trainer.monitor=train_loss",
            "trainer.monitor_mode=max",
            "callbacks=[{name: early_stopping, params: "
            "{monitor: train_loss, mode: max, patience: 1}}]",
        ],
        epochs=5,
    )
    at_fit_end = {}
    finish = trainer.finish

    def snapshot_then_finish():  # the weights as the callbacks leave them
        at_fit_end.update({k: v.clone() for k, v in trainer.modules.state_dict().items()})
        return finish()

    trainer.finish = snapshot_then_finish
    final = trainer.fit()
    assert final["status"] == "stopped" and final["epochs"] == 2 and final["best_epoch"] == 1
    best = load_checkpoint(trainer.checkpoint_dir / "best.pt")["modules"]
    last = load_checkpoint(trainer.checkpoint_dir / "last.pt")["modules"]
    assert all(torch.equal(at_fit_end[k], best[k]) for k in best)
    assert not all(torch.equal(at_fit_end[k], last[k]) for k in last)


# ------------------------------------------------------------------------- activations
def _context(task: str, n_mels: int, n_frames: int) -> ModelContext:
    return ModelContext(
        task=task, recipe_path=None, sample_rate=16000, seed=0, log=logging.getLogger("test"),
        n_classes=3, n_mels=n_mels, n_frames=n_frames,
    )  # fmt: skip


def _build(name: str, activation: str, batch_norm: bool) -> tuple[nn.Module, torch.Tensor]:
    from sedkit_plugins.crnn.model import CRNN, CRNNParams
    from sedkit_plugins.fixmatch.cnn420 import CNN420, CNN420Params
    from sedkit_plugins.pruned_asc.inception import Inception, InceptionParams
    from sedkit_plugins.pruned_asc.vgg import VGG, VGGParams

    common = {"activation": activation, "batch_norm": batch_norm}
    if name == "crnn":
        params = CRNNParams(filters=[4, 8], pooling=[[2, 2], [1, 2]], rnn_hidden=8, **common)
        return CRNN(params, _context("sed", 8, 16)), torch.randn(2, 8, 16)
    if name == "cnn420":
        params = CNN420Params(channels=[4, 8], blocks=[1, 1], **common)
        return CNN420(params, _context("classification", 8, 16)), torch.randn(2, 8, 16)
    if name == "vgg":
        params = VGGParams(modules_per_stage=[1, 1], filters=[4, 4], bottleneck_filters=4,
                           dense_units=4, **common)  # fmt: skip
        return VGG(params, _context("classification", 8, 16)), torch.randn(2, 8, 16)
    params = InceptionParams(modules=[1, 0, 1], filters=[2, 2, 2], stem_filters=4,
                             dense_units=4, **common)  # fmt: skip
    return Inception(params, _context("classification", 16, 32)), torch.randn(2, 16, 32)


ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "elu": nn.ELU, "selu": nn.SELU}
SUPPORTED = [(m, a) for m in ("crnn", "cnn420", "vgg", "inception") for a in ACTIVATIONS]
SUPPORTED.append(("crnn", "glu"))  # gated units need the CRNN's channel-wise gate


@pytest.mark.parametrize("model_name, activation", SUPPORTED)
@pytest.mark.parametrize("batch_norm", [True, False], ids=["bn", "no-bn"])
def test_every_model_takes_each_activation_and_batch_norm_switch(
    model_name, activation, batch_norm
):
    from sedkit_plugins.crnn.model import GLU

    torch.manual_seed(0)
    model, x = _build(model_name, activation, batch_norm)
    kinds = {type(m) for m in model.modules()}
    expected = GLU if activation == "glu" else ACTIVATIONS[activation]
    assert expected in kinds
    assert not ({nn.ReLU, nn.LeakyReLU, nn.ELU, nn.SELU, GLU} - {expected}) & kinds
    assert (nn.BatchNorm2d in kinds) == batch_norm
    out = model.train()(x)
    logits = out.clip_logits if out.clip_logits is not None else out.frame_logits
    clip = out.clip_probs.sum() if out.clip_probs is not None else 0.0
    (logits.sum() + clip).backward()
    assert torch.isfinite(logits).all()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
