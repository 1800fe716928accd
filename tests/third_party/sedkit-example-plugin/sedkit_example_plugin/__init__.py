"""An example third-party sedkit plugin: registers the model ``example_cnn``.

A plain CNN without recurrence: conv blocks pool frequency only, a linear layer gives frame
logits, clip probabilities are the maximum over time.
"""

from dataclasses import dataclass

import torch
from torch import nn

import sedkit
from sedkit.components import Model, ModelOutput


@dataclass
class ExampleCNNParams:
    channels: int = 8
    n_blocks: int = 2


class ExampleCNN(Model):
    Params = ExampleCNNParams

    def __init__(self, params, context):
        super().__init__(params, context)
        layers, in_ch = [], 1
        for _ in range(params.n_blocks):
            layers += [
                nn.Conv2d(in_ch, params.channels, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d((2, 1)),
            ]
            in_ch = params.channels
        self.cnn = nn.Sequential(*layers)
        self.feature_dim = params.channels * (context.n_mels // 2**params.n_blocks)
        self.head = nn.Linear(self.feature_dim, context.n_classes)

    def forward(self, x):
        h = self.cnn(x.unsqueeze(1))  # [B, ch, M', T]
        h = h.flatten(1, 2).transpose(1, 2)  # [B, T, D]
        logits = self.head(h)
        probs = torch.sigmoid(logits)
        return ModelOutput(frame_logits=logits, frame_probs=probs, clip_probs=probs.amax(1), h=h)

    def supervised_loss(self, out, batch):
        bce = nn.functional.binary_cross_entropy
        strong = batch.strong_mask
        weak = batch.weak_mask
        frame = (
            bce(out.frame_probs[strong].float(), batch.strong[strong])
            if strong.any()
            else out.frame_probs.sum() * 0
        )
        clip = (
            bce(out.clip_probs[weak].float(), batch.weak[weak])
            if weak.any()
            else out.clip_probs.sum() * 0
        )
        return {"frame_bce": frame, "clip_bce": clip}


@sedkit.hookimpl
def sedkit_register_models(register):
    register("example_cnn", ExampleCNN)
