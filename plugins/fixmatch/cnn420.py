"""CNN420: the small ResNet-style classifier of the FixMatch/FMUC audio papers (about 420 k
parameters).

Pre-activation residual blocks after Chen et al. (2019, "Rethinking the usage of batch
normalization and dropout"): every convolution is preceded by activation -> BatchNorm ->
Dropout(0.1), so the input of each weight layer is whitened and the dropout sits right where
MC dropout (FMUC) re-uses it. A block holds two such (pre-activation, 3x3 conv) units and a
shortcut (identity, or a 1x1 convolution where channels or resolution change). Stages double the
channels and halve both axes (stride 2 in their first block). Head: activation -> BatchNorm ->
global average pooling over frequency and time -> linear layer to class logits (softmax).

The FMUC paper gives only the block order and the parameter count; channels and blocks per
stage are our choice, tuned to 420 k parameters: (32, 64, 128) channels with (3, 2, 1) blocks
have 420,367 trainable parameters for 15 classes (TUT2017) and 419,851 for 11 (NSynth).

Input ``[B, M, T]`` log-mel patches; output :class:`ModelOutput` with ``clip_logits`` [B, C] and
``h`` [B, D] (the pooled features, D = last stage's channels).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sedkit import hookimpl
from sedkit.activations import Activation, activation_layer
from sedkit.components import Batch, Model, ModelContext, ModelOutput


@dataclass
class CNN420Params:
    """Architecture (keys of ``model.params``).

    ``channels`` per stage and ``blocks`` (residual blocks) per stage; ``dropout`` before every
    convolution (paper: 0.1); ``batch_norm`` off removes every BatchNorm (the pre-activation
    then is activation -> dropout); ``head_dropout`` before the final linear layer.
    """

    channels: list[int] = field(default_factory=lambda: [32, 64, 128])
    blocks: list[int] = field(default_factory=lambda: [3, 2, 1])
    dropout: float = 0.1
    activation: Activation = "relu"
    batch_norm: bool = True
    head_dropout: float = 0.0

    def __post_init__(self) -> None:
        if not self.channels or any(c < 1 for c in self.channels):
            raise ValueError(f"channels: one or more stages, each >= 1, got {self.channels}")
        if len(self.blocks) != len(self.channels) or any(b < 1 for b in self.blocks):
            raise ValueError(
                f"blocks: one count >= 1 per stage ({len(self.channels)} stages), got {self.blocks}"
            )
        for name in ("dropout", "head_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name}: must be in [0, 1), got {getattr(self, name)}")


class PreActivation(nn.Sequential):
    """activation -> BatchNorm (optional) -> Dropout (optional): what precedes each weight layer."""

    def __init__(self, channels: int, activation: str, batch_norm: bool, dropout: float):
        layers: list[nn.Module] = [activation_layer(activation)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(channels))
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        super().__init__(*layers)


class ResidualBlock(nn.Module):
    """Two (pre-activation, 3x3 conv) units plus a shortcut; the first conv carries the stride."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, p: CNN420Params):
        super().__init__()
        self.pre1 = PreActivation(in_channels, p.activation, p.batch_norm, p.dropout)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)
        self.pre2 = PreActivation(out_channels, p.activation, p.batch_norm, p.dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv1(self.pre1(x))
        y = self.conv2(self.pre2(y))
        return y + self.shortcut(x)


class CNN420(Model):
    """ResNet-style pre-activation CNN for single-label clip classification."""

    Params = CNN420Params

    def __init__(self, params: CNN420Params, context: ModelContext):
        super().__init__(params, context)
        if context.n_classes < 2:
            raise ValueError("CNN420 needs n_classes >= 2 in its ModelContext")
        self.stem = nn.Conv2d(1, params.channels[0], 3, padding=1)
        stages: list[nn.Module] = []
        in_channels = params.channels[0]
        for i, (out_channels, n_blocks) in enumerate(
            zip(params.channels, params.blocks, strict=True)
        ):
            for j in range(n_blocks):
                stride = 2 if (i > 0 and j == 0) else 1
                stages.append(ResidualBlock(in_channels, out_channels, stride, params))
                in_channels = out_channels
        self.blocks = nn.Sequential(*stages)
        self.head_pre = PreActivation(in_channels, params.activation, params.batch_norm, 0.0)
        self.head_dropout = nn.Dropout(params.head_dropout)
        self.classifier = nn.Linear(in_channels, context.n_classes)
        self.feature_dim = in_channels

    def forward(self, features: Tensor) -> ModelOutput:
        x = features.unsqueeze(1)  # [B, 1, M, T]
        # NHWC: faster convolutions with oneDNN on CPU and tensor cores on CUDA.
        x = x.contiguous(memory_format=torch.channels_last)
        x = self.blocks(self.stem(x))
        h = self.head_pre(x).mean(dim=(2, 3))  # global average pooling -> [B, D]
        return ModelOutput(clip_logits=self.classifier(self.head_dropout(h)), h=h)

    def supervised_loss(self, out: ModelOutput, batch: Batch) -> dict[str, Tensor]:
        """``ce``: softmax cross-entropy averaged over the labeled examples (``label >= 0``).

        Computed in float32 with autocast off. A batch without labeled examples gives 0 with a
        gradient path (no NaN, no device sync).
        """
        assert out.clip_logits is not None
        if batch.label is None:
            raise ValueError("CNN420 needs batch.label (single-label classification batches)")
        return {"ce": labeled_cross_entropy(out.clip_logits, batch.label)}


def labeled_cross_entropy(logits: Tensor, label: Tensor) -> Tensor:
    """Mean cross-entropy over the entries with ``label >= 0`` (float32, autocast off)."""
    with torch.autocast(device_type=logits.device.type, enabled=False):
        label = label.to(logits.device)
        labeled = (label >= 0).float()
        per_example = F.cross_entropy(logits.float(), label.clamp(min=0), reduction="none")
        return (per_example * labeled).sum() / labeled.sum().clamp_min(1.0)


@hookimpl
def sedkit_register_models(register) -> None:
    register("cnn420", CNN420)
