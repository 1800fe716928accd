"""V(a,b,c,d): the VGGNet-based scene classifier of the pruned-ensemble paper (DCASE 2020 1B).

Layout (METHODS.md section 5; the authors' public Keras code): four stages of VGG(k) modules
(conv 3x3 with k filters and same padding -> batch norm -> ReLU), a, b, c and d modules with
12, 16, 20 and 24 filters, each stage followed by 2x2 max pooling (also a stage with no
module); then conv 1x1 (28) + BN + ReLU, flatten, dropout 0.5, dense 20 + BN + ReLU,
dropout 0.5, dense to the classes (softmax in the trainer's metrics). V(2,2,3,3) on a (48, 467)
log-mel patch has 80,839 parameters counting batch-norm running statistics.

Keras conventions kept so that the model trains like the original: Glorot-uniform kernels and
zero biases, batch norm with epsilon 1e-3 and momentum 0.99 (PyTorch momentum 0.01), channels
last when flattening, and the L2 kernel regularizer as a loss term ``l2`` = 0.001 * sum of
squared kernel values (not optimizer weight decay, which Adam would scale differently).

The helpers :func:`activation_layer`, :func:`keras_init_`, :func:`kernel_l2`,
:func:`masked_cross_entropy`, :func:`check_head_params` and the base class
:class:`KerasClassifier` (loss terms) are public so that the Inception network shares them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sedkit import hookimpl
from sedkit.activations import Activation
from sedkit.activations import activation_layer as engine_activation_layer
from sedkit.components import Batch, Model, ModelContext, ModelOutput
from sedkit.errors import UserError

#: Keras BatchNormalization defaults: epsilon 1e-3, moving-average momentum 0.99 (PyTorch's
#: momentum is the weight of the new batch: 1 - 0.99 = 0.01).
KERAS_BATCH_NORM_EPS = 1e-3
KERAS_BATCH_NORM_MOMENTUM = 0.01


# --------------------------------------------------------------------------------------------
# Shared helpers (also used by the inception and ensemble plugins)
# --------------------------------------------------------------------------------------------
def activation_layer(name: str) -> nn.Module:
    """The activation called ``name`` (``leaky_relu`` with Keras' default slope 0.3)."""
    return engine_activation_layer(name, leaky_slope=0.3)


def keras_init_(model: nn.Module) -> None:
    """Keras' default initialisation: Glorot-uniform conv and dense kernels, zero biases."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def kernel_l2(layers: Iterable[nn.Module], factor: float) -> Tensor:
    """Keras ``kernel_regularizer=l2(factor)`` summed over ``layers``: factor * sum w^2."""
    terms = [layer.weight.float().pow(2).sum() for layer in layers]
    if not terms:
        raise ValueError("kernel_l2: no layers given")
    return factor * torch.stack(terms).sum()


def masked_cross_entropy(logits: Tensor, labels: Tensor | None) -> Tensor:
    """Mean cross-entropy over the examples with a label (``label >= 0``), in float32.

    With no labeled example the result is 0 and still has a gradient path.
    """
    if labels is None:
        raise ValueError("classification loss: the batch carries no labels (Batch.label)")
    with torch.autocast(device_type=logits.device.type, enabled=False):
        logits = logits.float()
        labeled = labels >= 0
        if not bool(labeled.any()):
            return logits.sum() * 0.0
        return F.cross_entropy(logits[labeled], labels[labeled].long())


def flatten_channels_last(x: Tensor) -> Tensor:
    """[B, C, H, W] -> [B, H*W*C] in Keras' (channels-last) order."""
    return x.permute(0, 2, 3, 1).flatten(1)


def batch_norm_2d(
    channels: int, enabled: bool, momentum: float = KERAS_BATCH_NORM_MOMENTUM
) -> nn.Module:
    if not enabled:
        return nn.Identity()
    return nn.BatchNorm2d(channels, eps=KERAS_BATCH_NORM_EPS, momentum=momentum)


def check_head_params(dropout: float, l2: float, batch_norm_momentum: float) -> None:
    """Value checks of the settings every Keras-style classifier has (for ``__post_init__``)."""
    if not 0.0 < batch_norm_momentum <= 1.0:
        raise ValueError(f"batch_norm_momentum: must be in (0, 1], got {batch_norm_momentum}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout: must be in [0, 1), got {dropout}")
    if l2 < 0:
        raise ValueError(f"l2: must be >= 0, got {l2}")


class KerasClassifier(Model):
    """Base of the Keras-style clip classifiers: the supervised loss is the cross-entropy of
    the labeled clips (``ce``) plus the L2 kernel penalty ``params.l2`` on
    :meth:`regularized_layers` (``l2``)."""

    def regularized_layers(self) -> list[nn.Module]:
        """Layers whose kernels carry the L2 penalty: every conv and dense layer."""
        return [m for m in self.modules() if isinstance(m, nn.Conv2d | nn.Linear)]

    def supervised_loss(self, out: ModelOutput, batch: Batch) -> dict[str, Tensor]:
        terms = {"ce": masked_cross_entropy(out.clip_logits, batch.label)}
        if self.params.l2 > 0:
            terms["l2"] = kernel_l2(self.regularized_layers(), self.params.l2)
        return terms


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------
@dataclass
class VGGParams:
    """V(a,b,c,d) (keys of ``model.params``). Defaults: the paper's V(2,2,3,3)."""

    modules_per_stage: list[int] = field(default_factory=lambda: [2, 2, 3, 3])  # a, b, c, d
    filters: list[int] = field(default_factory=lambda: [12, 16, 20, 24])
    kernel_size: int = 3
    pool_size: int = 2
    bottleneck_filters: int = 28  # the conv 1x1 after the last stage
    dense_units: int = 20
    dropout: float = 0.5
    activation: Activation = "relu"
    batch_norm: bool = True
    # PyTorch convention (weight of the new batch); 0.01 is Keras' 0.99. With a few hundred
    # steps the running statistics lag far behind the weights; 0.1 suits short runs.
    batch_norm_momentum: float = KERAS_BATCH_NORM_MOMENTUM
    l2: float = 0.001  # Keras kernel_regularizer factor on every conv and dense kernel

    def __post_init__(self) -> None:
        if len(self.modules_per_stage) != len(self.filters) or not self.filters:
            raise ValueError(
                f"modules_per_stage ({len(self.modules_per_stage)} entries) and filters "
                f"({len(self.filters)}) must list the same stages, at least one"
            )
        if any(n < 0 for n in self.modules_per_stage):
            raise ValueError(f"modules_per_stage must be >= 0, got {self.modules_per_stage}")
        if any(f < 1 for f in self.filters):
            raise ValueError(f"filters must be >= 1, got {self.filters}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size: must be odd (same padding), got {self.kernel_size}")
        if self.pool_size < 1 or self.bottleneck_filters < 1 or self.dense_units < 1:
            raise ValueError("pool_size, bottleneck_filters and dense_units must be >= 1")
        check_head_params(self.dropout, self.l2, self.batch_norm_momentum)


class VGG(KerasClassifier):
    """V(a,b,c,d) on log-mel patches ``[B, M, T]``; ``h`` is the dense layer's output."""

    Params = VGGParams

    def __init__(self, params: VGGParams, context: ModelContext):
        super().__init__(params, context)
        p = params
        height, width = context.n_mels, context.n_frames
        layers: list[nn.Module] = []
        channels = 1
        for n_modules, filters in zip(p.modules_per_stage, p.filters, strict=True):
            for _ in range(n_modules):
                layers += [
                    nn.Conv2d(channels, filters, p.kernel_size, padding=p.kernel_size // 2),
                    batch_norm_2d(filters, p.batch_norm, p.batch_norm_momentum),
                    activation_layer(p.activation),
                ]
                channels = filters
            layers.append(nn.MaxPool2d(p.pool_size))
            height, width = height // p.pool_size, width // p.pool_size
        if height < 1 or width < 1:
            raise UserError(
                f"model.params: a {context.n_mels} x {context.n_frames} (mel bands x frames) "
                f"input is too small for {len(p.filters)} poolings of {p.pool_size}"
            )
        layers += [
            nn.Conv2d(channels, p.bottleneck_filters, 1),
            batch_norm_2d(p.bottleneck_filters, p.batch_norm, p.batch_norm_momentum),
            activation_layer(p.activation),
        ]
        self.features = nn.Sequential(*layers)
        self.dense = nn.Linear(height * width * p.bottleneck_filters, p.dense_units)
        self.dense_norm = (
            nn.BatchNorm1d(p.dense_units, eps=KERAS_BATCH_NORM_EPS, momentum=p.batch_norm_momentum)
            if p.batch_norm
            else nn.Identity()
        )
        self.dense_activation = activation_layer(p.activation)
        self.dropout = nn.Dropout(p.dropout)
        self.classifier = nn.Linear(p.dense_units, context.n_classes)
        self.feature_dim = p.dense_units
        keras_init_(self)

    def forward(self, features: Tensor) -> ModelOutput:
        x = self.features(features.unsqueeze(1))
        x = self.dropout(flatten_channels_last(x))
        h = self.dense_activation(self.dense_norm(self.dense(x)))
        return ModelOutput(clip_logits=self.classifier(self.dropout(h)), h=h)


@hookimpl
def sedkit_register_models(register):
    register("vgg", VGG)
