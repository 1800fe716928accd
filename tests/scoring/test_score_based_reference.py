"""Score-based evaluation (sedkit.scoring.score_based) against sed_scores_eval 0.0.4.

The figures in ``reference_scores/*/expected.json`` were computed by sed_scores_eval itself,
in its own venv, from the score tables and ground truth stored beside them. Regenerate them
(after changing a case or the reference version) with::

    .venv/bin/python tools/make_scoring_reference.py --venv /tmp/sse_ref --build

(the tool's docstring gives the venv commands). The cases: random scores that loosely follow
random events; edge cases (clips without events, events touching the clip ends, a class
never present in the ground truth, ties in scores, one-frame events and detections, runs that
merge near events); short events close together (collar matching); and the score tables of a
sedkit run (``sedkit_toy_run``: the engine's toy recipe, tests/engine/conftest.py, with 40
validation clips, 3 epochs and a 0.05 s median filter; its ``predictions/scores``,
``toy_gt.tsv`` and ``toy_durations.tsv`` added with ``--from-run``).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from sedkit.scoring.score_based import score_folder
from sedkit.scoring.sed import PSDSParams, ScoringWarning

CASES = sorted(
    p.parent for p in (Path(__file__).parent / "reference_scores").glob("*/expected.json")
)
TOL = 1e-6


def _scenarios(expected: dict) -> list[PSDSParams]:
    return [
        PSDSParams(name, dtc, gtc, 0.3 if cttc is None else cttc, alpha_ct, alpha_st, max_efpr)
        for name, dtc, gtc, cttc, alpha_ct, alpha_st, max_efpr in expected["settings"]["scenarios"]
    ]


def _score(case: Path, expected: dict, n_jobs: int = 1) -> dict:
    settings = expected["settings"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScoringWarning)
        return score_folder(
            case / "scores",
            case / "gt.tsv",
            case / "durations.tsv",
            psds_scenarios=_scenarios(expected),
            threshold=settings["threshold"],
            segment_length=settings["segment_length"],
            intersection_f1=PSDSParams("intersection_f1", 0.5, 0.5),
            n_jobs=n_jobs,
        )


def _close(a: float, b: float) -> bool:
    return a == b or abs(a - b) <= TOL


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_equal_to_sed_scores_eval(case: Path) -> None:
    expected = json.loads((case / "expected.json").read_text())
    metrics = _score(case, expected)
    classes = expected["classes"]
    assert sorted(metrics["classwise"]) == sorted(classes)
    mismatches = []

    def check(name: str, ours: float, theirs: float) -> None:
        if not _close(ours, theirs):
            mismatches.append(f"{name}: sedkit {ours!r}, sed_scores_eval {theirs!r}")

    for params in _scenarios(expected):
        check(params.name, metrics[params.name], expected["psds"][params.name]["value"])
        for c in classes:
            check(
                f"{params.name}[{c}]",
                metrics["classwise"][c][params.name],
                expected["psds"][params.name]["classwise"][c],
            )
    for part in ("collar", "segment", "intersection"):
        ref = expected[part]
        check(f"{part}_f1_macro", metrics[f"{part}_f1_macro"], ref["f1"]["macro_average"])
        check(f"{part}_f1_micro", metrics[f"{part}_f1_micro"], ref["f1"]["micro_average"])
        check(
            f"{part}_best_f1_macro",
            metrics[f"{part}_best_f1_macro"],
            ref["best_f1"]["macro_average"],
        )
        check(
            f"{part}_best_f1_micro",
            metrics[f"{part}_best_f1_micro"],
            ref["best_f1"]["micro_average"],
        )
        for c in classes:
            ours = metrics["classwise"][c]
            check(f"{part}_f1[{c}]", ours[f"{part}_f1"], ref["f1"][c])
            check(f"{part}_precision[{c}]", ours[f"{part}_precision"], ref["precision"][c])
            check(f"{part}_recall[{c}]", ours[f"{part}_recall"], ref["recall"][c])
            check(f"{part}_best_f1[{c}]", ours[f"{part}_best_f1"], ref["best_f1"][c])
            check(
                f"{part}_best_threshold[{c}]",
                ours[f"{part}_best_threshold"],
                ref["best_threshold"][c],
            )
    assert not mismatches, (
        f"{case.name}: {len(mismatches)} figure(s) differ from sed_scores_eval (regenerate with "
        "tools/make_scoring_reference.py if the reference changed):\n" + "\n".join(mismatches)
    )


def test_classes_in_two_processes_give_the_same_figures() -> None:
    case = next(c for c in CASES if c.name == "random")
    expected = json.loads((case / "expected.json").read_text())
    assert _score(case, expected, n_jobs=2) == _score(case, expected, n_jobs=1)


def test_cases_are_not_trivial() -> None:
    """The stored figures exercise the criteria: PSDS neither 0 nor 1 everywhere."""
    generated = [c for c in CASES if c.name in ("random", "edge_cases", "short_events")]
    values = [
        json.loads((c / "expected.json").read_text())["psds"][s]["value"]
        for c in generated
        for s in ("psds1", "psds2")
    ]
    assert len(generated) == 3
    assert any(0.05 < v < 0.95 for v in values)
    assert len({round(v, 6) for v in values}) == len(values)


def test_class_without_reference_event_is_left_out_with_warning() -> None:
    case = next(c for c in CASES if c.name == "edge_cases")
    expected = json.loads((case / "expected.json").read_text())
    with pytest.warns(ScoringWarning, match="Never"):
        metrics = score_folder(
            case / "scores",
            case / "gt.tsv",
            case / "durations.tsv",
            psds_scenarios=_scenarios(expected),
        )
    assert "Never" not in metrics["classwise"]
    assert math.isfinite(metrics["psds1"])


def test_scoring_imports_no_torch(tmp_path: Path) -> None:
    """Scoring score tables must not pull in torch (or the plugins): it costs a second and
    hundreds of MiB for nothing."""
    case = CASES[0]
    code = (
        "import sys, warnings\n"
        "warnings.simplefilter('ignore')\n"
        "from sedkit.scoring.score_based import score_folder\n"
        f"m = score_folder({str(case / 'scores')!r}, {str(case / 'gt.tsv')!r}, "
        f"{str(case / 'durations.tsv')!r})\n"
        "assert 0 <= m['psds1'] <= 1\n"
        "bad = [m for m in ('torch', 'torchaudio', 'sedkit_plugins') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"imported while scoring: {out.stdout.strip()}"
