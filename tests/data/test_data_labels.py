"""Label files and the label encoder: readers on real DESED ground truth, the encode/decode round
trip, the time grid against the model's pooling, and decoding checked with sed_eval."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from sedkit.data.labels import (
    DESED_CLASSES,
    LabelEncoder,
    binary_median_filter,
    median_filter_frames,
    read_durations_tsv,
    read_strong_tsv,
    read_unlabeled_tsv,
    read_weak_tsv,
)
from sedkit.errors import InputFileError

REFERENCE = Path(__file__).resolve().parents[3] / "shared/reference/dcase2019_task4_validation"
GT = REFERENCE / "dcase2019t4_gt.csv"
STRONG_HEADER = "filename\tonset\toffset\tevent_label\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------ readers
@pytest.mark.skipif(not GT.is_file(), reason="shared DCASE 2019 reference data not present")
def test_strong_reader_on_real_dcase2019_validation_ground_truth():
    clips = read_strong_tsv(GT, DESED_CLASSES)
    assert len(clips) == 1168
    assert sum(1 for events in clips.values() if not events) == 15
    assert sum(len(events) for events in clips.values()) == 4245 - 15
    first = clips["Y00pbt6aJV8Y_350.000_360.000.wav"][0]
    assert (first.onset, first.offset, first.event_label) == (0.0, 9.971, "Vacuum_cleaner")
    durations = read_durations_tsv(REFERENCE / "dcase2019t4_meta.csv")
    assert set(durations) == set(clips)


def test_weak_unlabeled_durations_readers(tmp_path):
    weak = write(tmp_path / "weak.tsv", "filename\tevent_labels\na.wav\tDog,Cat\nb.wav\tSpeech\n\n")
    assert read_weak_tsv(weak, DESED_CLASSES) == {"a.wav": ["Dog", "Cat"], "b.wav": ["Speech"]}
    unl = write(tmp_path / "u.tsv", "filename\nx.wav\ny.wav\nx.wav\n")
    assert read_unlabeled_tsv(unl) == ["x.wav", "y.wav"]
    dur = write(tmp_path / "d.tsv", "filename\tduration\nx.wav\t9.5\n")
    assert read_durations_tsv(dur) == {"x.wav": 9.5}
    # Column order is free (DESED detection files put event_label first).
    strong = write(tmp_path / "s.tsv", "event_label\tonset\toffset\tfilename\nDog\t1\t2\tz.wav\n")
    (event,) = read_strong_tsv(strong)["z.wav"]
    assert (event.onset, event.offset, event.event_label) == (1.0, 2.0, "Dog")


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        (
            "filename\tonset\toffset\tevent_label\na.wav\t0\t1\tDog\nb.wav\tx\t2\tDog\n",
            3,
            "numbers",
        ),
        ("filename\tonset\toffset\tevent_label\na.wav\t3\t1\tDog\n", 2, "onset <= offset"),
        ("filename\tonset\toffset\tevent_label\na.wav\t0\t1\tDog\textra\n", 2, "fields"),
        ("filename\tonset\toffset\tevent_label\na.wav\t0\t1\tUnicorn\n", 2, "unknown event label"),
        ("filename onset offset event_label\na.wav 0 1 Dog\n", 1, "header"),
        ("", 1, "empty"),
    ],
)
def test_malformed_strong_tsv_names_file_and_line(tmp_path, text, line, fragment):
    path = write(tmp_path / "bad.tsv", text)
    with pytest.raises(InputFileError) as info:
        read_strong_tsv(path, DESED_CLASSES)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert fragment in message


def test_missing_file_is_an_input_file_error(tmp_path):
    with pytest.raises(InputFileError, match="not found"):
        read_weak_tsv(tmp_path / "nope.tsv")


# ------------------------------------------------------------------------------------ encoder
def test_encode_follows_the_documented_time_grid():
    encoder = LabelEncoder(["Dog", "Cat"], frame_hop_s=0.5, n_frames=8)
    target = encoder.encode_strong([(0.7, 1.2, "Dog"), (3.0, 3.5, "Cat"), (3.9, 9.0, "Cat")])
    assert target[:, 0].tolist() == [0, 1, 1, 0, 0, 0, 0, 0]  # [0.5, 1.5) overlaps frames 1, 2
    assert target[:, 1].tolist() == [0, 0, 0, 0, 0, 0, 1, 1]  # 3.0-3.5 is exactly frame 6
    assert encoder.encode_weak(["Cat"]).tolist() == [0.0, 1.0]
    assert encoder.encode_strong([(0.0, 0.0, "")]).sum() == 0  # a clip without events


def _random_events(rng, classes, frame_hop_s, duration):
    """Events per class separated by more than two output frames (so decoding cannot merge
    them), some touching the clip edges."""
    events = []
    for label in classes:
        t = rng.choice([0.0, rng.uniform(0, 1)])
        while True:
            length = rng.uniform(0.02, 3.0)
            onset, offset = t, min(t + length, duration)
            if offset - onset <= 0:
                break
            events.append((onset, offset, label))
            t = offset + 2 * frame_hop_s + rng.uniform(1e-3, 2.0)
            if t >= duration - 1e-3 or rng.random() < 0.2:
                break
    return events


@pytest.mark.parametrize(
    ("hop_s", "pooling", "sample_rate"), [(256, 4, 16000), (345, 4, 22050), (256, 1, 16000)]
)
def test_round_trip_returns_every_event_within_one_output_frame(hop_s, pooling, sample_rate):
    duration = 10.0
    input_frames = 1 + int(duration * sample_rate) // hop_s
    n_frames = input_frames // pooling
    frame_hop_s = hop_s * pooling / sample_rate
    encoder = LabelEncoder(
        DESED_CLASSES, frame_hop_s=frame_hop_s, n_frames=n_frames, clip_duration_s=duration
    )
    # The output frames cover n_frames * frame_hop_s (9.984 s of 10 s at 16 kHz, hop 256, p 4):
    # events are drawn there; offsets at the clip end are tested below.
    covered = min(n_frames * frame_hop_s, duration)
    rng = np.random.default_rng(1234)
    for _ in range(150):
        events = _random_events(rng, DESED_CLASSES[: rng.integers(1, 11)], frame_hop_s, covered)
        decoded = encoder.decode_strong(encoder.encode_strong(events))
        assert len(decoded) == len(events)
        for onset, offset, label in sorted(events, key=lambda e: (e[0], e[2])):
            match = [d for d in decoded if d[2] == label and abs(d[0] - onset) < frame_hop_s]
            assert len(match) == 1, (onset, offset, label, decoded)
            d_onset, d_offset, _ = match[0]
            assert onset - frame_hop_s < d_onset <= onset + 1e-9
            assert abs(d_offset - offset) < frame_hop_s
            # decoded times lie exactly on the output grid (or the clip end)
            assert math.isclose(d_onset / frame_hop_s, round(d_onset / frame_hop_s), abs_tol=1e-9)
    ((onset, offset, _),) = encoder.decode_strong(encoder.encode_strong([(9.5, 10.0, "Dog")]))
    assert 9.5 - frame_hop_s < onset <= 9.5 and 10.0 - frame_hop_s < offset <= 10.0


def test_encoder_grid_matches_max_pooling_of_input_frames():
    """The model max-pools input frames by p; a frame-level detector that fires on every input
    frame an event overlaps, pooled, must equal the encoder's targets exactly."""
    sample_rate, hop, pooling, duration = 16000, 256, 4, 10.0
    input_frames = 1 + int(duration * sample_rate) // hop
    input_hop_s = hop / sample_rate
    encoder = LabelEncoder(
        ["A"], frame_hop_s=input_hop_s * pooling, n_frames=input_frames // pooling
    )
    fine = LabelEncoder(["A"], frame_hop_s=input_hop_s, n_frames=input_frames)
    rng = np.random.default_rng(7)
    for _ in range(200):
        onset = rng.uniform(0, 9.5)
        events = [(onset, min(onset + rng.uniform(0.01, 2), duration), "A")]
        per_input_frame = fine.encode_strong(events)[: encoder.n_frames * pooling, 0]
        pooled = torch.nn.functional.max_pool1d(per_input_frame.view(1, 1, -1), pooling).view(-1)
        assert torch.equal(pooled, encoder.encode_strong(events)[:, 0])


def test_decode_thresholds_median_filter_and_merging_per_class():
    encoder = LabelEncoder(["A", "B"], frame_hop_s=0.1, n_frames=10)
    probs = torch.zeros(10, 2)
    probs[:, 0] = torch.tensor([0.9, 0.9, 0.2, 0.9, 0.9, 0.9, 0.6, 0.6, 0.1, 0.1])
    probs[:, 1] = torch.tensor([0.0, 0.7, 0.0, 0.0, 0.7, 0.7, 0.7, 0.0, 0.0, 0.0])
    events = encoder.decode_strong(probs, threshold=[0.5, 0.5])
    assert [(round(a, 6), round(b, 6), c) for a, b, c in events] == [
        (0.0, 0.2, "A"),
        (0.1, 0.2, "B"),
        (0.3, 0.8, "A"),
        (0.4, 0.7, "B"),
    ]
    # per-class threshold: 0.65 drops A's 0.6 frames
    events = encoder.decode_strong(probs, threshold={"A": 0.65, "B": 0.5})
    assert (0.3, 0.6, "A") in [(round(a, 6), round(b, 6), c) for a, b, c in events]
    # a 0.3 s median filter on A only closes A's one-frame gap and removes B's nothing
    events = encoder.decode_strong(probs, median_filter_s={"A": 0.3})
    rounded = [(round(a, 6), round(b, 6), c) for a, b, c in events]
    assert (0.0, 0.8, "A") in rounded and (0.1, 0.2, "B") in rounded
    # merging: B's two runs are 0.2 s apart
    rounded = [
        (round(a, 6), round(b, 6), c) for a, b, c in encoder.decode_strong(probs, merge_gap_s=0.2)
    ]
    assert (0.1, 0.7, "B") in rounded


def test_median_filter_length_is_the_nearest_odd_number_of_frames():
    assert median_filter_frames(0.45, 0.128) == 3  # 3.5 frames: 3, not 5 (0.64 s)
    assert median_filter_frames(0.45, 0.064) == 7
    assert median_filter_frames(0.5, 0.125) == 5  # 4.0 frames: a tie goes up
    assert median_filter_frames(0.1, 0.128) == 1 and median_filter_frames(0.0, 0.1) == 1
    for ratio in np.linspace(0.0, 20.0, 401):
        length = median_filter_frames(ratio * 0.1, 0.1)
        assert length % 2 == 1 and abs(length - ratio) <= 1.0 + 1e-9


def test_decode_uses_the_nearest_odd_median_filter():
    """0.45 s at a 0.128 s hop is a 3-frame filter: a two-frame gap between events stays (a
    5-frame filter, 0.64 s, would close it)."""
    encoder = LabelEncoder(["A"], frame_hop_s=0.128, n_frames=8)
    probs = torch.tensor([0.9, 0.9, 0.9, 0.1, 0.1, 0.9, 0.9, 0.9])[:, None]
    events = encoder.decode_strong(probs, median_filter_s=0.45)
    assert len(events) == 2
    assert len(encoder.decode_strong(probs, median_filter_s=0.64)) == 1


def test_binary_median_filter_equals_scipy():
    scipy_ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(0)
    # Windows up to the sequence length (scipy extends differently beyond that).
    for n in (1, 2, 5, 40, 157):
        for k in (k for k in (1, 3, 5, 7, 21) if k <= n):
            active = rng.random(n) > 0.5
            expected = scipy_ndimage.median_filter(active.astype(int), size=k) > 0
            assert np.array_equal(binary_median_filter(active, k), expected), (n, k)


def test_decode_batch_scores_perfectly_with_sed_eval():
    """Encoding ground truth and decoding it again gives event-based F1 = 1 with the DCASE
    collar (200 ms) when the output hop is below the collar: checked with sed_eval itself."""
    sed_eval = pytest.importorskip("sed_eval")
    frame_hop_s = 0.064
    encoder = LabelEncoder(DESED_CLASSES, frame_hop_s=frame_hop_s, n_frames=156)
    rng = np.random.default_rng(3)
    names, targets, reference = [], [], []
    for i in range(6):
        events = _random_events(rng, DESED_CLASSES[:4], frame_hop_s, 9.98)
        names.append(f"clip{i}.wav")
        targets.append(encoder.encode_strong(events))
        reference += [
            {"filename": f"clip{i}.wav", "onset": a, "offset": b, "event_label": c}
            for a, b, c in events
        ]
    table = encoder.decode_batch(names, torch.stack(targets))
    assert list(table.columns) == ["filename", "onset", "offset", "event_label"]
    metrics = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=DESED_CLASSES[:4], t_collar=0.2, percentage_of_length=0.2
    )
    for name in names:
        ref = [e for e in reference if e["filename"] == name]
        est = table[table.filename == name].to_dict("records")
        metrics.evaluate(reference_event_list=ref, estimated_event_list=est)
    assert metrics.results_overall_metrics()["f_measure"]["f_measure"] == pytest.approx(1.0)


def test_decode_batch_equals_clip_by_clip_reference_decoding():
    """The vectorised batch decoder against a plain per-clip, per-class loop."""
    scipy_ndimage = pytest.importorskip("scipy.ndimage")
    encoder = LabelEncoder(["A", "B", "C"], frame_hop_s=0.1, n_frames=50)
    rng = np.random.default_rng(5)
    probs = rng.random((8, 50, 3)).astype(np.float32)
    thresholds, filters, gap = [0.3, 0.5, 0.7], {"A": 0.5, "C": 0.3}, 0.2
    table = encoder.decode_batch(
        [f"c{i}" for i in range(8)],
        probs,
        threshold=thresholds,
        median_filter_s=filters,
        merge_gap_s=gap,
    )
    expected = []
    for b in range(8):
        for k, label in enumerate("ABC"):
            active = probs[b, :, k] > thresholds[k]
            size = round(filters.get(label, 0.0) / 0.1)
            if size > 1:
                active = scipy_ndimage.median_filter(active.astype(int), size=size | 1) > 0
            runs, t = [], 0
            while t < 50:
                if active[t]:
                    start = t
                    while t < 50 and active[t]:
                        t += 1
                    if runs and start - runs[-1][1] <= 2:
                        runs[-1] = (runs[-1][0], t)
                    else:
                        runs.append((start, t))
                t += 1
            expected += [(f"c{b}", a * 0.1, e * 0.1, label) for a, e in runs]
    got = sorted(
        (r.filename, round(r.onset, 6), round(r.offset, 6), r.event_label)
        for r in table.itertuples()
    )
    assert got == sorted((f, round(a, 6), round(e, 6), c) for f, a, e, c in expected)


def test_score_tables_use_the_decoders_median_filter_length():
    """Thresholding a run's score table must give its decoded detections: both filter 0.45 s at a
    0.128 s hop over 3 frames (a 5-frame table filter would close the 2-frame gap)."""
    from sedkit.evaluation import frame_score_tables
    from sedkit.recipe import DecodingParams

    encoder = LabelEncoder(["A"], frame_hop_s=0.128, n_frames=8)
    assert encoder.median_filter_lengths(0.45) == [3]
    probs = torch.tensor([0.9, 0.9, 0.9, 0.1, 0.1, 0.9, 0.9, 0.9])[None, :, None]
    tables = frame_score_tables(["c.wav"], probs, encoder, DecodingParams(median_filter_s=0.45))
    active = (tables.scores[:, 0] > 0.5).astype(int).tolist()
    assert active == [1, 1, 1, 0, 0, 1, 1, 1]
    assert len(encoder.decode_strong(probs[0], median_filter_s=0.45)) == 2
