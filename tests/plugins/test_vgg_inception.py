"""The VGG and Inception scene classifiers of the pruned-ensemble paper: exact parameter counts
(METHODS.md section 5, the paper's Tables 3 and 4), TensorFlow "same" padding, shapes, loss
terms (cross-entropy and the Keras L2 kernel penalty), options, registration."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from shared_support import build_context, classification_batch
from torch import nn

from sedkit.components import ModelContext
from sedkit.errors import UserError
from sedkit_plugins.pruned_asc.inception import (
    Inception,
    InceptionParams,
    SamePool2d,
    same_padding,
)
from sedkit_plugins.pruned_asc.pruning import count_parameters
from sedkit_plugins.pruned_asc.vgg import VGG, VGGParams, masked_cross_entropy


def context(n_mels: int = 48, n_frames: int = 467, n_classes: int = 3) -> ModelContext:
    return build_context(
        ModelContext, "classification", n_classes=n_classes, n_mels=n_mels, n_frames=n_frames
    )


def keras_vgg_count(stages: list[int], filters=(12, 16, 20, 24), n_mels=48, n_frames=467) -> int:
    """The Keras count of V(a,b,c,d), layer by layer: conv k*k*in*out + out, batch norm
    4 * channels (gamma, beta, moving mean, moving variance), dense in*out + out."""
    total, channels, h, w = 0, 1, n_mels, n_frames
    for n, f in zip(stages, filters, strict=True):
        for _ in range(n):
            total += 9 * channels * f + f + 4 * f
            channels = f
        h, w = h // 2, w // 2
    total += channels * 28 + 28 + 4 * 28
    total += h * w * 28 * 20 + 20 + 4 * 20
    return total + 20 * 3 + 3


@pytest.mark.parametrize(
    ("stages", "expected"),
    [([2, 2, 3, 3], 80_839), ([0, 0, 1, 1], 54_415), ([4, 4, 5, 5], 106_327)],
)
def test_vgg_parameter_counts_match_the_paper(stages, expected) -> None:
    model = VGG(VGGParams(modules_per_stage=stages), context())
    assert count_parameters(model) == expected == keras_vgg_count(stages)


@pytest.mark.parametrize(
    ("modules", "expected"),
    # 267,043: the paper's Table 4 lists 267,042 *non-zero* values of a trained I(3,2,3)
    # (one value was exactly zero; likewise its pruned I(2,1,2) has 34,181 of 34,183).
    [([2, 1, 2], 167_571), ([1, 0, 1], 68_099), ([3, 2, 3], 267_043)],
)
def test_inception_parameter_counts_match_the_paper(modules, expected) -> None:
    model = Inception(InceptionParams(modules=modules), context())
    assert count_parameters(model) == expected


def test_counts_include_batch_norm_statistics_but_not_the_batch_counter() -> None:
    model = VGG(VGGParams(), context())
    n_params = sum(p.numel() for p in model.parameters())
    batch_norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    stats = sum(2 * m.num_features for m in batch_norms)
    assert count_parameters(model) == n_params + stats
    state_values = sum(t.numel() for t in model.state_dict().values())
    assert state_values == count_parameters(model) + len(batch_norms)  # num_batches_tracked


def test_full_size_forward_shapes_and_flatten_size() -> None:
    x = torch.randn(1, 48, 467)
    for model, flat in [
        (VGG(VGGParams(), context()), 3 * 29 * 28),
        (Inception(InceptionParams(), context()), 1 * 8 * 96),
    ]:
        assert model.dense.in_features == flat
        model.eval()
        with torch.no_grad():
            out = model(x)
        assert out.clip_logits.shape == (1, 3)
        assert out.h.shape == (1, 20) and model.feature_dim == 20


def test_tensorflow_same_padding() -> None:
    # TF: out = ceil(n / s), total padding (out - 1) s + k - n, the odd cell at the end.
    assert same_padding(48, 7, 2) == (2, 3)
    assert same_padding(467, 7, 2) == (3, 3)
    assert same_padding(24, 3, 2) == (0, 1)
    assert same_padding(15, 3, 2) == (1, 1)
    # Max pooling pads with -inf, average pooling leaves padding out of the mean.
    x = -torch.ones(1, 2, 5, 7)
    assert torch.equal(SamePool2d("max", 3, 2)(x), -torch.ones(1, 2, 3, 4))
    assert torch.allclose(SamePool2d("avg", 3, 2)(-x), torch.ones(1, 2, 3, 4))
    y = torch.arange(4.0).view(1, 1, 2, 2)  # 2x2 -> 1x1: pad (0, 1) on both axes
    assert SamePool2d("avg", 3, 2)(y).item() == pytest.approx(1.5)


def test_keras_initialisation_and_batch_norm_settings() -> None:
    model = VGG(VGGParams(), context())
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            assert torch.count_nonzero(m.bias) == 0
            fan_in = m.weight[0].numel()
            fan_out = m.weight.shape[0] * m.weight[0, 0].numel()
            assert m.weight.abs().max() <= (6 / (fan_in + fan_out)) ** 0.5 + 1e-7
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            assert (m.eps, m.momentum) == (1e-3, 0.01)


def test_supervised_loss_terms() -> None:
    torch.manual_seed(0)
    for model in (
        VGG(VGGParams(), context(16, 20)),
        Inception(InceptionParams(modules=[1, 0, 1]), context(16, 20)),
    ):
        out = model(torch.randn(4, 16, 20))
        labels = [0, -1, 2, 1]
        terms = model.supervised_loss(out, classification_batch(labels))
        keep = torch.tensor([0, 2, 3])
        expected_ce = F.cross_entropy(out.clip_logits[keep], torch.tensor([0, 2, 1]))
        assert torch.allclose(terms["ce"], expected_ce)
        kernels = [m.weight for m in model.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
        if isinstance(model, Inception):  # the authors' output layer has no regularizer
            kernels = [w for w in kernels if w is not model.classifier.weight]
        expected_l2 = 0.001 * sum(w.pow(2).sum() for w in kernels)
        assert torch.allclose(terms["l2"], expected_l2)
    unlabeled = masked_cross_entropy(out.clip_logits, torch.tensor([-1, -1, -1, -1]))
    assert unlabeled.item() == 0.0 and unlabeled.requires_grad
    with_output = Inception(InceptionParams(modules=[1, 0, 1], l2_output=True), context(16, 20))
    assert with_output.classifier in with_output.regularized_layers()


def test_activation_and_batch_norm_options() -> None:
    plain = VGG(VGGParams(batch_norm=False, activation="elu"), context())
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in plain.modules())
    assert any(isinstance(m, nn.ELU) for m in plain.modules())
    bn_values = 4 * (2 * 12 + 2 * 16 + 3 * 20 + 3 * 24 + 28 + 20)
    assert count_parameters(plain) == 80_839 - bn_values
    inc = Inception(InceptionParams(batch_norm=False, activation="selu"), context())
    assert count_parameters(inc) == 167_571 - 2 * 4 * 16
    assert any(isinstance(m, nn.SELU) for m in inc.modules())


def test_params_are_checked() -> None:
    with pytest.raises(ValueError, match="same stages"):
        VGGParams(modules_per_stage=[2, 2], filters=[12, 16, 20])
    with pytest.raises(ValueError, match="dropout"):
        VGGParams(dropout=1.0)
    with pytest.raises(ValueError, match=r"\[p, q, r\]"):
        InceptionParams(modules=[1, 2])
    with pytest.raises(UserError, match="too small"):
        VGG(VGGParams(), context(n_mels=8, n_frames=467))


def test_a_few_adam_steps_fit_a_tiny_batch() -> None:
    torch.manual_seed(1)
    model = VGG(
        VGGParams(modules_per_stage=[1, 1], filters=[4, 4], dense_units=8, dropout=0.0),
        context(8, 8),
    )
    x, labels = torch.randn(6, 8, 8), [0, 1, 2, 0, 1, 2]
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(30):
        terms = model.supervised_loss(model(x), classification_batch(labels))
        optimizer.zero_grad()
        sum(terms.values()).backward()
        optimizer.step()
        losses.append(float(terms["ce"].detach()))
    assert losses[-1] < 0.5 * losses[0]


def test_registered_through_the_hook() -> None:
    from sedkit_plugins.pruned_asc import inception, vgg

    registered = {}
    vgg.sedkit_register_models(lambda name, cls: registered.setdefault(name, cls))
    inception.sedkit_register_models(lambda name, cls: registered.setdefault(name, cls))
    assert registered == {"vgg": VGG, "inception": Inception}


@pytest.mark.parametrize("model_cls, params_cls", [(VGG, VGGParams), (Inception, InceptionParams)])
def test_batch_norm_momentum_reaches_every_batch_norm(model_cls, params_cls) -> None:
    def momenta(model: nn.Module) -> set[float]:
        norms = (nn.BatchNorm1d, nn.BatchNorm2d)
        return {m.momentum for m in model.modules() if isinstance(m, norms)}

    assert momenta(model_cls(params_cls(), context())) == {0.01}  # Keras' 0.99
    assert momenta(model_cls(params_cls(batch_norm_momentum=0.1), context())) == {0.1}
    with pytest.raises(ValueError, match="batch_norm_momentum"):
        params_cls(batch_norm_momentum=0.0)
