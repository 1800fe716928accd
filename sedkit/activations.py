"""Activation layers by name, for the models' ``activation`` parameter (several model plugins
share the names, so a recipe spells them the same way for every model)."""

from __future__ import annotations

from typing import Literal

from torch import nn

Activation = Literal["relu", "leaky_relu", "elu", "selu"]


def activation_layer(name: str, *, leaky_slope: float = 0.2) -> nn.Module:
    """A new activation layer called ``name``; ``leaky_relu`` has slope ``leaky_slope`` for
    negative inputs (PyTorch models often use 0.2, Keras' default is 0.3)."""
    layers = {
        "relu": nn.ReLU,
        "leaky_relu": lambda: nn.LeakyReLU(leaky_slope),
        "elu": nn.ELU,
        "selu": nn.SELU,
    }
    if name not in layers:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(layers)}")
    return layers[name]()
