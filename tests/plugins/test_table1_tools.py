"""The Table 1 family's tools: diagnostics read from metrics.jsonl, split scoring paths, the
recipes they run."""

from __future__ import annotations

import json

import pytest


def test_table1_diagnostics_pick_the_right_epochs(load_tool, tmp_path):
    table1 = load_tool("reproduce_table1")
    reproduction = load_tool("reproduction")
    # A run written before metrics were named by recipe section: read under today's names.
    records = [
        {"tri_omega": 0.09, "domain_balanced_accuracy": 0.5},
        {"tri_omega": 0.07, "domain_balanced_accuracy": 0.6},
        {"tri_clip_precision": 0.8, "domain_balanced_accuracy": 0.7},
        {"tri_clip_precision": 0.9, "domain_balanced_accuracy": 0.8},
    ]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    records = reproduction.epoch_records(tmp_path)
    clip_precision = "pseudo_labeler/clip_precision"
    assert table1.diagnostic(records, clip_precision, "first") == 0.8  # stage 2 starts
    assert table1.diagnostic(records, "pseudo_labeler/omega", "last") == 0.07  # end of stage 1
    balanced = table1.diagnostic(records, "domain_adapter/balanced_accuracy", "last5")
    assert balanced == pytest.approx(0.65)
    assert table1.diagnostic(records, "pseudo_labeler/frame_recall", "first") is None
    assert {metric for _, metric, _ in table1.DIAGNOSTICS} >= {clip_precision}
    assert set(table1.PAPER) >= {"baseline", "adv_time_tri", "mean_teacher"}


def test_every_table1_variant_has_a_recipe(load_tool):
    table1 = load_tool("reproduce_table1")
    for variant in table1.PAPER:
        assert (table1.RECIPES / f"{variant}.yaml").is_file(), variant


def test_headroom_configs_and_split_paths(load_tool):
    headroom = load_tool("measure_headroom")
    reproduction = load_tool("reproduction")
    assert headroom.CONFIGS["oracle"] == ["data.params.oracle_labels=true"]
    assert headroom.CONFIGS["synthetic_only"] == ["data.params.stream_proportions=[1.0, 0.0, 0.0]"]
    assert headroom.TARGETS == {"G1": 0.10, "G2": 0.10}
    # The splits the generator writes (tests/data/test_desed_synth.py checks the files).
    assert reproduction.SED_SPLITS["eval"][1] == "metadata/eval/public.tsv"
    assert reproduction.mean_std([0.25]) == "0.250"
    assert reproduction.mean_std([0.2, 0.4]) == "0.300 ± 0.141"


def test_last_quarter_gain_reads_epoch_three_quarters_in(load_tool):
    reproduction = load_tool("reproduction")
    # 8 epochs: the last quarter runs from the end of epoch 6 to the end of epoch 8.
    # Tri-training names its stages: every epoch's record counts, whatever its stage.
    records = [
        {"epoch": e, "stage": "stage1" if e <= 4 else "stage2", "event_f1_macro": 0.1 * e}
        for e in range(1, 9)
    ]
    assert reproduction.last_quarter_gain(records) == pytest.approx(0.8 - 0.6)
    assert reproduction.last_quarter_gain(records, window=2) == pytest.approx(0.75 - 0.55)


def test_table1_diagnostic_at_a_given_epoch(load_tool):
    table1 = load_tool("reproduce_table1")
    records = [{"epoch": e, "event_f1_macro": e / 100} for e in range(1, 41)]
    assert table1.diagnostic(records, "event_f1_macro", "epoch20") == pytest.approx(0.20)
    assert table1.diagnostic(records, "event_f1_macro", "epoch50") is None


def test_headroom_sections_per_source_replace_only_themselves(load_tool):
    headroom = load_tool("measure_headroom")
    procedural = headroom.section_title({"preset": "default"})
    real = headroom.section_title({"source": "real"})
    assert procedural == "## Headroom, measured with the baseline only"
    assert real != procedural and "--source real" in real
    text = f"# B\n\nintro\n\n{procedural}\n\nold procedural\n\n## Later\n\nkept\n"
    text = headroom.replace_section(text, real, "real 1\n")
    assert text.endswith(f"kept\n\n{real}\n\nreal 1\n")
    text = headroom.replace_section(text, procedural, "new procedural\n")
    assert "old procedural" not in text and "new procedural\n\n## Later\n\nkept\n" in text
    text = headroom.replace_section(text, real, "real 2\n")
    assert "real 1" not in text and text.count(real) == 1 and text.endswith("real 2\n")
    assert text.startswith("# B\n\nintro\n\n" + procedural)
