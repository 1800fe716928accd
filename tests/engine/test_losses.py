"""The shared SED losses (sedkit.losses): log-space clip pooling and masked BCE from logits."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sedkit.losses import logits_of, masked_bce_with_logits, pool_clip_logits, zero_loss


def _pooled_probabilities(logits, method, att=None):
    """The definitions, in probabilities (float64): what the clip logits must reproduce."""
    p = torch.sigmoid(logits.double())
    if method == "max":
        return p.amax(dim=1)
    if method == "mean":
        return p.mean(dim=1)
    return (torch.softmax(att.double(), dim=1) * p).sum(dim=1)


@pytest.mark.parametrize("method", ["attention", "max", "mean"])
def test_clip_logits_are_the_pooled_probabilities(method):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 3, generator=gen) * 3
    att = torch.randn(2, 5, 3, generator=gen)
    clip = pool_clip_logits(logits, method, att if method == "attention" else None)
    expected = _pooled_probabilities(logits, method, att)
    assert clip.dtype == torch.float32
    assert torch.allclose(torch.sigmoid(clip.double()), expected, atol=1e-6)


def test_clip_pooling_checks():
    # The docstring's check: p = .5 and .75, mean pooling -> 0.625.
    logits = torch.tensor([[[0.0], [math.log(3.0)]]])
    assert torch.sigmoid(pool_clip_logits(logits, "mean")).item() == pytest.approx(0.625)
    # Uniform attention is mean pooling; very peaked attention picks that frame.
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 5, 3, generator=gen)
    att = torch.zeros_like(logits)
    assert torch.allclose(
        pool_clip_logits(logits, "attention", att), pool_clip_logits(logits, "mean")
    )
    peaked = torch.full_like(logits, -50.0)
    peaked[:, 2] = 50.0
    assert torch.allclose(pool_clip_logits(logits, "attention", peaked), logits[:, 2], atol=1e-5)
    with pytest.raises(ValueError, match="attention logits"):
        pool_clip_logits(logits, "attention")


def test_clip_logits_stay_finite_and_keep_gradients_for_extreme_frames():
    logits = torch.tensor([[[60.0, -60.0], [40.0, -80.0]]], requires_grad=True)
    att = torch.zeros_like(logits)
    for method in ("attention", "mean", "max"):
        clip = pool_clip_logits(logits, method, att if method == "attention" else None)
        assert torch.isfinite(clip).all()
        # A confidently wrong clip (label 0 for logit ~40-60) is pushed down.
        loss = masked_bce_with_logits(clip, torch.tensor([[0.0, 1.0]]))
        (grad,) = torch.autograd.grad(loss, logits)
        assert torch.isfinite(grad).all() and grad[0, :, 0].sum() > 0.4
        assert float(loss.detach()) > 20.0


def test_masked_bce_with_logits_per_example_and_per_entry_masks():
    logits = torch.tensor([[2.0, -1.0], [0.5, 3.0]])
    targets = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    per_entry = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    entry_mask = torch.tensor([[True, False], [False, True]])
    assert torch.allclose(
        masked_bce_with_logits(logits, targets, entry_mask), per_entry[entry_mask].mean()
    )
    example_mask = torch.tensor([False, True])
    assert torch.allclose(
        masked_bce_with_logits(logits, targets, example_mask), per_entry[1].mean()
    )
    assert torch.allclose(masked_bce_with_logits(logits, targets), per_entry.mean())


def test_nothing_selected_is_zero_with_a_gradient_path():
    logits = torch.randn(2, 3, requires_grad=True)
    loss = masked_bce_with_logits(logits, torch.ones(2, 3), torch.zeros(2, dtype=torch.bool))
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert logits.grad is not None and not logits.grad.any()
    assert float(zero_loss(logits).detach()) == 0.0


def test_bf16_confident_wrong_output_keeps_a_gradient():
    """The failure this module exists for: under bf16, sigmoid(8) rounds to exactly 1.0, and
    BCE on that probability is 100 (PyTorch's clamp) with zero gradient. From logits, in float32,
    the loss is ~8 and the gradient ~1."""
    weight = torch.full((1, 1), 8.0, requires_grad=True)
    x = torch.ones(1, 1)
    target = torch.zeros(1, 1)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        logits = x @ weight
        assert logits.dtype == torch.bfloat16
        probs = torch.sigmoid(logits)
        assert float(probs.detach()) == 1.0  # saturated
        old = F.binary_cross_entropy(probs.float(), target)
        new = masked_bce_with_logits(logits, target)
    (old_grad,) = torch.autograd.grad(old, weight, retain_graph=True)
    assert float(old.detach()) == pytest.approx(100.0) and float(old_grad) == 0.0
    (grad,) = torch.autograd.grad(new, weight)
    assert new.dtype == torch.float32 and float(new.detach()) == pytest.approx(8.0, abs=0.01)
    assert float(grad) == pytest.approx(1.0, abs=0.01)


def test_logits_of_prefers_the_models_logits_and_inverts_probabilities_otherwise():
    logits = torch.tensor([[-2.0, 3.0]])
    assert logits_of(logits, torch.sigmoid(logits) * 0) is logits
    recovered = logits_of(None, torch.sigmoid(logits))
    assert recovered.dtype == torch.float32 and torch.allclose(recovered, logits, atol=1e-4)
    assert torch.isfinite(logits_of(None, torch.tensor([0.0, 1.0]))).all()  # clamped
    with pytest.raises(ValueError, match="neither"):
        logits_of(None, None)
