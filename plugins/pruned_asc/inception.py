"""I(p,q,r): the InceptionNet-based scene classifier of the pruned-ensemble paper (DCASE 2020 1B).

Inception(k) module: three branches concatenated to 3k channels, an activation (ReLU) after
every conv and no batch norm (the paper follows Szegedy et al.): 1x1(k) -> 3x3(k);
1x1(k) -> 5x5(k); max pool 3x3 stride 1 -> 1x1(k).

Network (METHODS.md section 5; the authors' public Keras code): conv 7x7 stride 2 (16) + ReLU,
max pool 3/2, BN; conv 1x1 (16) + ReLU, conv 3x3 (16) + ReLU, BN, max pool 3/2; p Inception(16)
modules, q Inception(32) modules, max pool 3/2, r Inception(32) modules, max pool 3/2, average
pool 3/2, flatten, dropout 0.5, dense 20 + ReLU, dropout 0.5, dense to the classes. The paper's
submitted I(2,1,2) has 167,571 parameters counting batch-norm running statistics; I(1,0,1)
has 68,099 (the paper's Table 4).

Every conv and pool uses TensorFlow's "same" padding, which pads the extra row or column at the
end when the total padding is odd (stride 2), pads max pooling with -inf and leaves padding out
of average pools; :func:`pad_same` and :class:`SamePool2d` reproduce that exactly, so a
(48, 467) patch gives the same 1 x 8 x 96 map before flattening as in Keras. Like the authors'
code, the L2 kernel penalty covers every conv kernel and the hidden dense layer but not the
output layer (``l2_output`` adds it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sedkit import hookimpl
from sedkit.components import ModelContext, ModelOutput
from sedkit_plugins.pruned_asc.vgg import (
    KERAS_BATCH_NORM_MOMENTUM,
    Activation,
    KerasClassifier,
    activation_layer,
    batch_norm_2d,
    check_head_params,
    flatten_channels_last,
    keras_init_,
)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "same" padding (before, after) of one axis: output ceil(size / stride)."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_same(x: Tensor, kernel: int, stride: int, value: float = 0.0) -> Tensor:
    """Pad the last two axes of ``x`` [B, C, H, W] as TensorFlow's "same" padding does."""
    top, bottom = same_padding(x.shape[-2], kernel, stride)
    left, right = same_padding(x.shape[-1], kernel, stride)
    return F.pad(x, (left, right, top, bottom), value=value)


class SamePool2d(nn.Module):
    """Max or average pooling with TensorFlow "same" padding (average over valid cells only)."""

    def __init__(self, kind: Literal["max", "avg"], kernel: int, stride: int):
        super().__init__()
        self.kind, self.kernel, self.stride = kind, kernel, stride

    def forward(self, x: Tensor) -> Tensor:
        if self.kind == "max":
            return F.max_pool2d(
                pad_same(x, self.kernel, self.stride, -math.inf), self.kernel, self.stride
            )
        sums = F.avg_pool2d(pad_same(x, self.kernel, self.stride), self.kernel, self.stride)
        valid = torch.ones_like(x[:1, :1])
        counts = F.avg_pool2d(pad_same(valid, self.kernel, self.stride), self.kernel, self.stride)
        return sums / counts

    def output_size(self, size: int) -> int:
        return math.ceil(size / self.stride)


class InceptionModule(nn.Module):
    """Inception(k): [1x1 -> 3x3, 1x1 -> 5x5, max pool 3 -> 1x1], concatenated to 3k channels."""

    def __init__(self, in_channels: int, k: int, activation: str):
        super().__init__()
        self.branch_3x3 = nn.Sequential(
            nn.Conv2d(in_channels, k, 1),
            activation_layer(activation),
            nn.Conv2d(k, k, 3, padding=1),
            activation_layer(activation),
        )
        self.branch_5x5 = nn.Sequential(
            nn.Conv2d(in_channels, k, 1),
            activation_layer(activation),
            nn.Conv2d(k, k, 5, padding=2),
            activation_layer(activation),
        )
        self.branch_pool = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1),  # pads with -inf: TF "same"
            nn.Conv2d(in_channels, k, 1),
            activation_layer(activation),
        )
        self.out_channels = 3 * k

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.branch_3x3(x), self.branch_5x5(x), self.branch_pool(x)], dim=1)


@dataclass
class InceptionParams:
    """I(p,q,r) (keys of ``model.params``). Defaults: the paper's submitted I(2,1,2)."""

    modules: list[int] = field(default_factory=lambda: [2, 1, 2])  # p, q, r
    filters: list[int] = field(default_factory=lambda: [16, 32, 32])  # k of each group
    stem_filters: int = 16
    dense_units: int = 20
    dropout: float = 0.5
    activation: Activation = "relu"
    batch_norm: bool = True  # the two batch norms of the stem (modules never have one)
    batch_norm_momentum: float = KERAS_BATCH_NORM_MOMENTUM  # as VGGParams.batch_norm_momentum
    l2: float = 0.001
    l2_output: bool = False  # the authors' output layer has no kernel regularizer

    def __post_init__(self) -> None:
        if len(self.modules) != 3 or any(n < 0 for n in self.modules):
            raise ValueError(f"modules: expected [p, q, r] counts >= 0, got {self.modules}")
        if len(self.filters) != 3 or any(k < 1 for k in self.filters):
            raise ValueError(f"filters: expected three filter counts >= 1, got {self.filters}")
        if self.stem_filters < 1 or self.dense_units < 1:
            raise ValueError("stem_filters and dense_units must be >= 1")
        check_head_params(self.dropout, self.l2, self.batch_norm_momentum)


class Inception(KerasClassifier):
    """I(p,q,r) on log-mel patches ``[B, M, T]``; ``h`` is the hidden dense layer's output."""

    Params = InceptionParams

    def __init__(self, params: InceptionParams, context: ModelContext):
        super().__init__(params, context)
        p = params
        act = p.activation
        self.stem_conv = nn.Conv2d(1, p.stem_filters, 7, stride=2)  # padded by pad_same
        self.stem = nn.Sequential(
            activation_layer(act),
            SamePool2d("max", 3, 2),
            batch_norm_2d(p.stem_filters, p.batch_norm, p.batch_norm_momentum),
            nn.Conv2d(p.stem_filters, p.stem_filters, 1),
            activation_layer(act),
            nn.Conv2d(p.stem_filters, p.stem_filters, 3, padding=1),
            activation_layer(act),
            batch_norm_2d(p.stem_filters, p.batch_norm, p.batch_norm_momentum),
            SamePool2d("max", 3, 2),
        )
        blocks: list[nn.Module] = []
        channels = p.stem_filters
        for group, (count, k) in enumerate(zip(p.modules, p.filters, strict=True)):
            if group == 2:
                blocks.append(SamePool2d("max", 3, 2))
            for _ in range(count):
                blocks.append(InceptionModule(channels, k, act))
                channels = 3 * k
        blocks += [SamePool2d("max", 3, 2), SamePool2d("avg", 3, 2)]
        self.blocks = nn.Sequential(*blocks)
        # Six stride-2 stages with "same" padding: each gives ceil(size / 2).
        height, width = context.n_mels, context.n_frames
        for _ in range(6):
            height, width = math.ceil(height / 2), math.ceil(width / 2)
        self.dropout = nn.Dropout(p.dropout)
        self.dense = nn.Linear(height * width * channels, p.dense_units)
        self.dense_activation = activation_layer(act)
        self.classifier = nn.Linear(p.dense_units, context.n_classes)
        self.feature_dim = p.dense_units
        keras_init_(self)

    def forward(self, features: Tensor) -> ModelOutput:
        x = self.stem_conv(pad_same(features.unsqueeze(1), 7, 2))
        x = self.blocks(self.stem(x))
        h = self.dense_activation(self.dense(self.dropout(flatten_channels_last(x))))
        return ModelOutput(clip_logits=self.classifier(self.dropout(h)), h=h)

    def regularized_layers(self) -> list[nn.Module]:
        """Layers whose kernels carry the L2 penalty (see the module docstring)."""
        layers = super().regularized_layers()
        return layers if self.params.l2_output else [m for m in layers if m is not self.classifier]


@hookimpl
def sedkit_register_models(register):
    register("inception", Inception)
