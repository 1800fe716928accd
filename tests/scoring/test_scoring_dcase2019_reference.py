"""`sedkit score` on the real DCASE 2019 task 4 validation example, against the reference
libraries called directly the way the DCASE baselines call them.

The full-size runs (1,168 clips, ten operating points) take a few seconds each, so both sides
run once per module and the tests compare their outputs.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import warnings
from pathlib import Path

import pandas as pd
import pytest

psds_eval = pytest.importorskip("psds_eval")
sed_eval = pytest.importorskip("sed_eval")

from sedkit.scoring import PSDS1, PSDS2, PSDSParams, score_sed  # noqa: E402
from sedkit.scoring.cli import main  # noqa: E402

REFERENCE = Path(__file__).resolve().parents[3] / "shared/reference/dcase2019_task4_validation"
GT = REFERENCE / "dcase2019t4_gt.csv"
META = REFERENCE / "dcase2019t4_meta.csv"
TOL = 1e-6

pytestmark = pytest.mark.skipif(not GT.exists(), reason=f"reference data not at {REFERENCE}")

#: The psds_eval README's scenario for this example, and the score it states (5 decimals).
README_SCENARIO = dict(dtc=0.5, gtc=0.5, cttc=0.3, alpha_ct=0.0, alpha_st=0.0, max_efpr=100.0)
README_PSDS = 0.40867


def _event_list(by_file: dict[str, pd.DataFrame], filename: str) -> list[dict]:
    """The DCASE baselines' get_event_list_current_file: a lone NaN row means no event."""
    rows = by_file.get(filename)
    if rows is None:
        return []
    if len(rows) == 1 and pd.isna(rows["event_label"].iloc[0]):
        return [{"filename": filename}]
    return rows.to_dict("records")


@pytest.fixture(scope="module")
def direct() -> dict:
    """Scores computed with sed_eval and psds_eval directly, as the DCASE baselines do."""
    gt = pd.read_csv(GT, sep="\t")
    meta = pd.read_csv(META, sep="\t")
    detections = {
        float(p.stem.rsplit("_", 1)[1]): pd.read_csv(p, sep="\t")
        for p in sorted(REFERENCE.glob("baseline_*.csv"))
    }
    est = detections[0.5]
    classes = sorted(set(gt["event_label"].dropna()) | set(est["event_label"].dropna()))
    gt_by_file = dict(tuple(gt.groupby("filename")))
    est_by_file = dict(tuple(est.groupby("filename")))
    event = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=classes,
        t_collar=0.200,
        percentage_of_length=0.2,
        empty_system_output_handling="zero_score",
    )
    segment = sed_eval.sound_event.SegmentBasedMetrics(
        event_label_list=classes, time_resolution=1.0
    )
    for filename in gt["filename"].unique():
        ref = _event_list(gt_by_file, filename)
        hyp = _event_list(est_by_file, filename)
        event.evaluate(reference_event_list=ref, estimated_event_list=hyp)
        segment.evaluate(reference_event_list=ref, estimated_event_list=hyp)

    out: dict = {"event": event, "segment": segment, "psds": {}, "f1": {}}
    scenarios = {
        "psds1": (0.7, 0.7, 0.3, 0.0, 1.0),
        "psds2": (0.1, 0.1, 0.3, 0.5, 1.0),
        "psds_custom": tuple(README_SCENARIO[k] for k in ("dtc", "gtc", "cttc", "alpha_ct"))
        + (README_SCENARIO["alpha_st"],),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, (dtc, gtc, cttc, alpha_ct, alpha_st) in scenarios.items():
            evaluator = psds_eval.PSDSEval(dtc, gtc, cttc, ground_truth=gt, metadata=meta)
            for threshold, det in detections.items():
                evaluator.add_operating_point(det, info={"threshold": threshold})
            out["psds"][name] = evaluator.psds(alpha_ct, alpha_st, 100).value
        evaluator = psds_eval.PSDSEval(0.5, 0.5, 0.3, ground_truth=gt, metadata=meta)
        for threshold, det in detections.items():
            # The DCASE baselines' rule: an empty table scores 0.
            out["f1"][threshold] = evaluator.compute_macro_f_score(det) if len(det) else (0.0, {})
    return out


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict, Path]:
    """`sedkit score` on the reference folder: JSON output, two worker processes, plots."""
    plot_dir = tmp_path_factory.mktemp("plots")
    argv = [
        "--ref", str(GT), "--est", str(REFERENCE), "--meta", str(META), "--json",
        "--jobs", "2", "--plot-dir", str(plot_dir),
        "--psds-dtc", "0.5", "--psds-gtc", "0.5", "--psds-cttc", "0.3",
        "--psds-alpha-ct", "0", "--psds-alpha-st", "0", "--psds-max-efpr", "100",
    ]  # fmt: skip
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = main(argv)
    return code, json.loads(stdout.getvalue()), plot_dir


def test_cli_exits_zero(cli_run):
    assert cli_run[0] == 0


@pytest.mark.parametrize("kind", ["event", "segment"])
def test_f1_macro_micro_match_sed_eval(cli_run, direct, kind):
    metrics = cli_run[1]
    metric = direct[kind]
    average = metric.results_class_wise_average_metrics()
    overall = metric.results_overall_metrics()
    assert metrics[f"{kind}_f1_macro"] == pytest.approx(average["f_measure"]["f_measure"], abs=TOL)
    assert metrics[f"{kind}_f1_micro"] == pytest.approx(overall["f_measure"]["f_measure"], abs=TOL)
    assert metrics[f"{kind}_er_micro"] == pytest.approx(
        overall["error_rate"]["error_rate"], abs=TOL
    )
    assert metrics[f"{kind}_precision_macro"] == pytest.approx(
        average["f_measure"]["precision"], abs=TOL
    )


@pytest.mark.parametrize("kind", ["event", "segment"])
def test_classwise_match_sed_eval(cli_run, direct, kind):
    classwise = cli_run[1]["classwise"]
    expected = direct[kind].results_class_wise_metrics()
    assert sorted(classwise) == sorted(expected)
    for label, result in expected.items():
        got = classwise[label]
        assert got[f"{kind}_f1"] == pytest.approx(result["f_measure"]["f_measure"], abs=TOL)
        assert got[f"{kind}_precision"] == pytest.approx(result["f_measure"]["precision"], abs=TOL)
        assert got[f"{kind}_recall"] == pytest.approx(result["f_measure"]["recall"], abs=TOL)
        assert got[f"{kind}_er"] == pytest.approx(result["error_rate"]["error_rate"], abs=TOL)


def test_known_event_f1_of_the_example(cli_run):
    # Not circular: a fixed number, so a change in the libraries' behaviour shows up here.
    assert cli_run[1]["event_f1_macro"] == pytest.approx(0.2166655, abs=1e-6)
    assert cli_run[1]["segment_f1_macro"] == pytest.approx(0.5437967, abs=1e-6)


@pytest.mark.parametrize("name", ["psds1", "psds2", "psds_custom"])
def test_psds_matches_psds_eval(cli_run, direct, name):
    assert cli_run[1][name] == pytest.approx(direct["psds"][name], abs=TOL)


def test_custom_psds_reproduces_the_psds_eval_readme(cli_run):
    assert round(cli_run[1]["psds_custom"], 5) == README_PSDS


def test_intersection_f1_matches_psds_eval(cli_run, direct):
    metrics = cli_run[1]
    by_threshold = metrics["intersection_f1_macro_by_threshold"]
    assert sorted(map(float, by_threshold)) == sorted(direct["f1"])
    for threshold, (f1_macro, _) in direct["f1"].items():
        assert by_threshold[f"{threshold:g}"] == pytest.approx(f1_macro, abs=TOL)
    f1_macro, f1_per_class = direct["f1"][0.5]
    assert metrics["intersection_f1_macro"] == pytest.approx(f1_macro, abs=TOL)
    for label, value in f1_per_class.items():
        got = metrics["classwise"][label]["intersection_f1"]
        assert (got is None and math.isnan(value)) or got == pytest.approx(value, abs=TOL)


def test_psd_roc_plots_are_written(cli_run):
    plot_dir = cli_run[2]
    for name in ("psds1", "psds2", "psds_custom"):
        for suffix in ("roc", "roc_per_class"):
            path = plot_dir / f"{name}_{suffix}.png"
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path


def test_values_are_plain_json_floats(cli_run):
    def check(value):
        if isinstance(value, dict):
            for v in value.values():
                check(v)
        else:
            assert value is None or type(value) is float

    check(cli_run[1])


@pytest.fixture(scope="module")
def subset() -> dict:
    """200 clips of the example as DataFrames: for the cheaper API-level comparisons."""
    gt = pd.read_csv(GT, sep="\t")
    clips = gt["filename"].drop_duplicates().iloc[:200]
    keep = {
        "gt": gt[gt["filename"].isin(clips)],
        "meta": pd.read_csv(META, sep="\t").drop_duplicates("filename"),
    }
    keep["meta"] = keep["meta"][keep["meta"]["filename"].isin(clips)]
    for threshold in (0.3, 0.5, 0.7):
        det = pd.read_csv(REFERENCE / f"baseline_{threshold}.csv", sep="\t")
        keep[threshold] = det[det["filename"].isin(clips)]
    return keep


def test_parallel_and_serial_give_identical_scores(subset):
    kwargs = dict(
        ground_truth=subset["gt"],
        detections=subset[0.5],
        durations=subset["meta"],
        psds_detections={t: subset[t] for t in (0.3, 0.5, 0.7)},
        psds_scenarios=(PSDS1, PSDS2),
    )
    assert score_sed(n_jobs=1, **kwargs) == score_sed(n_jobs=2, **kwargs)


def test_dataframes_with_any_column_order_score_like_files(subset, tmp_path):
    det = subset[0.5]
    reordered = det[["onset", "event_label", "filename", "offset"]]
    path = tmp_path / "det.tsv"
    reordered.to_csv(path, sep="\t", index=False)
    from_frame = score_sed(ground_truth=subset["gt"], detections=reordered)
    from_file = score_sed(ground_truth=subset["gt"], detections=path)
    assert from_frame == from_file


def test_psds_params_are_checked():
    with pytest.raises(ValueError, match="dtc_threshold"):
        PSDSParams("x", dtc_threshold=1.5)
    with pytest.raises(ValueError, match="alpha_st"):
        PSDSParams("x", alpha_st=-1)
    with pytest.raises(ValueError, match="identifier"):
        PSDSParams("psds 1")
