"""The ``ensemble`` model: the mean of its members' class probabilities (pruned-ensemble paper).

Members are any registered classification models, given as component specs
(``{name, params, repeat}``); the default is the paper's Model 4 set, five V(2,2,3,3) and one
I(2,1,2). Member ``i`` (counting repeats) is initialised under ``torch.manual_seed(seed + i)``,
so repeated members start from different random weights.

Training in one run: the loss holds each member's own terms (``member{i}_ce``,
``member{i}_l2``, ...). Members share no parameters, so the gradient of the summed loss with
respect to member i's parameters is exactly the gradient of member i's own loss: the members
learn independently. With Adam (per-parameter updates) this equals training each member
separately on the same batches. (A global gradient-norm clip would couple them; the paper used
none.)

Prediction: ``clip_logits = log(mean_i softmax(logits_i))``, so the softmax the trainer
applies recovers the mean probability exactly and its argmax is the ensemble's decision.
Size: the members' non-zero parameters together (:mod:`.pruning` counts the whole module).

``init_from`` builds the members from trained runs instead: one run directory (its
``checkpoints/best.pt``, else ``last.pt``) or checkpoint file per member, in member order,
loaded from the checkpoint's ``modules`` dict under the ``model.`` prefix.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from sedkit import hookimpl
from sedkit.checkpoint import load_checkpoint
from sedkit.components import Batch, Model, ModelContext, ModelOutput
from sedkit.config import check_dataclass
from sedkit.errors import UserError


@dataclass
class EnsembleMember:
    """One entry of ``members``: a registered model, its params, and how many copies."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    repeat: int = 1

    def __post_init__(self) -> None:
        if self.repeat < 1:
            raise ValueError(f"repeat must be >= 1, got {self.repeat}")


def _paper_members() -> list[EnsembleMember]:
    return [EnsembleMember("vgg", {}, 5), EnsembleMember("inception", {}, 1)]


@dataclass
class EnsembleParams:
    """Members (default: 5 x vgg + 1 x inception) and, optionally, checkpoints to load."""

    members: list[EnsembleMember] = field(default_factory=_paper_members)
    init_from: list[str] = field(default_factory=list)  # run dirs or checkpoint files

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("members: an ensemble needs at least one member")
        n_members = sum(m.repeat for m in self.members)
        if self.init_from and len(self.init_from) != n_members:
            raise ValueError(
                f"init_from: {len(self.init_from)} checkpoints for {n_members} members "
                "(one per member, repeats counted)"
            )


@dataclass
class EnsembleOutput(ModelOutput):
    """The ensemble's output, with each member's own output for the members' losses."""

    members: list[ModelOutput] = field(default_factory=list)


def member_classes(
    params: EnsembleParams, key: str = "model.params"
) -> list[tuple[type, Any, str]]:
    """(class, checked params, recipe key) per member, repeats expanded.

    Raises one :class:`UserError` listing every problem (unknown model names, bad params).
    """
    from sedkit.plugins import get_plugins

    plugins = get_plugins()
    problems: list[str] = []
    found: list[tuple[type, Any, str]] = []
    for i, member in enumerate(params.members):
        member_key = f"{key}.members[{i}]"
        try:
            cls = plugins.component("model", member.name, key=f"{member_key}.name")
        except UserError as exc:
            problems.append(str(exc))
            continue
        if cls is Ensemble:
            problems.append(f"{member_key}.name: an ensemble cannot contain an ensemble")
            continue
        checked, member_problems = check_dataclass(
            cls.Params, member.params, f"{member_key}.params"
        )
        problems += member_problems
        if checked is not None:
            found += [(cls, checked, member_key)] * member.repeat
    if problems:
        raise UserError(
            f"{key}.members: {len(problems)} problem(s)\n  " + "\n  ".join(problems),
            problems=problems,
        )
    return found


def checkpoint_path(entry: str, recipe_path: Path | None = None) -> Path:
    """A checkpoint file from a run directory (best.pt, else last.pt) or a file path.

    Relative paths are tried against the working directory, then the recipe's folder.
    """
    path = Path(entry).expanduser()
    if not path.is_absolute() and not path.exists() and recipe_path is not None:
        path = Path(recipe_path).parent / path
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            candidate = path / "checkpoints" / name
            if candidate.is_file():
                return candidate
        raise UserError(f"{entry}: run directory without checkpoints/best.pt or last.pt")
    return path


def load_member_weights(member: nn.Module, path: Path, key: str) -> None:
    """Load ``member`` from a sedkit checkpoint's ``modules`` under the ``model.`` prefix."""
    state = load_checkpoint(path)
    modules = state.get("modules") if isinstance(state, dict) else None
    if not isinstance(modules, dict):
        raise UserError(f"{key}: {path} is not a sedkit training checkpoint (no 'modules')")
    weights = {k[len("model.") :]: v for k, v in modules.items() if k.startswith("model.")}
    result = member.load_state_dict(weights, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise UserError(
            f"{key}: {path} does not hold this member's model: missing "
            f"{result.missing_keys[:4]}, unexpected {result.unexpected_keys[:4]}"
        )


class Ensemble(Model):
    """Mean of the members' class probabilities; see the module docstring."""

    Params = EnsembleParams

    @classmethod
    def validate_params(cls, params: EnsembleParams, key: str) -> list[str]:
        """Members' names and params are checked with the rest of the recipe."""
        try:
            member_classes(params, key)
        except UserError as exc:
            return exc.problems or [str(exc)]
        return []

    def __init__(self, params: EnsembleParams, context: ModelContext):
        super().__init__(params, context)
        if context.task != "classification":
            raise UserError("model: the ensemble averages class probabilities (classification)")
        members = []
        for i, (cls, member_params, _) in enumerate(member_classes(params)):
            with torch.random.fork_rng(devices=[]):  # leave the caller's generator alone
                torch.manual_seed(context.seed + i)
                members.append(
                    cls(member_params, dataclasses.replace(context, seed=context.seed + i))
                )
        self.members = nn.ModuleList(members)
        self.feature_dim = sum(getattr(m, "feature_dim", 0) for m in members)
        for i, entry in enumerate(params.init_from):
            key = f"model.params.init_from[{i}]"
            load_member_weights(self.members[i], checkpoint_path(entry, context.recipe_path), key)

    def forward(self, features: Tensor) -> EnsembleOutput:
        outputs = [member(features) for member in self.members]
        with torch.autocast(device_type=features.device.type, enabled=False):
            probs = torch.stack([torch.softmax(o.clip_logits.float(), dim=-1) for o in outputs])
            mean = probs.mean(dim=0)
            clip_logits = torch.log(mean.clamp_min(torch.finfo(mean.dtype).tiny))
        hs = [o.h for o in outputs]
        h = torch.cat(hs, dim=-1) if all(x is not None for x in hs) else None
        return EnsembleOutput(clip_logits=clip_logits, h=h, members=outputs)

    def supervised_loss(self, out: ModelOutput, batch: Batch) -> dict[str, Tensor]:
        if not isinstance(out, EnsembleOutput) or len(out.members) != len(self.members):
            raise TypeError("ensemble loss: expected this ensemble's own output")
        terms: dict[str, Tensor] = {}
        for i, (member, member_out) in enumerate(zip(self.members, out.members, strict=True)):
            for name, value in member.supervised_loss(member_out, batch).items():
                terms[f"member{i}_{name}"] = value
        return terms


@hookimpl
def sedkit_register_models(register):
    register("ensemble", Ensemble)
