"""Transfer learning: partial loading of a trained checkpoint by name, freezing by name pattern.

Names are those of the trainer's modules, as in a sedkit checkpoint's ``modules`` entry:
``model.cnn.0.0.weight``, ``pseudo_labeler.heads.1.weight``. A saved plain ``state_dict`` of a
model (names without the ``model.`` prefix) is accepted too. Loading by name keeps every
parameter whose name and shape agree and reports the rest, so a model with a new head (another
number of classes) starts from the reused layers and a fresh head.
"""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sedkit.checkpoint import load_checkpoint
from sedkit.errors import UserError

__all__ = ["TransferReport", "load_partial", "matching_parameters", "read_state_dict"]


@dataclass
class TransferReport:
    """What ``load_partial`` did: loaded keys and the keys it could not use, with reasons."""

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # in the modules, not in the checkpoint
    unexpected: list[str] = field(default_factory=list)  # in the checkpoint, not in the modules
    mismatched: dict[str, str] = field(default_factory=dict)  # name -> "checkpoint X vs model Y"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"init_from {self.source}: loaded {len(self.loaded)} tensors; "
            f"missing {len(self.missing)} {self.missing}; "
            f"unexpected {len(self.unexpected)} {self.unexpected}; "
            f"shape mismatch {len(self.mismatched)} {self.mismatched}"
        )


def read_state_dict(path: str | Path, module_names: list[str]) -> dict[str, torch.Tensor]:
    """The named tensors of a sedkit checkpoint or a plain ``state_dict`` file.

    A plain state dict whose names start with none of ``module_names`` (``model``,
    ``pseudo_labeler``, ...) is taken as the model's own and gets the ``model.`` prefix.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"trainer.transfer.init_from: checkpoint not found: {path}")
    state = load_checkpoint(path, map_location="cpu")
    if isinstance(state.get("modules"), dict):
        state = state["modules"]
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise UserError(f"trainer.transfer.init_from: {path} holds no named tensors")
    prefixes = tuple(f"{name}." for name in module_names)
    if not any(k.startswith(prefixes) for k in tensors):
        tensors = {f"model.{k}": v for k, v in tensors.items()}
    return tensors


def load_partial(modules: nn.Module, path: str | Path) -> TransferReport:
    """Copy into ``modules`` every tensor of the checkpoint at ``path`` whose name and shape
    match; report the missing, unexpected and shape-mismatched names."""
    own = modules.state_dict()
    names = [name for name, _ in modules.named_children()]
    source = read_state_dict(path, names)
    report = TransferReport(source=str(path))
    usable = {}
    for key, value in source.items():
        if key not in own:
            report.unexpected.append(key)
        elif own[key].shape != value.shape:
            report.mismatched[key] = (
                f"checkpoint {list(value.shape)} vs model {list(own[key].shape)}"
            )
        else:
            usable[key] = value
    report.missing = [k for k in own if k not in usable and k not in report.mismatched]
    report.loaded = sorted(usable)
    if not usable:
        raise UserError(
            f"trainer.transfer.init_from: no tensor of {path} matches the model by name and "
            f"shape (first names there: {sorted(source)[:3]}, here: {sorted(own)[:3]})"
        )
    modules.load_state_dict(usable, strict=False)
    return report


def matching_parameters(modules: nn.Module, patterns: list[str]) -> list[str]:
    """Names of the parameters of ``modules`` matched by any glob pattern; a pattern also
    matches everything inside the module it names. A pattern matching nothing is an error
    (most likely a typo), reported with a few of the names that exist."""
    names = [name for name, _ in modules.named_parameters()]
    matched: set[str] = set()
    for pattern in patterns:
        hits = {n for n in names if fnmatch.fnmatchcase(n, pattern)}
        hits |= {n for n in names if fnmatch.fnmatchcase(n, pattern.rstrip(".") + ".*")}
        if not hits:
            modules_here = sorted({n.rsplit(".", 2)[0] for n in names})[:8]
            raise UserError(
                f"trainer.transfer.freeze: pattern {pattern!r} matches no parameter; "
                f"module names look like {modules_here}"
            )
        matched |= hits
    return [n for n in names if n in matched]
