"""Mean teacher: EMA update, ramp-up, consistency cost, checkpoints, a tiny fit."""

from __future__ import annotations

import io
import math

import pytest
import torch
import torch.nn.functional as F
from shared_support import build_context

from sedkit.components import Batch, HeadContext, ModelContext, Step
from sedkit_plugins.crnn.model import CRNN, CRNNParams
from sedkit_plugins.mean_teacher.labeler import (
    MeanTeacher,
    MeanTeacherParams,
    sigmoid_rampup,
)

C, MELS, FRAMES = 3, 8, 16


def tiny_model(dropout: float = 0.0) -> CRNN:
    params = CRNNParams(
        filters=[4, 8], pooling=[[2, 2], [1, 2]], rnn_hidden=8, conv_dropout=0.0,
        head_dropout=dropout,
    )  # fmt: skip
    context = build_context(ModelContext, n_classes=C, n_mels=MELS, n_frames=FRAMES)
    return CRNN(params, context)


def teacher_for(model: CRNN, **changes) -> MeanTeacher:
    context = build_context(HeadContext, n_classes=C, feature_dim=model.feature_dim, model=model)
    return MeanTeacher(MeanTeacherParams(**changes), context)


def unlabeled_batch(size: int = 4) -> Batch:
    return Batch(
        filenames=[f"u{i}.wav" for i in range(size)],
        stream=["unlabeled"] * size,
        domain=torch.ones(size),
        strong_mask=torch.zeros(size, dtype=torch.bool),
        weak_mask=torch.zeros(size, dtype=torch.bool),
    )


def step_for(model, features, batch, global_step=0, progress=0.0) -> Step:
    return Step(model, features, model(features), batch, 1, global_step, progress, "train")


def test_sigmoid_rampup_values() -> None:
    assert sigmoid_rampup(0.0) == pytest.approx(math.exp(-5.0))
    assert sigmoid_rampup(0.5) == pytest.approx(math.exp(-1.25))
    assert sigmoid_rampup(1.0) == 1.0 and sigmoid_rampup(3.0) == 1.0


def test_rampup_in_steps_or_progress() -> None:
    model = tiny_model()
    by_steps = teacher_for(model, rampup_steps=100, consistency_weight=2.0)
    step = Step(model, None, None, None, 1, 50, 0.9, "train")
    assert by_steps.rampup_weight(step) == pytest.approx(2.0 * math.exp(-1.25))
    by_progress = teacher_for(model, rampup_fraction=0.5, consistency_weight=1.0)
    step = Step(model, None, None, None, 1, 50, 0.25, "train")
    assert by_progress.rampup_weight(step) == pytest.approx(math.exp(-1.25))


def test_teacher_is_checkpointed_but_not_trained() -> None:
    model = tiny_model()
    mt = teacher_for(model)
    assert not any(p.requires_grad for p in mt.parameters())  # the optimizer sees nothing
    state = mt.state_dict()
    assert any(key.startswith("teacher.") for key in state)
    for (name, p), (_, q) in zip(
        mt.teacher.named_parameters(), model.named_parameters(), strict=True
    ):
        assert torch.equal(p, q), name
        assert p.data_ptr() != q.data_ptr()  # a copy, not shared storage
    assert mt.teacher.context is model.context


def test_ema_update() -> None:
    torch.manual_seed(0)
    model = tiny_model()
    mt = teacher_for(model, ema_decay=0.9, ema_warmup=False)
    step = Step(model, None, None, None, 1, 0, 0.0, "train")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    mt.after_optimizer_step(step)  # the first update copies the student
    for p, q in zip(mt.teacher.parameters(), model.parameters(), strict=True):
        assert torch.equal(p, q)
    before = [p.clone() for p in mt.teacher.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(2.0)
    mt.after_optimizer_step(step)
    for p, old, q in zip(mt.teacher.parameters(), before, model.parameters(), strict=True):
        assert torch.allclose(p, 0.9 * old + 0.1 * q, atol=1e-6)
    # Batch-norm statistics follow the student too.
    t_bn, s_bn = mt.teacher.cnn[0][1], model.cnn[0][1]
    assert torch.allclose(t_bn.running_var, s_bn.running_var)


def test_warmup_decay_follows_the_baseline() -> None:
    model = tiny_model()
    mt = teacher_for(model, ema_decay=0.999)
    step = Step(model, None, None, None, 1, 0, 0.0, "train")
    mt.after_optimizer_step(step)  # decay 0
    reference = [p.clone() for p in mt.teacher.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    mt.after_optimizer_step(step)  # decay min(1 - 1/2, 0.999) = 0.5
    for p, old in zip(mt.teacher.parameters(), reference, strict=True):
        assert torch.allclose(p, old + 0.5, atol=1e-6)


def test_consistency_cost_is_the_ramped_mse() -> None:
    torch.manual_seed(0)
    model = tiny_model()
    mt = teacher_for(model, teacher_mode="eval", rampup_steps=10, consistency_weight=2.0)
    with torch.no_grad():
        for p in mt.teacher.parameters():
            p.add_(0.05 * torch.randn_like(p))
    features = torch.randn(4, MELS, FRAMES)
    model.eval()  # deterministic student for the reference
    step = step_for(model, features, unlabeled_batch(), global_step=5)
    losses = mt.loss(step)
    target = mt.teacher.eval()(features)
    weight = 2.0 * math.exp(-5 * 0.25)
    expected_frame = weight * F.mse_loss(step.out.frame_probs, target.frame_probs)
    expected_clip = weight * F.mse_loss(step.out.clip_probs, target.clip_probs)
    assert torch.allclose(losses["mt_frame_consistency"], expected_frame)
    assert torch.allclose(losses["mt_clip_consistency"], expected_clip)
    assert float(losses["mt_frame_consistency"].detach()) > 0
    metrics = mt.epoch_metrics()
    assert metrics["consistency_weight"] == pytest.approx(weight)
    unweighted = (expected_frame + expected_clip) / weight
    assert metrics["consistency"] == pytest.approx(float(unweighted.detach()), rel=1e-5)
    assert mt.epoch_metrics() == {}


def test_train_mode_teacher_sees_dropout_noise() -> None:
    torch.manual_seed(0)
    model = tiny_model(dropout=0.5)
    mt = teacher_for(model, teacher_mode="train", teacher_noise_std=0.1)
    model.eval()
    mt.teacher.train(False)
    features = torch.randn(4, MELS, FRAMES)
    losses = mt.loss(step_for(model, features, unlabeled_batch(), global_step=10**6))
    assert float(losses["mt_frame_consistency"].detach()) > 0  # same weights, different noise
    assert not mt.teacher.training  # mode restored
    deterministic = teacher_for(model, teacher_mode="eval")
    losses = deterministic.loss(step_for(model, features, unlabeled_batch()))
    assert float(losses["mt_frame_consistency"].detach()) == pytest.approx(0.0, abs=1e-12)


def test_ema_counter_survives_a_checkpoint() -> None:
    model = tiny_model()
    mt = teacher_for(model)
    step = Step(model, None, None, None, 1, 0, 0.0, "train")
    for _ in range(3):
        mt.after_optimizer_step(step)
    buffer = io.BytesIO()
    torch.save(mt.state_dict(), buffer)
    buffer.seek(0)
    fresh = teacher_for(tiny_model())
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    assert fresh._updates == 3
    for p, q in zip(fresh.teacher.parameters(), mt.teacher.parameters(), strict=True):
        assert torch.equal(p, q)


def test_tiny_fit_with_consistency() -> None:
    torch.manual_seed(0)
    model = tiny_model()
    mt = teacher_for(model, ema_decay=0.9, rampup_steps=1)
    frames = model.output_frames(FRAMES)
    strong = (torch.rand(4, frames, C) > 0.5).float()
    batch = Batch(
        filenames=["s0", "s1", "u0", "u1"],
        stream=["synthetic"] * 2 + ["unlabeled"] * 2,
        domain=torch.tensor([0.0, 0.0, 1.0, 1.0]),
        strong=strong,
        strong_mask=torch.tensor([True, True, False, False]),
        weak=strong.amax(dim=1),
        weak_mask=torch.tensor([True, True, False, False]),
    )
    features = torch.randn(4, MELS, FRAMES)
    optimizer = torch.optim.Adam([p for p in (*model.parameters(), *mt.parameters())
                                  if p.requires_grad], lr=1e-2)  # fmt: skip
    history = []
    for i in range(30):
        step = step_for(model, features, batch, global_step=i)
        losses = model.supervised_loss(step.out, batch) | mt.loss(step)
        optimizer.zero_grad()
        sum(losses.values()).backward()
        optimizer.step()
        mt.after_optimizer_step(step)
        history.append(float(sum(losses.values()).detach()))
    assert history[-1] < 0.6 * history[0]


def test_registered_through_the_hook() -> None:
    from sedkit_plugins.mean_teacher import labeler as mean_teacher

    registered = {}
    mean_teacher.sedkit_register_pseudo_labelers(lambda n, cls: registered.setdefault(n, cls))
    assert registered == {"mean_teacher": MeanTeacher}
