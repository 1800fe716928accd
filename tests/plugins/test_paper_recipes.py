"""The paper-scale recipes of recipes/dcase2019_task4/paper/: they ask for the tri-training
paper's front end, model size and optimizer (METHODS.md section 1), cover every Table 1 variant,
and each trains one epoch on the embedded tiny data set with sizes overridden down."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sedkit.build import build_model
from sedkit.data.features import FeatureExtractor
from sedkit.plugins import Plugins
from sedkit.recipe import load_recipe
from sedkit.run import start_run

ROOT = Path(__file__).resolve().parents[2]
PAPER = ROOT / "recipes" / "dcase2019_task4" / "paper"
TABLE1 = ["baseline", "adv_whole", "adv_time", "tri", "adv_whole_tri", "adv_time_tri"]
RECIPES = sorted(PAPER.glob("*.yaml"))

#: Sizes overridden down so that one epoch takes a second or two on a CPU core.
SMOKE = [
    "data.params.clip_duration_s=4.0",
    "data.params.batch_size=4",
    "data.params.batches_per_epoch=2",
    "data.params.num_workers=0",
    "model.params.filters=[4, 4, 4, 4, 4, 4, 4]",
    "model.params.rnn_hidden=8",
    "trainer.max_epochs=1",
    "trainer.device=cpu",
    "trainer.progress_bar=false",
    "decoding.psds_thresholds=3",
]


@pytest.fixture(scope="module")
def plugins():
    return Plugins.load(builtins_only=True, disabled={"reporting"})


def test_every_table1_variant_and_both_bases_are_there():
    assert {p.stem for p in RECIPES} == {*TABLE1, "base", "base_dcase2020"}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipes_ask_for_the_papers_setting(path, plugins):
    loaded = load_recipe(path, plugins=plugins)
    r = loaded.recipe
    f = r.features
    if path.stem == "base_dcase2020":  # DCASE 2020+ baseline front end
        assert (f.sample_rate, f.n_fft, f.hop_length, f.n_mels, f.f_max) == (
            16000, 2048, 256, 128, 8000,
        )  # fmt: skip
        frames, out_frames = 626, 156
    else:  # paper: 22.05 kHz, 128 bins, window 2048, hop 345 -> 640 frames
        assert (f.sample_rate, f.n_fft, f.hop_length, f.n_mels) == (22050, 2048, 345, 128)
        frames, out_frames = 640, 160
    assert FeatureExtractor(f).n_frames(10 * f.sample_rate) == frames
    m = loaded.params["model"]
    assert m.filters == [16, 32, 64, 128, 128, 128, 128] and len(m.pooling) == 7
    assert (m.rnn_layers, m.rnn_hidden, m.conv_dropout, m.head_dropout) == (2, 128, 0.5, 0.5)
    _, model, encoder = build_model(loaded, list(loaded.params["data"].classes), 10.0, None)
    assert encoder.n_frames == out_frames and model.freq_out == 1
    opt = r.trainer.optimizer
    assert (opt.name, opt.lr, tuple(opt.betas)) == ("adam", 0.001, (0.9, 0.999))
    data = loaded.params["data"]
    assert data.batch_size == 64 and data.batches_per_epoch is None and data.cache_features
    assert not data.synthesize_if_missing  # sized for DESED: never silently on toy data
    assert r.trainer.max_epochs == 40
    has = set(loaded.classes)
    if "tri" in path.stem:  # both stages run equally long (Algorithm 1)
        assert loaded.params["pseudo_labeler"].stage1_epochs * 2 == r.trainer.max_epochs
    assert ("pseudo_labeler" in has) == ("tri" in path.stem)
    assert ("domain_adapter" in has) == path.stem.startswith("adv_")
    if path.stem.startswith("adv_"):
        mode = "frame" if path.stem.startswith("adv_time") else "whole"
        assert loaded.params["domain_adapter"].mode == mode


@pytest.mark.parametrize("name", [*TABLE1, "base_dcase2020"])
def test_one_epoch_smoke_run_on_the_embedded_tiny_data(name, plugins, tiny_desed_tree, tmp_path):
    overrides = [*SMOKE, f"data.params.root={tiny_desed_tree}", f"run.root={tmp_path}"]
    if "tri" in name:
        overrides.append("pseudo_labeler.params.stage1_epochs=0")  # stage 2 in the one epoch
        overrides.append("pseudo_labeler.params.hidden=8")  # 2 x hidden <= D = 2 x rnn_hidden
    run_dir = tmp_path / "run"
    assert start_run(PAPER / f"{name}.yaml", overrides, plugins=plugins, run_dir=str(run_dir)) == 0
    final = json.loads((run_dir / "metrics.json").read_text())
    assert final["status"] == "completed" and final["epochs"] == 1
    epoch = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert epoch["stage"] == ("stage2" if "tri" in name else "train")
    assert "psds1" in final["validation"]
    if name.startswith("adv_"):
        assert "domain_adapter/accuracy" in epoch and epoch["domain_adapter/alpha"] > 0
