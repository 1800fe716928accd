"""One training step as a module, and inference for components, both on the trainer's device
with its feature extraction and autocast."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn

from sedkit import components as C


class TrainerPredictor(C.Predictor):
    """Inference for components: eval mode, no gradients, features and autocast as training.

    ``trainer`` needs ``modules``, ``model``, ``extractor``, ``device`` and ``autocast()``."""

    def __init__(self, trainer: Any):
        self.trainer = trainer

    def predict(self, loader: Iterable[C.Batch]) -> Iterator[tuple[C.Batch, C.ModelOutput]]:
        t = self.trainer
        modes = {m: m.training for m in t.modules.modules()}
        t.modules.eval()
        try:
            with torch.no_grad():
                for batch in loader:
                    batch = batch.to(t.device, non_blocking=True)
                    with t.autocast():
                        out = t.model(t.extractor.extract(batch))
                    yield batch, out
        finally:
            for module, mode in modes.items():
                module.train(mode)


class LossStep(nn.Module):
    """The loss of one training step as a module's forward, so that DistributedDataParallel
    sees the whole computation (model, pseudo-labeler, domain adapter) and averages every
    gradient. ``last_step`` keeps the :class:`Step` for ``after_optimizer_step``."""

    def __init__(self, parts: nn.ModuleDict, forward_model: Callable[..., C.ModelOutput]):
        super().__init__()
        self.parts = parts
        self.__dict__["forward_model"] = forward_model  # maybe compiled; not a second submodule
        self.last_step: C.Step | None = None

    def forward(
        self, x: torch.Tensor, batch: C.Batch, epoch: int, global_step: int, progress: float,
        stage: str,
    ) -> dict[str, torch.Tensor]:  # fmt: skip
        model = self.parts["model"]
        out = self.forward_model(x)
        step = C.Step(model, x, out, batch, epoch, global_step, progress, stage)
        losses = dict(model.supervised_loss(out, batch))
        for key in ("pseudo_labeler", "domain_adapter"):
            if key in self.parts:
                terms = self.parts[key].loss(step)
                clash = set(terms) & set(losses)
                if clash:
                    raise RuntimeError(f"loss terms named twice: {sorted(clash)}")
                losses.update(terms)
        self.last_step = step
        return losses
