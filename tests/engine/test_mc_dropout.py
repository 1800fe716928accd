"""MC dropout: dropout active, batch norm frozen, flags and running statistics exactly restored."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from sedkit.mc_dropout import eval_mode, mc_dropout_mode, mc_dropout_passes, mean_and_std


class Net(nn.Module):
    """Conv -> BN -> dropout -> linear, with a nested block holding BN and dropout too."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.conv = nn.Conv1d(4, 8, 3, padding=1)
        self.bn = nn.BatchNorm1d(8)
        self.drop = nn.Dropout(p)
        self.inner = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.Dropout1d(p), nn.ReLU())
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        h = self.drop(torch.relu(self.bn(self.conv(x)))).mean(dim=2)
        return {"logits": self.head(self.inner(h)), "h": h}


def trained_net(p: float = 0.5) -> Net:
    """A net whose BN running statistics are not at their initial values."""
    torch.manual_seed(0)
    net = Net(p)
    net.train()
    with torch.no_grad():
        for _ in range(3):
            net(torch.randn(6, 4, 5) * 3 + 1)
    return net


def mixed_flags(net: nn.Module) -> dict[str, bool]:
    """Put some modules in train and some in eval mode; return every module's flag by name."""
    net.train()
    net.bn.eval()
    net.inner[2].eval()  # a dropout already off
    net.head.eval()
    return {name: m.training for name, m in net.named_modules()}


def buffers(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.named_buffers()}


def test_mode_switches_dropout_on_and_everything_else_off_then_restores():
    net = trained_net()
    before = mixed_flags(net)
    with mc_dropout_mode(net):
        for name, module in net.named_modules():
            is_dropout = isinstance(module, nn.Dropout | nn.Dropout1d)
            assert module.training == is_dropout, name
    assert {name: m.training for name, m in net.named_modules()} == before


def test_flags_restored_after_an_exception():
    net = trained_net()
    before = mixed_flags(net)
    with pytest.raises(RuntimeError), mc_dropout_mode(net):
        raise RuntimeError("boom")
    assert {name: m.training for name, m in net.named_modules()} == before
    with pytest.raises(RuntimeError), eval_mode(net):
        assert not any(m.training for m in net.modules())
        raise RuntimeError("boom")
    assert {name: m.training for name, m in net.named_modules()} == before


def test_passes_leave_batch_norm_statistics_exactly_unchanged():
    net = trained_net()
    before_flags = mixed_flags(net)
    net.bn.train()  # the BN that would update its statistics in a training pass
    before_flags["bn"] = True
    before = buffers(net)
    x = torch.randn(5, 4, 7)
    samples = mc_dropout_passes(net, x, 5, select=lambda out: out["logits"])
    assert samples.shape == (5, 5, 3)
    after = buffers(net)
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), key  # num_batches_tracked included
    assert {name: m.training for name, m in net.named_modules()} == before_flags
    # Control: a plain training-mode pass would have changed them.
    with torch.no_grad():
        net(x)
    assert not torch.equal(before["bn.running_mean"], net.bn.running_mean)


def test_passes_are_stochastic_but_batch_norm_uses_running_statistics():
    net = trained_net(p=0.5)
    x = torch.randn(4, 4, 6)
    torch.manual_seed(1)
    samples = mc_dropout_passes(net, x, 6, select=lambda out: out["logits"])
    assert not torch.allclose(samples[0], samples[1])  # dropout active
    # Without dropout every pass equals the eval-mode output exactly (BN on running stats).
    quiet = trained_net(p=0.0)
    quiet.train()
    with torch.no_grad(), eval_mode(quiet):
        reference = quiet(x)["logits"]
    for batched in (True, False):
        samples = mc_dropout_passes(quiet, x, 3, select=lambda out: out["logits"], batched=batched)
        for s in samples:
            torch.testing.assert_close(s, reference, rtol=1e-5, atol=1e-6)
    assert quiet.training


def test_batched_and_sequential_passes_agree_in_distribution_and_tuples_work():
    net = trained_net(p=0.3)
    x = torch.randn(3, 4, 6)
    torch.manual_seed(2)
    batched = mc_dropout_passes(net, x, 400, select=lambda out: out["logits"], batched=True)
    sequential = mc_dropout_passes(net, x, 400, select=lambda out: out["logits"], batched=False)
    torch.testing.assert_close(batched.mean(0), sequential.mean(0), atol=0.05, rtol=0.0)
    logits, h = mc_dropout_passes(net, x, 2, select=lambda out: (out["logits"], out["h"]))
    assert logits.shape == (2, 3, 3) and h.shape == (2, 3, 8)
    assert not logits.requires_grad


def test_mean_and_std_estimators_match_numpy():
    samples = torch.tensor([[0.9, 0.1], [0.7, 0.3], [0.8, 0.2]], dtype=torch.float64)
    mean, biased = mean_and_std(samples)
    _, unbiased = mean_and_std(samples, unbiased=True)
    array = samples.numpy()
    np.testing.assert_allclose(mean.numpy(), array.mean(axis=0))
    np.testing.assert_allclose(biased.numpy(), array.std(axis=0, ddof=0))
    np.testing.assert_allclose(unbiased.numpy(), array.std(axis=0, ddof=1))
    one_mean, one_std = mean_and_std(samples[:1], unbiased=True)
    assert torch.equal(one_std, torch.zeros(2, dtype=torch.float64))
    assert torch.equal(one_mean, samples[0])


def test_zero_passes_rejected():
    with pytest.raises(ValueError, match="n_passes"):
        mc_dropout_passes(trained_net(), torch.randn(2, 4, 5), 0, select=lambda out: out["logits"])
