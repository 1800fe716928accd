"""The gradient reversal domain adapter: METHODS.md section 2 checks and the adapter's loss."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from shared_support import build_context
from torch import nn

from sedkit.components import Batch, HeadContext, ModelOutput, Step
from sedkit_plugins.grl.adapter import (
    GRLAdapter,
    GRLParams,
    dann_alpha,
    domain_loss,
    grad_reverse,
)

DIM, FRAMES = 4, 5


def head_context(model: nn.Module | None = None) -> HeadContext:
    return build_context(HeadContext, n_classes=3, feature_dim=DIM, model=model)


def make_step(extractor: nn.Module, x: torch.Tensor, domain: list[float], progress: float = 0.5):
    h = extractor(x)  # [B, T', D]
    batch = Batch(
        filenames=[f"c{i}" for i in range(len(domain))],
        stream=["synthetic" if d == 0 else "unlabeled" for d in domain],
        domain=torch.tensor(domain),
    )
    out = ModelOutput(h=h)
    return Step(extractor, x, out, batch, 1, 0, progress, "train")


def test_grl_forward_is_identity_and_backward_scales_by_minus_alpha() -> None:
    x = torch.tensor([1.5, -2.0], requires_grad=True)
    y = grad_reverse(x, 0.3)
    assert torch.equal(y, x)
    y.backward(torch.tensor([2.0, 2.0]))  # upstream gradient 2.0
    assert torch.allclose(x.grad, torch.tensor([-0.6, -0.6]))


def test_dann_schedule_values() -> None:
    assert dann_alpha(0.0) == pytest.approx(0.0, abs=1e-12)
    assert dann_alpha(0.5) == pytest.approx(0.986614, abs=1e-6)
    assert dann_alpha(1.0) == pytest.approx(0.999909, abs=1e-6)
    constant = GRLAdapter(GRLParams(alpha=0.3), head_context())
    assert constant.alpha(0.0) == constant.alpha(1.0) == 0.3
    scheduled = GRLAdapter(GRLParams(alpha=1.0, schedule="dann"), head_context())
    assert scheduled.alpha(0.5) == pytest.approx(0.986614, abs=1e-6)


@pytest.mark.parametrize("mode", ["whole", "frame"])
def test_discriminator_gradients_unchanged_and_extractor_gradients_flip(mode: str) -> None:
    """theta_D gets plain dL_d; theta_F gets -alpha dL_d (paper eq. 5 and 7)."""
    torch.manual_seed(0)
    alpha = 0.3
    extractor = nn.Linear(3, DIM)  # a tiny F applied per frame: x [B, T, 3] -> h [B, T, D]
    adapter = GRLAdapter(GRLParams(mode=mode, alpha=alpha, hidden=[6]), head_context())
    x = torch.randn(4, FRAMES, 3)
    domain = [0.0, 1.0, 1.0, 0.0]

    loss = adapter.loss(make_step(extractor, x, domain))["adv_domain"]
    loss.backward()
    grads_f = [p.grad.clone() for p in extractor.parameters()]
    grads_d = [p.grad.clone() for p in adapter.discriminator.parameters()]

    # Reference: the same F and D joined by a plain identity, trained on plain BCE.
    plain_f = copy.deepcopy(extractor)
    plain_d = copy.deepcopy(adapter.discriminator)
    for p in (*plain_f.parameters(), *plain_d.parameters()):
        p.grad = None
    h = plain_f(x)
    if mode == "whole":
        logits = plain_d(h.mean(dim=1)).squeeze(-1)
        targets = torch.tensor(domain)
    else:
        logits = plain_d(h).squeeze(-1)
        targets = torch.tensor(domain)[:, None].expand(-1, FRAMES)
    reference = F.binary_cross_entropy_with_logits(logits, targets)
    assert torch.allclose(loss, reference)
    reference.backward()

    for got, ref in zip(grads_d, plain_d.parameters(), strict=True):
        assert torch.allclose(got, ref.grad, atol=1e-7)
    for got, ref in zip(grads_f, plain_f.parameters(), strict=True):
        assert ref.grad.abs().sum() > 0
        assert torch.allclose(got, -alpha * ref.grad, atol=1e-7)


def test_frame_mode_broadcasts_the_clip_domain_and_logs_accuracy() -> None:
    torch.manual_seed(1)
    adapter = GRLAdapter(GRLParams(mode="frame", hidden=[]), head_context())
    extractor = nn.Identity()
    h = torch.randn(3, FRAMES, DIM)
    step = make_step(extractor, h, [0.0, 1.0, 1.0])
    loss = adapter.loss(step)["adv_domain"]
    logits = adapter.discriminator(h).squeeze(-1)  # [3, FRAMES]
    targets = torch.tensor([0.0, 1.0, 1.0])[:, None].expand(-1, FRAMES)
    per_entry = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    # Domain-balanced (default): the synthetic clip's frames weigh as much as the two real ones.
    assert torch.allclose(loss, (per_entry[0].mean() + per_entry[1:].mean()) / 2)
    hits = ((logits > 0).float() == targets).float()
    metrics = adapter.epoch_metrics()
    assert metrics["domain_loss"] == pytest.approx(float(loss.detach()))
    assert metrics["accuracy"] == pytest.approx(float(hits.mean()))
    balanced = (float(hits[0].mean()) + float(hits[1:].mean())) / 2
    assert metrics["balanced_accuracy"] == pytest.approx(balanced)
    assert metrics["alpha"] == 1.0
    assert adapter.epoch_metrics() == {}  # reset after reading


def test_domain_loss_balance() -> None:
    # The docstring's check: three real clips at logit 0, one synthetic at logit 2.
    logits, targets = torch.tensor([0.0, 0.0, 0.0, 2.0]), torch.tensor([1.0, 1.0, 1.0, 0.0])
    assert float(domain_loss(logits, targets)) == pytest.approx(1.410038, abs=1e-6)
    plain = F.binary_cross_entropy_with_logits(logits, targets)
    assert torch.allclose(domain_loss(logits, targets, balanced=False), plain)
    # At chance (all logits 0) the balanced loss is ln 2 whatever the shares.
    assert float(domain_loss(torch.zeros(24), (torch.arange(24) >= 6).float())) == pytest.approx(
        math.log(2)
    )
    # One domain only: that domain's mean, not half of it.
    only_real = domain_loss(torch.tensor([1.0, -1.0]), torch.ones(2))
    assert torch.allclose(only_real, F.binary_cross_entropy_with_logits(
        torch.tensor([1.0, -1.0]), torch.ones(2)))  # fmt: skip


def test_balanced_loss_sends_f_more_gradient_at_the_prior() -> None:
    """D at the batch prior (18 real : 6 synthetic, logit ln 3 everywhere): the unbalanced loss
    is at its minimum for a constant D and sends F no gradient through a shift of the logits;
    the balanced one is not, so D (and through the GRL, F) keeps learning."""
    targets = (torch.arange(24) >= 6).float()
    logits = torch.full((24,), math.log(3.0), requires_grad=True)
    (plain,) = torch.autograd.grad(domain_loss(logits, targets, balanced=False), logits)
    (balanced,) = torch.autograd.grad(domain_loss(logits, targets), logits)
    assert abs(float(plain.sum())) < 1e-6
    assert float(balanced.sum()) > 0.2


def test_whole_mode_flatten_uses_the_model_frame_count() -> None:
    class FixedModel(nn.Module):
        context = head_context()

        def output_frames(self, n_frames: int) -> int:
            return n_frames // 2

    model = FixedModel()
    model.context.n_frames = 2 * FRAMES
    adapter = GRLAdapter(
        GRLParams(mode="whole", whole_pooling="flatten", hidden=[2]), head_context(model)
    )
    assert adapter.discriminator[0].in_features == FRAMES * DIM
    assert adapter.domain_logits(torch.randn(3, FRAMES, DIM), 1.0).shape == (3,)


def test_discriminator_learns_to_separate_domains() -> None:
    """Trained through the adapter's loss (alpha 0: F left alone), D finds the domain gap."""
    torch.manual_seed(0)
    x = torch.randn(16, FRAMES, 3)
    domain = [float(i % 2) for i in range(16)]
    x[1::2] += 1.5  # a visible domain gap
    extractor = nn.Linear(3, DIM)
    adapter = GRLAdapter(GRLParams(mode="frame", alpha=0.0, hidden=[8]), head_context())
    optimizer = torch.optim.Adam([*extractor.parameters(), *adapter.parameters()], lr=0.05)
    for _ in range(25):
        loss = adapter.loss(make_step(extractor, x, domain))["adv_domain"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    adapter.epoch_metrics()
    adapter.loss(make_step(extractor, x, domain))
    assert adapter.epoch_metrics()["accuracy"] > 0.9


def test_registered_through_the_hook() -> None:
    from sedkit_plugins.grl import adapter as grl

    registered = {}
    grl.sedkit_register_domain_adapters(lambda name, cls: registered.setdefault(name, cls))
    assert registered == {"grl": GRLAdapter}
