"""tools/reproduce_fmuc_sampled.py: the FMUC runs on the sampled-instrument benchmark validate
with its overrides, an existing benchmark is reused, and the command above the tables is the
one that regenerates them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sedkit.plugins import Plugins
from sedkit.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tool(load_tool):
    return load_tool("reproduce_fmuc_sampled")


def test_every_run_validates_on_the_sampled_notes(tool, tmp_path: Path) -> None:
    plugins = Plugins.load(builtins_only=True)
    extra = tool.data_overrides(tmp_path / "data", 4.0, 40)
    for job in tool.fmuc.plan(["instruments"], [1, 2, 3], [1]):
        recipe = ROOT / "recipes/fmuc/instruments" / f"{job.recipe}.yaml"
        loaded = load_recipe(recipe, [f"seed={job.seed}", *job.overrides, *extra], plugins=plugins)
        data = loaded.params["data"]
        assert data.root == str(tmp_path / "data") and data.clip_duration_s == 4.0
        assert not data.synthesize_if_missing
        assert loaded.recipe.trainer.max_epochs == loaded.recipe.trainer.validate_every == 40


def test_existing_benchmark_is_reused_and_tables_come_from_the_runs(
    tool, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "dataset_card.json").write_text(json.dumps({"clip_duration_s": 1.0}))
    assert tool.prepare_data(data, "tiny", 0, fetch=False) == 1.0  # no build, no fetch
    doc = tmp_path / "fmuc_sampled.md"
    argv = ["--tables-only", "--root", str(tmp_path / "runs"), "--epochs", "40", "--write"]
    tool.main([*argv, str(doc), "--seeds", "1", "2", "3"])
    text = doc.read_text()
    assert "`python tools/reproduce_fmuc_sampled.py --preset default --seeds 1 2 3" in text
    assert "--epochs 40`" in text and "| instruments | n/a (n=0)" in text
    assert "| FMUC w/o MC-Dr. | 0 |" in capsys.readouterr().out  # printed too
