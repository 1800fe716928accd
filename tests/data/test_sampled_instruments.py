"""``sedkit synth instruments --source sampled``: the SoundFont / GUS readers, the split by
instrument, the card, determinism, and the missing-package message.

Most tests build from tiny sample sets written here, so they run without the Debian packages;
the ones that render through libfluidsynth or read the real packages skip, saying how to
fetch them, when those are absent."""

from __future__ import annotations

import dataclasses
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from shared_support import file_bytes, read_table, synth_without_sounds

from sedkit.cli import main
from sedkit.data import debian_sounds
from sedkit_plugins.classification_data import sampled_instruments as si
from sedkit_plugins.classification_data.soundfont import (
    FluidRenderer,
    read_gus_patch,
    read_sf2_presets,
    render_gus_note,
    write_sf2,
)

SR = 16000
FETCH_HINT = (
    "Debian sounds not fetched (run: sedkit synth instruments OUT --source sampled --fetch)"
)


def _tone(hz: float, seconds: float = 0.5, sr: int = SR, partials: int = 3) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return sum(np.sin(2 * np.pi * hz * k * t) / k for k in range(1, partials + 1)) * 0.3


def _write_gus(path: Path, wave: np.ndarray, root_hz: float, sr: int = SR) -> None:
    """A one-sample, looped, 16-bit GUS patch (the fields :func:`read_gus_patch` reads)."""
    header = b"GF1PATCH110\0ID#000002\0".ljust(129, b"\0")
    instrument = b"\0" * 63
    layer = bytearray(47)
    layer[6] = 1  # one sample
    pcm = (np.clip(wave, -1, 1) * 32767).astype("<i2").tobytes()
    sample = bytearray(96)
    n = len(pcm)
    struct.pack_into(
        "<IIIHIII", sample, 8, n, n // 2, n - 2, sr, 8176, 12543854, int(root_hz * 1000)
    )
    sample[55] = 1 | 4  # 16-bit, looped
    path.write_bytes(header + instrument + bytes(layer) + bytes(sample) + pcm)


def _f0(x: np.ndarray, sr: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), 8 * len(x)))
    f = np.fft.rfftfreq(8 * len(x), 1.0 / sr)
    return float(f[np.argmax(spectrum * (f > 50))])


def test_sf2_reader_finds_presets_ranges_and_shared_recordings(tmp_path: Path) -> None:
    same = _tone(261.63)
    write_sf2(
        tmp_path / "t.sf2",
        [
            (0, "Piano", same, 60, SR),
            (1, "Piano copy", same, 60, SR),
            (40, "Violin", _tone(440), 69, SR),
        ],
    )
    presets = read_sf2_presets(tmp_path / "t.sf2")
    assert [(p.program, p.name) for p in presets] == [
        (0, "Piano"),
        (1, "Piano copy"),
        (40, "Violin"),
    ]
    assert presets[0].samples == presets[1].samples != presets[2].samples
    assert presets[2].pitch_range() == range(57, 82)  # root 69 +- an octave
    (tmp_path / "bad.sf2").write_bytes(b"RIFF\0\0\0\0WAVE")
    with pytest.raises(debian_sounds.UserError, match="bad.sf2: not a SoundFont 2"):
        read_sf2_presets(tmp_path / "bad.sf2")


def test_gus_note_has_the_pitch_asked_and_is_released(tmp_path: Path) -> None:
    _write_gus(tmp_path / "p.pat", _tone(440.0, 0.3, 44100), 440.0, 44100)
    patch = read_gus_patch(tmp_path / "p.pat")
    assert patch[0].sample_rate == 44100 and patch[0].loop is not None
    x = render_gus_note(patch, 64, 100, 5 * SR // 2, SR, SR)  # E4 held 1 s, through the loop
    assert abs(_f0(x[: SR // 2]) - 329.63) < 2.0
    assert np.abs(x[SR // 2 : SR]).max() > 0.1  # the loop sustains past the 0.3 s recording
    assert np.abs(x[-100:]).max() == 0.0  # faded out over 1 s


@pytest.fixture
def fake_sets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Three GUS sample sets standing in for FluidR3 (train) and two test sets."""
    root = tmp_path / "cache/root"
    sets = {"train": (0, 6, 40, 41, 73, 72), "testA": (0, 40, 73), "testB": (4, 42)}
    for index, (name, programs) in enumerate(sets.items()):
        folder = root / "fake" / name
        folder.mkdir(parents=True)
        for k, program in enumerate(programs):
            hz = 220.0 * 2 ** (k / 12) * (1.0 + 0.01 * index)
            if name == "testA" and program == 73:  # a copy of a training recording
                hz = 220.0 * 2 ** (4 / 12)
            _write_gus(folder / f"{program:03d}_P{program}.pat", _tone(hz, 0.4), hz)
    monkeypatch.setenv("SEDKIT_SOUNDS_DIR", str(tmp_path / "cache"))
    sources = {
        "fluidr3": si.Source("fluid-soundfont-gm", "fake/train", "gus", "train"),
        "timgm6mb": si.Source("timgm6mb-soundfont", "fake/testA", "gus", "test"),
        "freepats": si.Source("freepats", "fake/testB", "gus", "test"),
    }
    for key, source in sources.items():
        monkeypatch.setitem(si.SOURCES, key, source)
    return tmp_path


FAKE = dataclasses.replace(si.PRESETS["tiny"], max_instruments_per_family=None, n_workers=1)


def test_fake_build_splits_by_instrument_and_cards_every_one(fake_sets: Path) -> None:
    out = fake_sets / "out"
    si.build_sampled_instruments(out, FAKE, seed=3)
    card = json.loads((out / "dataset_card.json").read_text())
    splits = {s: read_table(out / f"evaluation_setup/{s}.tsv") for s in ("train", "valid", "test")}
    located = {s: {r["location"] for r in rows} for s, rows in splits.items()}
    assert not located["train"] & located["valid"] and not located["train"] & located["test"]
    assert located["valid"] and located["test"]
    # Families with two FluidR3 instruments lend one to valid; test comes from the test sets.
    assert {r["label"] for r in splits["valid"]} <= {"keyboard", "string", "flute"}
    assert all(r["location"].split("_")[0] in ("timgm6mb", "freepats") for r in splits["test"])
    listed = {(i["source"], i["program"]) for i in card["instruments"]}
    assert len(listed) == 10 and card["n_clips"] == sum(len(r) for r in splits.values())
    assert ("timgm6mb", 73) not in listed  # it plays FluidR3's flute recording
    assert {"source": "timgm6mb", "program": 73, "name": "P73"} | {
        "why": "shares a recording with FluidR3"
    } in card["left_out"]
    assert card["packages"]["fluidr3"]["license"] == "MIT"
    assert "| freepats_042 | freepats | 42 |" in (out / "dataset_card.md").read_text()
    for row in splits["train"]:
        assert (out / row["filename"]).is_file()
    # Byte-identical for the same seed; another seed may hold out other instruments.
    again = fake_sets / "again"
    si.build_sampled_instruments(again, FAKE, seed=3)
    assert file_bytes(out) == file_bytes(again)


def test_missing_package_is_one_line_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    args = ["instruments", str(out), "--source", "sampled", "--preset", "tiny"]
    sf2 = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
    err = synth_without_sounds(args, sf2, tmp_path, monkeypatch, capsys)
    assert len(err) == 1 and "'fluid-soundfont-gm' is not fetched" in err[0]
    assert "--source sampled --fetch" in err[0] and not out.exists()
    assert main(["synth", "scenes", str(out), "--source", "sampled"]) == 2
    assert "unknown --source 'sampled'" in capsys.readouterr().err


def _fluidsynth():
    try:
        return debian_sounds.load_fluidsynth(si.FETCH_COMMAND)
    except debian_sounds.UserError:
        pytest.skip(FETCH_HINT)


def test_fluid_notes_are_in_tune_and_independent_of_what_came_before(tmp_path: Path) -> None:
    lib = _fluidsynth()
    write_sf2(tmp_path / "t.sf2", [(0, "A", _tone(440.0), 69, SR), (1, "B", _tone(300.0), 62, SR)])
    renderer = FluidRenderer(lib, tmp_path / "t.sf2", SR)
    first = renderer.note(0, 0, 72, 100, SR, SR // 2)
    renderer.note(0, 1, 50, 127, SR, SR // 2)
    assert np.array_equal(first, renderer.note(0, 0, 72, 100, SR, SR // 2))
    assert abs(_f0(first[: SR // 2]) - 523.25) < 3.0
    renderer.close()


def test_real_build_notes_from_workers_match_notes_rendered_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    try:
        for source in si.SOURCES:
            si._source_path(source)
    except debian_sounds.MissingSoundsError:
        pytest.skip(FETCH_HINT)
    _fluidsynth()
    # One build over two worker processes (FreePats' GUS patches are covered by the fake sets;
    # reading them and a second full build would triple the time), then its render jobs again
    # in this process, as n_workers=1 runs them: the notes must be the same bytes.
    small = dataclasses.replace(
        si.PRESETS["tiny"], max_notes_per_program=1, test_sources=("timgm6mb",), n_workers=2
    )
    jobs: list[tuple] = []
    run_jobs = si.run_jobs

    def spy(fn, todo, n_workers):
        jobs.extend(todo)
        return run_jobs(fn, todo, n_workers)

    monkeypatch.setattr(si, "run_jobs", spy)
    si.build_sampled_instruments(tmp_path / "a", small, seed=0)
    built = file_bytes(tmp_path / "a")
    staging = tmp_path / ".a.partial"  # where the jobs wrote before the folder was renamed
    again = [Path(f) for job in jobs for f in si._render_job(job)]
    assert len(again) == sum(1 for name in built if name.startswith("audio/")) > 0
    for path in again:
        name = str(path.relative_to(staging))
        assert built[name] == path.read_bytes(), name
    card = json.loads((tmp_path / "a/dataset_card.json").read_text())
    assert set(card["clips_per_class"]["test"]) == set(si.INSTRUMENT_FAMILIES)
    assert all(n > 0 for s in ("train", "test") for n in card["clips_per_class"][s].values())


def test_truncated_sample_sets_are_one_line_naming_file_and_package(
    fake_sets: Path, capsys: pytest.CaptureFixture
) -> None:
    write_sf2(fake_sets / "t.sf2", [(0, "A", _tone(440.0), 69, SR)])
    data = (fake_sets / "t.sf2").read_bytes()
    for cut in (len(data) - 30, len(data) // 2):  # inside the preset tables, inside the samples
        (fake_sets / "cut.sf2").write_bytes(data[:cut])
        with pytest.raises(si.InputFileError, match="cut.sf2: (truncated|SoundFont 2 file w)"):
            read_sf2_presets(fake_sets / "cut.sf2")
    patch = fake_sets / "cache/root/fake/testB/042_P42.pat"
    data = patch.read_bytes()
    for cut in (len(data) - 11, 300, 100):  # in the audio, in a sample header, in the header
        patch.write_bytes(data[:cut])
        with pytest.raises(si.InputFileError, match="042_P42.pat: truncated GUS patch"):
            read_gus_patch(patch)
    out = fake_sets / "out"
    assert main(["synth", "instruments", str(out), "--source", "sampled", "--preset", "tiny"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(patch) in err[0] and "'freepats' is damaged" in err[0]
    assert "unpacked/freepats" in err[0] and not out.exists()


def test_fetch_of_fetched_packages_needs_no_apt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEDKIT_SOUNDS_DIR", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "no-apt-here"))
    monkeypatch.setattr(debian_sounds.ctypes.util, "find_library", lambda name: None)
    packages = [s.package for s in si.SOURCES.values()]
    (tmp_path / "unpacked").mkdir()
    for package in packages:
        (tmp_path / "unpacked" / package).write_text(f"{package}_1_all.deb\n")
    with pytest.raises(debian_sounds.UserError, match="apt-get not found"):
        debian_sounds.fetch(packages, say=print)  # the renderer's runtime is still to fetch
    (tmp_path / "unpacked" / debian_sounds.FLUIDSYNTH_PACKAGE).write_text("x\n")
    said: list[str] = []
    assert debian_sounds.fetch(packages, say=said.append) == tmp_path
    assert "already in" in said[0]


def test_truncated_fetched_renderer_is_one_line_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import _ctypes  # any ELF shared object of this Python

    whole = Path(_ctypes.__file__).read_bytes()
    if not whole.startswith(b"\x7fELF\x02\x01"):
        pytest.skip("not a 64-bit little-endian ELF platform")
    libdir = tmp_path / "root/usr/lib/x86_64-linux-gnu"
    libdir.mkdir(parents=True)
    (libdir / "libfluidsynth.so.3").write_bytes(whole)
    assert not debian_sounds._elf_cut_short(libdir / "libfluidsynth.so.3")
    # dlopen of a truncated library dies of SIGBUS, which no except clause catches.
    (libdir / "libfluidsynth.so.3").write_bytes(whole[: len(whole) // 2])
    monkeypatch.setenv("SEDKIT_SOUNDS_DIR", str(tmp_path))
    monkeypatch.setattr(debian_sounds, "_FLUIDSYNTH", None)
    monkeypatch.setattr(debian_sounds.ctypes.util, "find_library", lambda name: None)
    with pytest.raises(debian_sounds.UserError, match="so.3: truncated shared library; unpack"):
        debian_sounds.load_fluidsynth("CMD")
