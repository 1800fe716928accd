"""Recipe loading and validation: every problem at once, with file, key and suggestion."""

import pytest

from sedkit import cli
from sedkit import plugins as plugins_module
from sedkit.errors import UserError
from sedkit.recipe import load_recipe


def _problems(path, toy_plugins, overrides=None) -> list[str]:
    with pytest.raises(UserError) as info:
        load_recipe(path, overrides, plugins=toy_plugins)
    return info.value.problems


def test_toy_recipe_is_valid_and_resolved(toy_recipe, toy_plugins):
    loaded = load_recipe(toy_recipe(), plugins=toy_plugins)
    resolved = loaded.resolved()
    assert resolved["model"]["params"] == {"hidden": 16, "dropout": 0.2, "time_pooling": 2}
    assert resolved["trainer"]["optimizer"]["lr"] == 0.01
    assert resolved["trainer"]["scheduler"]["name"] == "none"  # defaults filled in


def test_three_mistakes_reported_together(tmp_path, toy_recipe, toy_plugins):
    text = toy_recipe().read_text()
    text = text.replace("{hidden: 16}", "{hiden: 16}")  # misspelled key
    text = text.replace("max_epochs: 3", "max_epochs: three")  # wrong type
    text = text.replace("name: toy_model", "name: toy_modle")  # unknown plugin
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        text.replace("name: toy_modle", "name: toy_model").replace(
            "name: toy_data", "name: toy_dta"
        )
    )
    problems = _problems(bad, toy_plugins)
    assert any("model.params.hiden: unknown key; did you mean hidden?" in p for p in problems)
    assert any("trainer.max_epochs: expected int, got 'three'" in p for p in problems)
    assert any("data.name: unknown data 'toy_dta'; did you mean toy_data?" in p for p in problems)
    assert all(p.startswith(str(bad)) for p in problems)
    assert len(problems) == 3


def test_cli_exit_code_2_without_traceback(tmp_path, toy_recipe, toy_plugins, monkeypatch, capsys):
    monkeypatch.setattr(plugins_module, "_loaded", toy_plugins)
    bad = tmp_path / "bad.yaml"
    bad.write_text(toy_recipe().read_text().replace("n_mels: 16", "n_mel: 16"))
    assert cli.main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "features.n_mel: unknown key; did you mean n_mels?" in err
    assert "Traceback" not in err
    assert cli.main(["validate", str(toy_recipe())]) == 0


def test_unknown_top_level_section(tmp_path, toy_recipe, toy_plugins):
    bad = tmp_path / "bad.yaml"
    bad.write_text(toy_recipe().read_text() + "trainr: {max_epochs: 2}\n")
    assert any(
        "trainr: unknown key; did you mean trainer?" in p for p in _problems(bad, toy_plugins)
    )


def test_missing_required_section(tmp_path, toy_plugins):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {name: toy_data}\n")
    assert any("model: missing value" in p for p in _problems(bad, toy_plugins))


def test_overrides_only_for_existing_keys(toy_recipe, toy_plugins):
    loaded = load_recipe(
        toy_recipe(),
        ["trainer.max_epochs=7", "model.params.hidden=4", "trainer.optimizer.lr=1e-4"],
        plugins=toy_plugins,
    )
    assert loaded.recipe.trainer.max_epochs == 7
    assert loaded.params["model"].hidden == 4
    assert loaded.recipe.trainer.optimizer.lr == pytest.approx(1e-4)
    problems = _problems(toy_recipe(), toy_plugins, ["model.params.hiden=4"])
    assert problems == [
        f"{toy_recipe()}: model.params.hiden: unknown key; did you mean hidden? "
        "(from the command line)"
    ]


def test_extends_merges_over_base(tmp_path, toy_recipe, toy_plugins):
    base = toy_recipe()
    (tmp_path / "variants").mkdir()
    variant = tmp_path / "variants" / "v.yaml"
    variant.write_text(f"extends: ../{base.name}\nmodel: {{params: {{dropout: 0.0}}}}\nseed: 9\n")
    loaded = load_recipe(variant, plugins=toy_plugins)
    assert loaded.params["model"].hidden == 16  # from the base
    assert loaded.params["model"].dropout == 0.0  # from the variant
    assert loaded.recipe.seed == 9
    assert loaded.recipe.features.n_mels == 16


def test_extends_cycle_and_missing_base(tmp_path, toy_plugins):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("extends: b.yaml\n")
    b.write_text("extends: a.yaml\n")
    with pytest.raises(UserError, match="cycle"):
        load_recipe(a, plugins=toy_plugins)
    c = tmp_path / "c.yaml"
    c.write_text("extends: nowhere.yaml\n")
    with pytest.raises(UserError, match="base recipe 'nowhere.yaml' not found"):
        load_recipe(c, plugins=toy_plugins)


def test_yaml_syntax_error_names_line(tmp_path, toy_plugins):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: {name: toy_data}\nmodel: [unclosed\n")
    with pytest.raises(UserError, match=r"bad\.yaml:3: invalid YAML"):
        load_recipe(bad, plugins=toy_plugins)


def test_unsafe_yaml_tags_never_construct_objects(tmp_path, toy_plugins):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(UserError, match="invalid YAML"):
        load_recipe(bad, plugins=toy_plugins)


def test_choice_suggestion_and_component_checks(tmp_path, toy_recipe, toy_plugins):
    bad = tmp_path / "bad.yaml"
    bad.write_text(toy_recipe().read_text().replace("device: cpu", "device: gpu"))
    problems = _problems(bad, toy_plugins)
    assert any("trainer.device: 'gpu' is not one of 'auto' | 'cpu' | 'cuda'" in p for p in problems)
    # value checks of a section (its __post_init__) run once its types are right
    bad.write_text(toy_recipe().read_text().replace("max_epochs: 3", "max_epochs: 0"))
    assert any("trainer: max_epochs must be >= 1" in p for p in _problems(bad, toy_plugins))
