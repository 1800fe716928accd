"""Bad recipes through the command line: YAML syntax errors, wrong types, unknown keys and
plugins, missing files, unsafe tags. Each is exit code 2 with a message naming the file and
line or key, no traceback, no object built from a YAML tag, and no run directory for a recipe
that does not validate.

(tests/engine/test_recipe.py covers the validator's basics: misspelled keys with suggestions,
three problems at once, extends chains, a syntax error's line, python/object/apply.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import reliability_support as rs

BASE = """\
seed: 3
data: {name: toy_data, params: {n_train: 8, n_val: 4, batch_size: 4}}
model: {name: toy_model, params: {hidden: 8}}
features: {sample_rate: 8000, n_fft: 256, hop_length: 64, n_mels: 16}
trainer: {max_epochs: 1, device: cpu, progress_bar: false}
decoding: {median_filter_s: 0.0, psds_thresholds: 3}
run: {root: RUNS}
"""


@pytest.fixture
def recipe(tmp_path):
    """``recipe(text_or_bytes, name="recipe.yaml")``: a recipe file whose runs go to tmp."""

    def write(content: str | bytes, name: str = "recipe.yaml") -> Path:
        path = tmp_path / name
        runs = str(tmp_path / "runs")
        if isinstance(content, str):
            path.write_text(content.replace("RUNS", runs))
        else:
            path.write_bytes(content.replace(b"RUNS", runs.encode()))
        return path

    return write


def _problem_lines(result: rs.CliResult) -> list[str]:
    """The message: its ``sedkit: error:`` line and the indented problem lines below it."""
    lines = result.err.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("sedkit: error:"))
    return [lines[start]] + [line.strip() for line in lines[start + 1 :] if line.startswith("  ")]


def assert_recipe_error(result: rs.CliResult, *fragments: str) -> list[str]:
    """Exit 2, no traceback, every fragment in some line of the one error message."""
    assert result.code == 2, (result.code, result.err[-3000:])
    assert "Traceback" not in result.err, result.err
    assert len(result.error_lines) == 1, result.err
    lines = _problem_lines(result)
    for fragment in fragments:
        assert any(fragment in line for line in lines), (fragment, lines)
    return lines


# ------------------------------------------------------------------------ syntax
@pytest.mark.parametrize(
    ("case", "text", "fragment"),
    [
        ("tab-indent", BASE + "\tseed: 4\n", ":8: invalid YAML: found character '\\t'"),
        ("unclosed-quote", BASE.replace("device: cpu", "device: 'cpu"), ":8: invalid YAML"),
        (
            "unclosed-bracket",
            BASE.replace("hidden: 8}}", "hidden: 8}"),
            ":4: invalid YAML",
        ),
        (
            "list-not-mapping",
            "- data\n- model\n",
            "a recipe must be a mapping of sections, got list",
        ),
        ("scalar-not-mapping", "just words\n", "a recipe must be a mapping of sections, got str"),
    ],
)
def test_yaml_syntax_errors_name_file_and_line(case, text, fragment, recipe, run_cli):
    path = recipe(text)
    line = assert_recipe_error(run_cli("validate", path), fragment)[0]
    assert line.startswith(f"sedkit: error: {path}"), line


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n...\n"])
def test_empty_recipe_names_the_required_sections(text, recipe, run_cli):
    path = recipe(text)
    assert_recipe_error(
        run_cli("validate", path),
        f"{path}: data: missing value (a mapping)",
        f"{path}: model: missing value (a mapping)",
    )


# ------------------------------------------------------------------------ types, keys, plugins
def test_wrong_types_are_all_named_with_their_keys(recipe, run_cli):
    text = (
        BASE.replace("seed: 3", "seed: abc")
        .replace("max_epochs: 1", "max_epochs: 1.5")
        .replace("n_mels: 16", "n_mels: [16]")
        .replace("batch_size: 4", "batch_size: '4'")
        .replace("progress_bar: false", "progress_bar: 'no'")
    )
    path = recipe(text)
    lines = assert_recipe_error(
        run_cli("validate", path),
        "5 problems in the recipe",
        "seed: expected int, got 'abc'",
        "features.n_mels: expected int, got [16]",
        "trainer.max_epochs: expected int, got 1.5",
        "data.params.batch_size: expected int, got '4'",
        "trainer.progress_bar: expected bool, got 'no'",
    )
    assert all(line.startswith(str(path)) for line in lines[1:])


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        (
            "model: {name: toy_model, params: {hidden: 8}}",
            "model: toy_model",
            "model: expected a mapping, got 'toy_model'",
        ),
        (
            "run: {root: RUNS}",
            "run: {root: RUNS}\ncallbacks: {name: early_stopping}",
            "callbacks: expected a list",
        ),
        ("device: cpu", "device: [cpu]", "trainer.device: ['cpu'] is not one of"),
        ("seed: 3", "seed: !!binary aGVsbG8=", "seed: expected int, got b'hello'"),
    ],
)
def test_wrong_shapes_name_the_key(old, new, fragment, recipe, run_cli):
    path = recipe(BASE.replace(old, new))
    assert_recipe_error(run_cli("validate", path), f"{path}: {fragment}")


def test_unknown_keys_and_plugins_at_every_level(recipe, run_cli):
    text = BASE.replace("batch_size: 4}", "batch_sise: 4}").replace(
        "decoding: {", "decoding: {treshold: 0.5, "
    ) + (
        "pseudo_labeler: {name: mean_teachr}\n"
        "domain_adapter: {name: gradient_reversal}\n"
        "callbacks: [{name: erly_stopping}]\n"
        "trainer_: {}\n"
    )
    path = recipe(text)
    assert_recipe_error(
        run_cli("validate", path),
        "data.params.batch_sise: unknown key; did you mean batch_size?",
        "decoding.treshold: unknown key; did you mean threshold?",
        "pseudo_labeler.name: unknown pseudo_labeler 'mean_teachr'; did you mean mean_teacher?",
        "domain_adapter.name: unknown domain_adapter 'gradient_reversal'",
        "callbacks[0].name: unknown callback 'erly_stopping'; did you mean early_stopping?",
        "trainer_: unknown key; did you mean trainer?",
    )


def test_unknown_nested_key_of_a_dataset(recipe, run_cli, tmp_path):
    text = rs.DESED_RECIPE.format(
        root=tmp_path, runs=tmp_path / "runs", model=rs.TOY_MODEL, epochs=1
    ).replace("batch_size: 4", "batch_size: 4\n    augment: {mixup_probability: 0.5}")
    path = recipe(text)
    assert_recipe_error(
        run_cli("validate", path), "data.params.augment.mixup_probability: unknown key"
    )


def test_a_recipe_that_does_not_validate_creates_no_run_directory(recipe, run_cli, tmp_path):
    path = recipe(BASE.replace("hidden: 8", "hiden: 8"))
    result = run_cli("run", path, "trainer.max_epochs=2")
    assert_recipe_error(result, "model.params.hiden: unknown key; did you mean hidden?")
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------------ overrides
@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("trainer.max_epochs", "override 'trainer.max_epochs': expected KEY=VALUE"),
        ("=3", "override '=3': expected KEY=VALUE"),
        ("seed.value=1", "override 'seed.value=1': seed is not a section"),
        (
            "trainer.max_epoch=2",
            "trainer.max_epoch: unknown key; did you mean max_epochs? (from the command line)",
        ),
        (
            "trainer.max_epochs=[2",
            "trainer.max_epochs: expected int, got '[2' (from the command line)",
        ),
    ],
)
def test_bad_overrides_name_the_override(override, fragment, recipe, run_cli):
    assert_recipe_error(run_cli("validate", recipe(BASE), override), fragment)


# ------------------------------------------------------------------------ unsafe tags
@pytest.mark.parametrize(
    "tagged",
    [
        "!!python/object/apply:os.system ['touch {marker}']",
        "!!python/object/new:os.system ['touch {marker}']",
        "!!python/name:os.system",
        "!!python/module:os",
        "!include other.yaml",
    ],
)
def test_yaml_tags_never_construct_objects(tagged, recipe, run_cli, tmp_path):
    marker = tmp_path / "pwned"
    tag = tagged.format(marker=marker)
    path = recipe(BASE.replace("seed: 3", f"seed: {tag}"))
    line = assert_recipe_error(run_cli("validate", path), f"{path}:1: invalid YAML")[0]
    assert "could not determine a constructor" in line
    # in an override the tag is not YAML-constructed either: it stays an (invalid) string
    result = run_cli("validate", recipe(BASE, "clean.yaml"), f"seed={tag}")
    assert_recipe_error(result, "seed: expected int, got ", "!!python" if "!!" in tag else "!inc")
    assert not marker.exists()


def test_alias_expansion_bomb_is_rejected_quickly(recipe, run_cli):
    levels = ["a: &a [x, x, x, x, x, x, x, x, x]"] + [
        f"{b}: &{b} [{', '.join(['*' + a] * 9)}]"
        for a, b in zip("abcdefgh", "bcdefghi", strict=True)
    ]
    path = recipe("\n".join(levels) + "\n" + BASE)  # 9**9 leaves if expanded
    assert_recipe_error(run_cli("validate", path), f"{path}: i: unknown key")


# ------------------------------------------------------------------------ missing files
def test_recipe_path_that_is_missing_or_a_folder(run_cli, tmp_path):
    assert_recipe_error(
        run_cli("validate", tmp_path / "nope.yaml"), "nope.yaml: recipe file not found"
    )
    folder = tmp_path / "folder.yaml"
    folder.mkdir()
    assert_recipe_error(run_cli("run", folder), f"{folder}")


def test_missing_data_root_is_named_with_the_ways_out(run_cli, desed_recipe, tmp_path):
    root = tmp_path / "no_such_dataset"
    run_dir = tmp_path / "run"
    result = run_cli("run", desed_recipe(root), "--run-dir", run_dir)
    rs.assert_one_line_error(
        result,
        f"sedkit: error: {root}: data folder is missing or empty",
        f"sedkit synth desed {root}",
        "data.params.synthesize_if_missing: true",
    )
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"
    assert not root.exists()  # nothing synthesized without being asked


def test_missing_transfer_checkpoint_is_named(recipe, run_cli, tmp_path):
    missing = tmp_path / "pretrained.pt"
    path = recipe(BASE)
    result = run_cli(
        "run", path, f"trainer.transfer.init_from={missing}", "--run-dir", tmp_path / "r"
    )
    rs.assert_one_line_error(result, "trainer.transfer.init_from", str(missing))


# ------------------------------------------------------ encodings, repeats, impossible values
def test_non_utf8_recipe_is_one_message(recipe, run_cli):
    path = recipe(("description: caf\xe9\n" + BASE).encode("latin-1"))
    assert_recipe_error(run_cli("validate", path), f"{path}: ", "UTF-8")


@pytest.mark.parametrize(
    ("old", "new", "line", "key"),
    [
        ("seed: 3\n", "seed: 3\nseed: 4\n", 2, "seed"),
        ("max_epochs: 1,", "max_epochs: 1, max_epochs: 50,", 5, "max_epochs"),
    ],
    ids=["top-level", "nested"],
)
def test_duplicate_keys_are_an_error(old, new, line, key, recipe, run_cli):
    """The line of the second occurrence and the key are named."""
    path = recipe(BASE.replace(old, new))
    assert_recipe_error(run_cli("validate", path), f"{path}:{line}: ", f"duplicate key '{key}'")


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("trainer.optimizer.lr=-0.001", "trainer.optimizer"),
        ("trainer.optimizer.lr=.nan", "trainer.optimizer"),
        ("trainer.optimizer.betas=[0.9, 2.0]", "trainer.optimizer"),
        ("trainer.optimizer.weight_decay=-1", "trainer.optimizer"),
    ],
)
def test_impossible_optimizer_values_fail_validation(override, key, recipe, run_cli, tmp_path):
    assert_recipe_error(run_cli("validate", recipe(BASE), override), key)
    assert_recipe_error(run_cli("run", recipe(BASE), override), key)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "override",
    ["decoding.threshold=1.5", "decoding.threshold=-0.1", "decoding.median_filter_s=-0.2"],
)
def test_impossible_decoding_values_fail_validation(override, recipe, run_cli):
    assert_recipe_error(run_cli("validate", recipe(BASE), override), "decoding")


def test_median_filter_for_unknown_class_fails_before_training(recipe, run_cli, tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli(
        "run", recipe(BASE), "decoding.median_filter_s={Dog: 0.3}", "--run-dir", run_dir
    )
    rs.assert_one_line_error(result, "decoding.median_filter_s", "Dog")
    assert not (run_dir / "checkpoints").exists()
