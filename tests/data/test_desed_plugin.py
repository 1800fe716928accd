"""The ``desed`` dataset plugin on tiny DESED-layout trees written by the test itself."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from shared_support import write_tsv

from sedkit.components import REAL, SYNTHETIC, BuildContext
from sedkit.config import check_dataclass
from sedkit.data.augment import AugmentParams
from sedkit.data.features import FeatureExtractor, FeatureParams
from sedkit.data.labels import LabelEncoder, read_durations_tsv, read_strong_tsv
from sedkit.errors import InputFileError
from sedkit_plugins.desed.data import DESEDData, DESEDParams, sedkit_register_datasets

SR = 8000
CLASSES = ["Alarm_bell_ringing", "Cat", "Dog", "Speech"]
FEATURES = FeatureParams(sample_rate=SR, n_fft=256, hop_length=64, n_mels=16, normalization="none")
POOLING = 4


def _wav(path: Path, seed: int, seconds: float = 1.0, rate: int = SR) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    soundfile.write(path, 0.1 * rng.standard_normal(int(seconds * rate)), rate)


def make_tree(root: Path, *, missing: tuple[str, ...] = (), hidden: bool = True) -> Path:
    """A DESED 2019 layout: 6 synthetic, 4 weak, 6 unlabeled, 4 validation clips of 1 s.

    Validation durations are left out on purpose (the plugin computes them); one weak clip is
    stored at 16 kHz stereo to exercise resampling and mix-down.
    """
    strong = [[f"syn{i}.wav", 0.1 * i, 0.1 * i + 0.3, CLASSES[i % 4]] for i in range(6)]
    write_tsv(
        root / "metadata/train/synthetic.tsv",
        ["filename", "onset", "offset", "event_label"],
        strong,
    )
    write_tsv(
        root / "metadata/train/weak.tsv",
        ["filename", "event_labels"],
        [[f"weak{i}.wav", ",".join(CLASSES[: i + 1])] for i in range(4)],
    )
    write_tsv(
        root / "metadata/train/unlabel_in_domain.tsv",
        ["filename"],
        [[f"unl{i}.wav"] for i in range(6)],
    )
    validation = [
        ["val0.wav", 0.0, 0.5, "Dog"],
        ["val0.wav", 0.2, 0.9, "Speech"],
        ["val1.wav", "", "", ""],
        ["val2.wav", 0.5, 1.0, "Cat"],
        ["val3.wav", 0.25, 0.5, "Alarm_bell_ringing"],
    ]
    write_tsv(
        root / "metadata/validation/validation.tsv",
        ["filename", "onset", "offset", "event_label"],
        validation,
    )
    if hidden:
        write_tsv(
            root / "metadata/hidden/weak.tsv",
            ["filename", "onset", "offset", "event_label"],
            [[f"weak{i}.wav", 0.0, 0.5, CLASSES[0]] for i in range(4)],
        )
        write_tsv(
            root / "metadata/hidden/unlabel_in_domain.tsv",
            ["filename", "onset", "offset", "event_label"],
            [[f"unl{i}.wav", 0.5, 1.0, "Dog"] for i in range(6)],
        )
    for i in range(6):
        _wav(root / f"audio/train/synthetic/syn{i}.wav", i)
        _wav(root / f"audio/train/unlabel_in_domain/unl{i}.wav", 100 + i)
    for i in range(4):
        _wav(root / f"audio/train/weak/weak{i}.wav", 200 + i)
        _wav(root / f"audio/validation/val{i}.wav", 300 + i, seconds=0.8 if i == 2 else 1.0)
    stereo = np.random.default_rng(9).standard_normal((16000, 2)) * 0.1
    soundfile.write(root / "audio/train/weak/weak3.wav", stereo, 16000)
    for name in missing:
        (root / name).unlink()
    return root


def build(root: Path, tmp_path: Path, **overrides) -> tuple[DESEDData, Path, FeatureExtractor]:
    params = DESEDParams(
        root=str(root), classes=CLASSES, clip_duration_s=1.0, batch_size=8, **overrides
    )
    context = BuildContext(
        task="sed", recipe_path=None, sample_rate=SR, seed=11, log=logging.getLogger("test.desed")
    )
    data = DESEDData(params, context)
    extractor = FeatureExtractor(FEATURES)
    n_out = extractor.n_frames(SR) // POOLING
    encoder = LabelEncoder(CLASSES, frame_hop_s=extractor.hop_s * POOLING, n_frames=n_out)
    run_dir = tmp_path / "run"
    data.setup(run_dir, encoder, extractor)
    data.encoder = encoder  # for the tests' own checks
    return data, run_dir, extractor


@pytest.fixture
def tree(tmp_path):
    return make_tree(tmp_path / "dcase2019")


def test_registered_and_params_pass_the_recipe_validator():
    registered = {}
    sedkit_register_datasets(lambda name, cls: registered.setdefault(name, cls))
    assert registered == {"desed": DESEDData}
    value, problems = check_dataclass(
        DESEDParams,
        {
            "root": "x",
            "stream_proportions": [0.5, 0.5, 0],
            "augment": {"mixup_prob": 0.5},
            "validation_durations_tsv": None,
            "max_clips_per_subset": 3,
        },
        "data.params",
    )
    assert problems == [] and value.augment.mixup_prob == 0.5
    _, problems = check_dataclass(DESEDParams, {"missing_audio": "ignore"}, "data.params")
    assert problems and "missing_audio" in problems[0]


def test_training_batches_mix_streams_with_targets_and_domains(tree, tmp_path):
    data, run_dir, extractor = build(tree, tmp_path)
    loader = data.train_loader(1)
    assert len(loader) == 3  # ceil(6 unlabeled / 4 per batch) = 2, ceil(6 synthetic / 2) = 3
    batches = list(loader)
    assert len(batches) == 3
    batch = batches[0]
    assert batch.stream == ["synthetic"] * 2 + ["weak"] * 2 + ["unlabeled"] * 4
    assert batch.domain.tolist() == [SYNTHETIC] * 2 + [REAL] * 6
    assert batch.audio.shape == (8, SR)
    assert batch.strong_mask.tolist() == [True] * 2 + [False] * 6
    assert batch.weak_mask.tolist() == [True] * 4 + [False] * 4
    encoder = data.encoder
    strong = read_strong_tsv(tree / "metadata/train/synthetic.tsv")
    for i in range(2):
        expected = encoder.encode_strong(strong[batch.filenames[i]])
        assert torch.equal(batch.strong[i], expected)
        assert torch.equal(batch.weak[i], expected.amax(0))
    assert batch.hidden["hidden_mask"].tolist() == [False] * 2 + [True] * 6
    assert batch.hidden["weak"][2:, CLASSES.index("Dog")].sum() == 4  # unlabeled hide a dog
    # deterministic per (seed, epoch)
    again = [b.filenames for b in data.train_loader(1)]
    assert again == [b.filenames for b in batches]
    assert again != [b.filenames for b in data.train_loader(2)]
    features = extractor.extract(batch)
    assert features.shape == (8, 16, extractor.n_frames(SR))


def test_validation_unlabeled_reference_and_run_records(tree, tmp_path):
    data, run_dir, _ = build(tree, tmp_path)
    (val,) = list(data.val_loader())
    assert val.filenames == [f"val{i}.wav" for i in range(4)]
    assert set(val.stream) == {"validation"} and val.domain.tolist() == [REAL] * 4
    assert val.strong_mask.all() and val.strong[1].sum() == 0  # val1 holds no event
    names = [n for b in data.unlabeled_loader() for n in b.filenames]
    assert names == [f"weak{i}.wav" for i in range(4)] + [f"unl{i}.wav" for i in range(6)]
    ref = data.reference()
    gt = read_strong_tsv(ref.ground_truth_tsv)
    assert list(gt) == [f"val{i}.wav" for i in range(4)] and gt["val1.wav"] == []
    durations = read_durations_tsv(ref.durations_tsv)
    assert durations == {"val0.wav": 1.0, "val1.wav": 1.0, "val2.wav": 0.8, "val3.wav": 1.0}
    used = (run_dir / "clips_used.tsv").read_text().splitlines()
    assert used[0] == "subset\tfilename\tpath" and len(used) == 1 + 6 + 4 + 6 + 4
    assert json.loads((run_dir / "data_source.json").read_text())["source"] == "existing"


def test_oracle_labels_give_weak_and_unlabeled_clips_their_hidden_strong_labels(tree, tmp_path):
    data, _, _ = build(tree, tmp_path, oracle_labels=True)
    batch = next(iter(data.train_loader(1)))
    assert batch.strong_mask.all() and batch.weak_mask.all()  # every stream is now strong
    encoder = data.encoder
    hidden = read_strong_tsv(tree / "metadata/hidden/unlabel_in_domain.tsv")
    for i, name in enumerate(batch.filenames):
        if name.startswith("unl"):
            assert torch.equal(batch.strong[i], encoder.encode_strong(hidden[name]))
    # Without hidden labels the oracle cannot run: one clear error naming the file.
    bare = make_tree(tmp_path / "bare", hidden=False)
    with pytest.raises(InputFileError, match="oracle_labels: no hidden labels for 4 weak"):
        build(bare, tmp_path / "b", oracle_labels=True)


def test_missing_audio_is_named_and_skipped_or_fatal(tmp_path, caplog):
    root = make_tree(
        tmp_path / "d", missing=("audio/train/weak/weak1.wav", "audio/validation/val3.wav")
    )
    with caplog.at_level(logging.WARNING):
        data, run_dir, _ = build(root, tmp_path)
    assert "1 of 4 weak audio files are missing" in caplog.text and "weak1.wav" in caplog.text
    used = (run_dir / "clips_used.tsv").read_text()
    assert "weak1.wav" not in used and "val3.wav" not in used
    assert "weak1.wav" in (run_dir / "clips_missing.tsv").read_text()
    # the scoring reference lists only the validation clips used
    assert "val3.wav" not in read_strong_tsv(data.reference().ground_truth_tsv)
    with pytest.raises(InputFileError, match="weak1.wav"):
        build(root, tmp_path, missing_audio="error")


def test_malformed_metadata_names_file_and_line(tree, tmp_path):
    path = tree / "metadata/train/weak.tsv"
    path.write_text("filename\tevent_labels\nweak0.wav\tDog\nweak1.wav\tNot_a_class\n")
    with pytest.raises(InputFileError) as info:
        build(tree, tmp_path)
    assert str(info.value).startswith(f"{path}:3:")


@pytest.mark.parametrize("num_workers", [0, 1])
def test_corrupt_audio_is_an_input_file_error_naming_it(tree, tmp_path, num_workers):
    data, _, _ = build(tree, tmp_path, num_workers=num_workers)
    bad = tree / "audio/validation/val2.wav"
    bad.write_bytes(b"RIFF....WAVEfmt this is not audio")
    with pytest.raises(InputFileError) as info:  # raised with its type even from a worker
        list(data.val_loader())
    assert str(info.value).startswith(f"{bad}: cannot read audio")


def test_feature_cache_matches_on_the_fly_and_is_keyed(tree, tmp_path):
    plain, _, extractor = build(tree, tmp_path)
    cached, _, _ = build(tree, tmp_path, cache_features=True)
    files = sorted((tree / ".sedkit_cache").rglob("*.npy"))
    assert len(files) == 4  # one per subset
    on_the_fly = next(iter(plain.val_loader()))
    from_cache = next(iter(cached.val_loader()))
    assert from_cache.audio is None and from_cache.features is not None
    torch.testing.assert_close(
        extractor.extract(from_cache), extractor.spectrogram(on_the_fly.audio)
    )
    train = next(iter(cached.train_loader(1)))
    assert train.features.shape == (8, 16, extractor.n_frames(SR))
    stamps = {f: f.stat().st_mtime_ns for f in files}
    build(tree, tmp_path, cache_features=True)  # reused, not rewritten
    assert {f: f.stat().st_mtime_ns for f in files} == stamps
    # a changed clip gives a new fingerprint, hence a new file for that subset only
    _wav(tree / "audio/validation/val0.wav", 999)
    build(tree, tmp_path, cache_features=True)
    assert len(list((tree / ".sedkit_cache").rglob("validation-*.npy"))) == 2


def test_augmentation_is_deterministic_per_training_batch(tree, tmp_path):
    augment = AugmentParams(time_shift_max_s=0.2, freq_masks=1, noise_std=0.1)
    data, _, extractor = build(tree, tmp_path, augment=augment)
    outputs = []
    for _ in range(2):
        batch = next(iter(data.train_loader(3)))
        x = extractor.extract(batch)
        outputs.append(data.augment_features(x, batch))
    (x1, b1), (x2, b2) = outputs
    assert torch.equal(x1, x2) and torch.equal(b1.strong, b2.strong)
    assert not torch.equal(x1, extractor.extract(batch))


def test_missing_root_synthesizes_when_asked(tmp_path, monkeypatch, caplog):
    root = tmp_path / "absent"
    with pytest.raises(InputFileError, match="missing or empty"):
        build(root, tmp_path)
    calls = []

    def fake_synthesize(out_dir, *, preset, seed, log):
        calls.append((Path(out_dir), preset, seed))
        make_tree(Path(out_dir))
        card = Path(out_dir) / "dataset_card.json"
        card.write_text(json.dumps({"generator": "fake", "preset": preset, "seed": seed}))
        return card

    monkeypatch.setattr(DESEDData, "synthesize", staticmethod(fake_synthesize))
    options = dict(synthesize_if_missing=True, synth_preset="tiny", synth_seed=5)
    with caplog.at_level(logging.WARNING):
        data, run_dir, _ = build(root, tmp_path, **options)
    assert calls == [(root.resolve(), "tiny", 5)]
    assert "synthesizing" in caplog.text
    source = json.loads((run_dir / "data_source.json").read_text())
    assert source["source"] == "synthesized" and source["synthesized_by_this_run"]
    assert (source["generator"], source["preset"], source["seed"]) == ("fake", "tiny", 5)
    assert len(list(data.val_loader())) == 1
    # a resumed run finds the tree, does not synthesize again, and keeps the record
    build(root, tmp_path, **options)
    assert len(calls) == 1
    assert json.loads((run_dir / "data_source.json").read_text())["synthesized_by_this_run"]


def test_synthesize_wrapper_passes_the_generator_a_callable_log(tmp_path, monkeypatch):
    synth = pytest.importorskip("sedkit_plugins.desed.synth")
    received = {}

    def fake(out_dir, *, preset, seed, log):
        received.update(out_dir=out_dir, preset=preset, seed=seed)
        log("hello from the generator")
        return Path(out_dir) / "dataset_card.json"

    monkeypatch.setattr(synth, "synthesize", fake)
    messages = []
    logger = logging.getLogger("test.desed.synth")
    monkeypatch.setattr(logger, "info", messages.append)
    DESEDData.synthesize(tmp_path / "x", preset="tiny", seed=2, log=logger)
    assert received == {"out_dir": tmp_path / "x", "preset": "tiny", "seed": 2}
    assert messages == ["hello from the generator"]
