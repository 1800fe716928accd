"""No built-in plugin needs another one: with any one of them disabled, every recipe of the
repository that does not name one of its components still validates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sedkit.plugins import Plugins
from sedkit.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "recipes").rglob("*.yaml"))
BUILTINS = Plugins.load(builtins_only=True)


def _named(section: Any) -> set[str]:
    """Every ``name:`` value in a recipe (components, ensemble members, callbacks)."""
    if isinstance(section, dict):
        own = {section["name"]} if isinstance(section.get("name"), str) else set()
        return own.union(*(_named(v) for v in section.values()))
    if isinstance(section, list):
        return set().union(*(_named(v) for v in section))
    return set()


@pytest.fixture(scope="module")
def named_by_recipe() -> dict[Path, set[str]]:
    return {path: _named(load_recipe(path, plugins=BUILTINS).resolved()) for path in RECIPES}


@pytest.mark.parametrize(
    "plugin", [p for p in BUILTINS.plugins if p.components], ids=lambda p: p.name
)
def test_recipes_not_naming_a_disabled_plugin_still_validate(plugin, named_by_recipe):
    provided = {name for names in plugin.components.values() for name in names}
    plugins = Plugins.load(builtins_only=True, disabled={plugin.name})
    kept = [path for path, named in named_by_recipe.items() if not named & provided]
    for path in kept:
        load_recipe(path, plugins=plugins)  # raises a UserError naming what is missing
