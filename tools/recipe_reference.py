"""Write docs/recipes.md: every recipe key, type and default (engine and built-in plugins)."""

from pathlib import Path

from sedkit.plugins import Plugins
from sedkit.reference import recipe_reference

OUT = Path(__file__).resolve().parent.parent / "docs" / "recipes.md"

if __name__ == "__main__":
    OUT.write_text(recipe_reference(Plugins.load(builtins_only=True)))
    print(f"wrote {OUT}")
