"""Fixtures of the reliability corpus (helpers live in ``reliability_support.py``)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).resolve().parent))  # after tests/engine: its conftest

import reliability_support as rs  # noqa: E402

from sedkit import plugins as plugins_module  # noqa: E402
from sedkit.plugins import Plugins  # noqa: E402


@pytest.fixture(scope="session")
def reliability_plugins() -> Plugins:
    """Built-in plugins plus the engine's toy plugin and the faulty model."""
    return Plugins.load(
        builtins_only=True, extra=[("toy", rs.toy_plugin), ("faulty", rs.faulty_plugin())]
    )


@pytest.fixture(scope="session")
def lean_plugins() -> Plugins:
    """As :func:`reliability_plugins` without the reporting plugin (no plots: faster runs)."""
    return Plugins.load(
        builtins_only=True,
        disabled={"reporting"},
        extra=[("toy", rs.toy_plugin), ("faulty", rs.faulty_plugin())],
    )


@pytest.fixture(scope="module")
def desed_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One clean tree per test module; tests copy it before spoiling a file."""
    return rs.make_desed_tree(tmp_path_factory.mktemp("template") / "desed")


@pytest.fixture
def desed_tree(desed_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the clean tree for one test."""
    return Path(shutil.copytree(desed_template, tmp_path / "desed"))


@pytest.fixture
def desed_recipe(tmp_path: Path) -> Callable[..., Path]:
    """``make(root, model=TOY_MODEL, epochs=1, extra="")`` writes a recipe file."""

    def make(root: Path, *, model: str = rs.TOY_MODEL, epochs: int = 1, extra: str = "") -> Path:
        path = tmp_path / "recipe.yaml"
        text = rs.DESED_RECIPE.format(root=root, runs=tmp_path / "runs", model=model, epochs=epochs)
        path.write_text(text + extra)
        return path

    return make


def _cli_caller(
    plugins: Plugins, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> Callable[..., rs.CliResult]:
    from sedkit import cli

    monkeypatch.setattr(plugins_module, "_loaded", plugins)

    def call(*argv: object) -> rs.CliResult:
        capsys.readouterr()
        code = cli.main([str(a) for a in argv])
        captured = capsys.readouterr()
        return rs.CliResult(code, captured.out, captured.err)

    return call


@pytest.fixture
def run_cli(
    lean_plugins: Plugins, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> Callable[..., rs.CliResult]:
    """``run_cli(*argv)``: ``sedkit.cli.main`` with :func:`lean_plugins`, output captured."""
    return _cli_caller(lean_plugins, monkeypatch, capsys)


@pytest.fixture
def run_cli_all_plugins(
    reliability_plugins: Plugins, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> Callable[..., rs.CliResult]:
    """As :func:`run_cli` with every built-in plugin (reporting included)."""
    return _cli_caller(reliability_plugins, monkeypatch, capsys)
