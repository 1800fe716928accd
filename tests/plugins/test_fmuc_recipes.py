"""The FMUC recipes validate, and tools/reproduce_fmuc.py turns run metrics into the right tables.

The METHODS.md section 4 checks themselves live in tests/plugins/test_fixmatch.py (pseudo-label
rules, losses, quality and quantity) and tests/engine/test_mc_dropout.py (MC-dropout passes
leave batch-norm statistics and every training flag as they were).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from sedkit.plugins import Plugins
from sedkit.recipe import load_recipe
from sedkit_plugins.fixmatch.labeler import TABLE1_VARIANTS

ROOT = Path(__file__).resolve().parents[2]
FMUC_RECIPES = sorted((ROOT / "recipes" / "fmuc").rglob("*.yaml"))


@pytest.fixture(scope="module")
def plugins():
    return Plugins.load(builtins_only=True)


@pytest.fixture(scope="module")
def tool(load_tool):
    return load_tool("reproduce_fmuc")


def test_the_recipe_family_is_complete():
    names = {str(p.relative_to(ROOT / "recipes" / "fmuc")) for p in FMUC_RECIPES}
    for dataset in ("scenes", "instruments"):
        for stem in ("base", "fixmatch", "fmuc", "supervised"):
            assert f"{dataset}/{stem}.yaml" in names


@pytest.mark.parametrize("path", FMUC_RECIPES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_fmuc_recipe_validates(path, plugins):
    loaded = load_recipe(path, plugins=plugins)
    assert loaded.recipe.task == "classification"
    assert loaded.recipe.data.name == path.parent.name
    data = loaded.params["data"]
    if path.stem == "supervised":
        assert data.labeled_fraction == 1.0 and data.unlabeled_batch_size == 0
    else:
        assert data.labeled_fraction == 0.05
        assert data.unlabeled_batch_size == 7 * data.labeled_batch_size  # mu = 7
    # Test accuracy only after the last epoch: the test set never picks a checkpoint.
    assert loaded.recipe.trainer.validate_every == loaded.recipe.trainer.max_epochs


@pytest.mark.parametrize("dataset", ["scenes", "instruments"])
def test_every_planned_run_validates_with_its_overrides(dataset, plugins, tool):
    jobs = tool.plan([dataset], [1, 2, 3], [1])
    assert len(jobs) == 3 * 3 + len(TABLE1_VARIANTS) - 2  # FM and FMUC shared with Table II
    assert len(tool.plan([dataset], [1, 2, 3], [1], table1_datasets=[])) == 3 * 3
    for job in jobs:
        overrides = [f"seed={job.seed}", f"run.name=fmuc-{dataset}-{job.slug}", *job.overrides]
        recipe = ROOT / "recipes" / "fmuc" / dataset / f"{job.recipe}.yaml"
        loaded = load_recipe(recipe, overrides, plugins=plugins)
        if job.recipe != "supervised":
            assert loaded.recipe.pseudo_labeler.name == job.recipe
    variant = tool.variant_job(dataset, "FMUC w/o MC-Dr.", 1)
    labeler = load_recipe(
        ROOT / "recipes" / "fmuc" / dataset / "fmuc.yaml", list(variant.overrides), plugins=plugins
    ).params["pseudo_labeler"]
    assert (labeler.mc_passes, labeler.weak_pass, labeler.temperature) == (1, "eval", 2.0)


def test_pseudo_label_summary_weights_quality_by_quantity(tool):
    epochs = [
        {"epoch": 1, "pseudo_labeler/quantity": 0.0},  # nothing kept: no quality
        {"epoch": 2, "pseudo_labeler/quantity": 0.2, "pseudo_labeler/quality": 0.5},
        {"epoch": 3, "pseudo_labeler/quantity": 0.6, "pseudo_labeler/quality": 0.9},
        {"epoch": 4, "accuracy": 0.3},  # a record without pseudo-labels is ignored
    ]
    s = tool.summarize_pseudo_labels(epochs)
    assert s.quantity == pytest.approx(0.8 / 3)
    assert s.quality == pytest.approx((0.2 * 0.5 + 0.6 * 0.9) / 0.8)  # 0.8
    assert (s.last_quality, s.last_quantity, s.epochs) == (0.9, 0.6, 3)
    empty = tool.summarize_pseudo_labels([{"epoch": 1, "pseudo_labeler/quantity": 0.0}])
    assert math.isnan(empty.quality) and empty.quantity == 0.0


def _row(table: str, first_cell: str) -> list[str]:
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == first_cell:
            return cells
    raise AssertionError(f"no row {first_cell!r} in\n{table}")


def test_table1_markdown_numbers(tool):
    s = tool.summarize_pseudo_labels
    summaries = {
        "scenes": {
            "FM": [s([{"pseudo_labeler/quantity": 0.9, "pseudo_labeler/quality": 0.8}])],
            "FMUC": [s([{"pseudo_labeler/quantity": 0.5, "pseudo_labeler/quality": 0.9},
                        {"pseudo_labeler/quantity": 0.7, "pseudo_labeler/quality": 0.96}])],
        }
    }  # fmt: skip
    table = tool.table1_markdown(summaries, ["scenes"])
    assert _row(table, "FM")[1:6] == ["1", "n/a", "80.0", "90.0", "80.0 / 90.0"]
    # quality (0.5 * 0.9 + 0.7 * 0.96) / 1.2 = 0.935; quantity 0.6; last epoch 96.0 / 70.0
    assert _row(table, "FMUC")[1:6] == ["1", "n/a", "93.5", "60.0", "96.0 / 70.0"]
    assert _row(table, "FMUC")[6] == "89.9 / 88.7"  # the paper's TUT2017 figures
    assert _row(table, "FMUC w. temp. 4")[1:6] == ["0", "n/a", "n/a", "n/a", "n/a / n/a"]
    assert len(table.strip().splitlines()) == 2 + len(TABLE1_VARIANTS)


def test_table1_pools_the_quality_of_several_runs(tool):
    s = tool.summarize_pseudo_labels
    runs = [
        s([{"pseudo_labeler/quantity": 0.3, "pseudo_labeler/quality": 1.0}], 100),
        s([{"pseudo_labeler/quantity": 0.1, "pseudo_labeler/quality": 0.6}], 100),
        s([{"pseudo_labeler/quantity": 0.0}], 100),  # nothing kept: counts for the quantity only
    ]
    row = _row(tool.table1_markdown({"instruments": {"FM": runs}}, ["instruments"]), "FM")
    # 30 + 10 kept; quality (0.3 * 1.0 + 0.1 * 0.6) / 0.4 = 0.9; quantity 0.4 / 3
    assert row[1:6] == ["3", "40", "90.0", "13.3", "80.0 / 13.3"]


def test_table2_markdown_mean_and_sample_std(tool):
    accuracies = {"instruments": {"fmuc": [0.70, 0.72, 0.74], "fixmatch": [0.6], "supervised": []}}
    table = tool.table2_markdown(accuracies, ["instruments"])
    row = _row(table, "instruments")
    assert row[1:4] == ["60.0 (n=1)", "72.0 ± 2.0 (n=3)", "n/a (n=0)"]  # FM, FMUC, supervised
    assert row[4:] == ["NSynth test", "71.0 ± 1.9", "72.1 ± 0.7", "77.1 ± 0.2"]


def test_write_tables_keeps_the_text_around_the_markers(tool, tmp_path):
    doc = tmp_path / "fmuc.md"
    doc.write_text(
        "# Title\n\nIntro.\n\n<!-- tables -->\nold\n<!-- end of tables -->\n\n## Reading\n"
    )
    tool.write_tables(doc, "python tools/reproduce_fmuc.py", "T1\n", "T2\n")
    text = doc.read_text()
    assert text.startswith("# Title\n\nIntro.\n\n<!-- tables -->\nGenerated by")
    assert "old" not in text and "T1\n" in text and "T2\n" in text
    assert text.endswith("<!-- end of tables -->\n\n## Reading\n")


def test_write_tables_of_two_benchmarks_keep_each_other(tool, tmp_path):
    doc = tmp_path / "fmuc.md"
    doc.write_text("# Title\n\n<!-- tables -->\nold\n<!-- end of tables -->\n\n## Reading\n")
    tool.write_tables(doc, "sampled run", "S1\n", "S2\n", name="tables: sampled instruments")
    tool.write_tables(doc, "procedural run", "P1\n", "P2\n")
    text = doc.read_text()
    assert "old" not in text and text.count("Generated by") == 2
    procedural = text.index("<!-- tables -->")
    sampled = text.index("<!-- tables: sampled instruments -->")
    assert procedural < text.index("P1\n") < text.index("## Reading") < sampled
    assert sampled < text.index("S1\n") < text.index("<!-- end of tables: sampled instruments -->")
    tool.write_tables(doc, "sampled rerun", "S3\n", "S4\n", name="tables: sampled instruments")
    assert "S1" not in doc.read_text() and "P1\n" in doc.read_text()
