"""Training speed: sedkit's full training step against the bare model forward + backward, and
against a plain PyTorch CRNN written from the DCASE 2020 baseline's published configuration.

For each model configuration, on the same batch of 10 s clips (features already computed, as
with the feature cache; the batch mixes strong, weak and unlabeled clips like the recipe's):

- ``sedkit step``: ``Trainer.train_step`` (normalisation, loss terms, backward, clipping, Adam,
  schedule, bookkeeping), built from ``recipes/dcase2019_task4/base.yaml``;
- ``sedkit fwd+bwd``: the same model's forward, supervised loss and backward only;
- ``plain step`` / ``plain fwd+bwd``: the reference CRNN below in a hand-written loop.

Configurations: ``recipe`` (the dcase2019 base recipe: 64 mels, narrower filters) and
``baseline`` (the DCASE 2020 baseline sizes: 128 mels, filters up to 128, BiGRU 2x128).
Variants are timed in interleaved rounds so that other jobs on a shared machine disturb all of
them alike; the best (least disturbed) and the median round are reported with the load
average, and the ratios use the best rounds.

    python tools/bench_train.py [--rounds 7] [--configs recipe baseline] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from sedkit import hookimpl
from sedkit.components import REAL, SYNTHETIC, Batch, DataModule
from sedkit.plugins import Plugins
from sedkit.recipe import load_recipe
from sedkit.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "dcase2019_task4" / "base.yaml"
BASELINE_FILTERS = [16, 32, 64, 128, 128, 128, 128]
BASELINE_POOLING = [[2, 2], [2, 2], [1, 2], [1, 2], [1, 2], [1, 2], [1, 2]]


# ------------------------------------------------------------------------ data (features in memory)
@dataclass
class BenchFeaturesParams:
    batch_size: int = 24
    strong_share: float = 0.25  # then weak, then unlabeled, as the recipe's stream proportions
    weak_share: float = 0.25


class BenchFeatures(DataModule):
    """One fixed batch of random log-mel features and labels, served like cached features."""

    Params = BenchFeaturesParams

    def __init__(self, params: BenchFeaturesParams, context) -> None:
        super().__init__(params, context)
        self.classes = [f"class{i}" for i in range(10)]  # DESED's 10 classes
        self.clip_duration_s = 10.0

    def setup(self, run_dir, encoder, extractor) -> None:
        p, g = self.params, torch.Generator().manual_seed(0)
        n = p.batch_size
        n_strong, n_weak = round(n * p.strong_share), round(n * p.weak_share)
        samples = round(self.clip_duration_s * self.context.sample_rate)
        shape = (n, extractor.params.n_mels, extractor.n_frames(samples))
        strong = (torch.rand(n, encoder.n_frames, len(self.classes), generator=g) < 0.1).float()
        index = torch.arange(n)
        self.batch = Batch(
            filenames=[f"clip{i}.wav" for i in range(n)],
            stream=["synthetic"] * n_strong + ["weak"] * n_weak
            + ["unlabeled"] * (n - n_strong - n_weak),
            domain=torch.where(index < n_strong, SYNTHETIC, REAL),
            features=torch.randn(shape, generator=g) * 10 - 40,
            strong=strong,
            strong_mask=index < n_strong,
            weak=strong.amax(dim=1),
            weak_mask=index < n_strong + n_weak,
        )  # fmt: skip

    def train_loader(self, epoch: int) -> list[Batch]:
        return [self.batch]

    def val_loader(self) -> list[Batch]:
        return [self.batch]


@hookimpl
def sedkit_register_datasets(register) -> None:
    register("bench_features", BenchFeatures)


# ------------------------------------------------------------------------ the plain reference
class PlainCRNN(nn.Module):
    """A CRNN from the DCASE 2020 task 4 baseline's published configuration, in plain PyTorch.

    Conv blocks: 3x3 conv (padding 1) -> batch norm -> GLU (a 1x1 linear map of the block's
    output gated by its sigmoid) -> dropout -> average pooling. Then a bidirectional GRU, dropout,
    a frame-level sigmoid layer and the baseline's attention pooling: a softmax over classes,
    normalised over time, weighs the frame probabilities into clip probabilities.
    """

    def __init__(self, n_mels, n_classes, filters, pooling, rnn_hidden, dropout=0.5):
        super().__init__()
        blocks, channels, freq = [], 1, n_mels
        for out_channels, (pool_t, pool_f) in zip(filters, pooling, strict=True):
            blocks.append(
                nn.ModuleDict(
                    {
                        "conv": nn.Conv2d(channels, out_channels, 3, padding=1),
                        "bn": nn.BatchNorm2d(out_channels, eps=0.001, momentum=0.99),
                        "gate": nn.Linear(out_channels, out_channels),
                        "drop": nn.Dropout(dropout),
                        "pool": nn.AvgPool2d((pool_t, pool_f)),
                    }
                )
            )
            channels, freq = out_channels, freq // pool_f
        self.blocks = nn.ModuleList(blocks)
        self.gru = nn.GRU(channels * freq, rnn_hidden, 2, batch_first=True, bidirectional=True)
        self.drop = nn.Dropout(dropout)
        self.strong = nn.Linear(2 * rnn_hidden, n_classes)
        self.attention = nn.Linear(2 * rnn_hidden, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.transpose(1, 2).unsqueeze(1)  # [B, M, T] -> [B, 1, T, M]
        for b in self.blocks:
            x = b["bn"](b["conv"](x))
            linear = b["gate"](x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            x = b["pool"](b["drop"](linear * torch.sigmoid(x)))
        batch, channels, frames, freq = x.shape
        x = x.permute(0, 2, 1, 3).reshape(batch, frames, channels * freq)
        h = self.drop(self.gru(x)[0])
        strong = torch.sigmoid(self.strong(h))  # [B, T', C]
        weights = torch.softmax(self.attention(h), dim=-1).clamp(1e-7, 1.0)
        weak = (strong * weights).sum(1) / weights.sum(1)
        return strong, weak


def plain_loss(model: PlainCRNN, x: torch.Tensor, batch: Batch) -> torch.Tensor:
    strong, weak = model(x)
    frame = F.binary_cross_entropy(strong[batch.strong_mask], batch.strong[batch.strong_mask])
    clip = F.binary_cross_entropy(weak[batch.weak_mask], batch.weak[batch.weak_mask])
    return frame + clip


# ------------------------------------------------------------------------ timing
def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def build(config: str, device: str, tmp: Path) -> dict[str, Callable[[], object]]:
    """The four timed variants of one configuration."""
    plugins = Plugins.load(builtins_only=True, extra=[("bench", sys.modules[__name__])])
    overrides = ["data={name: bench_features}", f"trainer.device={device}"]
    if config == "baseline":
        overrides += [
            "features.n_mels=128",
            f"model.params.filters={BASELINE_FILTERS}",
            f"model.params.pooling={BASELINE_POOLING}",
            "model.params.rnn_hidden=128",
        ]
    loaded = load_recipe(RECIPE, overrides, plugins=plugins)
    run_dir = tmp / config
    run_dir.mkdir()
    trainer = Trainer(loaded, plugins, run_dir)
    trainer.setup(resume=False)
    trainer.modules.train()
    batch = trainer.data.train_loader(1)[0]
    on_device = batch.to(trainer.device)
    with torch.no_grad():
        x = trainer.extractor.extract(on_device)

    def sedkit_bare() -> None:
        with trainer.autocast():
            out = trainer.model(x)
            loss = sum(trainer.model.supervised_loss(out, on_device).values())
        loss.backward()
        trainer.model.zero_grad(set_to_none=True)

    mp, r = loaded.params["model"], loaded.recipe
    plain = PlainCRNN(r.features.n_mels, 10, mp.filters, mp.pooling, mp.rnn_hidden)
    plain.to(trainer.device).train()
    optimizer = torch.optim.Adam(plain.parameters(), lr=1e-3)

    def plain_bare() -> None:
        plain_loss(plain, x, on_device).backward()
        plain.zero_grad(set_to_none=True)

    def plain_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        plain_loss(plain, x, on_device).backward()
        nn.utils.clip_grad_norm_(plain.parameters(), r.trainer.grad_clip_norm)
        optimizer.step()

    return {
        "sedkit step": lambda: trainer.train_step(batch, 1, "train"),
        "sedkit fwd+bwd": sedkit_bare,
        "plain step": plain_step,
        "plain fwd+bwd": plain_bare,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=["recipe", "baseline"])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for config in args.configs:
            variants = build(config, args.device, Path(tmp))
            times: dict[str, list[float]] = {name: [] for name in variants}
            for i in range(args.warmup + args.rounds):
                for name, fn in variants.items():
                    t = timed(fn)
                    if i >= args.warmup:
                        times[name].append(t)
            rows.append((config, times))
    load_after = os.getloadavg()[0]

    print(
        f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, device {args.device}; batch 24 clips of 10 s; "
        f"{args.rounds} interleaved rounds after {args.warmup} warm-up; "
        f"1-minute load average {load_before:.1f} before, {load_after:.1f} after"
    )
    print("\n| config | variant | s/step (best) | s/step (median) | clips/s (best) |")
    print("|---|---|---:|---:|---:|")
    for config, times in rows:
        for name, t in times.items():
            best, median = min(t), statistics.median(t)
            print(f"| {config} | {name} | {best:.3f} | {median:.3f} | {24 / best:.1f} |")
    print()
    for config, times in rows:
        m = {k: min(v) for k, v in times.items()}
        overhead = m["sedkit step"] / m["sedkit fwd+bwd"]
        versus = m["sedkit step"] / m["plain step"]
        print(
            f"{config}: sedkit step / its fwd+bwd = {overhead:.3f} (target <= 1.15); "
            f"sedkit step / plain step = {versus:.3f} (target <= 1.0); "
            f"plain step / its fwd+bwd = {m['plain step'] / m['plain fwd+bwd']:.3f}"
        )


if __name__ == "__main__":
    main()
