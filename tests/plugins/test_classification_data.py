"""Classification data: clip lists, the stratified labeled split, two-stream batches, block
mixing, the scene features of the pruned-ensemble paper and the ``scenes3`` TAU layout, on tiny
trees written by the test itself."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import torchaudio

from sedkit.components import REAL, BuildContext
from sedkit.config import check_dataclass
from sedkit.data.audio import read_audio
from sedkit.data.augment import AugmentParams
from sedkit.data.features import FeatureExtractor, FeatureParams
from sedkit.errors import InputFileError, UserError
from sedkit_plugins.classification_data.data import (
    Scenes3Data,
    Scenes3Params,
    sedkit_register_datasets,
)
from sedkit_plugins.classification_data.datasets import (
    ClassificationData,
    ClassificationParams,
    block_mixing_plan,
    read_clip_list,
    segment_bounds,
    stratified_split,
)

SR = 8000
CLASSES = ["a", "b", "c"]
FEATURES = FeatureParams(sample_rate=SR, n_fft=256, hop_length=128, n_mels=16, normalization="none")
LOG = logging.getLogger("test.classification")

#: The pruned-ensemble paper's scene features (METHODS.md section 5).
SCENE_FEATURES = FeatureParams(
    sample_rate=48000,
    n_fft=2048,
    hop_length=1024,
    center=False,
    n_mels=48,
    mel_scale="slaney",
    mel_norm="slaney",
    power=2.0,
    to_db=True,
    db_amin=1e-10,
    db_top_db=80.0,
    normalization="none",
)


def _wav(path: Path, seed: int, seconds: float = 0.5, rate: int = SR) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    soundfile.write(path, 0.1 * rng.standard_normal(int(seconds * rate)), rate, subtype="FLOAT")


def _write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _ctx(task: str = "classification", seed: int = 0) -> BuildContext:
    return BuildContext(task=task, recipe_path=None, sample_rate=SR, seed=seed, log=LOG)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """10 train clips per class in 2 locations each, 2 test clips per class."""
    root = tmp_path / "data"
    train, test = ["filename\tlabel\tlocation"], ["filename\tlabel\tlocation"]
    seed = 0
    for c in CLASSES:
        for k in range(10):
            name = f"audio/{c}_train_{k}.wav"
            _wav(root / name, seed := seed + 1)
            train.append(f"{name}\t{c}\t{c}-loc{k % 2}")
        for k in range(2):
            name = f"audio/{c}_test_{k}.wav"
            _wav(root / name, seed := seed + 1)
            test.append(f"{name}\t{c}\t{c}-test")
    _write(root / "evaluation_setup/train.tsv", train)
    _write(root / "evaluation_setup/test.tsv", test)
    return root


def _data(root: Path, seed: int = 0, task: str = "classification", **kw) -> ClassificationData:
    settings = dict(labeled_batch_size=4, unlabeled_batch_size=8, eval_batch_size=5) | kw
    params = ClassificationParams(root=str(root), classes=CLASSES, clip_duration_s=0.5, **settings)
    return ClassificationData(params, _ctx(task, seed))


def _setup(data: ClassificationData, run_dir: Path | None = None) -> ClassificationData:
    data.setup(run_dir, None, FeatureExtractor(data_features(data)))
    return data


def data_features(data: ClassificationData) -> FeatureParams:
    return FEATURES


# ------------------------------------------------------------------------------ clip lists
def test_read_clip_list_header_positional_and_errors(tmp_path: Path) -> None:
    rows = read_clip_list(
        _write(tmp_path / "h.tsv", ["\ufefffilename\tscene_label\tidentifier", "x.wav\tbus\tb-1"])
    )
    assert (rows[0].filename, rows[0].label, rows[0].location, rows[0].line) == (
        "x.wav",
        "bus",
        "b-1",
        2,
    )
    rows = read_clip_list(
        _write(tmp_path / "p.tsv", ["x.wav\tbus\t2", "y.wav\tpark\t1"]),
        columns=["filename", "label", "fold"],
    )
    assert [(r.filename, r.label, r.fold) for r in rows] == [
        ("x.wav", "bus", "2"),
        ("y.wav", "park", "1"),
    ]
    crlf = tmp_path / "crlf.tsv"
    crlf.write_bytes(b"x.wav\tbus\r\ny.wav\tpark\r\n")
    assert [r.label for r in read_clip_list(crlf)] == ["bus", "park"]

    with pytest.raises(InputFileError, match=r"short\.tsv:2: expected tab-separated"):
        read_clip_list(_write(tmp_path / "short.tsv", ["x.wav\tbus", "y.wav"]))
    with pytest.raises(InputFileError, match=r"dup\.tsv:3: x\.wav is listed twice"):
        read_clip_list(_write(tmp_path / "dup.tsv", ["x.wav\tbus", "y.wav\tbus", "x.wav\tbus"]))
    with pytest.raises(InputFileError, match="empty"):
        read_clip_list(_write(tmp_path / "empty.tsv", [""]))
    with pytest.raises(InputFileError, match="not found"):
        read_clip_list(tmp_path / "nope.tsv")


def test_stratified_split_counts_seed_and_class_independence() -> None:
    labels = [0] * 40 + [1] * 20 + [2] * 3
    labeled, unlabeled = stratified_split(labels, 0.1, seed=5)
    per_class = Counter(labels[i] for i in labeled)
    assert per_class == {0: 4, 1: 2, 2: 1}  # round(0.3) = 0 -> at least one
    assert sorted(labeled + unlabeled) == list(range(len(labels)))
    assert stratified_split(labels, 0.1, seed=5) == (labeled, unlabeled)
    assert stratified_split(labels, 0.1, seed=6)[0] != labeled
    assert stratified_split(labels, 1.0, seed=5) == (list(range(len(labels))), [])
    # Keyed by class name: the draw of class "x" does not depend on the other classes.
    names = ["x", "y", "z"]
    a = stratified_split([0] * 10 + [1] * 10, 0.3, 1, class_names=names)[0]
    b = stratified_split([0] * 10 + [2] * 10, 0.3, 1, class_names=["y", "z", "x"])[0]
    assert [i for i in a if i < 10] == [i - 10 for i in b if i >= 10]
    with pytest.raises(ValueError):
        stratified_split(labels, 0.0, seed=1)


def test_block_mixing_plan_groups_and_cities() -> None:
    # Group "g" has 5 cities, group "h" one; 30 vs 10 clips.
    groups = ["g"] * 30 + ["h"] * 10
    locations = [f"city{i % 5}" for i in range(30)] + ["solo"] * 10
    labels = [0] * 30 + [1] * 10
    plan = block_mixing_plan(groups, locations, labels, range(40), 8, 10, np.random.default_rng(0))
    assert plan.sources.shape == (8, 10) and len(plan) == 8
    assert Counter(plan.labels.tolist()) == {0: 6, 1: 2}  # proportional to group sizes
    for row, label in zip(plan.sources, plan.labels, strict=True):
        assert {groups[i] for i in row} == {"g" if label == 0 else "h"}
        cities = Counter(locations[i] for i in row)
        if label == 0:
            # Ten segments over five cities: every city exactly twice.
            assert set(cities.values()) == {2} and len(cities) == 5
    assert ((plan.offsets >= 0) & (plan.offsets < 1)).all()
    assert segment_bounds(467, 10)[0] == (0, 47) and segment_bounds(467, 10)[-1][1] == 467


# ------------------------------------------------------------------------------ the DataModule
def test_batches_streams_labels_and_determinism(tree: Path, tmp_path: Path) -> None:
    data = _setup(_data(tree, labeled_fraction=0.2), tmp_path / "run")
    assert len(data.labeled) == 6 and len(data.unlabeled) == 24  # 2 of 10 per class
    batches = list(data.train_loader(1))
    assert len(batches) == 3  # ceil(24 / 8) unlabeled batches; 6 labeled cycle
    for batch in batches:
        assert batch.stream == ["labeled"] * 4 + ["unlabeled"] * 8
        assert batch.audio.shape == (12, 4000)
        assert batch.label.dtype == torch.long
        assert (batch.label[:4] >= 0).all() and (batch.label[4:] == -1).all()
        assert torch.equal(batch.hidden["label"][:4], batch.label[:4])
        assert (batch.domain == REAL).all()
        for name, true in zip(batch.filenames, batch.hidden["label"].tolist(), strict=True):
            assert name.split("/")[1].startswith(CLASSES[true])
    labeled_names = {
        f for b in batches for f, s in zip(b.filenames, b.stream, strict=True) if s == "labeled"
    }
    unlabeled_names = {
        f for b in batches for f, s in zip(b.filenames, b.stream, strict=True) if s == "unlabeled"
    }
    assert not labeled_names & unlabeled_names
    again = list(_setup(_data(tree, labeled_fraction=0.2)).train_loader(1))
    assert [b.filenames for b in again] == [b.filenames for b in batches]
    assert [b.filenames for b in data.train_loader(2)] != [b.filenames for b in batches]

    val = list(data.val_loader())
    assert [len(b) for b in val] == [5, 1]
    assert torch.cat([b.label for b in val]).tolist() == [0, 0, 1, 1, 2, 2]
    unl = list(data.unlabeled_loader())
    assert all((b.label == -1).all() for b in unl)
    true = list(data.evaluation_loader("unlabeled"))
    assert torch.equal(
        torch.cat([b.label for b in true]), torch.cat([b.hidden["label"] for b in unl])
    )
    used = (tmp_path / "run/clips_used.tsv").read_text().splitlines()
    assert used[0] == "subset\tfilename\tlabel\tlocation\tpath"
    assert Counter(line.split("\t")[0] for line in used[1:]) == {
        "labeled": 6,
        "unlabeled": 24,
        "test": 6,
    }


def test_supervised_only_and_all_labels(tree: Path) -> None:
    data = _setup(_data(tree, labeled_fraction=1.0))
    assert not data.unlabeled
    batch = next(iter(data.train_loader(1)))
    assert batch.stream == ["labeled"] * 4 and (batch.label >= 0).all()
    data = _setup(_data(tree, labeled_fraction=0.5, unlabeled_batch_size=0))
    assert all(s == "labeled" for b in data.train_loader(1) for s in b.stream)


def test_test_folds_and_max_clips(tree: Path) -> None:
    lines = ["filename\tlabel\tfold"]
    for c in CLASSES:
        lines += [f"audio/{c}_train_{k}.wav\t{c}\t{1 + (k >= 8)}" for k in range(10)]
    _write(tree / "all.tsv", lines)
    data = _setup(_data(tree, train_list="all.tsv", test_list=None, test_folds=["2"]))
    assert len(data.clips["train"]) == 24 and len(data.clips["test"]) == 6
    data = _setup(_data(tree, max_clips=4))
    assert [c.label for c in data.clips["train"]] == [0, 0, 1, 2]  # round-robin, list order
    with pytest.raises(ValueError, match="test_folds"):
        ClassificationParams(classes=CLASSES, test_list=None)


def test_input_errors(tree: Path, tmp_path: Path) -> None:
    _write(tree / "bad.tsv", ["filename\tlabel", "audio/a_train_0.wav\tzebra"])
    with pytest.raises(InputFileError, match=r"bad\.tsv:2: label 'zebra' is not one of"):
        _setup(_data(tree, train_list="bad.tsv"))
    with pytest.raises(UserError, match="task: classification"):
        _setup(_data(tree, task="sed"))
    with pytest.raises(InputFileError, match="missing or empty"):
        _setup(_data(tmp_path / "nothing"))
    (tree / "audio/b_train_3.wav").unlink()
    data = _setup(_data(tree), tmp_path / "run")
    assert len(data.clips["train"]) == 29
    assert "b_train_3.wav" in (tmp_path / "run/clips_missing.tsv").read_text()
    with pytest.raises(InputFileError, match="1 of 30 train audio files are missing"):
        _setup(_data(tree, missing_audio="error"))
    (tree / "audio/c_train_0.wav").write_bytes(b"not audio")
    with pytest.raises(InputFileError, match=r"c_train_0\.wav: cannot read audio"):
        for _ in _setup(_data(tree)).train_loader(1):
            pass
    _, problems = check_dataclass(
        ClassificationParams, {"classes": CLASSES, "labeled_fraction": 0}, "data.params"
    )
    assert any("labeled_fraction" in p for p in problems)


def test_augment_only_labeled_rows(tree: Path) -> None:
    data = _setup(_data(tree, labeled_fraction=0.2, augment=AugmentParams(noise_std=1.0)))
    batch = next(iter(data.train_loader(1)))
    x = torch.randn(len(batch), 16, 30)
    y, _ = data.augment_features(x, batch)
    assert not torch.equal(y[:4], x[:4]) and torch.equal(y[4:], x[4:])
    y2, _ = data.augment_features(x, batch)  # same (seed, epoch, batch) -> same draw
    assert torch.equal(y, y2)
    with pytest.raises(ValueError, match="mixup"):
        ClassificationParams(classes=CLASSES, augment=AugmentParams(mixup_prob=0.5))


@pytest.mark.parametrize("cache", [False, True])
def test_block_mixing_segments_come_from_planned_sources(
    tree: Path, cache: bool, tmp_path: Path
) -> None:
    data = _data(
        tree,
        labeled_fraction=0.5,
        unlabeled_batch_size=0,
        block_mixing=True,
        block_mixing_segments=4,
        block_mixing_ratio=1.0,
        cache_features=cache,
        cache_dir=str(tmp_path / "cache"),
    )
    extractor = FeatureExtractor(FEATURES)
    data.setup(None, None, extractor)
    plan = data._fixed_plan
    assert len(plan) == len(data.labeled) == 15
    train = data.clips["train"]
    batches = list(data.train_loader(1))
    assert [b.filenames for b in data.train_loader(2)] != [b.filenames for b in batches]
    mixed = [
        (b, i) for b in batches for i, f in enumerate(b.filenames) if f.startswith("block_mix_")
    ]
    assert len({b.filenames[i] for b, i in mixed}) == 15
    batch, i = mixed[0]
    j = int(batch.filenames[i].split("_")[-1])
    assert batch.label[i] == plan.labels[j] == train[plan.sources[j, 0]].label
    for source in plan.sources[j]:
        assert train[source].label == plan.labels[j]
        assert train[source].fine == train[plan.sources[j, 0]].fine
    if cache:
        x, t = batch.features[i], batch.features.shape[-1]
        for k, (start, stop) in enumerate(segment_bounds(t, 4)):
            whole = extractor.spectrogram(
                read_audio(train[plan.sources[j, k]].path, SR, n_samples=4000)
            )
            at = int(plan.offsets[j, k] * (t - (stop - start) + 1))
            torch.testing.assert_close(x[:, start:stop], whole[:, at : at + stop - start])
    else:
        x = batch.audio[i]
        for k, (start, stop) in enumerate(segment_bounds(4000, 4)):
            whole = read_audio(train[plan.sources[j, k]].path, SR, n_samples=4000)
            at = int(plan.offsets[j, k] * (4000 - (stop - start) + 1))
            torch.testing.assert_close(x[start:stop], whole[at : at + stop - start])


# ------------------------------------------------------------------------------ scene features
def test_scene_features_give_48_by_467_for_10_s_at_48k() -> None:
    extractor = FeatureExtractor(SCENE_FEATURES)
    audio = 0.1 * torch.randn(2, 480000, generator=torch.Generator().manual_seed(0))
    features = extractor.spectrogram(audio)
    assert features.shape == (2, 48, 467) == (2, 48, extractor.n_frames(480000))
    # Independent reference: torchaudio's own transforms with the same settings.
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=48000,
        n_fft=2048,
        hop_length=1024,
        f_min=0.0,
        f_max=24000.0,
        n_mels=48,
        center=False,
        power=2.0,
        norm="slaney",
        mel_scale="slaney",
    )(audio[:1])
    reference = torchaudio.transforms.AmplitudeToDB("power", top_db=80.0)(mel)
    torch.testing.assert_close(features[:1], reference, atol=1e-3, rtol=1e-4)


# ------------------------------------------------------------------------------ scenes3 layout
def test_scenes3_tau_layout_fine_labels_and_cities(tmp_path: Path) -> None:
    root = tmp_path / "tau"
    sr = 16000
    meta = ["filename\tscene_label\tidentifier\tsource_label"]
    train, evaluate = ["filename\tscene_label"], ["filename\tscene_label"]
    scenes = {"airport": "indoor", "park": "outdoor", "bus": "transportation"}
    for scene, coarse in scenes.items():
        for city in ("lyon", "prague"):
            for loc in range(2):
                name = f"audio/{scene}-{city}-{loc}-0-a.wav"
                _wav(root / name, len(meta), seconds=1.0, rate=sr)
                meta.append(f"{name}\t{scene}\t{city}-{loc}\ta")
                (train if loc == 0 else evaluate).append(f"{name}\t{coarse}")
    _write(root / "meta.csv", meta)
    _write(root / "evaluation_setup/fold1_train.csv", train)
    _write(root / "evaluation_setup/fold1_evaluate.csv", evaluate)
    params = Scenes3Params(root=str(root), clip_duration_s=1.0, block_mixing=True)
    data = Scenes3Data(params, _ctx())
    data.setup(None, None, FeatureExtractor(FeatureParams(sample_rate=sr, n_mels=16)))
    clip = data.clips["train"][0]
    assert (clip.fine, clip.location, data.classes[clip.label]) == ("airport", "lyon", "indoor")
    assert [c.label for c in data.clips["test"]] == [0, 0, 1, 1, 2, 2]
    # Without meta.csv, fine scene and city come from the file name; fine labels in the lists
    # are mapped to the coarse classes.
    (root / "meta.csv").unlink()
    _write(
        root / "evaluation_setup/fold1_train.csv",
        ["filename\tscene_label"]
        + [f"{r.split(chr(9))[0]}\t{r.split('-')[0][6:]}" for r in train[1:]],
    )
    data = Scenes3Data(params, _ctx())
    data.setup(None, None, FeatureExtractor(FeatureParams(sample_rate=sr, n_mels=16)))
    assert [(c.fine, c.location, c.label) for c in data.clips["train"][:2]] == [
        ("airport", "lyon", 0),
        ("airport", "prague", 0),
    ]


def test_plugin_registers_three_datasets() -> None:
    registered: dict[str, type] = {}
    sedkit_register_datasets(lambda name, cls: registered.setdefault(name, cls))
    assert sorted(registered) == ["instruments", "scenes", "scenes3"]
    for cls in registered.values():
        assert cls.synthesize is not None and issubclass(cls, ClassificationData)
