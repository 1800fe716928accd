"""A tiny, fast, deterministic data set and model for engine tests (registered as a plugin).

Clips are 0.5 s of noise with a tone per active class; labels are known exactly, so a few steps
of training move the metrics. Everything is drawn from generators seeded by (seed, epoch).
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from sedkit import hookimpl
from sedkit.components import (
    REAL,
    SYNTHETIC,
    Batch,
    DataModule,
    Model,
    ModelOutput,
    ScoringReference,
)

CLASSES = ["Beep", "Hum", "Tick"]
FREQS = [1000.0, 250.0, 3000.0]


@dataclass
class ToyDataParams:
    n_train: int = 16
    n_val: int = 6
    batch_size: int = 4
    clip_duration_s: float = 0.5


class ToyData(DataModule):
    Params = ToyDataParams

    def __init__(self, params, context):
        super().__init__(params, context)
        self.classes = list(CLASSES)
        self.clip_duration_s = params.clip_duration_s

    def setup(self, run_dir, encoder, extractor):
        self.encoder = encoder
        self.run_dir = Path(run_dir) if run_dir else None
        self.val = [self._clip(10_000 + i) for i in range(self.params.n_val)]
        if self.run_dir is not None:
            lines = ["filename\tonset\toffset\tevent_label"]
            for name, _, events in self.val:
                lines += [f"{name}\t{on:.3f}\t{off:.3f}\t{lab}" for on, off, lab in events]
                if not events:
                    lines.append(f"{name}\t\t\t")
            (self.run_dir / "toy_gt.tsv").write_text("\n".join(lines) + "\n")
            durations = ["filename\tduration"] + [
                f"{n}\t{self.clip_duration_s}" for n, _, _ in self.val
            ]
            (self.run_dir / "toy_durations.tsv").write_text("\n".join(durations) + "\n")

    def _clip(self, index: int):
        sr = self.context.sample_rate
        n = int(self.clip_duration_s * sr)
        g = torch.Generator().manual_seed(self.context.seed * 7919 + index)
        audio = 0.01 * torch.randn(n, generator=g)
        t = torch.arange(n) / sr
        events = []
        for c, freq in enumerate(FREQS):
            if torch.rand(1, generator=g).item() < 0.5:
                on = round(float(torch.rand(1, generator=g)) * self.clip_duration_s * 0.5, 2)
                off = round(on + 0.1 + float(torch.rand(1, generator=g)) * 0.2, 2)
                mask = (t >= on) & (t < off)
                audio = audio + 0.3 * torch.sin(2 * torch.pi * freq * t) * mask
                events.append((on, off, CLASSES[c]))
        return f"toy_{index:05d}.wav", audio, events

    def _batches(self, clips, stream):
        for i in range(0, len(clips), self.params.batch_size):
            chunk = clips[i : i + self.params.batch_size]
            strong = torch.stack([self.encoder.encode_strong(ev) for _, _, ev in chunk])
            yield Batch(
                filenames=[c[0] for c in chunk],
                stream=[stream] * len(chunk),
                domain=torch.full((len(chunk),), SYNTHETIC if stream == "synthetic" else REAL),
                audio=torch.stack([c[1] for c in chunk]),
                strong=strong,
                strong_mask=torch.ones(len(chunk), dtype=torch.bool),
                weak=strong.amax(dim=1),
                weak_mask=torch.ones(len(chunk), dtype=torch.bool),
            )

    def train_loader(self, epoch):
        g = torch.Generator().manual_seed(self.context.seed * 31 + epoch)
        order = torch.randperm(self.params.n_train, generator=g).tolist()
        return list(self._batches([self._clip(i) for i in order], "synthetic"))

    def val_loader(self):
        return list(self._batches(self.val, "validation"))

    def unlabeled_loader(self):
        return self.val_loader()

    def reference(self):
        return ScoringReference(self.run_dir / "toy_gt.tsv", self.run_dir / "toy_durations.tsv")


@dataclass
class ToyModelParams:
    hidden: int = 16
    dropout: float = 0.2
    time_pooling: int = 2


class ToyModel(Model):
    Params = ToyModelParams
    steps_seen = 0  # training forward passes in this process (for kill tests)

    def __init__(self, params, context):
        super().__init__(params, context)
        self.frames_per_output = params.time_pooling
        self.feature_dim = params.hidden
        self.conv = nn.Conv1d(context.n_mels, params.hidden, 3, padding=1)
        self.pool = nn.AvgPool1d(params.time_pooling)
        self.drop = nn.Dropout(params.dropout)
        self.head = nn.Linear(params.hidden, context.n_classes)

    def output_frames(self, n_frames):
        return n_frames // self.params.time_pooling

    def forward(self, x):
        if self.training and os.environ.get("TOY_KILL_AT_STEP"):
            ToyModel.steps_seen += 1
            if ToyModel.steps_seen == int(os.environ["TOY_KILL_AT_STEP"]):
                os.kill(os.getpid(), signal.SIGKILL)
        h = self.drop(torch.relu(self.pool(self.conv(x)))).transpose(1, 2)
        frame_logits = self.head(h)
        frame_probs = torch.sigmoid(frame_logits)
        # Max pooling commutes with the sigmoid: the clip logits are the frames' maximum.
        return ModelOutput(
            clip_probs=frame_probs.amax(dim=1),
            clip_logits=frame_logits.amax(dim=1),
            frame_probs=frame_probs,
            frame_logits=frame_logits,
            h=h,
        )

    def supervised_loss(self, out, batch):
        bce = nn.functional.binary_cross_entropy_with_logits
        return {
            "frame_bce": bce(out.frame_logits, batch.strong),
            "clip_bce": nn.functional.binary_cross_entropy(out.clip_probs.float(), batch.weak),
        }


@hookimpl
def sedkit_register_datasets(register):
    register("toy_data", ToyData)


@hookimpl
def sedkit_register_models(register):
    register("toy_model", ToyModel)
