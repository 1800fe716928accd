"""Monte-Carlo dropout (Gal and Ghahramani, 2016): stochastic forward passes for uncertainty.

During the passes every dropout layer is active and every other module is in eval mode, so
batch norm normalises with its running statistics and does not update them: the passes measure
the model's epistemic uncertainty without changing the model. Afterwards every module's
``training`` flag is restored exactly as it was (a mix of train and eval modules included).

Only modules derived from ``torch.nn.modules.dropout._DropoutNd`` (``Dropout``,
``Dropout1d/2d/3d``, ``AlphaDropout``, ``FeatureAlphaDropout``) are switched on. The inter-layer
dropout inside ``nn.GRU``/``nn.LSTM`` follows the RNN module's own flag and stays off.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.dropout import _DropoutNd

__all__ = ["eval_mode", "mc_dropout_mode", "mc_dropout_passes", "mean_and_std"]


@contextlib.contextmanager
def _restored_modes(model: nn.Module) -> Iterator[None]:
    """Put every module's ``training`` flag back on exit (also after an exception)."""
    modes = {module: module.training for module in model.modules()}
    try:
        yield
    finally:
        # Module.train() would recurse into children; set each flag on its own instead.
        for module, mode in modes.items():
            module.training = mode


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Inside the block: every module in eval mode (dropout off, batch norm frozen); on exit
    each module's ``training`` flag is restored."""
    with _restored_modes(model):
        model.eval()
        yield model


@contextlib.contextmanager
def mc_dropout_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Inside the block: dropout layers in train mode, all other modules in eval mode.

    On exit (also after an exception) each module's ``training`` flag is set back to its value
    on entry. Batch-norm running statistics are not touched because batch norm is in eval mode.
    """
    with _restored_modes(model):
        model.eval()
        for module in model.modules():
            if isinstance(module, _DropoutNd):
                module.train(True)
        yield model


def mc_dropout_passes(
    model: nn.Module,
    features: Tensor,
    n_passes: int,
    *,
    select: Callable[[Any], Tensor | tuple[Tensor, ...]],
    batched: bool = True,
) -> Tensor | tuple[Tensor, ...]:
    """``n_passes`` stochastic forward passes of ``features`` with dropout active, batch norm in
    eval mode and no gradients; returns ``select(output)`` of each pass stacked to
    ``[n_passes, B, ...]``.

    ``select`` picks the tensor of interest from the model's output (e.g.
    ``lambda out: out.clip_logits``); when it returns a tuple of tensors (clip and frame
    outputs), so does this function, each stacked over the passes. ``batched=True`` runs one
    forward pass on the input repeated ``n_passes`` times (as FMUC does: each weak view is
    repeated N times per batch); dropout draws an independent mask per row and batch norm in
    eval mode treats rows independently, so this equals ``n_passes`` separate passes in
    distribution while making better use of a GPU. ``batched=False`` runs the passes one after
    another (less memory).
    """
    if n_passes < 1:
        raise ValueError(f"n_passes must be >= 1, got {n_passes}")
    b = features.shape[0]
    with mc_dropout_mode(model), torch.no_grad():
        if batched:
            repeated = features.repeat(n_passes, *([1] * (features.dim() - 1)))
            values = select(model(repeated))
            if isinstance(values, tuple):
                return tuple(v.reshape(n_passes, b, *v.shape[1:]) for v in values)
            return values.reshape(n_passes, b, *values.shape[1:])
        passes = [select(model(features)) for _ in range(n_passes)]
    if isinstance(passes[0], tuple):
        return tuple(torch.stack(parts) for parts in zip(*passes, strict=True))
    return torch.stack(passes)


def mean_and_std(samples: Tensor, *, unbiased: bool = False) -> tuple[Tensor, Tensor]:
    """Mean and standard deviation over the first axis (the passes) of ``samples``.

    ``unbiased=False`` divides by N (numpy's default ``np.std``); ``unbiased=True`` by N - 1.
    With a single pass the standard deviation is defined as 0 for both.
    """
    mean = samples.mean(dim=0)
    if samples.shape[0] == 1:
        return mean, torch.zeros_like(mean)
    return mean, samples.std(dim=0, correction=1 if unbiased else 0)
