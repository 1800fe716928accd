"""Bad and unusual training metadata (the strong, weak, unlabeled and durations TSV readers and
the ``desed`` dataset): handled with the same result as a clean file, or an InputFileError
``PATH:LINE: message``, and through ``sedkit run`` one ``sedkit: error:`` line with exit 2.

(``sedkit score``'s own readers have their corpus in tests/scoring/test_scoring_inputs.py.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import reliability_support as rs

from sedkit.data.labels import (
    DESED_CLASSES,
    Event,
    read_durations_tsv,
    read_strong_tsv,
    read_unlabeled_tsv,
    read_weak_tsv,
)
from sedkit.errors import InputFileError

STRONG = "filename\tonset\toffset\tevent_label\n"
WEAK = "filename\tevent_labels\n"
READERS = {
    "strong": lambda p: read_strong_tsv(p, DESED_CLASSES),
    "weak": lambda p: read_weak_tsv(p, DESED_CLASSES),
    "unlabeled": read_unlabeled_tsv,
    "durations": read_durations_tsv,
}

#: (reader, file text, line named, phrase of the message)
BAD_TSV = {
    "strong-missing-column": (
        "strong",
        "filename\tonset\tevent_label\na.wav\t0\tDog\n",
        1,
        "missing offset",
    ),
    "strong-onset-after-offset-crlf": (
        "strong",
        STRONG.replace("\n", "\r\n") + "a.wav\t0\t1\tDog\r\nb.wav\t3.5\t1.25\tCat\r\n",
        3,
        "need 0 <= onset <= offset, got onset 3.5, offset 1.25",
    ),
    "strong-negative-onset": (
        "strong",
        STRONG + "a.wav\t-0.5\t1\tDog\n",
        2,
        "need 0 <= onset <= offset, got onset -0.5",
    ),
    "strong-time-with-unit": (
        "strong",
        STRONG + "a.wav\t0\t1\tDog\na.wav\t1.2s\t2\tDog\n",
        3,
        "onset/offset must be numbers, got '1.2s', '2'",
    ),
    "strong-nan-onset": ("strong", STRONG + "a.wav\tnan\t1\tDog\n", 2, "got onset nan"),
    "strong-inf-offset": ("strong", STRONG + "a.wav\t0\tinf\tDog\n", 2, "offset inf"),
    "strong-empty-onset": (
        "strong",
        STRONG + "a.wav\t\t1\tDog\n",
        2,
        "onset/offset must be numbers, got '', '1'",
    ),
    "strong-label-wrong-case": (
        "strong",
        STRONG + "a.wav\t0\t1\tdog\n",
        2,
        "unknown event label 'dog'",
    ),
    "strong-empty-filename": ("strong", STRONG + "\t0\t1\tDog\n", 2, "empty filename"),
    "strong-row-with-extra-field": (
        "strong",
        STRONG + "a.wav\t0\t1\tDog\t0.93\n",
        2,
        "5 fields but the header has 4",
    ),
    "strong-comma-separated": (
        "strong",
        "filename,onset,offset,event_label\na.wav,0,1,Dog\n",
        1,
        "missing filename, onset, offset, event_label",
    ),
    "strong-empty-file": ("strong", "", 1, "empty file (expected a header line)"),
    "weak-singular-column-name": (
        "weak",
        "filename\tevent_label\na.wav\tDog\n",
        1,
        "missing event_labels",
    ),
    "weak-unknown-label-in-list": (
        "weak",
        WEAK + "a.wav\tDog\nb.wav\tDog,Unicorn\n",
        3,
        "unknown event label 'Unicorn'",
    ),
    "weak-duplicate-row": (
        "weak",
        WEAK + "a.wav\tDog\nb.wav\tCat\na.wav\tDog\n",
        4,
        "a.wav is listed twice",
    ),
    "weak-empty-filename-cr-endings": (
        "weak",
        "filename\tevent_labels\ra.wav\tDog\r\tCat\r",
        3,
        "empty filename",
    ),
    "unlabeled-missing-column": ("unlabeled", "file\nx.wav\n", 1, "missing filename"),
    "durations-non-numeric": (
        "durations",
        "filename\tduration\na.wav\t10\nb.wav\tten\n",
        3,
        "duration must be a number, got 'ten'",
    ),
    "durations-zero": (
        "durations",
        "filename\tduration\na.wav\t0\n",
        2,
        "duration must be positive",
    ),
    "durations-negative": (
        "durations",
        "filename\tduration\na.wav\t-10\n",
        2,
        "duration must be positive",
    ),
    "durations-nan": (
        "durations",
        "filename\tduration\na.wav\tnan\n",
        2,
        "duration must be positive, got nan",
    ),
    "durations-missing-column": (
        "durations",
        "filename\tlength\na.wav\t10\n",
        1,
        "missing duration",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_TSV))
def test_malformed_training_metadata_names_file_and_line(case, tmp_path):
    reader, text, line, phrase = BAD_TSV[case]
    path = tmp_path / f"{case}.tsv"
    path.write_bytes(text.encode())
    with pytest.raises(InputFileError) as info:
        READERS[reader](path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert phrase in message, message
    assert (info.value.path, info.value.line) == (str(path), line)


@pytest.mark.parametrize("reader", sorted(READERS))
def test_binary_file_and_folder_as_metadata_name_the_file(reader, tmp_path):
    binary = rs.write_wav(tmp_path / "clip.wav", rs.tone(), rs.SR).rename(tmp_path / "clip.tsv")
    with pytest.raises(InputFileError, match=f"^{binary}:1: not a text TSV file"):
        READERS[reader](binary)
    folder = tmp_path / "folder.tsv"
    folder.mkdir()
    with pytest.raises(InputFileError, match=f"^{folder}: file not found"):
        READERS[reader](folder)


# ------------------------------------------------------------------------ handled variants
#: reader -> (clean text, variants with the same content)
EQUIVALENT = {
    "strong": (
        STRONG + "a.wav\t0.5\t1.5\tDog\na.wav\t2\t3\tCat\nb.wav\t\t\t\n",
        {
            "crlf": STRONG.replace("\n", "\r\n")
            + "a.wav\t0.5\t1.5\tDog\r\na.wav\t2\t3\tCat\r\nb.wav\t\t\t\r\n",
            "column-order": "event_label\toffset\tfilename\tonset\n"
            "Dog\t1.5\ta.wav\t0.5\nCat\t3\ta.wav\t2\n\t\tb.wav\t\n",
            "extra-columns": "filename\tonset\toffset\tevent_label\tconfidence\tnote\n"
            "a.wav\t0.5\t1.5\tDog\t0.9\tx\na.wav\t2\t3\tCat\t0.8\ty\nb.wav\t\t\t\t\t\n",
            "blank-lines-padding-no-final-newline": STRONG
            + "\n a.wav \t 0.5\t1.5 \t Dog\n\n\na.wav\t2.0\t3e0\tCat \nb.wav",
        },
    ),
    "weak": (
        WEAK + "a.wav\tDog,Cat\nb.wav\t\nc.wav\tSpeech\n",
        {
            "crlf": WEAK.replace("\n", "\r\n") + "a.wav\tDog,Cat\r\nb.wav\t\r\nc.wav\tSpeech\r\n",
            "cr-only": WEAK.replace("\n", "\r") + "a.wav\tDog,Cat\rb.wav\t\rc.wav\tSpeech\r",
            "column-order": "event_labels\tfilename\nDog,Cat\ta.wav\n\tb.wav\nSpeech\tc.wav\n",
            "extra-columns": "filename\tevent_labels\tsource\n"
            "a.wav\tDog,Cat\tyt\nb.wav\t\tyt\nc.wav\tSpeech\tyt\n",
            "spaces-and-empty-list-items": WEAK + "a.wav\t Dog , ,Cat,\nb.wav\t,\nc.wav\tSpeech\n",
        },
    ),
    "unlabeled": (
        "filename\nx.wav\ny.wav\n",
        {
            "crlf": "filename\r\nx.wav\r\ny.wav\r\n",
            "extra-columns": "youtube_id\tfilename\tlicence\nX1\tx.wav\tcc\nY1\ty.wav\tcc\n",
            "duplicate-rows": "filename\nx.wav\ny.wav\nx.wav\ny.wav\n",
        },
    ),
    "durations": (
        "filename\tduration\na.wav\t10.0\nb.wav\t7.25\n",
        {
            "crlf": "filename\tduration\r\na.wav\t10.0\r\nb.wav\t7.25\r\n",
            "column-order": "duration\tfilename\n10\ta.wav\n7.25\tb.wav\n",
            "extra-columns": "filename\tduration\tsample_rate\n"
            "a.wav\t10\t44100\nb.wav\t7.250\t16000\n",
            "same-row-twice": "filename\tduration\na.wav\t10.0\nb.wav\t7.25\na.wav\t10.0\n",
        },
    ),
}
EQUIVALENT_CASES = [(r, v) for r, (_, variants) in EQUIVALENT.items() for v in variants]


@pytest.mark.parametrize(("reader", "variant"), EQUIVALENT_CASES)
def test_equivalent_metadata_variants_read_the_same(reader, variant, tmp_path):
    clean_text, variants = EQUIVALENT[reader]
    clean, other = tmp_path / "clean.tsv", tmp_path / f"{variant}.tsv"
    clean.write_bytes(clean_text.encode())
    other.write_bytes(variants[variant].encode())
    expected = READERS[reader](clean)
    assert expected  # the clean file itself reads
    assert READERS[reader](other) == expected


def test_strong_row_without_label_lists_a_clip_without_events(tmp_path):
    """DESED marks clips without events by an empty label (onset/offset empty or not)."""
    path = tmp_path / "s.tsv"
    path.write_text(STRONG + "a.wav\t\t\t\nb.wav\t0\t10\t\nc.wav\t1\t2\tDog\n")
    assert read_strong_tsv(path, DESED_CLASSES) == {
        "a.wav": [],
        "b.wav": [],
        "c.wav": [Event(1.0, 2.0, "Dog")],
    }


# ------------------------------------------------------ encodings, repeats, impossible values
@pytest.mark.parametrize("reader", sorted(EQUIVALENT))
def test_byte_order_mark_is_ignored(reader, tmp_path):
    clean_text = EQUIVALENT[reader][0]
    clean, bom = tmp_path / "clean.tsv", tmp_path / "bom.tsv"
    clean.write_text(clean_text, encoding="utf-8")
    bom.write_text(clean_text, encoding="utf-8-sig")
    assert bom.read_bytes().startswith(b"\xef\xbb\xbf")
    assert READERS[reader](bom) == READERS[reader](clean)


def test_non_utf8_byte_names_its_line(tmp_path):
    path = tmp_path / "latin1.tsv"
    path.write_bytes((STRONG + "a.wav\t0\t1\tDog\ncaf\xe9.wav\t0\t1\tDog\n").encode("latin-1"))
    with pytest.raises(InputFileError) as info:
        read_strong_tsv(path, DESED_CLASSES)
    assert str(info.value).startswith(f"{path}:3: "), str(info.value)
    assert "UTF-8" in str(info.value)


def test_column_named_twice_is_an_error_on_the_header_line(tmp_path):
    path = tmp_path / "twice.tsv"
    path.write_text("filename\tonset\toffset\tevent_label\tonset\na.wav\t0\t1\tDog\t5\n")
    with pytest.raises(InputFileError, match=f"^{path}:1: duplicated column.*onset"):
        read_strong_tsv(path, DESED_CLASSES)


def test_conflicting_durations_of_one_clip_are_an_error(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text("filename\tduration\na.wav\t10\nb.wav\t5\na.wav\t9\n")
    with pytest.raises(InputFileError, match=f"^{path}:4: .*a.wav"):
        read_durations_tsv(path)


def test_exactly_repeated_strong_row_is_one_event(tmp_path):
    path = tmp_path / "s.tsv"
    path.write_text(STRONG + "a.wav\t0\t1\tDog\na.wav\t0.0\t1.0\tDog\na.wav\t0\t2\tDog\n")
    assert read_strong_tsv(path, DESED_CLASSES) == {
        "a.wav": [Event(0.0, 1.0, "Dog"), Event(0.0, 2.0, "Dog")]
    }


# ------------------------------------------------------------------------ the desed dataset
METADATA = {
    "metadata/train/synthetic.tsv": ["filename", "onset", "offset", "event_label"],
    "metadata/train/weak.tsv": ["filename", "event_labels"],
    "metadata/train/unlabel_in_domain.tsv": ["filename"],
    "metadata/validation/validation.tsv": ["filename", "onset", "offset", "event_label"],
    "metadata/validation/validation_durations.tsv": ["filename", "duration"],
}


def _rewrite(path: Path, *, reverse: bool, extra: bool, newline: str) -> None:
    """The same table with columns reversed, an extra column and other line endings."""
    rows = [line.split("\t") for line in path.read_text().splitlines()]
    if reverse:
        rows = [row[::-1] for row in rows]
    if extra:
        rows = [row + (["comment"] if i == 0 else [f"note {i}"]) for i, row in enumerate(rows)]
    path.write_bytes(newline.join("\t".join(row) for row in rows).encode() + newline.encode())


def test_desed_reads_reordered_crlf_metadata_with_extra_columns_the_same(
    desed_tree, desed_template, tmp_path
):
    for relative in METADATA:
        _rewrite(desed_tree / relative, reverse=True, extra=True, newline="\r\n")
    assert b"\r\n" in (desed_tree / "metadata/train/weak.tsv").read_bytes()
    clean = rs.setup_desed(desed_template, None)
    variant = rs.setup_desed(desed_tree, None)
    assert rs.subset_contents(variant) == rs.subset_contents(clean)
    assert [len(s.clips) for s in variant.subsets.values()] == [2, 2, 2, 2]


#: (metadata file, its new text, line named, phrase)
DESED_BAD_METADATA = {
    "synthetic-onset-after-offset": (
        "metadata/train/synthetic.tsv",
        STRONG + "syn0.wav\t0\t0.2\tDog\nsyn1.wav\t0.4\t0.1\tCat\n",
        3,
        "need 0 <= onset <= offset",
    ),
    "weak-missing-column": (
        "metadata/train/weak.tsv",
        "filename\nweak0.wav\n",
        1,
        "header must name the columns filename, event_labels (tab-separated); missing event_labels",
    ),
    "hidden-unknown-label": (
        "metadata/hidden/weak.tsv",
        STRONG + "weak0.wav\t0\t0.1\tDog\nweak1.wav\t0\t0.1\tBlender\n",
        3,
        "unknown event label 'Blender'",
    ),
    "durations-non-numeric": (
        "metadata/validation/validation_durations.tsv",
        "filename\tduration\nval0.wav\t0.5\nval1.wav\thalf\n",
        3,
        "duration must be a number",
    ),
}


@pytest.mark.parametrize("case", sorted(DESED_BAD_METADATA))
def test_bad_metadata_in_a_run_is_one_line_naming_file_and_line_exit_2(
    case, desed_tree, desed_recipe, run_cli, tmp_path
):
    relative, text, line, phrase = DESED_BAD_METADATA[case]
    path = (desed_tree / relative).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    run_dir = tmp_path / "run"
    result = run_cli("run", desed_recipe(desed_tree), "--run-dir", run_dir)
    rs.assert_one_line_error(result, f"sedkit: error: {path}:{line}: {phrase}")
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"


def test_missing_metadata_file_in_a_run_names_it(desed_tree, desed_recipe, run_cli, tmp_path):
    path = (desed_tree / "metadata/train/unlabel_in_domain.tsv").resolve()
    path.unlink()
    result = run_cli("run", desed_recipe(desed_tree), "--run-dir", tmp_path / "run")
    rs.assert_one_line_error(result, f"sedkit: error: {path}: file not found")


def test_validation_metadata_without_rows_is_one_line_exit_2(
    desed_tree, desed_recipe, run_cli, tmp_path
):
    path = (desed_tree / "metadata/validation/validation.tsv").resolve()
    path.write_text(STRONG)
    result = run_cli("run", desed_recipe(desed_tree), "--run-dir", tmp_path / "run")
    rs.assert_one_line_error(result, f"{path}: no validation clip with audio to validate on")


def test_metadata_naming_clips_that_do_not_exist_skips_them(desed_tree, tmp_path, caplog):
    """Odd file names in metadata (a NUL byte, a path outside the folder, a folder) are clips
    without audio: skipped and named, like any missing file."""
    path = desed_tree / "metadata/train/unlabel_in_domain.tsv"
    path.write_bytes(b"filename\nunl0.wav\nunl\x00.wav\n../weak/weak0.wav.missing\n.\n")
    data = rs.setup_desed(desed_tree, tmp_path / "run")
    assert [c.filename for c in data.subsets["unlabeled"].clips] == ["unl0.wav"]
    missing = (tmp_path / "run/clips_missing.tsv").read_text().splitlines()
    assert len(missing) == 1 + 3


# ------------------------------------------------------------------------ score ground truth
def _score_inputs(tmp: Path, gt_rows: list[list]) -> list[object]:
    """``score`` arguments: a ground truth of ``gt_rows``, clips a.wav and b.wav of 10 s, and
    detections matching a.wav's first event."""
    gt = rs.write_tsv(tmp / "gt.tsv", rs.STRONG_HEADER, gt_rows)
    meta = rs.write_tsv(tmp / "dur.tsv", ["filename", "duration"], [["a.wav", 10], ["b.wav", 10]])
    est = rs.write_tsv(tmp / "est.tsv", rs.STRONG_HEADER, [["a.wav", 1.0, 3.0, "Dog"]])
    return ["score", "--ref", gt, "--est", est, "--meta", meta, "--json", "--no-dcase-psds"]


def test_score_refuses_a_repeated_ground_truth_event_naming_both_lines(run_cli, tmp_path):
    """A repeated row is a second event no system can match (recall halves): refused."""
    rows = [["a.wav", 1.0, 3.0, "Dog"], ["b.wav", 2.0, 6.0, "Cat"], ["a.wav", 1.0, 3.0, "Dog"]]
    result = run_cli(*_score_inputs(tmp_path, rows))
    rs.assert_one_line_error(result, f"{tmp_path / 'gt.tsv'}:4: repeats line 2")
    # The same event of another clip or label is not a repeat.
    rows[2] = ["b.wav", 1.0, 3.0, "Dog"]
    assert run_cli(*_score_inputs(tmp_path, rows)).code == 0


def test_score_refuses_an_event_after_its_clip_and_warns_of_one_ending_after_it(run_cli, tmp_path):
    gt = tmp_path / "gt.tsv"
    rows = [["a.wav", 1.0, 3.0, "Dog"], ["b.wav", 10.5, 11.0, "Cat"]]
    result = run_cli(*_score_inputs(tmp_path, rows))
    rs.assert_one_line_error(
        result, f"{gt}:3: b.wav 10.5-11 s starts at or after the clip's end (10 s in"
    )
    # Ending after the clip (DCASE 2019's validation set has such events): scored, one warning.
    rows[1] = ["b.wav", 9.5, 10.115, "Cat"]
    result = run_cli(*_score_inputs(tmp_path, rows))
    assert result.code == 0, result.err[-3000:]
    warnings = [line for line in result.err.splitlines() if "end after their clip" in line]
    assert len(warnings) == 1 and f"{gt}:3: b.wav 9.5-10.115 s: 1 ground-truth" in warnings[0]
    assert "by up to 0.115 s" in warnings[0]


def test_a_validation_event_after_its_clip_stops_a_run_before_training(
    desed_tree, desed_recipe, run_cli, tmp_path
):
    """The run's validation ground truth is checked when the run starts, as ``sedkit score``
    checks it, not after the first epoch has trained."""
    rs.write_tsv(
        desed_tree / "metadata/validation/validation.tsv",
        rs.STRONG_HEADER,
        [["val0.wav", 0.0, 0.25, "Dog"], ["val1.wav", 0.6, 0.7, "Cat"]],
    )
    run_dir = tmp_path / "run"
    result = run_cli("run", desed_recipe(desed_tree), "--run-dir", run_dir)
    rs.assert_one_line_error(
        result, "validation_ground_truth.tsv:3: val1.wav 0.6-0.7 s starts at or after the clip's"
    )
    assert not (run_dir / "metrics.jsonl").exists() or not (run_dir / "metrics.jsonl").read_text()
