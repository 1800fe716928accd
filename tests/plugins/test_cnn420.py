"""CNN420: parameter count, pre-activation block order, outputs, supervised loss."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sedkit.components import Batch, ModelContext
from sedkit_plugins.fixmatch import cnn420 as cnn420_module
from sedkit_plugins.fixmatch.cnn420 import CNN420, CNN420Params, ResidualBlock

LOG = logging.getLogger("test")


def context(n_classes: int) -> ModelContext:
    return ModelContext(
        task="classification", recipe_path=None, sample_rate=16000, seed=0, log=LOG,
        n_classes=n_classes, n_mels=16, n_frames=24,
    )  # fmt: skip


def tiny(**changes) -> CNN420:
    params = {"channels": [4, 8], "blocks": [1, 1], **changes}
    return CNN420(CNN420Params(**params), context(3))


def batch_with(labels: list[int]) -> Batch:
    b = len(labels)
    return Batch(
        filenames=[f"c{i}" for i in range(b)],
        stream=["labeled" if y >= 0 else "unlabeled" for y in labels],
        domain=torch.ones(b),
        label=torch.tensor(labels),
    )


def trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("n_classes", [15, 11, 10])
def test_about_420k_parameters(n_classes):
    model = CNN420(CNN420Params(), context(n_classes))
    assert abs(trainable(model) - 420_000) / 420_000 < 0.01
    if n_classes == 15:  # the module docstring's figure for TUT2017
        assert trainable(model) == 420_367


def test_every_convolution_of_a_block_is_preceded_by_relu_batchnorm_dropout():
    model = CNN420(CNN420Params(), context(10))
    blocks = [m for m in model.modules() if isinstance(m, ResidualBlock)]
    assert len(blocks) == 6
    for block in blocks:
        for pre in (block.pre1, block.pre2):
            kinds = [type(m) for m in pre]
            assert kinds == [nn.ReLU, nn.BatchNorm2d, nn.Dropout]
            assert pre[2].p == pytest.approx(0.1)
        # Registration order = call order: pre1, conv1, pre2, conv2.
        names = [name for name, _ in block.named_children()]
        assert names[:4] == ["pre1", "conv1", "pre2", "conv2"]
    dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout) and m.p > 0]
    assert len(dropouts) == 12  # what MC dropout re-uses


def test_outputs_and_feature_dim():
    model = tiny()
    out = model(torch.randn(5, 16, 24))
    assert out.clip_logits.shape == (5, 3)
    assert out.h.shape == (5, model.feature_dim) == (5, 8)
    assert model(torch.randn(2, 12, 7)).clip_logits.shape == (2, 3)  # any patch size


def test_supervised_loss_is_cross_entropy_over_labeled_examples_only():
    torch.manual_seed(0)
    model = tiny()
    logits = torch.randn(4, 3, requires_grad=True)
    out = model(torch.randn(4, 16, 24))
    out.clip_logits = logits
    loss = model.supervised_loss(out, batch_with([2, -1, 0, -1]))["ce"]
    expected = F.cross_entropy(logits.detach()[[0, 2]], torch.tensor([2, 0]))
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert torch.all(logits.grad[[1, 3]] == 0) and torch.any(logits.grad[0] != 0)


def test_no_labeled_examples_gives_zero_with_a_gradient_path():
    model = tiny()
    out = model(torch.randn(3, 16, 24))
    loss = model.supervised_loss(out, batch_with([-1, -1, -1]))["ce"]
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "elu", "selu"])
def test_activations(activation):
    model = tiny(activation=activation)
    pre = model.blocks[0].pre1
    expected = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "elu": nn.ELU, "selu": nn.SELU}
    assert isinstance(pre[0], expected[activation])
    assert torch.isfinite(model(torch.randn(2, 16, 24)).clip_logits).all()


def test_batch_norm_off_removes_every_batch_norm():
    model = tiny(batch_norm=False)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert [type(m) for m in model.blocks[0].pre1] == [nn.ReLU, nn.Dropout]
    assert torch.isfinite(model(torch.randn(2, 16, 24)).clip_logits).all()


def test_a_few_steps_fit_a_separable_toy_problem():
    torch.manual_seed(0)
    model = tiny(dropout=0.0)
    x = torch.randn(12, 16, 24)
    labels = torch.arange(12) % 3
    x[:, 0:4] += 3.0 * (labels == 0).float().view(-1, 1, 1)  # class 0: loud low bands
    x[:, 12:16] += 3.0 * (labels == 1).float().view(-1, 1, 1)  # class 1: loud high bands
    batch = batch_with(labels.tolist())
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    first = None
    for _ in range(30):
        loss = model.supervised_loss(model(x), batch)["ce"]
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * first


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"channels": []}, "channels"),
        ({"blocks": [1]}, "blocks"),
        ({"blocks": [1, 0, 1]}, "blocks"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_params_are_checked(changes, match):
    with pytest.raises(ValueError, match=match):
        CNN420Params(**changes)


def test_registers_as_cnn420():
    registered = {}
    cnn420_module.sedkit_register_models(register=registered.__setitem__)
    assert registered == {"cnn420": CNN420}
