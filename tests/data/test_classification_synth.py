"""The embedded classification benchmarks (``sedkit synth scenes|instruments|scenes3``):
layouts, train/test separation by location or instrument, determinism, and loading through the
dataset plugins."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from shared_support import file_bytes, read_table

from sedkit.cli import main
from sedkit.components import BuildContext
from sedkit.data.features import FeatureExtractor, FeatureParams
from sedkit.errors import UserError
from sedkit_plugins.classification_data import data as plugin
from sedkit_plugins.classification_data import synth as cs


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "scenes"
    assert cs.synthesize("scenes", out, preset="tiny", seed=1) == out / "dataset_card.json"
    return out


@pytest.fixture(scope="module")
def instruments(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "instruments"
    messages: list[str] = []
    cs.synthesize("instruments", out, preset="tiny", seed=1, log=messages.append)
    assert any("notes in" in m for m in messages)
    return out


#: A smaller scenes3 build than ``tiny`` for the determinism check.
SMALL3 = dataclasses.replace(
    cs.SCENES3_PRESETS["tiny"], clip_duration_s=1.0, n_cities=2, clips_per_location=1
)


def test_class_lists_agree_with_the_plugin() -> None:
    # The plugin's defaults read what the generators write.
    assert plugin.ScenesParams().classes == list(cs.SCENE_CLASSES)
    assert plugin.InstrumentsParams().classes == list(cs.INSTRUMENT_FAMILIES)
    assert plugin.Scenes3Params().classes == list(cs.SCENES3_CLASSES)
    assert plugin.Scenes3Params().label_map == cs.TAU_SCENE_TO_CLASS
    assert set(cs.TAU_SCENE_TO_CLASS.values()) == set(cs.SCENES3_CLASSES)
    assert set(cs.SCENE_RECIPES) == set(cs.SCENE_CLASSES)
    assert list(cs.TAU_RECIPES) == list(cs.TAU_SCENE_TO_CLASS)
    assert len(cs.SCENE_CLASSES) >= 10 and len(cs.INSTRUMENT_FAMILIES) >= 8


def test_scenes_layout_and_location_split(scenes: Path) -> None:
    cfg = cs.SCENES_PRESETS["tiny"]
    train = read_table(scenes / "evaluation_setup/train.tsv")
    test = read_table(scenes / "evaluation_setup/test.tsv")
    assert len(train) == 10 * cfg.train_locations * cfg.clips_per_train_location
    assert len(test) == 10 * cfg.test_locations * cfg.clips_per_test_location
    assert {r["label"] for r in train} == {r["label"] for r in test} == set(cs.SCENE_CLASSES)
    assert not {r["location"] for r in train} & {r["location"] for r in test}
    meta = read_table(scenes / "meta.tsv")
    assert {r["fold"] for r in meta} == {"train", "test"} and len(meta) == len(train) + len(test)
    info = sf.info(str(scenes / train[0]["filename"]))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert info.frames == round(cfg.clip_duration_s * 16000)
    card = json.loads((scenes / "dataset_card.json").read_text())
    assert (card["preset"], card["seed"], card["n_clips"]) == ("tiny", 1, len(meta))
    assert "| bus |" in (scenes / "dataset_card.md").read_text()
    # Clips are not silent, not clipped, and differ between locations of one scene.
    a, _ = sf.read(str(scenes / train[0]["filename"]))
    b, _ = sf.read(str(scenes / test[0]["filename"]))
    assert np.sqrt(np.mean(a**2)) > 0.005 and np.max(np.abs(a)) < 1.0
    assert not np.allclose(a, b)


def test_instruments_layout_and_instrument_split(instruments: Path) -> None:
    train = read_table(instruments / "evaluation_setup/train.tsv")
    test = read_table(instruments / "evaluation_setup/test.tsv")
    assert {r["label"] for r in train} == set(cs.INSTRUMENT_FAMILIES)
    assert not {r["location"] for r in train} & {r["location"] for r in test}
    card = json.loads((instruments / "dataset_card.json").read_text())
    assert set(card["instruments"]) == {r["location"] for r in train + test}
    note, sr = sf.read(str(instruments / train[0]["filename"]))
    assert sr == 16000 and np.max(np.abs(note)) > 0.01


def test_instrument_families_differ_in_timbre() -> None:
    """Mallets are inharmonic, organs sustain, guitars decay: the priors do what they say."""
    rng = np.random.default_rng(0)
    mallet = cs.draw_instrument(rng, "mallet")
    organ = cs.draw_instrument(rng, "organ")
    guitar = cs.draw_instrument(rng, "guitar")
    ratios = np.array(mallet.partial_ratios[:5])
    assert np.any(np.abs(ratios - np.round(ratios)) > 0.05)
    assert organ.partial_ratios[:8] == tuple(float(k) for k in range(1, 9))
    sr, n = 16000, 32000
    sustained = cs.render_note(rng, organ, 60, 0.8, n, sr)
    plucked = cs.render_note(rng, guitar, 60, 0.8, n, sr)

    def late_to_early(x: np.ndarray) -> float:
        return float(np.sqrt(np.mean(x[12000:16000] ** 2) / np.mean(x[1000:5000] ** 2)))

    assert late_to_early(sustained) > 0.5 > late_to_early(plucked)
    with pytest.raises(ValueError):
        cs.draw_instrument(rng, "kazoo")


def test_scenes3_tau_layout(tmp_path: Path) -> None:
    out = tmp_path / "scenes3"
    cs.build_scenes3(out, SMALL3, seed=2)
    meta = read_table(out / "meta.csv")
    assert list(meta[0]) == ["filename", "scene_label", "identifier", "source_label"]
    assert {r["scene_label"] for r in meta} == set(cs.TAU_SCENE_TO_CLASS)
    assert meta[0]["filename"].startswith("audio/airport-barcelona-0-0-a")
    train = read_table(out / "evaluation_setup/fold1_train.csv")
    evaluate = read_table(out / "evaluation_setup/fold1_evaluate.csv")
    assert {r["scene_label"] for r in train} == set(cs.SCENES3_CLASSES)
    identifier = {r["filename"]: r["identifier"] for r in meta}
    assert not {identifier[r["filename"]] for r in train} & {
        identifier[r["filename"]] for r in evaluate
    }
    city = {r["filename"]: r["identifier"].split("-")[0] for r in meta}
    assert {city[r["filename"]] for r in train} == {city[r["filename"]] for r in evaluate}
    for r in train:
        fine = next(m["scene_label"] for m in meta if m["filename"] == r["filename"])
        assert cs.TAU_SCENE_TO_CLASS[fine] == r["scene_label"]
    assert sf.info(str(out / meta[0]["filename"])).samplerate == 48000
    assert len(read_table(out / "evaluation_setup/fold1_test.csv")) == len(evaluate)


def test_builds_are_byte_identical_for_a_seed(tmp_path: Path, instruments: Path) -> None:
    again = tmp_path / "instruments"
    cs.synthesize("instruments", again, preset="tiny", seed=1)
    assert file_bytes(again) == file_bytes(instruments)
    other = tmp_path / "other"
    cs.synthesize("instruments", other, preset="tiny", seed=2)
    wavs = {v for k, v in file_bytes(instruments).items() if k.endswith(".wav")}
    assert not wavs & {v for k, v in file_bytes(other).items() if k.endswith(".wav")}
    # Worker processes must not change the files (every clip carries its own seed).
    small = dataclasses.replace(SMALL3, n_cities=1)
    first, second = tmp_path / "a", tmp_path / "b"
    cs.build_scenes3(first, small, seed=2)
    cs.build_scenes3(second, dataclasses.replace(small, n_workers=2), seed=2)
    assert file_bytes(first) == file_bytes(second)


def test_refuses_unknown_preset_and_non_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown synth preset 'huge'"):
        cs.synthesize("scenes", tmp_path / "x", preset="huge")
    (tmp_path / "full").mkdir()
    (tmp_path / "full/file").write_text("x")
    with pytest.raises(UserError, match="not empty"):
        cs.synthesize("instruments", tmp_path / "full", preset="tiny")


def test_sedkit_synth_command(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    assert main(["synth", "instruments", str(out), "--preset", "tiny", "--seed", "4"]) == 0
    assert json.loads((out / "dataset_card.json").read_text())["seed"] == 4


def test_plugins_load_the_benchmarks(scenes: Path, tmp_path: Path) -> None:
    log = logging.getLogger("test.classification_synth")
    ctx = BuildContext("classification", None, 16000, 0, log)
    params = plugin.ScenesParams(
        root=str(scenes),
        clip_duration_s=2.0,
        labeled_fraction=0.25,
        labeled_batch_size=10,
        unlabeled_batch_size=16,
    )
    data = plugin.ScenesData(params, ctx)
    data.setup(tmp_path / "run", None, FeatureExtractor(FeatureParams(n_mels=32)))
    assert len(data.labeled) == 10 and len(data.unlabeled) == 30  # one of four per class
    batch = next(iter(data.train_loader(1)))
    assert batch.audio.shape == (26, 32000)
    source = json.loads((tmp_path / "run/data_source.json").read_text())
    assert (source["source"], source["preset"]) == ("synthesized", "tiny")
    # synthesize_if_missing builds the benchmark in an empty root, announced in the log.
    root = tmp_path / "auto"
    params = plugin.InstrumentsParams(
        root=str(root), clip_duration_s=1.0, synthesize_if_missing=True, synth_preset="tiny"
    )
    data = plugin.InstrumentsData(params, ctx)
    data.setup(None, None, FeatureExtractor(FeatureParams(n_mels=32)))
    assert (root / "dataset_card.json").is_file() and len(data.clips["test"]) == 10


def test_shared_synth_helpers() -> None:
    from sedkit.data import synthesis as sc

    def smooth(m: int) -> bool:
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        return m == 1

    for n in (1, 7, 97, 1000, 16001, 64001):
        assert sc.fast_len_at_least(n) == next(m for m in range(n, 4 * n + 2) if smooth(m))
        assert sc.fast_len_at_most(n) == next(m for m in range(n, 0, -1) if smooth(m))
    # String parts are keyed by name, integer parts as they are.
    a, b = sc.seeded_rng(3, "x", 1).random(), sc.seeded_rng(3, "x", 1).random()
    assert a == b != sc.seeded_rng(3, "y", 1).random()
    assert sc.seeded_rng(3, 5).random() == np.random.default_rng([3, 5]).random()


def test_staged_output_leaves_nothing_behind_on_failure(tmp_path: Path) -> None:
    from sedkit.data.synthesis import staged_output

    out = tmp_path / "bench"
    with pytest.raises(RuntimeError), staged_output(out) as staging:
        (staging / "half.wav").write_bytes(b"x")
        raise RuntimeError("interrupted")
    assert not out.exists() and list(tmp_path.iterdir()) == []
    with staged_output(out) as staging:
        (staging / "done.txt").write_text("ok")
    assert (out / "done.txt").read_text() == "ok" and sorted(tmp_path.iterdir()) == [out]
    # Nowhere to write (a file where a folder should be; as a read-only folder): one line.
    (tmp_path / "file").write_text("user data")
    with pytest.raises(UserError, match="file/bench: cannot be written"):
        staged_output(tmp_path / "file/bench").__enter__()
    assert (tmp_path / "file").read_text() == "user data"
