"""Progress of a training epoch: a tqdm bar on a terminal, plain periodic log lines otherwise."""

from __future__ import annotations

import logging
import math
import sys
import time
from typing import Any

import torch

from sedkit import distributed as D

log = logging.getLogger("sedkit")


class Progress:
    """A tqdm bar on a terminal; plain periodic log lines otherwise."""

    def __init__(self, epoch: int, max_epochs: int, total: int, tp: Any):
        self.start = time.time()
        self.last_line = self.start
        self.every = tp.log_every_s
        self.desc = f"epoch {epoch}/{max_epochs}"
        self.total = total
        self.steps = 0
        self.bar = None
        self.last_postfix = 0.0
        if not D.is_main():
            self.every = math.inf
        elif tp.progress_bar and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.desc, unit="step", leave=False)

    def clips_per_s(self, n_clips: int) -> float:
        return n_clips / max(time.time() - self.start, 1e-9)

    def update(self, n_clips: int, losses: dict[str, torch.Tensor]) -> None:
        self.steps += 1
        if self.bar is not None:
            self.bar.update(1)
            if time.time() - self.last_postfix >= 1.0:  # float(loss) waits for the device
                self.last_postfix = time.time()
                self.bar.set_postfix(
                    loss=f"{float(losses['loss']):.4f}",
                    clips_per_s=f"{self.clips_per_s(n_clips):.1f}",
                )
        elif time.time() - self.last_line >= self.every:
            self.last_line = time.time()
            log.info(
                "%s step %d/%d loss %.4f clips/s %.1f",
                self.desc,
                self.steps,
                self.total,
                float(losses["loss"]),
                self.clips_per_s(n_clips),
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
