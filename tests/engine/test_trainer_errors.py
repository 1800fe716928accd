"""Recipe mistakes that only show when the trainer builds the experiment: a component whose
constructor rejects its params, and per-class decoding settings naming classes the data does
not have. Each is one ``sedkit: error:`` line naming the recipe key, exit 2, before training."""

from __future__ import annotations

import json
import types
from dataclasses import dataclass
from pathlib import Path

import pytest
import toy_plugin

import sedkit
from sedkit import cli
from sedkit import plugins as plugins_module
from sedkit.build import check_decoding_classes
from sedkit.components import Callback
from sedkit.errors import UserError
from sedkit.plugins import Plugins
from sedkit.recipe import DecodingParams
from sedkit.run import start_run


@dataclass
class PickyCallbackParams:
    every: int = 1


class PickyCallback(Callback):
    """A callback whose constructor, not its Params, checks a value (as third-party code may)."""

    Params = PickyCallbackParams

    def __init__(self, params: PickyCallbackParams, context: object):
        super().__init__(params, context)
        if params.every > 3:
            raise ValueError(f"every must be <= 3 (validation runs), got {params.every}")


class PickyData(toy_plugin.ToyData):
    """Toy data that refuses more validation clips than it can make distinct."""

    def __init__(self, params: toy_plugin.ToyDataParams, context: object):
        if params.n_val > 100:
            raise ValueError(f"n_val must be <= 100, got {params.n_val}")
        super().__init__(params, context)


def _picky_plugin() -> types.ModuleType:
    module = types.ModuleType("picky_plugin")

    @sedkit.hookimpl
    def sedkit_register_callbacks(register):
        register("picky", PickyCallback)

    @sedkit.hookimpl
    def sedkit_register_datasets(register):
        register("picky_data", PickyData)

    for function in (sedkit_register_callbacks, sedkit_register_datasets):
        function.__module__ = module.__name__
        setattr(module, function.__name__, function)
    return module


@pytest.fixture(scope="module")
def plugins() -> Plugins:
    return Plugins.load(
        builtins_only=True,
        disabled={"reporting"},
        extra=[("toy", toy_plugin), ("picky", _picky_plugin())],
    )


@pytest.fixture
def run_cli(plugins, monkeypatch, capsys):
    monkeypatch.setattr(plugins_module, "_loaded", plugins)

    def call(*argv: object) -> tuple[int, list[str], str]:
        capsys.readouterr()
        code = cli.main([str(a) for a in argv])
        err = capsys.readouterr().err
        return code, [line for line in err.splitlines() if line.startswith("sedkit: error:")], err

    return call


RECIPE = """\
seed: 3
data: {{name: toy_data, params: {{n_train: 8, n_val: 4, batch_size: 4}}}}
model: {{name: toy_model, params: {{hidden: 8}}}}
callbacks: [{{name: picky, params: {{every: 1}}}}]
features: {{sample_rate: 8000, n_fft: 256, hop_length: 64, n_mels: 16}}
trainer: {{max_epochs: 1, device: cpu, progress_bar: false}}
decoding: {{median_filter_s: 0.0, psds_thresholds: 3}}
run: {{root: {root}}}
"""


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE.format(root=tmp_path / "runs"))
    return path


@pytest.mark.parametrize(
    ("override", "message"),
    [
        # nn.Dropout raises the ValueError inside the toy model's constructor.
        (
            "model.params.dropout=1.5",
            "model.params: dropout probability has to be between 0 and 1, but got 1.5",
        ),
        (
            "callbacks=[{name: picky, params: {every: 5}}]",
            "callbacks[0].params: every must be <= 3 (validation runs), got 5",
        ),
        (
            "data={name: picky_data, params: {n_val: 500}}",
            "data.params: n_val must be <= 100, got 500",
        ),
    ],
    ids=["model", "callback", "data"],
)
def test_component_rejecting_its_params_is_one_line_naming_the_section(
    override, message, recipe, run_cli, tmp_path
):
    run_dir = tmp_path / "run"
    code, errors, err = run_cli("run", recipe, override, "--run-dir", run_dir)
    assert code == 2 and "Traceback" not in err, err
    assert errors == [f"sedkit: error: {message}"], errors
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"
    assert not (run_dir / "checkpoints").exists()


def test_component_errors_keep_their_cause_for_debugging(recipe, plugins, tmp_path):
    with pytest.raises(UserError, match=r"^model\.params: dropout probability") as info:
        start_run(
            recipe, ["model.params.dropout=1.5"], plugins=plugins, run_dir=str(tmp_path / "r")
        )
    assert isinstance(info.value.__cause__, ValueError)


def test_median_filter_for_an_unknown_class_fails_before_training(recipe, run_cli, tmp_path):
    run_dir = tmp_path / "run"
    override = "decoding.median_filter_s={Beep: 0.2, Dog: 0.3, Cat: 0.1}"
    code, errors, err = run_cli("run", recipe, override, "--run-dir", run_dir)
    assert code == 2 and "Traceback" not in err, err
    assert errors == [
        "sedkit: error: decoding.median_filter_s: unknown class(es) 'Dog', 'Cat'; the data's "
        "classes are Beep, Hum, Tick"
    ]
    assert not (run_dir / "checkpoints").exists()
    assert not (run_dir / "metrics.jsonl").exists()


def test_median_filter_per_class_for_known_classes_is_accepted():
    classes = ["Beep", "Hum", "Tick"]
    check_decoding_classes(DecodingParams(median_filter_s={"Hum": 0.2, "Tick": 0.0}), classes)
    check_decoding_classes(DecodingParams(median_filter_s=0.45), classes)
    with pytest.raises(UserError, match="unknown class\\(es\\) 'hum'"):
        check_decoding_classes(DecodingParams(median_filter_s={"hum": 0.2}), classes)
