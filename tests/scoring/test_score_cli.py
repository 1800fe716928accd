"""`sedkit score --scores`: frame score tables on the command line, without torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sedkit.cli import main as sedkit_main
from sedkit.scoring.cli import main

CASE = Path(__file__).parent / "reference_scores" / "random"
EXPECTED = json.loads((CASE / "expected.json").read_text())


def _argv(scores: Path = CASE / "scores") -> list[str]:
    return [
        "--ref",
        str(CASE / "gt.tsv"),
        "--scores",
        str(scores),
        "--meta",
        str(CASE / "durations.tsv"),
    ]


def test_score_tables_on_the_command_line_equal_the_reference(capsys) -> None:
    assert sedkit_main(["score", *_argv(), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    for name in ("psds1", "psds2"):
        assert metrics[name] == pytest.approx(EXPECTED["psds"][name]["value"], abs=1e-6)
    assert metrics["collar_f1_macro"] == pytest.approx(
        EXPECTED["collar"]["f1"]["macro_average"], abs=1e-6
    )
    assert metrics["segment_best_f1_macro"] == pytest.approx(
        EXPECTED["segment"]["best_f1"]["macro_average"], abs=1e-6
    )
    assert main([*_argv()]) == 0
    out = capsys.readouterr().out
    assert "PSDS1" in out and "collar-based (event)" in out and "30 clips" in out


def test_plots_and_custom_scenario(tmp_path: Path, capsys) -> None:
    argv = [*_argv(), "--plot-dir", str(tmp_path), "--psds-dtc", "0.5", "--psds-alpha-ct", "0.5"]
    assert main([*argv, "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert 0.0 <= metrics["psds_custom"] <= 1.0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert "psds_custom_roc.png" in names and "psds1_roc_per_class.png" in names
    # Existing figures are not replaced without --overwrite.
    assert main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("mutate", "phrase"),
    [
        (lambda d: (d / "clip_03.tsv").unlink(), "no score table for 1 clip"),
        (lambda d: (d / "extra.tsv").write_text((d / "clip_00.tsv").read_text()), "extra"),
        (
            lambda d: (d / "clip_01.tsv").write_text(
                (d / "clip_01.tsv").read_text().replace("\t0.", "\tx.", 1)
            ),
            "clip_01.tsv:2: ",
        ),
        (
            lambda d: (d / "clip_02.tsv").write_text(
                (d / "clip_02.tsv").read_text().replace("Water", "Cat")
            ),
            "clip_02.tsv:1: ",
        ),
    ],
    ids=["missing table", "unknown clip", "not a number", "other header"],
)
def test_bad_score_folders_fail_with_one_line(tmp_path: Path, capsys, mutate, phrase) -> None:
    folder = tmp_path / "scores"
    folder.mkdir()
    for p in (CASE / "scores").iterdir():
        (folder / p.name).write_text(p.read_text())
    mutate(folder)
    assert main(_argv(folder)) == 2
    err = capsys.readouterr().err
    assert err.startswith("sedkit: error: ") and phrase in err, err
    assert "Traceback" not in err


def test_est_or_scores_is_required(capsys) -> None:
    assert main(["--ref", str(CASE / "gt.tsv")]) == 2
    assert "either --est" in capsys.readouterr().err


@pytest.mark.parametrize("entry", ["sedkit", "module", "threshold folder"])
def test_score_command_loads_no_torch_and_no_plugins(entry: str, tmp_path: Path) -> None:
    argv = _argv()
    if entry == "threshold folder":
        (tmp_path / "det_0.5.tsv").write_text(
            "filename\tonset\toffset\tevent_label\nclip_00.wav\t0.5\t1.5\tAlarm\n"
        )
        argv = [*argv[:2], "--est", str(tmp_path), *argv[4:]]
    if entry != "module":
        call = f"from sedkit.cli import main; code = main(['score', *{argv!r}, '--json'])"
    else:
        call = (
            f"import runpy; sys.argv = ['x', *{argv!r}]\n"
            "try:\n    runpy.run_module('sedkit.scoring', run_name='__main__')\n"
            "except SystemExit as e:\n    code = e.code"
        )
    code = (
        "import sys\n"
        f"{call}\n"
        "assert code == 0, code\n"
        "bad = [m for m in ('torch', 'torchaudio', 'sedkit_plugins', 'sedkit.plugins') "
        "if m in sys.modules]\n"
        "print('LOADED', ','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "LOADED", out.stdout[-300:]


@pytest.mark.parametrize("what", ["--scores", "--est"])
def test_jobs_below_one_is_one_line(what: str, capsys) -> None:
    argv = _argv() if what == "--scores" else ["--ref", str(CASE / "gt.tsv"), "--est", "x.tsv"]
    assert main([*argv, "--jobs", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["sedkit: error: --jobs must be >= 1, got 0"], err
