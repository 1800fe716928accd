"""Reading what a run directory holds, tolerating a run that failed or is still running.

Every reader returns plain data (dicts, lists) and an empty value when its file is absent, so
the report, the plots and ``sedkit compare`` can show whatever exists.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sedkit.errors import UserError

#: Headline metrics, in the order tables show them (those a run lacks are left out).
HEADLINE_METRICS = [
    "event_f1_macro",
    "event_f1_micro",
    "segment_f1_macro",
    "segment_f1_micro",
    "intersection_f1_macro",
    "psds1",
    "psds2",
    "accuracy",
    "accuracy_macro",
    "log_loss",
]

#: Groups of per-epoch metrics (training-curve panels, TensorBoard tags), in order.
CURVE_GROUPS = [
    "training losses",
    "learning rate",
    "validation",
    "validation details",
    "pseudo-labels",
    "domain adaptation",
    "callbacks",
    "other",
]
_NOT_CURVES = {"epoch", "best_epoch", "train_clips_per_s"}
#: Components log their own metrics under their recipe section (``pseudo_labeler/quality``,
#: see ``sedkit.formatting.section_metrics``); the curve panel of each section.
SECTION_GROUPS = {
    "pseudo_labeler": "pseudo-labels",
    "domain_adapter": "domain adaptation",
    "callbacks": "callbacks",
}
#: Runs written before metrics were named by section: a prefix of the old names and the section
#: it stands for (the prefix is dropped: ``pl_quality`` is ``pseudo_labeler/quality``), and
#: the old names without a prefix.
LEGACY_PREFIXES = {
    "pl_": "pseudo_labeler",
    "tri_": "pseudo_labeler",
    "mt_": "pseudo_labeler",
    "adv_": "domain_adapter",
    "domain_": "domain_adapter",
}
LEGACY_NAMES = {
    "pruning_target_sparsity": "callbacks/target_sparsity",
    "sparsity": "callbacks/sparsity",
    "nonzero_params": "callbacks/nonzero_params",
    "size_kb": "callbacks/size_kb",
}


def section_names(record: dict[str, Any]) -> dict[str, Any]:
    """One per-epoch record with the names of today: a record of a run written before metrics
    were named by recipe section (no ``/`` in any name) has its old names renamed; a newer one
    is returned as it is."""
    if any("/" in key for key in record):
        return record
    renamed = {}
    for key, value in record.items():
        prefix = next((p for p in LEGACY_PREFIXES if key.startswith(p)), None)
        if prefix is not None:
            key = f"{LEGACY_PREFIXES[prefix]}/{key[len(prefix) :]}"
        renamed[LEGACY_NAMES.get(key, key)] = value
    return renamed


def curve_group(key: str) -> str | None:
    """The training-curve panel of a per-epoch metric, or None for keys not drawn."""
    if key in _NOT_CURVES:
        return None
    if key.startswith("train_"):
        return "training losses"
    if key == "lr":
        return "learning rate"
    if key in HEADLINE_METRICS:
        return "validation"
    if key.startswith(("event_", "segment_", "intersection_")):
        return "validation details"  # precision, recall, error rate
    section = key.split("/", 1)[0] if "/" in key else None
    return SECTION_GROUPS.get(section, "other")


def _read_json(path: Path) -> Any:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None


def read_epochs(run_dir: Path) -> list[dict[str, Any]]:
    """The per-epoch records of ``metrics.jsonl`` (a torn last line, from a killed run, is
    skipped), with today's metric names (:func:`section_names`)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            records.append(section_names(json.loads(line)))
        except ValueError:
            continue
    return records


def as_number(value: Any) -> float | None:
    """A metric value as a float; None for anything else. JSON stores NaN as the string "nan"
    (see :func:`sedkit.rundir.to_jsonable`), so such strings are numbers too."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value.strip().lower() in {"nan", "inf", "-inf"}:
        return float(value)
    return None


def read_table(path: Path) -> list[dict[str, str]]:
    """Rows of a tab-separated file with a header (empty when the file is absent)."""
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


@dataclass
class RunRecord:
    """What one run directory says about itself."""

    path: Path
    recipe: dict[str, Any]
    run_info: dict[str, Any]  # run.json
    metrics: dict[str, Any]  # metrics.json (empty until the run ends)
    environment: dict[str, Any]
    epochs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The recipe's run name, else the recipe file's stem, else the folder name."""
        run = self.recipe.get("run") or {}
        if run.get("name"):
            return str(run["name"])
        if self.run_info.get("recipe"):
            return Path(str(self.run_info["recipe"])).stem
        return self.path.name

    @property
    def description(self) -> str:
        return str(self.recipe.get("description") or "")

    @property
    def task(self) -> str:
        return str(self.recipe.get("task") or "sed")

    @property
    def seed(self) -> Any:
        return self.recipe.get("seed")

    @property
    def status(self) -> str:
        return str(self.metrics.get("status") or self.run_info.get("status") or "unknown")

    @property
    def validation(self) -> dict[str, Any]:
        value = self.metrics.get("validation")
        return value if isinstance(value, dict) else {}

    def metric(self, key: str) -> float | None:
        """A metric by name: from the final validation scores, then the top level of
        ``metrics.json`` (``train_time_s``, ``best_epoch``), then the last epoch's record
        (``callbacks/sparsity``, ``domain_adapter/accuracy``). Dotted names reach into nested scores
        (``classwise.Speech.event_f1``)."""
        for source in (self.validation, self.metrics, self.epochs[-1] if self.epochs else {}):
            value: Any = source
            for part in key.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            number = as_number(value)
            if number is not None:
                return number
        return None


def is_run_dir(path: Path) -> bool:
    return (Path(path) / "recipe.yaml").is_file()


def read_run(run_dir: str | Path) -> RunRecord:
    """Read a run directory; a UserError when ``run_dir`` is not one."""
    path = Path(run_dir)
    if not path.is_dir():
        raise UserError(f"{path}: no such run directory")
    if not is_run_dir(path):
        raise UserError(f"{path}: not a sedkit run directory (no recipe.yaml)")
    try:
        recipe = yaml.safe_load((path / "recipe.yaml").read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{path / 'recipe.yaml'}: not valid YAML ({exc})") from None
    return RunRecord(
        path=path,
        recipe=recipe if isinstance(recipe, dict) else {},
        run_info=_read_json(path / "run.json"),
        metrics=_read_json(path / "metrics.json"),
        environment=_read_json(path / "environment.json"),
        epochs=read_epochs(path),
    )


def find_run_dirs(paths: list[str]) -> list[Path]:
    """Run directories named directly, or found below folders that are not run directories
    themselves (``sedkit compare runs/``), in the order given (found ones sorted)."""
    found: list[Path] = []
    for item in paths:
        path = Path(item)
        if is_run_dir(path):
            found.append(path)
        elif path.is_dir():
            below = sorted(p.parent for p in path.rglob("recipe.yaml") if p.parent != path)
            if not below:
                raise UserError(f"{path}: neither a sedkit run directory nor a folder of them")
            found += below
        else:
            raise UserError(f"{path}: no such run directory")
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return [Path(p) for p in unique]


@dataclass
class DataSummary:
    """Clips per subset (``clips_used.tsv``), missing clips (``clips_missing.tsv``) and the data
    source (``data_source.json``), as the data module recorded them."""

    used: dict[str, int]
    missing: dict[str, int]
    source: dict[str, Any]


def read_data_summary(run_dir: Path) -> DataSummary:
    run_dir = Path(run_dir)
    used = Counter(row.get("subset") or "?" for row in read_table(run_dir / "clips_used.tsv"))
    missing = Counter(row.get("subset") or "?" for row in read_table(run_dir / "clips_missing.tsv"))
    source = _read_json(run_dir / "data_source.json")
    return DataSummary(dict(used), dict(missing), source if isinstance(source, dict) else {})


def finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
