"""Magnitude pruning on a polynomial-decay schedule, and model size as non-zero parameters.

Usable with any model. What is pruned: the weights (kernels) of convolution and dense layers,
each layer on its own (per-layer, not global, magnitude ranking); biases and batch-norm values
are never pruned. A mask keeps exactly ``round(n * (1 - s))`` weights of largest magnitude in a
layer of ``n`` weights at target sparsity ``s`` (at least one, like TensorFlow Model
Optimization's ``prune_low_magnitude``, which the pruned-ensemble paper used). The mask is
computed directly from the target sparsity, so repeated updates never compound (repeated
``torch.nn.utils.prune`` calls would prune a fraction of the *remaining* weights instead).

The schedule (Zhu and Gupta 2018; pruned-ensemble paper eq. 1; METHODS.md section 5) is
``s_t = s_f + (s_i - s_f) (1 - p)^3`` with ``p = clip((t - t0) / (n dt), 0, 1)``; masks are
updated only at epochs ``t0, t0 + dt, ..., t0 + n dt`` and stay fixed in between.

Size (DCASE 2020 task 1B rule, METHODS.md section 5): every parameter and every batch-norm
running statistic (``running_mean``, ``running_var``; not the integer ``num_batches_tracked``)
counts, 4 bytes each (32-bit floats); a pruned model's size counts its non-zero values only.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _NormBase
from torch.nn.modules.conv import _ConvNd

#: Bytes per counted value: the DCASE 2020 task 1B size rule assumes 32-bit floats.
BYTES_PER_VALUE = 4


# --------------------------------------------------------------------------------------------
# Schedule
# --------------------------------------------------------------------------------------------
@dataclass
class PolynomialDecaySchedule:
    """Target sparsity over epochs (counted from 1, like the trainer's epochs).

    ``initial_sparsity`` s_i and ``final_sparsity`` s_f; masks are updated at epochs
    ``begin_epoch + j * frequency_epochs`` for j = 0..``n_pruning_steps`` (so n + 1 updates,
    the last at :attr:`end_epoch`). Epoch t trains under the masks of the last update at or
    before t: the paper's eq. 1 holds s fixed from one update to the next. Defaults: the
    pruned-ensemble paper (s_i 0.1, s_f 0.8, t0 100, n 20, dt 10).
    """

    initial_sparsity: float = 0.1
    final_sparsity: float = 0.8
    begin_epoch: int = 100
    n_pruning_steps: int = 20
    frequency_epochs: int = 10
    exponent: float = 3.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.initial_sparsity <= self.final_sparsity < 1.0:
            raise ValueError(
                "sparsities must satisfy 0 <= initial_sparsity <= final_sparsity < 1, got "
                f"{self.initial_sparsity} and {self.final_sparsity}"
            )
        if self.begin_epoch < 1:
            raise ValueError(f"begin_epoch: epochs count from 1, got {self.begin_epoch}")
        if self.n_pruning_steps < 0:
            raise ValueError(f"n_pruning_steps must be >= 0, got {self.n_pruning_steps}")
        if self.frequency_epochs < 1:
            raise ValueError(f"frequency_epochs must be >= 1, got {self.frequency_epochs}")
        if self.exponent <= 0:
            raise ValueError(f"exponent must be > 0, got {self.exponent}")

    @property
    def end_epoch(self) -> int:
        """The epoch of the last mask update (t0 + n dt)."""
        return self.begin_epoch + self.n_pruning_steps * self.frequency_epochs

    def sparsity(self, t: float) -> float:
        """Eq. 1 at (possibly fractional) epoch ``t``; s_i before t0, s_f after t0 + n dt."""
        span = self.n_pruning_steps * self.frequency_epochs
        p = 1.0 if span == 0 else min(max((t - self.begin_epoch) / span, 0.0), 1.0)
        return (
            self.final_sparsity
            + (self.initial_sparsity - self.final_sparsity) * (1.0 - p) ** self.exponent
        )

    def update_epochs(self) -> list[int]:
        """The epochs at which masks are recomputed."""
        return [
            self.begin_epoch + j * self.frequency_epochs for j in range(self.n_pruning_steps + 1)
        ]

    def is_update_epoch(self, epoch: int) -> bool:
        offset = epoch - self.begin_epoch
        return 0 <= offset <= self.end_epoch - self.begin_epoch and (
            offset % self.frequency_epochs == 0
        )

    def sparsity_in_effect(self, epoch: int) -> float:
        """Target sparsity of the masks that epoch ``epoch`` trains under (0 before t0)."""
        if epoch < self.begin_epoch:
            return 0.0
        last = min(epoch, self.end_epoch)
        last -= (last - self.begin_epoch) % self.frequency_epochs
        return self.sparsity(last)


# --------------------------------------------------------------------------------------------
# Masks
# --------------------------------------------------------------------------------------------
def prunable_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    """The weights of every convolution and dense layer, by parameter name (no biases, no
    normalisation layers, no recurrent weights)."""
    found: dict[str, nn.Parameter] = {}
    for name, module in model.named_modules():
        if isinstance(module, _ConvNd | nn.Linear):
            weight = module._parameters.get("weight")
            if isinstance(weight, nn.Parameter):
                found[f"{name}.weight" if name else "weight"] = weight
    return found


def kept_count(n_weights: int, sparsity: float) -> int:
    """Weights a layer of ``n_weights`` keeps at ``sparsity``: round(n (1 - s)), at least 1.

    Python's round (half to even) matches ``tf.math.round`` used by TensorFlow Model
    Optimization.
    """
    if n_weights == 0:
        return 0
    return min(n_weights, max(1, round(n_weights * (1.0 - sparsity))))


def magnitude_mask(weight: Tensor, sparsity: float) -> Tensor:
    """Boolean mask keeping the :func:`kept_count` weights of largest magnitude."""
    keep = kept_count(weight.numel(), sparsity)
    flat = weight.detach().abs().flatten()
    mask = torch.zeros_like(flat, dtype=torch.bool)
    if keep > 0:
        mask[torch.topk(flat, keep, sorted=False).indices] = True
    return mask.view_as(weight)


def compute_masks(model: nn.Module, sparsity: float) -> dict[str, Tensor]:
    """Per-layer magnitude masks at ``sparsity`` for every prunable weight of ``model``."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    return {name: magnitude_mask(w, sparsity) for name, w in prunable_weights(model).items()}


def apply_masks(model: nn.Module, masks: Mapping[str, Tensor]) -> None:
    """Set the masked-out weights to zero, in place (after every optimizer step)."""
    params = dict(model.named_parameters())
    missing = [name for name in masks if name not in params]
    if missing:
        raise KeyError(f"pruning masks name parameters the model lacks: {missing[:5]}")
    with torch.no_grad():
        for name, mask in masks.items():
            weight = params[name]
            if mask.shape != weight.shape:
                raise ValueError(
                    f"pruning mask for {name} has shape {tuple(mask.shape)}, "
                    f"the weight {tuple(weight.shape)}"
                )
            weight.masked_fill_(~mask.to(weight.device, torch.bool), 0.0)


def make_permanent(model: nn.Module, masks: Mapping[str, Tensor] | None = None) -> None:
    """Zero the masked weights for good and drop any pruning reparametrisation.

    With ``masks`` (as kept by the ``pruning`` callback) the weights are masked a last time;
    modules pruned with ``torch.nn.utils.prune`` (``weight_orig`` and a forward pre-hook) get
    plain ``weight`` parameters back. Afterwards the model is an ordinary model whose zeros are
    ordinary values: nothing else needs to be kept to reproduce it.
    """
    from torch.nn.utils import prune

    if masks:
        apply_masks(model, masks)
    for module in model.modules():
        for name in [n[: -len("_orig")] for n in module._parameters if n.endswith("_orig")]:
            if prune.is_pruned(module):
                prune.remove(module, name)


# --------------------------------------------------------------------------------------------
# Counting
# --------------------------------------------------------------------------------------------
def counted_tensors(model: nn.Module) -> Iterator[tuple[str, Tensor]]:
    """Every value the size rule counts: parameters (each shared tensor once) and the running
    mean and variance of normalisation layers. ``num_batches_tracked`` is an integer counter
    with no Keras counterpart and is not counted."""
    yield from model.named_parameters()
    for name, module in model.named_modules():
        if isinstance(module, _NormBase) and module.track_running_stats:
            prefix = f"{name}." if name else ""
            for stat in ("running_mean", "running_var"):
                value = getattr(module, stat, None)
                if value is not None:
                    yield prefix + stat, value


def count_parameters(model: nn.Module) -> int:
    """Parameters plus batch-norm running statistics (the Keras parameter count)."""
    return sum(t.numel() for _, t in counted_tensors(model))


def count_nonzero_parameters(model: nn.Module) -> int:
    """Non-zero values among those :func:`count_parameters` counts."""
    return sum(int(torch.count_nonzero(t.detach())) for _, t in counted_tensors(model))


def size_kb(n_values: int) -> float:
    """Size in KB (1024 bytes) of ``n_values`` 32-bit values."""
    return n_values * BYTES_PER_VALUE / 1024


def weight_sparsity(model: nn.Module) -> float:
    """Fraction of zeros among the prunable weights (conv and dense kernels)."""
    weights = list(prunable_weights(model).values())
    total = sum(w.numel() for w in weights)
    if total == 0:
        return 0.0
    zeros = sum(w.numel() - int(torch.count_nonzero(w.detach())) for w in weights)
    return zeros / total


@dataclass
class ModelSize:
    """Parameter counts and sizes of a model (see the module docstring for what counts)."""

    parameters: int
    nonzero_parameters: int
    size_kb: float
    nonzero_size_kb: float
    weight_sparsity: float


def model_size(model: nn.Module) -> ModelSize:
    """All counts at once, for reports."""
    total = count_parameters(model)
    nonzero = count_nonzero_parameters(model)
    return ModelSize(
        parameters=total,
        nonzero_parameters=nonzero,
        size_kb=size_kb(total),
        nonzero_size_kb=size_kb(nonzero),
        weight_sparsity=weight_sparsity(model),
    )
