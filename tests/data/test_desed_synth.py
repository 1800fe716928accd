"""Tests of the embedded DESED-like benchmark (``sedkit synth desed``)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sedkit.errors import UserError
from sedkit_plugins.desed import plan as dp
from sedkit_plugins.desed import synth as ds

SR = 16000
TINY = ds.PRESETS["tiny"]
AUDIO_DIRS = {
    "synthetic": "audio/train/synthetic",
    "weak": "audio/train/weak",
    "unlabel_in_domain": "audio/train/unlabel_in_domain",
    "validation": "audio/validation",
    "eval": "audio/eval/public",
    "eval_synthetic": "audio/eval/synthetic",
}
STRONG_FILES = {
    "synthetic": "metadata/train/synthetic.tsv",
    "validation": "metadata/validation/validation.tsv",
    "eval": "metadata/eval/public.tsv",
    "eval_synthetic": "metadata/eval/synthetic.tsv",
    "weak": "metadata/hidden/weak.tsv",
    "unlabel_in_domain": "metadata/hidden/unlabel_in_domain.tsv",
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "desed"
    card = ds.synthesize(out, preset="tiny", seed=3)
    assert card == out / "dataset_card.json"
    return out


def _rows(path: Path) -> list[list[str]]:
    """Rows of a DESED tsv without its header (empty fields kept)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.split("\t") for line in lines[1:]]


def _strong(path: Path) -> dict[str, list[tuple[float, float, str]]]:
    """Strong labels per clip; clips listed with an empty row map to []."""
    events: dict[str, list[tuple[float, float, str]]] = {}
    for name, onset, offset, label in _rows(path):
        clip = events.setdefault(name, [])
        if label:
            clip.append((float(onset), float(offset), label))
        else:
            assert onset == offset == "", f"{path}: {name} has an empty label but times"
    return events


def _files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


# --------------------------------------------------------------------------------------------
# The built dataset
# --------------------------------------------------------------------------------------------
def test_same_seed_gives_byte_identical_files_whatever_the_worker_count(
    tiny: Path, tmp_path: Path
) -> None:
    again = tmp_path / "again"
    ds.build(again, dataclasses.replace(TINY, n_workers=2), seed=3, preset="tiny")
    assert _files(again) == _files(tiny)
    for rel in _files(tiny):
        assert (tiny / rel).read_bytes() == (again / rel).read_bytes(), rel
    assert not any(p.suffix == ".jams" for p in _files(tiny))


def test_another_seed_gives_other_audio(tiny: Path, tmp_path: Path) -> None:
    small = dataclasses.replace(
        TINY, n_synthetic=1, n_weak=1, n_unlabeled=1, n_validation=1, n_eval_synthetic=1
    )
    ds.build(tmp_path / "other", small, seed=4)  # the fixture used seed 3
    rel = Path(AUDIO_DIRS["synthetic"]) / "synth_00000.wav"
    assert (tmp_path / "other" / rel).read_bytes() != (tiny / rel).read_bytes()


def test_layout_and_audio_format(tiny: Path) -> None:
    counts = {
        "synthetic": TINY.n_synthetic,
        "weak": TINY.n_weak,
        "unlabel_in_domain": TINY.n_unlabeled,
        "validation": TINY.n_validation,
        "eval": TINY.n_eval,
        "eval_synthetic": TINY.n_eval_synthetic,
    }
    for subset, audio_dir in AUDIO_DIRS.items():
        wavs = sorted((tiny / audio_dir).glob("*.wav"))
        assert len(wavs) == counts[subset], subset
        for wav in wavs:
            info = sf.info(wav)
            assert (info.samplerate, info.channels, info.subtype) == (SR, 1, "PCM_16")
            assert info.frames == int(TINY.clip_duration_s * SR)
    for rel in (
        "metadata/train/weak.tsv",
        "metadata/train/unlabel_in_domain.tsv",
        "metadata/validation/validation_durations.tsv",
        "metadata/eval/synthetic_durations.tsv",
        "metadata/eval/public_durations.tsv",
        "dataset_card.md",
    ):
        assert (tiny / rel).is_file(), rel


def test_metadata_lists_every_clip_with_valid_events(tiny: Path) -> None:
    for subset, rel in STRONG_FILES.items():
        events = _strong(tiny / rel)
        on_disk = {p.name for p in (tiny / AUDIO_DIRS[subset]).glob("*.wav")}
        assert set(events) == on_disk, subset  # bare names, relative to the audio dir
        for clip_events in events.values():
            for onset, offset, label in clip_events:
                assert 0.0 <= onset < offset <= TINY.clip_duration_s
                assert label in ds.CLASSES
            # events of one class never overlap within a clip
            for label in {e[2] for e in clip_events}:
                spans = sorted((on, off) for on, off, lab in clip_events if lab == label)
                assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))
    unlabeled = [row[0] for row in _rows(tiny / "metadata/train/unlabel_in_domain.tsv")]
    assert sorted(unlabeled) == sorted(_strong(tiny / STRONG_FILES["unlabel_in_domain"]))
    durations = dict(_rows(tiny / "metadata/validation/validation_durations.tsv"))
    assert set(durations) == set(_strong(tiny / STRONG_FILES["validation"]))
    assert {float(d) for d in durations.values()} == {TINY.clip_duration_s}


def test_weak_labels_are_the_classes_present_and_some_real_clips_are_empty(tiny: Path) -> None:
    hidden = _strong(tiny / "metadata/hidden/weak.tsv")
    weak = {
        name: set(labels.split(",")) for name, labels in _rows(tiny / "metadata/train/weak.tsv")
    }
    assert weak == {name: {e[2] for e in events} for name, events in hidden.items()}
    assert all(weak.values())  # as in DESED, every weak clip holds an event
    # DESED form of an event-free clip: one row with empty onset, offset and label.
    lines = (tiny / "metadata/validation/validation.tsv").read_text().splitlines()
    empty = [line for line in lines if line.endswith("\t\t\t")]
    assert len(empty) == max(1, round(TINY.empty_fraction_validation * TINY.n_validation))


def test_labels_match_the_audio_of_clean_clips(tiny: Path) -> None:
    """In the synthetic domain (SNR >= 6 dB) labeled regions carry clearly more energy than
    event-free regions of the same clips: the labels describe the audio."""
    inside, outside = [], []
    for subset in ("synthetic", "eval_synthetic"):
        for name, events in _strong(tiny / STRONG_FILES[subset]).items():
            x, _ = sf.read(tiny / AUDIO_DIRS[subset] / name)
            active = np.zeros(len(x), bool)
            for onset, offset, _label in events:
                active[int(onset * SR) : int(offset * SR)] = True
            inside.append(np.mean(x[active] ** 2))
            if (~active).sum() > SR // 10:
                outside.append(np.mean(x[~active] ** 2))
    assert 10 * np.log10(np.mean(inside) / np.mean(outside)) > 6.0


def test_card_matches_metadata(tiny: Path) -> None:
    card = json.loads((tiny / "dataset_card.json").read_text())
    assert card["seed"] == 3 and card["preset"] == "tiny"
    assert card["classes"] == list(ds.CLASSES)
    assert card["generator_version"] == ds.GENERATOR_VERSION
    assert card["domain_shift"]["real"]["room"]["rt60_s"] == list(TINY.real.room.rt60_s)
    for subset, rel in STRONG_FILES.items():
        events = _strong(tiny / rel)
        entry = card["subsets"][subset]
        assert entry["n_clips"] == len(events)
        assert entry["n_clips_without_events"] == sum(1 for e in events.values() if not e)
        per_class = {c: 0 for c in ds.CLASSES}
        for clip_events in events.values():
            for _on, _off, label in clip_events:
                per_class[label] += 1
        assert entry["events_per_class"] == per_class
    assert card["subsets"]["validation"]["domain"] == "real"
    assert card["subsets"]["eval_synthetic"]["domain"] == "synthetic"
    assert "seed 3" in (tiny / "dataset_card.md").read_text()


def test_refuses_a_non_empty_output_folder_and_an_unknown_preset(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("user data")
    with pytest.raises(UserError, match="not empty"):
        ds.synthesize(tmp_path, preset="tiny")
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
    with pytest.raises(UserError, match="tiny"):
        ds.synthesize(tmp_path / "new", preset="huge")


def test_config_checks_values() -> None:
    with pytest.raises(ValueError, match="n_weak"):
        ds.SynthConfig(n_weak=0)
    with pytest.raises(ValueError, match="backgrounds"):
        dataclasses.replace(ds.REAL_DOMAIN, backgrounds=("white", "jet_engine"))


def test_config_checks_distractors_and_class_weights() -> None:
    with pytest.raises(ValueError, match="unknown distractors"):
        dataclasses.replace(ds.REAL_DOMAIN, distractors=("chainsaw",))
    with pytest.raises(ValueError, match="class_weights"):
        dataclasses.replace(ds.REAL_DOMAIN, class_weights=(1.0, 2.0))


# --------------------------------------------------------------------------------------------
# Benchmark v2: real-domain prior, distractors, labels with the audible reverberation tail
# --------------------------------------------------------------------------------------------
def test_default_sizes_follow_desed_2019_proportions() -> None:
    cfg = ds.PRESETS["default"]
    desed = {"n_synthetic": 2045, "n_weak": 1578, "n_unlabeled": 14412, "n_validation": 1168}
    scale = cfg.n_synthetic / desed["n_synthetic"]
    for name in ("n_weak", "n_unlabeled"):
        assert getattr(cfg, name) == pytest.approx(desed[name] * scale, rel=0.02), name
    assert cfg.n_unlabeled / cfg.n_weak == pytest.approx(14412 / 1578, rel=0.02)  # ~9x
    assert cfg.n_eval >= cfg.n_validation  # the reported split is not the smaller one


def _plans(domain: ds.DomainConfig, n: int = 400):
    cfg = dataclasses.replace(ds.PRESETS["default"], synthetic=domain)
    sources = {label: [(f"{label}.wav", 4.0)] for label in (*ds.CLASSES, *domain.distractors)}
    backgrounds = {kind: [(f"{kind}.wav", 12.0)] for kind in domain.backgrounds}
    return [
        dp._plan_clip(np.random.default_rng(i), cfg, domain, sources, backgrounds, False)
        for i in range(n)
    ]


def test_real_domain_follows_the_desed_class_prior_and_adds_distractors() -> None:
    plans = _plans(ds.REAL_DOMAIN)
    targets = [e.label for _, events, _ in plans for e in events if e.label in ds.CLASSES]
    distractors = [e.label for _, events, _ in plans for e in events if e.label not in ds.CLASSES]
    counts = {c: targets.count(c) for c in ds.CLASSES}
    assert max(counts, key=counts.get) == "Speech"
    # DESED's validation: Speech is 41 % of the events; same-class events never overlap, so a
    # few drawn Speech events find no room (4 s sources here): somewhat below 41 %.
    assert 0.3 < counts["Speech"] / len(targets) < 0.45
    assert counts["Speech"] > 1.5 * max(n for c, n in counts.items() if c != "Speech")
    assert 2.3 < len(targets) / len(plans) <= 3.0  # 1 + Poisson(2) drawn, a few find no room
    assert set(distractors) == set(ds.REAL_DOMAIN.distractors)
    assert len(distractors) / len(plans) == pytest.approx(1.0, abs=0.2)
    assert all(room is not None and 0.2 <= room[0] <= 0.8 for _, _, room in plans)
    synthetic = _plans(ds.SYNTHETIC_DOMAIN)
    assert all(e.label in ds.CLASSES for _, events, _ in synthetic for e in events)
    assert all(room is None for _, _, room in synthetic)


def test_labels_cover_the_audible_reverberation_tail_and_skip_distractors() -> None:
    plan = [
        dp._EventPlan("Dog", "d.wav", 0.0, 1.0, 0.5, 14.0),
        dp._EventPlan("Dog", "d.wav", 0.0, 1.55, 0.3, 10.0),
        dp._EventPlan("Cat", "c.wav", 0.0, 9.8, 0.19, 24.0),
        dp._EventPlan("music", "m.wav", 0.0, 2.0, 3.0, 5.0),
        dp._EventPlan("Speech", "s.wav", 0.0, 5.0, 1.0, 2.0),
    ]
    annotation = [(e.event_time, e.event_time + e.event_duration, e.label) for e in plan]
    events = ds.labeled_events(plan, annotation, ds.REAL_DOMAIN, (0.6, 4.0), 10.0)
    # Dog 1.0-1.5 s, SNR 14, DRR 4: +0.1 s tail to 1.6 s, which reaches the next bark (1.55 s):
    # one event 1.0-1.9 (the second bark's tail is 0.6 * 6 / 60 = 0.06 s). Cat stops at the clip
    # end; music is not a target; Speech at SNR 2 < DRR has no audible tail.
    assert events == [
        (1.0, 1.91, "Dog"),
        (5.0, 6.0, "Speech"),
        (9.8, 10.0, "Cat"),
    ]
    dry = ds.labeled_events(plan, annotation, ds.SYNTHETIC_DOMAIN, None, 10.0)
    assert (1.0, 1.5, "Dog") in dry and all(label != "music" for _, _, label in dry)


def test_eval_split_is_real_and_disjoint_from_validation(tiny: Path) -> None:
    card = json.loads((tiny / "dataset_card.json").read_text())
    assert card["subsets"]["eval"]["domain"] == "real"
    assert card["subsets"]["eval"]["source_pool"] == "real_eval"
    assert card["subsets"]["validation"]["source_pool"] == "real_validation"
    assert (tiny / "metadata/eval/public_durations.tsv").is_file()
    labels = {
        label for events in _strong(tiny / STRONG_FILES["eval"]).values() for *_, label in events
    }
    assert labels <= set(ds.CLASSES)


# --------------------------------------------------------------------------------------------
# Source sounds
# --------------------------------------------------------------------------------------------
def _features(x: np.ndarray) -> np.ndarray:
    """Crude clip descriptors: spectral shape in 16 log bands, loudness spread, spectral flux,
    share of active frames, spectral flatness."""
    n = len(x) // 512 * 512
    power = np.abs(np.fft.rfft(x[:n].reshape(-1, 512) * np.hanning(512), axis=1)) ** 2
    f = np.fft.rfftfreq(512, 1 / SR)
    edges = np.geomspace(60.0, 8000.0, 17)
    bands = np.stack(
        [power[:, (f >= lo) & (f < hi)].sum(1) for lo, hi in zip(edges, edges[1:], strict=False)], 1
    )
    frame_db = 10 * np.log10(power.sum(1) + 1e-10)
    active = frame_db > frame_db.max() - 30
    log_bands = np.log10(bands[active] + 1e-10)
    shape = log_bands.mean(0) - log_bands.mean()
    flux = np.abs(np.diff(log_bands, axis=0)).mean() if active.sum() > 1 else 0.0
    p = power[active][:, 4:] + 1e-12
    flatness = np.mean(np.exp(np.log(p).mean(1)) / p.mean(1))
    spread = np.std(frame_db[active]) / 10
    return np.concatenate([shape, [spread, flux, active.mean(), np.log10(flatness)]])


def _draw(label: str, seed: int, style: ds.SourceStyle | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ds.generate_source(label, rng, style or ds.SourceStyle(), SR, 3.0)


def test_classes_are_acoustically_distinct_and_vary_within() -> None:
    """A nearest-centroid classifier on crude features, fitted on 5 draws per class, names the
    class of 3 new draws per class far above chance (0.1); draws of one class differ."""
    feats = {
        label: np.array([_features(_draw(label, 1000 + 10 * k + i)) for i in range(8)])
        for k, label in enumerate(ds.CLASSES)
    }
    train = np.concatenate([v[:5] for v in feats.values()])
    mu, sd = train.mean(0), train.std(0) + 1e-9
    centroids = np.array([((v[:5] - mu) / sd).mean(0) for v in feats.values()])
    correct = 0
    for k, v in enumerate(feats.values()):
        distances = ((((v[5:] - mu) / sd)[:, None, :] - centroids[None]) ** 2).sum(-1)
        correct += int((distances.argmin(1) == k).sum())
    assert correct / (3 * len(ds.CLASSES)) >= 0.7
    for label, v in feats.items():
        assert np.std(v[:, :16], axis=0).max() > 0.02, label


def _active_share(x: np.ndarray, frame: int) -> float:
    """Share of frames within 10 dB of the loudest one."""
    frames = x[: len(x) // frame * frame].reshape(-1, frame)
    frame_db = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    return float(np.mean(frame_db > frame_db.max() - 10))


def test_long_classes_are_stationary_and_short_ones_impulsive() -> None:
    """Long classes last seconds and stay loud in every 100 ms frame; short classes last a few
    seconds at most (even when allowed 10 s) and are much more intermittent at 25 ms."""
    intermittency = {True: [], False: []}
    for k, label in enumerate(ds.CLASSES):
        long = label in ds.LONG_CLASSES
        max_duration_s = 3.0 if long else 10.0
        draws = [
            ds.generate_source(
                label,
                np.random.default_rng(2000 + 10 * k + i),
                ds.SourceStyle(),
                SR,
                max_duration_s,
            )
            for i in range(4)
        ]
        for x in draws:
            assert np.all(np.isfinite(x)) and 0.45 < np.max(np.abs(x)) <= 0.5
            assert len(x) <= max_duration_s * SR
        durations = [len(x) / SR for x in draws]
        assert len(set(durations)) > 1, label  # durations vary within the class
        if long:
            assert min(durations) >= 1.0, label
            assert np.mean([_active_share(x, SR // 10) for x in draws]) > 0.85, label
        else:
            assert np.mean(durations) < 4.0, label
        intermittency[long].append(np.mean([_active_share(x, SR // 40) for x in draws]))
    assert np.mean(intermittency[False]) < np.mean(intermittency[True]) - 0.2


def test_source_style_shifts_pitch() -> None:
    """The same draw with a style one octave down has its spectral peak one octave down."""
    for seed in range(40):  # find a beeper (not a bell) draw of Alarm_bell_ringing
        if np.random.default_rng(seed).random() < 0.6:
            break
    peaks = []
    for semitones in (0.0, -12.0):
        x = _draw("Alarm_bell_ringing", seed, ds.SourceStyle(pitch_semitones=semitones))
        spectrum = np.abs(np.fft.rfft(x))
        peaks.append(np.fft.rfftfreq(len(x), 1 / SR)[spectrum.argmax()])
    assert peaks[1] / peaks[0] == pytest.approx(0.5, rel=0.03)


# --------------------------------------------------------------------------------------------
# Domain shift transforms
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rt60_s", [0.3, 0.6, 0.9])
def test_room_impulse_response_decays_at_the_requested_rt60(rt60_s: float) -> None:
    """Schroeder backward integration of the RIR, line fit from -5 to -25 dB (T20), as in
    ISO 3382: the estimated RT60 is the requested one."""
    rir = ds.room_impulse_response(np.random.default_rng(0), SR, rt60_s, drr_db=0.0)
    assert rir[0] == 1.0 and np.argmax(np.abs(rir)) == 0  # direct path first: labels stay put
    energy = np.cumsum((rir**2)[::-1])[::-1]
    edc_db = 10 * np.log10(energy / energy[0])
    t = np.arange(len(rir)) / SR
    fit = (edc_db <= -5) & (edc_db >= -25)
    slope = np.polyfit(t[fit], edc_db[fit], 1)[0]
    assert -60.0 / slope == pytest.approx(rt60_s, rel=0.15)
    reverb = np.sum(rir[1:] ** 2)
    assert 10 * np.log10(1.0 / reverb) == pytest.approx(0.0, abs=0.5)  # drr_db honoured


def test_device_response_limits_the_band() -> None:
    device = ds.DeviceConfig(highpass_hz=(300.0, 300.0), lowpass_hz=(3000.0, 3000.0), eq_peaks=0)
    f = np.array([50.0, 300.0, 1000.0, 3000.0, 7000.0])
    response = ds.device_response(np.random.default_rng(0), f, device)
    assert response[0] < 0.05 and response[4] < 0.2
    assert response[1] == pytest.approx(0.5**0.5, rel=0.05)
    assert response[2] > 0.9 and response[3] == pytest.approx(0.5**0.5, rel=0.05)


def test_recording_applies_only_to_the_real_domain() -> None:
    x = np.random.default_rng(0).standard_normal(2 * SR) * 0.1
    x[SR:] = 0.0
    np.testing.assert_array_equal(
        ds.record(x, np.random.default_rng(1), SR, ds.SYNTHETIC_DOMAIN), x
    )
    y = ds.record(x, np.random.default_rng(1), SR, ds.REAL_DOMAIN)
    low, high = ds.REAL_DOMAIN.peak_dbfs
    assert low - 0.01 <= 20 * np.log10(np.max(np.abs(y))) <= high + 0.01
    # the reverberation tail and device noise fill the silence after the signal
    tail = y[SR + SR // 20 : SR + SR // 10]
    assert np.sqrt(np.mean(tail**2)) > 1e-3 * np.max(np.abs(y))
