"""The CRNN model plugin: shapes, time pooling, pooling heads, supervised loss, a tiny fit."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from shared_support import build_context

from sedkit.components import Batch, ModelContext
from sedkit.errors import UserError
from sedkit_plugins.crnn.model import CRNN, CRNNParams

N_CLASSES, N_MELS, N_FRAMES = 3, 8, 16


def tiny_params(**changes) -> CRNNParams:
    base = dict(
        filters=[4, 8],
        pooling=[[2, 2], [1, 2]],
        rnn_hidden=8,
        conv_dropout=0.0,
        head_dropout=0.0,
    )
    base.update(changes)
    return CRNNParams(**base)


def context(n_mels: int = N_MELS, n_classes: int = N_CLASSES) -> ModelContext:
    return build_context(ModelContext, n_classes=n_classes, n_mels=n_mels, n_frames=N_FRAMES)


def sed_batch(strong_mask: list[bool], weak_mask: list[bool], frames: int) -> Batch:
    gen = torch.Generator().manual_seed(1)
    size = len(strong_mask)
    strong = (torch.rand(size, frames, N_CLASSES, generator=gen) > 0.5).float()
    return Batch(
        filenames=[f"clip{i}.wav" for i in range(size)],
        stream=[
            "synthetic" if s else "weak" if w else "unlabeled"
            for s, w in zip(strong_mask, weak_mask, strict=True)
        ],
        domain=torch.tensor([0.0 if s else 1.0 for s in strong_mask]),
        strong=strong,
        strong_mask=torch.tensor(strong_mask),
        weak=strong.amax(dim=1),
        weak_mask=torch.tensor(weak_mask),
    )


def test_default_params_follow_the_paper() -> None:
    params = CRNNParams()
    assert params.filters == [16, 32, 64, 128, 128, 128, 128]
    assert params.pooling == [[2, 2], [2, 2]] + [[1, 2]] * 5
    assert (params.rnn_layers, params.rnn_hidden) == (2, 128)
    model = CRNN(params, context(n_mels=128, n_classes=10))
    assert model.feature_dim == 256
    out = model.eval()(torch.randn(1, 128, 64))
    assert out.h.shape == (1, 16, 256)
    assert out.frame_probs.shape == (1, 16, 10) and out.clip_probs.shape == (1, 10)


@pytest.mark.parametrize(
    "pooling",
    [[[2, 2], [1, 2]], [[2, 2], [2, 2]], [[3, 1], [2, 2]], [[1, 1], [5, 2]]],
)
@pytest.mark.parametrize("n_frames", [7, 16, 31, 100])
def test_output_frames_matches_forward(pooling: list[list[int]], n_frames: int) -> None:
    model = CRNN(tiny_params(pooling=pooling), context()).eval()
    expected = model.output_frames(n_frames)
    product = pooling[0][0] * pooling[1][0]
    assert expected == n_frames // product
    if expected == 0:
        return
    out = model(torch.randn(2, N_MELS, n_frames))
    assert out.frame_probs.shape == (2, expected, N_CLASSES)
    assert out.h.shape == (2, expected, model.feature_dim)


def test_frequency_axis_left_over_is_flattened_and_emptied_axis_is_reported() -> None:
    model = CRNN(tiny_params(pooling=[[2, 1], [1, 2]]), context(n_mels=16)).eval()
    assert model.freq_out == 8  # 16 mel bands pooled by 2 only: kept, flattened into the GRU
    assert model(torch.randn(1, 16, 8)).h.shape == (1, 4, 16)
    with pytest.raises(UserError, match=r"model\.params\.pooling.*multiply to 128.*64 mel"):
        CRNN(CRNNParams(), context(n_mels=64))
    with pytest.raises(UserError, match=r"model\.params\.pooling: the time factors"):
        CRNN(tiny_params(pooling=[[8, 2], [4, 2]]), context())  # 16 frames pooled by 32


def test_params_checks() -> None:
    with pytest.raises(ValueError, match="pooling: 1 entries for 2 conv blocks"):
        tiny_params(pooling=[[2, 2]])
    with pytest.raises(ValueError, match="kernel_size"):
        tiny_params(kernel_size=4)
    with pytest.raises(ValueError, match="conv_dropout"):
        tiny_params(conv_dropout=1.0)


@pytest.mark.parametrize("activation", ["glu", "relu", "leaky_relu", "elu", "selu"])
@pytest.mark.parametrize("batch_norm", [True, False])
@pytest.mark.parametrize("clip_pooling", ["attention", "max", "mean"])
def test_architecture_choices_build_and_run(
    activation: str, batch_norm: bool, clip_pooling: str
) -> None:
    params = tiny_params(activation=activation, batch_norm=batch_norm, clip_pooling=clip_pooling)
    model = CRNN(params, context())
    out = model(torch.randn(2, N_MELS, N_FRAMES))
    assert torch.all((out.clip_probs >= 0) & (out.clip_probs <= 1))
    assert torch.allclose(out.frame_probs, torch.sigmoid(out.frame_logits))
    assert (model.attention_head is not None) == (clip_pooling == "attention")


@pytest.mark.parametrize("clip_pooling", ["attention", "max", "mean"])
def test_clip_outputs_pool_the_frame_probabilities(clip_pooling) -> None:
    model = CRNN(tiny_params(clip_pooling=clip_pooling), context()).eval()
    out = model(torch.randn(3, N_MELS, N_FRAMES))
    assert out.clip_logits is not None and out.clip_logits.dtype == torch.float32
    assert torch.allclose(out.clip_probs, torch.sigmoid(out.clip_logits))
    if clip_pooling == "max":
        assert torch.allclose(out.clip_probs, out.frame_probs.amax(dim=1))
    elif clip_pooling == "mean":
        assert torch.allclose(out.clip_probs, out.frame_probs.mean(dim=1), atol=1e-6)


def test_bf16_confident_wrong_frames_keep_a_gradient() -> None:
    """Under bf16 autocast, a frame the model is sure of (logit 12: p rounds to 1.0 in bf16) but
    whose label is 0 must still be pushed down: finite loss ~12, non-zero gradient."""
    model = CRNN(tiny_params(), context())
    with torch.no_grad():
        model.frame_head.weight.zero_()
        model.frame_head.bias.fill_(12.0)
    frames = model.output_frames(N_FRAMES)
    batch = sed_batch([True, True], [True, True], frames)
    batch.strong.zero_()
    batch.weak.zero_()
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = model(torch.randn(2, N_MELS, N_FRAMES))
        losses = model.supervised_loss(out, batch)
    assert out.frame_logits.dtype == torch.bfloat16  # the head really ran in bf16
    for name in ("frame_bce", "clip_bce"):
        assert losses[name].dtype == torch.float32
        assert 11.0 < float(losses[name]) < 13.0, (name, float(losses[name]))
    sum(losses.values()).backward()
    grad = model.frame_head.bias.grad
    assert grad is not None and torch.isfinite(grad).all() and (grad > 0.5).all()


def test_supervised_loss_uses_the_right_examples() -> None:
    model = CRNN(tiny_params(), context())
    frames = model.output_frames(N_FRAMES)
    batch = sed_batch([True, False, False], [True, True, False], frames)
    out = model(torch.randn(3, N_MELS, N_FRAMES))
    losses = model.supervised_loss(out, batch)
    assert set(losses) == {"frame_bce", "clip_bce"}
    frame_ref = F.binary_cross_entropy(out.frame_probs[:1], batch.strong[:1])
    clip_ref = F.binary_cross_entropy(out.clip_probs[:2], batch.weak[:2])
    assert torch.allclose(losses["frame_bce"], frame_ref, atol=1e-6)
    assert torch.allclose(losses["clip_bce"], clip_ref, atol=1e-6)


def test_loss_over_zero_examples_is_zero_with_a_gradient_path() -> None:
    model = CRNN(tiny_params(), context())
    frames = model.output_frames(N_FRAMES)
    batch = sed_batch([False, False], [False, False], frames)
    out = model(torch.randn(2, N_MELS, N_FRAMES))
    losses = model.supervised_loss(out, batch)
    total = sum(losses.values())
    assert float(total.detach()) == 0.0
    total.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() and not g.any() for g in grads)
    # A batch without any strong tensor at all.
    out = model(torch.randn(2, N_MELS, N_FRAMES))
    no_strong = Batch(filenames=["a", "b"], stream=["unlabeled"] * 2, domain=torch.ones(2))
    assert float(sum(model.supervised_loss(out, no_strong).values()).detach()) == 0.0


def test_tiny_fit_reduces_the_supervised_loss() -> None:
    torch.manual_seed(0)
    model = CRNN(tiny_params(), context())
    frames = model.output_frames(N_FRAMES)
    batch = sed_batch([True, True, False, False], [True, True, True, False], frames)
    features = torch.randn(4, N_MELS, N_FRAMES)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    history = []
    for _ in range(30):
        loss = sum(model.supervised_loss(model(features), batch).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(float(loss.detach()))
    assert history[-1] < 0.5 * history[0]


def test_registered_through_the_hook() -> None:
    from sedkit_plugins.crnn import model as crnn

    registered = {}
    crnn.sedkit_register_models(lambda name, cls: registered.setdefault(name, cls))
    assert registered == {"crnn": CRNN}


def test_runs_under_bf16_autocast() -> None:
    model = CRNN(tiny_params(), context())
    frames = model.output_frames(N_FRAMES)
    batch = sed_batch([True, False], [True, True], frames)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = model(torch.randn(2, N_MELS, N_FRAMES))
        losses = model.supervised_loss(out, batch)
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
