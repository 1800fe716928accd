"""Documentation stays true: hooks documented and tested, recipe reference current, README."""

import inspect
import re
from pathlib import Path

from shared_support import build_context

from sedkit import hookspecs
from sedkit.plugins import Plugins
from sedkit.reference import recipe_reference

ROOT = Path(__file__).resolve().parent.parent


def _hooks():
    return [
        name
        for name, fn in vars(hookspecs).items()
        if name.startswith("sedkit_") and inspect.isfunction(fn)
    ]


def test_every_hook_is_documented():
    for name in _hooks():
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert len(doc) > 40, f"{name} needs a docstring saying when it is called"


def test_every_hook_is_used_by_a_test_or_plugin():
    sources = "\n".join(
        p.read_text()
        for p in [*ROOT.glob("tests/**/*.py"), *ROOT.glob("plugins/**/*.py")]
        if p.name != "test_docs.py"
    )
    for name in _hooks():
        assert re.search(rf"\b{name}\b", sources), f"no test or plugin implements {name}"


def test_recipe_reference_is_current():
    expected = recipe_reference(Plugins.load(builtins_only=True))
    assert (ROOT / "docs" / "recipes.md").read_text() == expected, (
        "docs/recipes.md is stale: run `python tools/recipe_reference.py`"
    )


def test_readme_setup_commands_match_ci():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash tools/install.sh && .venv/bin/sedkit run recipes/dcase2019_task4.yaml" in readme
    assert ".venv/bin/python -m pytest -q" in readme
    # CI: the same installer into a brand-new venv in a temporary folder, the same test command.
    assert 'SEDKIT_VENV="$(mktemp -d)/venv"' in ci
    assert "bash tools/install.sh" in ci and '"$SEDKIT_VENV/bin/python" -m pytest -q' in ci
    assert "pip install" not in ci  # nothing installed by hand beside the README's installer
    assert (ROOT / "recipes" / "dcase2019_task4.yaml").is_file()


def test_readme_plugin_example_works():
    """The plugin example in the README registers a model that builds, runs and trains."""
    import types

    import torch

    from sedkit.components import Batch, ModelContext

    block = re.search(
        r"```python\n(# my_sed_models/__init__.py.*?)```",
        readme := (ROOT / "README.md").read_text(),
        re.S,
    )
    assert block, "README lost its plugin example"
    module = types.ModuleType("my_sed_models")
    exec(compile(block.group(1), "README.md", "exec"), module.__dict__)
    for fn in vars(module).values():
        if getattr(fn, "__name__", "") == "sedkit_register_models":
            fn.__module__ = "my_sed_models"
    plugins = Plugins.load(builtins_only=True, extra=[("my_sed_models", module)])
    cls = plugins.component("model", "tiny")
    ctx = build_context(ModelContext, n_classes=3, n_mels=8, n_frames=20)
    model = cls(cls.Params(), ctx)
    batch = Batch(
        filenames=["a", "b"],
        stream=["synthetic"] * 2,
        domain=torch.zeros(2),
        strong=torch.zeros(2, 20, 3),
        strong_mask=torch.tensor([True, False]),
    )
    out = model(torch.randn(2, 8, 20))
    loss = model.supervised_loss(out, batch)["frame_bce"]
    loss.backward()
    assert out.frame_probs.shape == (2, 20, 3) and torch.isfinite(loss)
    assert "[project.entry-points.sedkit]" in readme
