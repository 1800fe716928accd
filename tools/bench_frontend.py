"""Step time of the CRNN's front-end choices: which conv widths and first-block pooling cost what.

    python tools/bench_frontend.py [--threads 2] [--rounds 5] [--batch 24]

One training step (forward, frame + clip BCE, backward, Adam) of ``plugins/crnn/model.py`` on a
batch of 10 s clips as the DCASE 2019 family feeds it (64 mel bands x 313 frames), for each front
end below, and the conv blocks' forward + backward alone. Variants are timed in interleaved
rounds so that other jobs on a shared machine disturb all of them alike; the best round is
reported, with the load average.
"""

from __future__ import annotations

import argparse
import logging
import os
import time

import torch
import torch.nn.functional as F

from sedkit.components import ModelContext
from sedkit_plugins.crnn.model import CRNN, CRNNParams

LATER = [[2, 2], [1, 2], [1, 2], [1, 2], [1, 2], [1, 1]]
#: name -> (filters, pooling); the frequency factors of every variant multiply to 64.
FRONT_ENDS = {
    "16-32-64, pool 2x2 (15-epoch base)": ([16, 32, 64, 64, 64, 64, 64], [[2, 2], *LATER]),
    "16-32-32, pool 2x2": ([16, 32, 32, 64, 64, 64, 64], [[2, 2], *LATER]),
    "8-16-32, pool 2x2": ([8, 16, 32, 64, 64, 64, 64], [[2, 2], *LATER]),
    "16-32-64, pool 2x4": (
        [16, 32, 64, 64, 64, 64, 64],
        [[2, 4], [2, 2], [1, 2], [1, 2], [1, 2], [1, 1], [1, 1]],
    ),
    "8-16-32, pool 2x4 (40-epoch base)": (
        [8, 16, 32, 64, 64, 64, 64],
        [[2, 4], [2, 2], [1, 2], [1, 2], [1, 2], [1, 1], [1, 1]],
    ),
}


def build(filters: list[int], pooling: list[list[int]]) -> CRNN:
    context = ModelContext(
        task="sed", recipe_path=None, sample_rate=16000, seed=0, log=logging.getLogger(),
        n_classes=10, n_mels=64, n_frames=313,
    )  # fmt: skip
    params = CRNNParams(filters=filters, pooling=pooling, conv_dropout=0.1, rnn_hidden=64)
    return CRNN(params, context)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=24)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.batch, 64, 313)
    models = {name: build(*spec) for name, spec in FRONT_ENDS.items()}
    optimizers = {name: torch.optim.Adam(m.parameters()) for name, m in models.items()}
    frames = torch.rand(args.batch, 78, 10).round()
    step_s: dict[str, list[float]] = {name: [] for name in models}
    conv_s: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(args.rounds + 1):  # the first round warms up and is dropped below
        for name, model in models.items():
            started = time.perf_counter()
            out = model(x)
            loss = F.binary_cross_entropy_with_logits(out.frame_logits.float(), frames)
            loss = loss + F.binary_cross_entropy_with_logits(out.clip_logits, frames.amax(1))
            optimizers[name].zero_grad()
            loss.backward()
            optimizers[name].step()
            step_s[name].append(time.perf_counter() - started)
            started = time.perf_counter()
            conv_in = x.unsqueeze(1).transpose(2, 3).contiguous(memory_format=torch.channels_last)
            model.cnn(conv_in).sum().backward()
            conv_s[name].append(time.perf_counter() - started)
    print(f"threads {args.threads}, batch {args.batch}, best of {args.rounds} rounds, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print("| front end (filters; block-1 pooling) | step (s) | conv fwd+bwd (s) | parameters |")
    print("|---|---|---|---|")
    for name, model in models.items():
        n_params = sum(p.numel() for p in model.parameters())
        print(f"| {name} | {min(step_s[name][1:]):.3f} | {min(conv_s[name][1:]):.3f} | "
              f"{n_params:,} |")  # fmt: skip


if __name__ == "__main__":
    main()
