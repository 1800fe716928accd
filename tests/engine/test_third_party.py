"""Third-party plugin packages, installed for real (into a private folder on PYTHONPATH)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

THIRD_PARTY = Path(__file__).resolve().parent.parent / "third_party"

RECIPE = """\
data:
  name: desed
  params: {{root: {root}, batch_size: 4, stream_proportions: [0.5, 0.5, 0.0]}}
features: {{sample_rate: 16000, n_fft: 512, hop_length: 512, n_mels: 32}}
model: {{name: {model}, params: {{channels: 4}}}}
trainer: {{max_epochs: 1, device: cpu, progress_bar: false}}
decoding: {{median_filter_s: 0.0, psds_thresholds: 3}}
run: {{root: {runs}}}
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The example and the broken plugin packages pip-installed into one folder."""
    target = tmp_path_factory.mktemp("site")
    sources = tmp_path_factory.mktemp("src")  # build in a copy: keeps the repository clean
    for name in ("sedkit-example-plugin", "sedkit-broken-plugin"):
        shutil.copytree(THIRD_PARTY / name, sources / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(THIRD_PARTY / "sedkit-example-plugin"),
            str(THIRD_PARTY / "sedkit-broken-plugin"),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return target


@pytest.fixture
def in_site(site, sedkit_subprocess):
    """``sedkit`` in a fresh interpreter that sees the installed example packages."""

    def run(*args, cwd=None):
        env = {**os.environ, "PYTHONPATH": str(site)}
        return sedkit_subprocess(*args, env=env, cwd=cwd, timeout=600)

    return run


def test_installed_plugins_are_listed_and_broken_one_is_named(in_site):
    result = in_site("plugins", "--json")
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    example = plugins["example_cnn"]
    assert (example["status"], example["distribution"], example["version"]) == (
        "loaded",
        "sedkit-example-plugin",
        "0.3.1",
    )
    assert example["components"] == {"model": ["example_cnn"]}
    broken = plugins["broken_model"]
    assert broken["status"] == "failed"
    assert broken["distribution"] == "sedkit-broken-plugin"
    assert "ImportError: libbroken.so.1" in broken["error"]
    assert plugins["crnn"]["status"] == "loaded"  # the rest still works
    assert (
        "plugin 'broken_model' (sedkit_broken_plugin:plugin) from sedkit-broken-plugin 0.0.1 "
        "failed to load" in result.stderr
    )


def test_recipe_with_third_party_model_runs(in_site, tiny_desed_tree, tmp_path):
    recipe = tmp_path / "r.yaml"
    root, runs = tiny_desed_tree, tmp_path / "runs"
    recipe.write_text(RECIPE.format(root=root, model="example_cnn", runs=runs))
    result = in_site("run", str(recipe), "--run-dir", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "event_f1_macro" in metrics["validation"]
    used = json.loads((tmp_path / "run" / "plugins.json").read_text())
    assert any(p["name"] == "example_cnn" and p["status"] == "loaded" for p in used)


def test_recipe_needing_the_broken_plugin_stops_with_its_message(
    in_site, tiny_desed_tree, tmp_path
):
    recipe = tmp_path / "r.yaml"
    root, runs = tiny_desed_tree, tmp_path / "runs"
    recipe.write_text(RECIPE.format(root=root, model="broken_model", runs=runs))
    result = in_site("run", str(recipe))
    assert result.returncode == 2
    assert "model.name: unknown model 'broken_model': plugin 'broken_model'" in result.stderr
    assert "libbroken.so.1" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()  # nothing started


def test_builtins_only_skips_third_party(site, sedkit_subprocess):
    env = {**os.environ, "PYTHONPATH": str(site), "SEDKIT_BUILTINS_ONLY": "1"}
    env_result = sedkit_subprocess("plugins", "--json", env=env, timeout=300)
    plugins = {p["name"]: p for p in json.loads(env_result.stdout)}
    assert plugins["example_cnn"]["status"] == "skipped"
    assert plugins["broken_model"]["status"] == "skipped"
