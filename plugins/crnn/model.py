"""The CRNN of weakly labeled sound event detection (tri-training paper, DCASE 2019 task 4).

Feature extractor F: conv blocks (conv, batch norm, activation, dropout, pooling) over a
log-mel spectrogram, then a bidirectional GRU. Its output ``h`` [B, T', D] is shared with
pseudo-labelers and domain adapters. Heads (the paper's Ft): a frame-level sigmoid layer and a
clip-level output pooled over time (attention, max or mean). Defaults follow the closest public
7-block model, the DCASE 2020 baseline CRNN (METHODS.md section 1).

Clip logits are pooled in log space and every loss is BCE-with-logits in float32
(:mod:`sedkit.losses`), so bf16 autocast cannot saturate a confident output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

from sedkit import hookimpl
from sedkit.activations import activation_layer
from sedkit.components import Batch, Model, ModelContext, ModelOutput
from sedkit.errors import UserError
from sedkit.losses import masked_bce_with_logits, pool_clip_logits, zero_loss

Activation = Literal["glu", "relu", "leaky_relu", "elu", "selu"]
ClipPooling = Literal["attention", "max", "mean"]

_DEFAULT_POOLING = [[2, 2], [2, 2], [1, 2], [1, 2], [1, 2], [1, 2], [1, 2]]


# --------------------------------------------------------------------------------------------
# Params
# --------------------------------------------------------------------------------------------
@dataclass
class CRNNParams:
    """Architecture of the CRNN (keys of ``model.params`` in a recipe).

    ``pooling`` lists [time, freq] pooling factors per conv block; the product of the time
    factors sets the output frame hop (input hop times that product).
    """

    filters: list[int] = field(default_factory=lambda: [16, 32, 64, 128, 128, 128, 128])
    kernel_size: int = 3
    pooling: list[list[int]] = field(default_factory=lambda: [list(p) for p in _DEFAULT_POOLING])
    pooling_type: Literal["avg", "max"] = "avg"
    activation: Activation = "glu"
    batch_norm: bool = True
    conv_dropout: float = 0.5
    rnn_layers: int = 2
    rnn_hidden: int = 128
    rnn_dropout: float = 0.0
    head_dropout: float = 0.5  # before the frame and attention heads
    clip_pooling: ClipPooling = "attention"

    def __post_init__(self) -> None:
        if not self.filters or any(f < 1 for f in self.filters):
            raise ValueError("filters: need at least one conv block, each with >= 1 filter")
        if len(self.pooling) != len(self.filters):
            raise ValueError(
                f"pooling: {len(self.pooling)} entries for {len(self.filters)} conv blocks "
                "(one [time, freq] pair per block)"
            )
        for i, pair in enumerate(self.pooling):
            if len(pair) != 2 or any(int(p) < 1 for p in pair):
                raise ValueError(f"pooling[{i}]: expected [time, freq] factors >= 1, got {pair}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size: must be odd (same padding), got {self.kernel_size}")
        for name in ("conv_dropout", "rnn_dropout", "head_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name}: must be in [0, 1), got {getattr(self, name)}")
        if self.rnn_layers < 1 or self.rnn_hidden < 1:
            raise ValueError("rnn_layers and rnn_hidden must be >= 1")


# --------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------
class GLU(nn.Module):
    """Gated linear unit over channels as in the DCASE baseline: (1x1 conv of x) * sigmoid(x)."""

    def __init__(self, channels: int):
        super().__init__()
        self.linear = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x) * torch.sigmoid(x)


def _activation(name: str, channels: int) -> nn.Module:
    if name == "glu":
        return GLU(channels)
    return activation_layer(name)


class CRNN(Model):
    """Conv blocks + BiGRU feature extractor with frame and clip heads.

    Input features [B, M, T] (mel bands, frames). Output :class:`ModelOutput` with
    ``frame_logits``/``frame_probs`` [B, T', C], ``clip_probs`` [B, C] and ``h`` [B, T', D],
    D = 2 * rnn_hidden.
    """

    Params = CRNNParams

    def __init__(self, params: CRNNParams, context: ModelContext):
        super().__init__(params, context)
        if context.n_classes < 1 or context.n_mels < 1:
            raise ValueError("CRNN needs n_classes and n_mels in its ModelContext")
        self.freq_out = self._frequency_bins(context.n_mels)
        if context.n_frames > 0 and self.output_frames(context.n_frames) < 1:
            raise UserError(
                f"model.params.pooling: the time factors leave no output frame of the "
                f"{context.n_frames} input frames; lower them"
            )
        blocks: list[nn.Module] = []
        in_channels = 1
        pool_cls = nn.AvgPool2d if params.pooling_type == "avg" else nn.MaxPool2d
        for out_channels, (pool_t, pool_f) in zip(params.filters, params.pooling, strict=True):
            layers: list[nn.Module] = [
                nn.Conv2d(
                    in_channels,
                    out_channels,
                    params.kernel_size,
                    padding=params.kernel_size // 2,
                    bias=not params.batch_norm,
                )
            ]
            if params.batch_norm:
                layers.append(nn.BatchNorm2d(out_channels))
            layers.append(_activation(params.activation, out_channels))
            if params.conv_dropout > 0:
                layers.append(nn.Dropout(params.conv_dropout))
            if (pool_t, pool_f) != (1, 1):
                layers.append(pool_cls((int(pool_t), int(pool_f))))
            blocks.append(nn.Sequential(*layers))
            in_channels = out_channels
        self.cnn = nn.Sequential(*blocks)
        self.rnn = nn.GRU(
            input_size=in_channels * self.freq_out,
            hidden_size=params.rnn_hidden,
            num_layers=params.rnn_layers,
            batch_first=True,
            bidirectional=True,
            dropout=params.rnn_dropout if params.rnn_layers > 1 else 0.0,
        )
        self.feature_dim = 2 * params.rnn_hidden
        self.head_dropout = nn.Dropout(params.head_dropout)
        self.frame_head = nn.Linear(self.feature_dim, context.n_classes)
        self.attention_head = (
            nn.Linear(self.feature_dim, context.n_classes)
            if params.clip_pooling == "attention"
            else None
        )

    def _frequency_bins(self, n_mels: int) -> int:
        """Frequency bins left after all pooling; a clear error when pooling empties the axis."""
        size = n_mels
        for _, pool_f in self.params.pooling:
            size //= int(pool_f)
        if size < 1:
            total = math.prod(int(p[1]) for p in self.params.pooling)
            raise UserError(
                f"model.params.pooling: the frequency factors multiply to {total}, more than "
                f"the {n_mels} mel bands of the features; lower some frequency factors so that "
                f"their product is at most {n_mels}"
            )
        return size

    def output_frames(self, n_frames: int) -> int:
        """T' for T input frames: each block's pooling floors the time axis."""
        size = n_frames
        for pool_t, _ in self.params.pooling:
            size //= int(pool_t)
        return size

    def forward(self, features: Tensor) -> ModelOutput:
        x = features.unsqueeze(1).transpose(2, 3)  # [B, 1, T, M]: time, then frequency
        # NHWC: faster convolutions with oneDNN on CPU and tensor cores on CUDA.
        x = x.contiguous(memory_format=torch.channels_last)
        x = self.cnn(x)  # [B, channels, T', F']
        batch, channels, frames, freq = x.shape
        x = x.permute(0, 2, 1, 3).reshape(batch, frames, channels * freq)
        h, _ = self.rnn(x)  # [B, T', D]
        z = self.head_dropout(h)
        frame_logits = self.frame_head(z)
        att_logits = self.attention_head(z) if self.attention_head is not None else None
        clip_logits = pool_clip_logits(frame_logits, self.params.clip_pooling, att_logits)
        # Probabilities from float32 logits: in bf16 they would round to exactly 0 or 1.
        return ModelOutput(
            clip_probs=torch.sigmoid(clip_logits),
            clip_logits=clip_logits,
            frame_probs=torch.sigmoid(frame_logits.float()),
            frame_logits=frame_logits,
            h=h,
        )

    def supervised_loss(self, out: ModelOutput, batch: Batch) -> dict[str, Tensor]:
        """``frame_bce`` on strongly labeled clips, ``clip_bce`` on clips with clip labels."""
        assert out.frame_logits is not None and out.clip_logits is not None
        # No .any() checks: they would force a device sync every step; the masked BCE returns 0
        # with a gradient path when the mask selects nothing.
        if batch.strong is None or batch.strong_mask is None:
            frame = zero_loss(out.frame_logits)
        else:
            if batch.strong.shape != out.frame_logits.shape:
                raise ValueError(
                    f"strong targets {tuple(batch.strong.shape)} do not match the model's frame "
                    f"output {tuple(out.frame_logits.shape)}: encode labels at output_frames()"
                )
            frame = masked_bce_with_logits(out.frame_logits, batch.strong, batch.strong_mask)
        if batch.weak is None or batch.weak_mask is None:
            clip = zero_loss(out.clip_logits)
        else:
            clip = masked_bce_with_logits(out.clip_logits, batch.weak, batch.weak_mask)
        return {"frame_bce": frame, "clip_bce": clip}


@hookimpl
def sedkit_register_models(register) -> None:
    register("crnn", CRNN)
