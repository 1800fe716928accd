"""``sedkit synth desed --source real``: recordings split by recording, excerpts band-limited,
procedural classes flagged, the missing-package message. Fake recordings written here stand in
for the Debian packages; the test that reads the real ones skips when they are not fetched."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from shared_support import synth_without_sounds

from sedkit.cli import main
from sedkit.data import debian_sounds
from sedkit_plugins.desed import real_sources as dr
from sedkit_plugins.desed import synth as ds

SR = 16000


#: Smaller than the tiny preset (1 s clips, one source per class and pool, a clip or two per
#: subset): the end-to-end build below generates ~100 sources, which dominates its time.
SMALL = dataclasses.replace(
    ds.PRESETS["tiny"],
    clip_duration_s=1.0,
    n_synthetic=1,
    n_weak=1,
    n_unlabeled=1,
    n_validation=2,
    n_eval=1,
    n_eval_synthetic=1,
    max_events=2,
    max_events_real=2,
    sources_per_class=1,
    sources_per_class_real_train=1,
)


def _write(path: Path, hz: float, rate: int, seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * hz * t) + 0.05 * np.sin(2 * np.pi * 0.45 * rate * t)
    sf.write(path, x, rate, subtype="PCM_16")


@pytest.fixture
def fake_sounds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Dog: three recordings (one cut in two files); Cat: one usable, one at 8 kHz;
    backgrounds: two recordings."""
    root = tmp_path / "cache/root"
    _write(root / "fake/dog_a1.wav", 500, 22050, 0.6)
    _write(root / "fake/dog_a2.wav", 520, 22050, 0.7)
    _write(root / "fake/dog_b.wav", 700, 44100, 0.5)
    _write(root / "fake/dog_c.wav", 900, 48000, 0.4)
    _write(root / "fake/cat_a.wav", 600, 22050, 0.5)
    _write(root / "fake/cat_b.wav", 650, 8000, 0.5)
    _write(root / "fake/bg_a.wav", 100, 44100, 1.5)
    _write(root / "fake/bg_b.wav", 150, 22050, 2.0)
    rows = [
        ("event", "Dog", "dog-a", "fake/dog_a*.wav"),
        ("event", "Dog", "dog-b", "fake/dog_b.wav"),
        ("event", "Dog", "dog-c", "fake/dog_c.wav"),
        ("event", "Cat", "cat-a", "fake/cat_a.wav"),
        ("event", "Cat", "cat-b", "fake/cat_b.wav"),
        ("background", "", "bg-a", "fake/bg_a.wav"),
        ("background", "", "bg-b", "fake/bg_b.wav"),
    ]
    manifest = tuple(dr.Recording(*r[:3], "fake-package", r[3], "CC0-1.0", "test") for r in rows)
    monkeypatch.setattr(dr, "MANIFEST", manifest)
    monkeypatch.setenv("SEDKIT_SOUNDS_DIR", str(tmp_path / "cache"))
    return tmp_path


def test_split_keeps_every_recording_on_one_side() -> None:
    rng = np.random.default_rng(0)
    two = dr._split(["a", "b"], rng)
    assert two["validation"] == two["eval"] and not set(two["train"]) & set(two["eval"])
    five = dr._split(list("abcde"), rng)
    assert sorted(sum(five.values(), [])) == list("abcde")
    assert all(len(five[g]) == 1 for g in ("validation", "eval")) and len(five["train"]) == 3


def test_fake_recordings_split_by_recording_and_low_rates_left_out(fake_sounds: Path) -> None:
    sounds = dr.RealSounds.load(1, fetch=False, say=lambda m: None)
    assert set(sounds.groups) == {"Dog", ""}  # Cat has one usable recording: procedural
    assert sounds.files["dog-a"][0].endswith("dog_a1.wav") and len(sounds.files["dog-a"]) == 2
    assert {"file": "cat_b.wav", "why": "below 16 kHz"} in sounds.left_out
    dog = sounds.groups["Dog"]
    assert not set(dog["train"]) & (set(dog["validation"]) | set(dog["eval"]))
    work = fake_sounds / "work"

    def job(pool: str, role: str, label: str, index: int) -> ds._SourceJob:
        domain = ds.REAL_DOMAIN if pool.startswith("real") else ds.SYNTHETIC_DOMAIN
        path = work / pool / role / label / f"{label}_{index:04d}.wav"
        return ds._SourceJob(path, label, domain, (0, 1, 2, index), 7, SR, 4.0)

    jobs = [
        job("real_eval", "fg", "Dog", 3),
        job("synthetic_train", "fg", "Dog", 0),
        job("real_train", "fg", "Cat", 0),
        job("real_validation", "bg", "brown", 1),
        job("synthetic_train", "bg", "white", 0),
    ]
    out = sounds.source_jobs(jobs)
    assert isinstance(out[0], dr.ExcerptJob) and isinstance(out[1], dr.ExcerptJob)
    eval_files = {f for i in dog["eval"] for f in sounds.files[i]}
    train_files = {f for i in dog["train"] for f in sounds.files[i]}
    assert out[0].recording in eval_files and out[1].recording in train_files
    assert out[2] is jobs[2] and out[4] is jobs[4]  # Cat procedural; synthetic backgrounds
    assert isinstance(out[3], dr.ExcerptJob) and out[3].background and out[3].loop
    # Excerpts: band-limited, at the generator's level, deterministic; backgrounds loop.
    seconds = dr.make_source(out[3])
    x, sr = sf.read(out[3].path)
    assert sr == SR and seconds == pytest.approx(4.0) and np.max(np.abs(x)) == pytest.approx(0.5)
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SR)
    assert spectrum[f > dr.CUTOFF_HZ].sum() < 1e-6 * spectrum.sum()
    dr.make_source(out[0])
    first = out[0].path.read_bytes()
    dr.make_source(out[0])
    assert out[0].path.read_bytes() == first


def test_fake_real_build_flags_each_class(fake_sounds: Path) -> None:
    sounds = dr.RealSounds.load(0, fetch=False, say=lambda m: None)
    out = fake_sounds / "desed"
    ds.build(out, SMALL, seed=0, sounds=sounds)
    card = json.loads((out / "dataset_card.json").read_text())
    classes = card["real_sounds"]["classes"]
    assert card["source"] == "real" and classes["Dog"]["sources"] == "real"
    assert classes["Cat"]["sources"] == classes["Speech"]["sources"] == "procedural"
    assert "| Dog | real |" in (out / "dataset_card.md").read_text()
    assert len(list((out / "audio/validation").glob("*.wav"))) == SMALL.n_validation


def test_missing_package_and_bad_options_are_one_line_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    args = ["desed", str(out), "--source", "real", "--preset", "tiny"]
    err = synth_without_sounds(args, "/usr/share/tuxpaint", tmp_path, monkeypatch, capsys)
    assert len(err) == 1 and "is not fetched" in err[0] and "--source real --fetch" in err[0]
    assert main(["synth", "desed", str(out), "--fetch"]) == 2
    assert "--fetch needs --source real" in capsys.readouterr().err
    assert main(["synth", "desed", str(out), "--source", "nsynth"]) == 2
    assert not out.exists()


def test_debian_recordings_split_by_recording(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        found = {r.pattern: dr._glob(r) for r in dr.MANIFEST}  # every row finds its files
    except debian_sounds.MissingSoundsError:
        pytest.skip("Debian sounds not fetched (run: sedkit synth desed OUT --source real --fetch)")
    assert all(found.values())
    # Reading every file's sample rate takes one sf.info per file (~1,400 speech files): load
    # the non-speech rows and the two smallest speech recordings only.
    speech = sorted(
        (r for r in dr.MANIFEST if r.label == "Speech"), key=lambda r: len(found[r.pattern])
    )
    rows = tuple(r for r in dr.MANIFEST if r.label != "Speech") + tuple(speech[:2])
    monkeypatch.setattr(dr, "MANIFEST", rows)
    sounds = dr.RealSounds.load(0, fetch=False, say=lambda m: None)
    assert {"Speech", "Dog", "Alarm_bell_ringing", ""} <= set(sounds.groups)
    assert "Cat" not in sounds.groups  # Meow (11 kHz) and the black cat (8 kHz) are left out
    for label, groups in sounds.groups.items():
        assert not set(groups["train"]) & (set(groups["validation"]) | set(groups["eval"]))
        ids = {r.recording for r in rows if r.label == label} & set(sounds.files)
        assert set(sum(groups.values(), [])) == ids


def test_damaged_recording_is_one_line_naming_file_and_package(
    fake_sounds: Path, capsys: pytest.CaptureFixture
) -> None:
    # A truncated download: the header survives, the audio does not.
    damaged = fake_sounds / "cache/root/fake/dog_b.wav"
    damaged.write_bytes(b"RIFF\x00\x10\x00\x00WAVEfmt junk")
    out = fake_sounds / "out"
    assert main(["synth", "desed", str(out), "--source", "real", "--preset", "tiny"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(damaged) in err[0] and "'fake-package' is damaged" in err[0]
    assert "unpacked/fake-package" in err[0] and not out.exists()
    # A file that sf.info accepts but that cannot be decoded is caught when it is read.
    job = dr.ExcerptJob(out / "x.wav", "Dog", str(damaged), (0,), 0, SR, 1.0, False, False, "p")
    with pytest.raises(debian_sounds.UserError, match="'p' is damaged"):
        dr.make_source(job)


def test_fetch_into_a_file_or_from_a_truncated_deb_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEDKIT_SOUNDS_DIR", str(tmp_path / "file"))
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(debian_sounds.UserError, match="file .*not a writable folder"):
        debian_sounds.fetch(["scratch"], renderer=False, say=print)
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    # apt-get "downloads" nothing new (a stub), and the .deb left by an earlier try is cut short.
    stub = tmp_path / "bin/apt-get"
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    monkeypatch.setenv("PATH", f"{stub.parent}:{os.environ['PATH']}")
    cache = tmp_path / "cache"
    monkeypatch.setenv("SEDKIT_SOUNDS_DIR", str(cache))
    (cache / "debs").mkdir(parents=True)
    deb = cache / "debs/scratch_1.0_all.deb"
    deb.write_bytes(b"!<arch>\ndebian-binary   0           0     0     100644  4         `\n2.0\n")
    with pytest.raises(debian_sounds.UserError, match="dpkg-deb.*removed scratch_1.0_all.deb"):
        debian_sounds.fetch(["scratch"], renderer=False, say=print)
    assert not deb.exists() and not (cache / "unpacked/scratch").exists()


def test_a_package_unpacked_then_deleted_says_how_to_unpack_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEDKIT_SOUNDS_DIR", str(tmp_path))
    with pytest.raises(debian_sounds.UserError, match="'scratch' is not fetched"):
        debian_sounds.package_file("scratch", "no/such/sedkit/file.wav", "CMD")
    (tmp_path / "unpacked").mkdir()
    (tmp_path / "unpacked/scratch").write_text("scratch_1.0_all.deb\n")  # --fetch would skip it
    again = "incomplete.*rm .*unpacked/scratch, then CMD"
    with pytest.raises(debian_sounds.UserError, match=again):
        debian_sounds.package_file("scratch", "no/such/sedkit/file.wav", "CMD")
