"""Recipes: YAML experiment descriptions, validated completely before any work starts.

A recipe names one component per part (``data``, ``model``, optionally ``pseudo_labeler`` and
``domain_adapter``, any number of ``callbacks``) with their ``params``, plus the ``features``,
``trainer``, ``decoding`` and ``run`` sections. ``extends: base.yaml`` (relative to the recipe)
merges the recipe over a base recipe: mappings merge key by key, anything else replaces.
Every problem (unknown or misspelled keys, wrong types, missing values, unknown plugins) is
reported at once, each with the recipe file and the dotted key, as one :class:`UserError`.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from sedkit.config import check_dataclass, to_plain
from sedkit.data.features import FeatureParams
from sedkit.errors import UserError
from sedkit.plugins import Plugins


@dataclass
class ComponentSpec:
    """``{name: NAME, params: {...}}``: a registered component and its parameters."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimizerParams:
    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.9  # sgd only

    def __post_init__(self) -> None:
        # Checked here so that a recipe with impossible values fails validation, before a run
        # directory exists, instead of in torch's optimizer constructor.
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {list(self.betas)}")
        if not self.momentum >= 0:
            raise ValueError(f"momentum must be >= 0, got {self.momentum}")


@dataclass
class SchedulerParams:
    """Learning-rate schedule (lecture notes): eta(t) for step or epoch t.

    power: eta0 / (1 + t/s)^c; exponential: eta0 * 0.1^(t/s); cosine: eta0 * (1+cos(pi t/T))/2;
    plateau: multiply by ``factor`` after ``patience`` validations without improvement of
    ``monitor`` (default: the trainer's monitor). ``warmup_steps`` ramps linearly from 0 first,
    eta0 * min(1, (t+1)/warmup_steps), in the schedule's own unit (steps or epochs).
    """

    name: Literal["none", "power", "exponential", "cosine", "plateau"] = "none"
    interval: Literal["step", "epoch"] = "epoch"
    s: float = 10.0
    c: float = 1.0
    factor: float = 0.1
    patience: int = 2
    warmup_steps: int = 0
    min_lr: float = 0.0
    monitor: str | None = None  # plateau: the metric watched (default: trainer.monitor)
    monitor_mode: Literal["max", "min"] | None = None  # default: trainer.monitor_mode

    def __post_init__(self) -> None:
        if self.s <= 0:
            raise ValueError(f"s must be > 0, got {self.s}")
        if not 0.0 < self.factor < 1.0:
            raise ValueError(f"factor must be in (0, 1), got {self.factor}")
        if self.patience < 0 or self.warmup_steps < 0:
            raise ValueError("patience and warmup_steps must be >= 0")


@dataclass
class TransferParams:
    """Transfer learning (lecture notes): start from a trained checkpoint, freeze the reused
    layers, train the rest, then unfreeze the reused layers with a lower learning rate.

    ``init_from``: a sedkit checkpoint (``checkpoints/best.pt``) or a saved ``state_dict`` of the
    model; parameters are loaded by name where the shapes agree, and the missing, unexpected and
    shape-mismatched keys are logged and written to ``transfer.json`` in the run directory.
    ``freeze``: glob patterns over parameter names as in the checkpoint, e.g. ``model.cnn`` or
    ``model.cnn.*`` (a pattern names a module and everything inside it). ``unfreeze_epoch``: the
    first epoch in which the frozen parameters train again, at ``unfreeze_lr_scale`` times the
    learning rate of the others.
    """

    init_from: str | None = None
    freeze: list[str] = field(default_factory=list)
    unfreeze_epoch: int | None = None
    unfreeze_lr_scale: float = 0.1

    def __post_init__(self) -> None:
        if self.unfreeze_epoch is not None and self.unfreeze_epoch < 1:
            raise ValueError(f"unfreeze_epoch must be >= 1, got {self.unfreeze_epoch}")
        if self.unfreeze_lr_scale <= 0:
            raise ValueError(f"unfreeze_lr_scale must be > 0, got {self.unfreeze_lr_scale}")
        if self.unfreeze_epoch is not None and not self.freeze:
            raise ValueError("unfreeze_epoch needs freeze patterns (nothing would be frozen)")


@dataclass
class TrainerParams:
    max_epochs: int = 10
    max_steps_per_epoch: int | None = None  # cap an epoch (quick experiments, tests)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: Literal["none", "bf16", "fp16"] = "bf16"  # autocast dtype on CUDA; the CPU runs fp32
    deterministic: bool = False
    optimizer: OptimizerParams = field(default_factory=OptimizerParams)
    scheduler: SchedulerParams = field(default_factory=SchedulerParams)
    grad_clip_norm: float | None = None  # max total L2 norm of all gradients
    grad_clip_value: float | None = None  # max |gradient| of every element (applied first)
    # Where grad_clip_norm applies: "component" clips the model, the pseudo-labeler and the domain
    # adapter each on its own norm, so a regulariser of one part (e.g. tri-training's Omega on
    # the labelers) cannot scale down the others' updates; "global" clips all on one norm.
    grad_clip_scope: Literal["component", "global"] = "component"
    transfer: TransferParams = field(default_factory=TransferParams)
    compile: bool = False  # torch.compile the model (CUDA recommended; first steps are slow)
    find_unused_parameters: bool = True  # DDP: heads unused in some stages get no gradient
    validate_every: int = 1  # epochs
    monitor: str = "event_f1_macro"
    monitor_mode: Literal["max", "min"] = "max"
    log_every_s: float = 30.0  # plain progress lines when stdout is not a terminal
    progress_bar: bool = True

    def __post_init__(self) -> None:
        if self.max_epochs < 1:
            raise ValueError(f"max_epochs must be >= 1, got {self.max_epochs}")
        if self.validate_every < 1:
            raise ValueError(f"validate_every must be >= 1, got {self.validate_every}")
        for name in ("grad_clip_norm", "grad_clip_value"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")


@dataclass
class DecodingParams:
    """Frame probabilities to events (SED)."""

    threshold: float = 0.5
    median_filter_s: float | dict[str, float] = 0.45  # one length, or one per class
    psds_thresholds: int = 50  # operating points written at the end of a run (psds*_psds_eval)
    psds_every_validation: bool = False  # PSDS at every validation (slower)

    def __post_init__(self) -> None:
        # A threshold outside [0, 1] decodes no event (or every frame) for probabilities.
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {self.threshold}")
        filters = (
            self.median_filter_s
            if isinstance(self.median_filter_s, dict)
            else {"": self.median_filter_s}
        )
        for label, seconds in filters.items():
            if not seconds >= 0:
                where = f"median_filter_s[{label!r}]" if label else "median_filter_s"
                raise ValueError(f"{where} must be >= 0 seconds, got {seconds}")
        if self.psds_thresholds < 1:
            raise ValueError(f"psds_thresholds must be >= 1, got {self.psds_thresholds}")


@dataclass
class RunParams:
    root: str = "runs"  # runs go to ROOT/<recipe name>/<timestamp>
    name: str | None = None  # default: the recipe file's stem
    dir: str | None = None  # an explicit run directory (must not exist)


@dataclass
class Recipe:
    data: ComponentSpec
    model: ComponentSpec
    task: Literal["sed", "classification"] = "sed"
    description: str = ""
    seed: int = 42
    features: FeatureParams = field(default_factory=FeatureParams)
    pseudo_labeler: ComponentSpec | None = None
    domain_adapter: ComponentSpec | None = None
    callbacks: list[ComponentSpec] = field(default_factory=list)
    trainer: TrainerParams = field(default_factory=TrainerParams)
    decoding: DecodingParams = field(default_factory=DecodingParams)
    run: RunParams = field(default_factory=RunParams)


#: recipe section -> registry kind, for the single components
COMPONENT_SECTIONS = {
    "data": "data",
    "model": "model",
    "pseudo_labeler": "pseudo_labeler",
    "domain_adapter": "domain_adapter",
}


@dataclass
class LoadedRecipe:
    """A validated recipe: the schema object, each component's class and checked params."""

    path: Path
    recipe: Recipe
    classes: dict[str, type]  # "model", "data", ..., "callbacks[0]" -> class
    params: dict[str, Any]  # same keys -> Params instance

    @property
    def name(self) -> str:
        return self.recipe.run.name or self.path.stem

    def resolved(self) -> dict[str, Any]:
        """The full recipe with every default filled in, as plain data."""
        plain = to_plain(self.recipe)
        for key, params in self.params.items():
            target = plain
            if key.startswith("callbacks["):
                target = plain["callbacks"][int(key[len("callbacks[") : -1])]
            else:
                target = plain[key]
            target["params"] = to_plain(params)
        return plain


# ------------------------------------------------------------------------------------ loading
class _RecipeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` (plain data only, no object built from a tag) that refuses a key
    given twice in one mapping: plain YAML keeps the last value silently, so a recipe that sets
    ``max_epochs`` twice would run with whichever came later. Keys brought in by a merge key
    (``<<: *base``) may still be overridden."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:  # an unhashable key: the base class reports it
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"duplicate key {key!r}",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: recipe file not found") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read recipe: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UserError(
            f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}, line {line}); "
            "save the recipe as UTF-8"
        ) from None
    try:
        data = yaml.load(text, Loader=_RecipeLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{where}: invalid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(
            f"{path}: a recipe must be a mapping of sections, got {type(data).__name__}"
        )
    return data


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` merged into a copy of ``base``: mappings key by key, other values replace.

    A component section whose ``name`` changes replaces its ``params`` instead of merging them.
    """
    out = copy.deepcopy(base)
    for key, value in over.items():
        old = out.get(key)
        if isinstance(old, dict) and isinstance(value, dict):
            if "name" in value and "name" in old and value["name"] != old["name"]:
                out[key] = copy.deepcopy(value)
            else:
                out[key] = deep_merge(old, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_recipe(path: Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The recipe at ``path`` with its ``extends`` chain merged in, as plain data."""
    path = path.resolve()
    if path in _chain:
        raise UserError(f"{path}: 'extends' forms a cycle: {' -> '.join(map(str, _chain))}")
    data = _read_yaml(path)
    base_name = data.pop("extends", None)
    if base_name is None:
        return data
    if not isinstance(base_name, str):
        raise UserError(f"{path}: extends: expected a file name, got {base_name!r}")
    base_path = (path.parent / base_name).resolve()
    if not base_path.is_file():
        raise UserError(f"{path}: extends: base recipe {base_name!r} not found ({base_path})")
    return deep_merge(read_recipe(base_path, (*_chain, path)), data)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` -> (["a", "b", "c"], value parsed as YAML)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UserError(f"override {text!r}: expected KEY=VALUE, e.g. trainer.max_epochs=3")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> tuple[dict[str, Any], set[str]]:
    """Set each ``KEY=VALUE``; returns the new data and the dotted keys set."""
    data = copy.deepcopy(data)
    keys = set()
    for text in overrides:
        parts, value = parse_override(text)
        node = data
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise UserError(f"override {text!r}: {'.'.join(parts[: i + 1])} is not a section")
            node = child
        node[parts[-1]] = value
        keys.add(".".join(parts))
    return data, keys


def load_recipe(
    path: str | Path, overrides: list[str] | None = None, *, plugins: Plugins
) -> LoadedRecipe:
    """Read, merge, override and validate a recipe. Raises one UserError listing every problem."""
    path = Path(path)
    data = read_recipe(path)
    data, override_keys = apply_overrides(data, overrides or [])
    messages, recipe, classes, params = validate(data, plugins)
    if messages:
        lines = []
        for msg in messages:
            key = msg.split(":", 1)[0]
            note = " (from the command line)" if key in override_keys else ""
            lines.append(f"{path}: {msg}{note}")
        count = len(lines)
        header = f"{path}: {count} problem{'s' if count > 1 else ''} in the recipe"
        raise UserError(header + "\n  " + "\n  ".join(lines), problems=lines)
    return LoadedRecipe(path=path, recipe=recipe, classes=classes, params=params)


def validate(
    data: dict[str, Any], plugins: Plugins
) -> tuple[list[str], Recipe | None, dict[str, type], dict[str, Any]]:
    """Check recipe data against the schema and each component's ``Params``.

    Returns (problem messages, the recipe or None, component classes, checked params).
    """
    messages: list[str] = []
    recipe, recipe_problems = check_dataclass(Recipe, data, "")
    messages += recipe_problems
    classes: dict[str, type] = {}
    params: dict[str, Any] = {}

    def component(key: str, kind: str, spec: Any) -> None:
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            return  # the schema check above reported it
        try:
            cls = plugins.component(kind, spec["name"], key=f"{key}.name")
        except UserError as exc:
            messages.append(str(exc))
            return
        checked, problems = check_dataclass(cls.Params, spec.get("params") or {}, f"{key}.params")
        messages.extend(problems)
        extra_check = getattr(cls, "validate_params", None)
        if checked is not None and extra_check is not None:
            messages.extend(extra_check(checked, f"{key}.params"))
        classes[key], params[key] = cls, checked

    for section, kind in COMPONENT_SECTIONS.items():
        if data.get(section) is not None:
            component(section, kind, data[section])
    callbacks = data.get("callbacks")
    if isinstance(callbacks, list):
        for i, spec in enumerate(callbacks):
            component(f"callbacks[{i}]", "callback", spec)
    if recipe is not None and messages:
        recipe = None
    return list(dict.fromkeys(messages)), recipe, classes, params


def replace_params(loaded: LoadedRecipe, key: str, **changes: Any) -> None:
    """Change checked params of one component (tools and tests)."""
    loaded.params[key] = dataclasses.replace(loaded.params[key], **changes)
