"""Robust input handling of `sedkit score`: every malformed input names file and line, exit 2;
unusual but valid inputs (any column order, BOM, CRLF, clips without events or without
detections) score exactly like their plain equivalents."""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path

import pandas as pd
import pytest

sed_eval = pytest.importorskip("sed_eval")

from sedkit.errors import InputFileError, UserError  # noqa: E402
from sedkit.scoring import (  # noqa: E402
    PSDSParams,
    ScoringWarning,
    read_detections,
    read_durations,
    read_ground_truth,
    score_sed,
    write_detections,
)
from sedkit.scoring.cli import main  # noqa: E402

HEADER = "filename\tonset\toffset\tevent_label"
GT_ROWS = [
    "a.wav\t0.5\t2.0\tDog",
    "a.wav\t3.0\t6.0\tSpeech",
    "b.wav\t1.0\t4.0\tSpeech",
    "c.wav\t\t\t",  # a clip without events
]
DET_ROWS = [
    "a.wav\t0.6\t2.1\tDog",
    "a.wav\t3.1\t5.0\tSpeech",
    "b.wav\t1.0\t4.2\tDog",
    "c.wav\t2.0\t3.0\tSpeech",
]
DURATIONS = "filename\tduration\na.wav\t10.0\nb.wav\t10.0\nc.wav\t10.0\n"


def write(path: Path, lines: list[str], *, newline: str = "\n", bom: bool = False) -> Path:
    text = newline.join(lines) + newline
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode())
    return path


@pytest.fixture
def gt(tmp_path: Path) -> Path:
    return write(tmp_path / "gt.tsv", [HEADER, *GT_ROWS])


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def score_json(argv: list[str], capsys) -> dict:
    code, out, err = run([*argv, "--json", "--jobs", "1"], capsys)
    assert code == 0, err
    return json.loads(out)


def assert_user_error(argv, capsys, where: str, *phrases: str) -> None:
    code, _, err = run(argv, capsys)
    assert code == 2, err
    assert err.startswith("sedkit: error: ")
    assert where in err, err
    for phrase in phrases:
        assert phrase in err, err


# --------------------------------------------------------------------------------------------
# Malformed inputs: message with file and line, exit code 2
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("row", "phrase"),
    [
        ("a.wav\tzero\t2.0\tDog", "onset 'zero' is not a number"),
        ("a.wav\t0.5\t2,5\tDog", "offset '2,5' is not a number"),
        ("a.wav\tnan\t2.0\tDog", "onset 'nan' is not a number"),
        ("a.wav\t0.5\tinf\tDog", "offset 'inf' is not a finite number"),
        ("a.wav\t-0.5\t2.0\tDog", "onset -0.5 is negative"),
        ("a.wav\t3.0\t2.0\tDog", "onset 3 is after offset 2"),
        ("a.wav\t0.5\t2.0\t", "empty event_label on a row with onset/offset"),
        ("a.wav\t\t2.0\tDog", "onset is empty"),
        ("\t0.5\t2.0\tDog", "empty filename"),
        ("a.wav\t0.5\t2.0\tDog\textra", "5 fields, but the header has 4"),
    ],
)
def test_malformed_detection_row_names_file_and_line(tmp_path, gt, capsys, row, phrase):
    det = write(tmp_path / "det.tsv", [HEADER, DET_ROWS[0], row, DET_ROWS[1]])
    assert_user_error(["--ref", gt, "--est", det], capsys, f"{det}:3:", phrase)


def test_malformed_ground_truth_row_names_file_and_line(tmp_path, capsys):
    gt = write(tmp_path / "gt.tsv", [HEADER, *GT_ROWS[:2], "b.wav\t4.0\t1.0\tSpeech"])
    det = write(tmp_path / "det.tsv", [HEADER, *DET_ROWS])
    assert_user_error(["--ref", gt, "--est", det], capsys, f"{gt}:4:", "after offset")


def test_all_problems_are_listed_with_their_lines(tmp_path, gt, capsys):
    det = write(
        tmp_path / "det.tsv", [HEADER, "a.wav\tx\t1\tDog", "a.wav\t1\t1\tDog", "a\t2\t1\tDog"]
    )
    code, _, err = run(["--ref", gt, "--est", det], capsys)
    assert code == 2
    assert f"{det}:2: onset 'x'" in err and f"{det}:4: onset 2 is after offset 1" in err


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        ("filename\tonset\toffset", "event_label"),
        ("filename\tonset\tevent_label", "offset"),
        ("filename,onset,offset,event_label", "filename, onset, offset, event_label"),
    ],
)
def test_missing_columns_name_file_and_header_line(tmp_path, gt, capsys, header, missing):
    det = write(tmp_path / "det.tsv", [header, "a.wav\t0.6\t2.1"])
    assert_user_error(
        ["--ref", gt, "--est", det], capsys, f"{det}:1:", f"missing column(s) {missing}"
    )


def test_comma_separated_header_gets_a_hint(tmp_path, gt, capsys):
    det = write(tmp_path / "det.tsv", ["filename,onset,offset,event_label"])
    assert_user_error(["--ref", gt, "--est", det], capsys, f"{det}:1:", "separated by tabs")


def test_unknown_label_is_an_error_naming_the_line(tmp_path, gt, capsys):
    det = write(tmp_path / "det.tsv", [HEADER, *DET_ROWS, "b.wav\t5.0\t6.0\tCat"])
    assert_user_error(
        ["--ref", gt, "--est", det],
        capsys,
        f"{det}:6:",
        "'Cat' is not a class",
        "--allow-unknown-labels",
    )


def test_unknown_label_with_flag_is_dropped_with_a_warning(tmp_path, gt, capsys):
    det = write(tmp_path / "det.tsv", [HEADER, *DET_ROWS, "b.wav\t5.0\t6.0\tCat"])
    clean = write(tmp_path / "clean.tsv", [HEADER, *DET_ROWS])
    code, out, err = run(["--ref", gt, "--est", det, "--json", "--allow-unknown-labels"], capsys)
    assert code == 0
    assert "sedkit: warning:" in err and "Cat" in err
    assert json.loads(out) == score_json(["--ref", gt, "--est", clean], capsys)


def test_unknown_clip_is_an_error_and_a_warning_with_flag(tmp_path, gt, capsys):
    det = write(tmp_path / "det.tsv", [HEADER, *DET_ROWS, "z.wav\t5.0\t6.0\tDog"])
    assert_user_error(["--ref", gt, "--est", det], capsys, f"{det}:6:", "clip 'z.wav' is not in")
    code, _, err = run(["--ref", gt, "--est", det, "--allow-unknown-clips"], capsys)
    assert code == 0 and "z.wav" in err


def test_error_line_numbers_count_crlf_and_bom_lines(tmp_path, gt, capsys):
    det = write(
        tmp_path / "det.tsv",
        [HEADER, DET_ROWS[0], "", "a.wav\tx\t2\tDog"],
        newline="\r\n",
        bom=True,
    )
    assert_user_error(["--ref", gt, "--est", det], capsys, f"{det}:4:", "onset 'x'")


def test_missing_file_and_missing_threshold_file(tmp_path, gt, capsys):
    assert_user_error(
        ["--ref", gt, "--est", tmp_path / "nope.tsv"], capsys, "nope.tsv", "not found"
    )
    folder = tmp_path / "ops"
    folder.mkdir()
    write(folder / "det_0.3.tsv", [HEADER, *DET_ROWS])
    (tmp_path / "d.tsv").write_text(DURATIONS)
    argv = ["--ref", gt, "--est", folder, "--meta", tmp_path / "d.tsv"]
    # No file at --threshold 0.5: the nearest threshold's file is scored, and the user told.
    code, out, err = run([*argv, "--json"], capsys)
    assert code == 0, err
    assert "no detection file for --threshold 0.5" in err and "nearest threshold, 0.3" in err
    assert json.loads(out)["threshold"] == 0.3
    write(folder / "det_0.7.tsv", [HEADER, *DET_ROWS])
    code, out, err = run([*argv, "--json", "--threshold", "0.6"], capsys)
    assert code == 0 and json.loads(out)["threshold"] == 0.7 and "det_0.7.tsv" in err
    write(folder / "det_7.tsv", [HEADER])
    assert_user_error(argv, capsys, "det_7.tsv", "not in [0, 1]")


def test_durations_problems_name_file_and_line(tmp_path, gt, capsys):
    det = write(tmp_path / "det.tsv", [HEADER, *DET_ROWS])
    bad = tmp_path / "dur.tsv"
    bad.write_text("filename\tduration\na.wav\t10\na.wav\t9\nb.wav\t10\nc.wav\t10\n")
    assert_user_error(["--ref", gt, "--est", det, "--meta", bad], capsys, f"{bad}:3:", "differs")
    bad.write_text("filename\tduration\na.wav\t10\nb.wav\t-1\nc.wav\t10\n")
    assert_user_error(["--ref", gt, "--est", det, "--meta", bad], capsys, f"{bad}:3:", "negative")
    bad.write_text("filename\tduration\na.wav\t10\nb.wav\t10\n")
    assert_user_error(["--ref", gt, "--est", det, "--meta", bad], capsys, str(bad), "c.wav")


def test_overlapping_detections_for_psds_name_the_line(tmp_path, gt, capsys):
    folder = tmp_path / "ops"
    folder.mkdir()
    write(folder / "det_0.5.tsv", [HEADER, *DET_ROWS, "a.wav\t1.0\t2.5\tDog"])
    (tmp_path / "d.tsv").write_text(DURATIONS)
    argv = ["--ref", gt, "--est", folder, "--meta", tmp_path / "d.tsv"]
    assert_user_error(argv, capsys, f"{folder / 'det_0.5.tsv'}:6:", "overlaps")


def test_custom_psds_parameters_are_checked(tmp_path, gt, capsys):
    det = write(tmp_path / "det.tsv", [HEADER, *DET_ROWS])
    with pytest.raises(SystemExit) as exit_info:
        main(["--ref", str(gt), "--est", str(det), "--psds-dtc", "1.5"])
    assert exit_info.value.code == 2
    assert "--psds-dtc" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# Unusual but valid inputs
# --------------------------------------------------------------------------------------------
def test_column_order_bom_and_crlf_change_nothing(tmp_path, gt, capsys):
    plain = write(tmp_path / "plain.tsv", [HEADER, *DET_ROWS])
    reordered_rows = []
    for row in DET_ROWS:
        f, on, off, label = row.split("\t")
        reordered_rows.append("\t".join([label, on, off, f]))
    odd = write(
        tmp_path / "odd.tsv",
        ["event_label\tonset\toffset\tfilename", *reordered_rows],
        newline="\r\n",
        bom=True,
    )
    expected = score_json(["--ref", gt, "--est", plain], capsys)
    assert score_json(["--ref", gt, "--est", odd], capsys) == expected
    gt_odd = write(tmp_path / "gt_odd.tsv", [HEADER, *GT_ROWS], newline="\r\n", bom=True)
    assert score_json(["--ref", gt_odd, "--est", plain], capsys) == expected


def test_clips_absent_from_detections_count_as_misses(tmp_path, gt, capsys):
    only_a = write(tmp_path / "det.tsv", [HEADER, *DET_ROWS[:2]])
    metrics = score_json(["--ref", gt, "--est", only_a], capsys)
    # sed_eval directly, with b.wav's speech event missed and c.wav empty on both sides.
    event = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=["Dog", "Speech"],
        t_collar=0.2,
        percentage_of_length=0.2,
        empty_system_output_handling="zero_score",
    )
    ref = {
        "a.wav": [
            {"filename": "a.wav", "onset": 0.5, "offset": 2.0, "event_label": "Dog"},
            {"filename": "a.wav", "onset": 3.0, "offset": 6.0, "event_label": "Speech"},
        ],
        "b.wav": [{"filename": "b.wav", "onset": 1.0, "offset": 4.0, "event_label": "Speech"}],
        "c.wav": [],
    }
    est = {
        "a.wav": [
            {"filename": "a.wav", "onset": 0.6, "offset": 2.1, "event_label": "Dog"},
            {"filename": "a.wav", "onset": 3.1, "offset": 5.0, "event_label": "Speech"},
        ]
    }
    for clip in ref:
        event.evaluate(ref[clip], est.get(clip, []))
    overall = event.results_overall_metrics()["f_measure"]
    assert metrics["event_recall_micro"] == pytest.approx(overall["recall"], abs=1e-12)
    assert metrics["event_f1_micro"] == pytest.approx(overall["f_measure"], abs=1e-12)
    # a.wav: Dog hit; Speech offset 5.0 vs 6.0 is outside max(0.2, 0.2 * 3 s): 1 of 3 found.
    assert metrics["event_recall_micro"] == pytest.approx(1 / 3)


def test_header_only_detections_score_zero(tmp_path, gt, capsys):
    empty = write(tmp_path / "det.tsv", [HEADER])
    metrics = score_json(["--ref", gt, "--est", empty], capsys)
    assert metrics["event_f1_macro"] == 0.0 and metrics["event_recall_micro"] == 0.0


def test_readers_keep_clips_without_events_and_line_numbers(tmp_path):
    path = write(tmp_path / "gt.tsv", [HEADER, *GT_ROWS])
    gt = read_ground_truth(path)
    assert list(gt["filename"].unique()) == ["a.wav", "b.wav", "c.wav"]
    assert list(gt.index) == [2, 3, 4, 5]
    assert gt.loc[5, ["onset", "offset", "event_label"]].isna().all()
    durations = (tmp_path / "d.tsv").write_text("duration\tfilename\n10\ta.wav\n10\ta.wav\n")
    assert durations > 0
    read = read_durations(tmp_path / "d.tsv")
    assert read.to_dict("list") == {"filename": ["a.wav"], "duration": [10.0]}


def test_dataframe_inputs_are_validated_by_row(tmp_path):
    gt = read_ground_truth(write(tmp_path / "gt.tsv", [HEADER, *GT_ROWS]))
    bad = pd.DataFrame(
        {
            "filename": ["a.wav", "a.wav"],
            "onset": [0.0, 3.0],
            "offset": [1.0, 2.0],
            "event_label": ["Dog"] * 2,
        }
    )
    with pytest.raises(UserError, match="row 1: onset 3 is after offset 2"):
        score_sed(ground_truth=gt, detections=bad)
    with pytest.raises(UserError, match="missing column"):
        score_sed(ground_truth=gt, detections=bad.drop(columns="onset"))


def test_psds_without_durations_is_a_user_error(tmp_path):
    gt = write(tmp_path / "gt.tsv", [HEADER, *GT_ROWS])
    det = write(tmp_path / "det.tsv", [HEADER, *DET_ROWS])
    with pytest.raises(UserError, match="durations"):
        score_sed(ground_truth=gt, detections=det, psds_detections={0.5: det})


def test_warning_category_from_the_api(tmp_path):
    gt = write(tmp_path / "gt.tsv", [HEADER, *GT_ROWS])
    det = write(tmp_path / "det.tsv", [HEADER, *DET_ROWS, "b.wav\t5.0\t6.0\tCat"])
    with pytest.warns(ScoringWarning, match="Cat"):
        score_sed(ground_truth=gt, detections=det, allow_unknown_labels=True)


def test_small_psds_run_matches_psds_eval(tmp_path):
    psds_eval = pytest.importorskip("psds_eval")
    gt_path = write(tmp_path / "gt.tsv", [HEADER, *GT_ROWS])
    det_path = write(tmp_path / "det.tsv", [HEADER, *DET_ROWS])
    (tmp_path / "d.tsv").write_text(DURATIONS)
    params = PSDSParams("psds_small", 0.5, 0.5, 0.3, 0.0, 0.0, 100.0)
    metrics = score_sed(
        ground_truth=gt_path,
        detections=det_path,
        durations=tmp_path / "d.tsv",
        psds_detections={0.5: det_path},
        psds_scenarios=[params],
    )
    gt = pd.read_csv(gt_path, sep="\t")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        evaluator = psds_eval.PSDSEval(
            0.5, 0.5, 0.3, ground_truth=gt, metadata=pd.read_csv(tmp_path / "d.tsv", sep="\t")
        )
        det = pd.read_csv(det_path, sep="\t")
        evaluator.add_operating_point(det)
        expected = evaluator.psds(0.0, 0.0, 100.0).value
        f1, _ = evaluator.compute_macro_f_score(det)
    assert metrics["psds_small"] == pytest.approx(expected, abs=1e-12)
    assert metrics["intersection_f1_macro"] == pytest.approx(f1, abs=1e-12)


# --------------------------------------------------------------------------------------------
# Writing detections
# --------------------------------------------------------------------------------------------
def test_write_detections_round_trips_and_refuses_to_overwrite(tmp_path):
    det = read_detections(write(tmp_path / "in.tsv", [HEADER, *DET_ROWS, "d.wav\t\t\t"]))
    out = tmp_path / "out" / "det.tsv"
    write_detections(det, out)
    again = read_detections(out)
    pd.testing.assert_frame_equal(again.reset_index(drop=True), det.reset_index(drop=True))
    with pytest.raises(UserError, match="refusing to overwrite"):
        write_detections(det, out)
    write_detections(det.iloc[:1], out, overwrite=True)
    assert len(read_detections(out)) == 1
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]


def test_input_file_error_carries_path_and_line(tmp_path):
    path = write(tmp_path / "det.tsv", [HEADER, "a.wav\t1\t0\tDog"])
    with pytest.raises(InputFileError) as info:
        read_detections(path)
    assert info.value.path == str(path) and info.value.line == 2


def test_table_output_lists_every_class(tmp_path, gt, capsys):
    det = write(tmp_path / "det.tsv", [HEADER, *DET_ROWS])
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["--ref", str(gt), "--est", str(det), "--jobs", "1"]) == 0
    text = stdout.getvalue()
    assert "event-based" in text and "Dog" in text and "Speech" in text


def test_folder_files_without_threshold_are_skipped_with_a_warning(tmp_path, gt, capsys):
    folder = tmp_path / "ops"
    folder.mkdir()
    write(folder / "det_0.5.tsv", [HEADER, *DET_ROWS])
    (folder / "notes.tsv").write_text("anything\n")
    (tmp_path / "d.tsv").write_text(DURATIONS)
    argv = ["--ref", gt, "--est", folder, "--meta", tmp_path / "d.tsv", "--json", "--jobs", "1"]
    code, out, err = run(argv, capsys)
    assert code == 0, err
    assert "sedkit: warning:" in err and "notes.tsv" in err
    assert {"psds1", "psds2"} <= set(json.loads(out))
    det = folder / "det_0.5.tsv"
    assert_user_error(["--ref", gt, "--est", det, "--plot-dir", tmp_path], capsys, "", "--est DIR")


def test_per_class_psd_roc_with_classes_absent_from_the_reference(tmp_path, monkeypatch):
    """``classes`` may name classes without reference events (a system's classes); the
    per-class curves cover only the classes of the reference (as psds_eval's do), so the plot
    gets that class list, one name per curve, and the scores do not change."""
    from sedkit.scoring import plots as plots_module

    gt = write(tmp_path / "gt.tsv", [HEADER, *GT_ROWS])
    det = write(tmp_path / "det.tsv", [HEADER, *DET_ROWS])
    (tmp_path / "d.tsv").write_text(DURATIONS)
    real_plot = plots_module.plot_score_psd_roc
    calls = []

    def recording_plot(curves, class_names, *args, **kwargs):
        calls.append((len(curves["classes"]), list(class_names)))
        return real_plot(curves, class_names, *args, **kwargs)

    monkeypatch.setattr(plots_module, "plot_score_psd_roc", recording_plot)
    common = dict(
        ground_truth=gt,
        detections=det,
        durations=tmp_path / "d.tsv",
        psds_detections={0.5: det},
        psds_scenarios=[PSDSParams("psds_small", 0.5, 0.5, 0.3, 0.0, 0.0, 100.0)],
        n_jobs=1,
    )
    # "Cat" and "Alarm" have no reference event; the system's order is not alphabetical.
    classes = ["Speech", "Cat", "Dog", "Alarm"]
    plots = tmp_path / "plots"
    metrics = score_sed(**common, classes=classes, plot_dir=plots)
    assert calls == [(2, ["Dog", "Speech"])]
    assert (plots / "psds_small_roc.png").read_bytes().startswith(b"\x89PNG")
    assert (plots / "psds_small_roc_per_class.png").read_bytes().startswith(b"\x89PNG")
    assert list(metrics["classwise"]) == classes
    assert metrics["psds_small"] == score_sed(**common, classes=classes)["psds_small"]


def test_a_systems_class_list_counts_its_false_positives_of_absent_classes(tmp_path, capsys):
    """Issue 18: a run's detections of a class without reference events were refused as
    'unknown labels', and --allow-unknown-labels dropped those real false positives. The class
    list (``--classes``, or the run's ``classes.txt`` beside the detections) counts them."""
    from sedkit.scoring.cli import main as score_main

    gt, est, meta = tmp_path / "gt.tsv", tmp_path / "pred" / "det.tsv", tmp_path / "dur.tsv"
    est.parent.mkdir()
    gt.write_text("filename\tonset\toffset\tevent_label\na.wav\t0.0\t1.0\tDog\n")
    est.write_text(
        "filename\tonset\toffset\tevent_label\na.wav\t0.0\t1.0\tDog\na.wav\t2.0\t3.0\tCat\n"
    )
    meta.write_text("filename\tduration\na.wav\t10.0\n")

    def score(*extra):
        code = score_main([str(a) for a in ("--ref", gt, "--est", est, "--json", *extra)])
        captured = capsys.readouterr()
        return code, captured

    code, captured = score()
    assert code == 2 and "not a class of the ground truth" in captured.err
    code, captured = score("--allow-unknown-labels")
    dropped = json.loads(captured.out)
    assert dropped["segment_f1_micro"] == pytest.approx(1.0)  # the false positive vanished
    code, captured = score("--classes", "Dog,Cat")
    counted = json.loads(captured.out)
    assert code == 0 and counted["segment_f1_micro"] == pytest.approx(2 / 3)
    (est.parent / "classes.txt").write_text("Dog\nCat\n")  # as `sedkit run` writes it
    code, captured = score()
    assert code == 0 and json.loads(captured.out) == counted
    assert "classes from" in captured.err
    code, captured = score("--classes", "Dog,Dog")
    assert code == 2 and "distinct class names" in captured.err
