"""Score tables written from frame probabilities: median filter, rounding, round trip."""

from __future__ import annotations

import numpy as np
import pytest

from sedkit.data.labels import binary_median_filter
from sedkit.scoring.score_tables import (
    median_filtered,
    read_score_tables,
    score_files,
    tables_from_probs,
    write_score_tables,
)


@pytest.mark.parametrize("length", [2, 3, 7, 40])
def test_thresholding_filtered_scores_equals_filtering_decisions(length: int) -> None:
    """What makes a score table reproduce the decoder's detections at every threshold."""
    rng = np.random.default_rng(length)
    probs = np.round(rng.random((3, 25)), 2)
    filtered = median_filtered(probs, length, axis=1)
    for threshold in (0.1, 0.35, 0.5, 0.77):
        expected = binary_median_filter(probs > threshold, length, axis=1)
        np.testing.assert_array_equal(filtered > threshold, expected)


def test_tables_round_trip_through_files(tmp_path) -> None:
    rng = np.random.default_rng(0)
    probs = rng.random((2, 7, 3)).astype(np.float32)
    tables = tables_from_probs(
        ["a.wav", "b.wav"],
        probs,
        ["x", "y", "z"],
        frame_hop=0.064,
        duration=0.44,
        median_filter_frames=[1, 3, 1],
    )
    assert tables.clips == ["a", "b"]
    assert tables.offsets[6] == pytest.approx(0.44)  # the last frame cut at the clip's end
    write_score_tables(tmp_path, tables)
    files = score_files(tmp_path)
    back = read_score_tables(files.values(), ids=list(files))
    assert back.clips == ["a", "b"] and back.classes == ["x", "y", "z"]
    np.testing.assert_array_equal(back.scores, tables.scores)
    np.testing.assert_array_equal(back.onsets, tables.onsets)
    np.testing.assert_array_equal(back.offsets, tables.offsets)
    np.testing.assert_array_equal(
        back.scores[:7, 1], np.round(median_filtered(probs[0, :, 1], 3, axis=0), 6)
    )
