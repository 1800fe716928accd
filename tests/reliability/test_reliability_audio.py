"""Bad and unusual audio: each file is either handled (resampled, mixed down, requantised,
padded or cropped; checked against the expected samples) or refused with an InputFileError
that names it, and through ``sedkit run`` with one ``sedkit: error:`` line and exit code 2."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import reliability_support as rs
import soundfile
import torch

from sedkit.data.audio import audio_duration, read_audio
from sedkit.data.features import FeatureExtractor, FeatureParams
from sedkit.errors import InputFileError


# ------------------------------------------------------------------------ bad files
def _wav_bytes(tmp: Path, data: np.ndarray, subtype: str = "PCM_16", fmt: str = "WAV") -> bytes:
    path = tmp / f"source.{fmt.lower()}"
    soundfile.write(path, data, rs.SR, subtype=subtype, format=fmt)
    raw = path.read_bytes()
    path.unlink()
    return raw


def _flipped(raw: bytes, start: int) -> bytes:
    """Every 37th byte after ``start`` inverted: a damaged stream behind an intact header."""
    damaged = bytearray(raw)
    for i in range(start, len(damaged), 37):
        damaged[i] ^= 0xFF
    return bytes(damaged)


def _bad_audio(kind: str, tmp: Path) -> tuple[str, bytes]:
    """(file suffix, bytes) of one kind of unusable audio file."""
    clip = rs.tone()
    wav = _wav_bytes(tmp, clip)
    flac = _wav_bytes(tmp, clip, fmt="FLAC")
    if kind == "empty-file":
        return ".wav", b""
    if kind == "wav-header-only":  # 44-byte header, no sample
        return ".wav", wav[:44]
    if kind == "wav-cut-mid-header":
        return ".wav", wav[:20]
    if kind == "wav-truncated-data":  # a copy cut short: libsndfile reads the rest silently
        return ".wav", wav[: 44 + (len(wav) - 44) * 2 // 3]
    if kind == "random-bytes":
        return ".wav", np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    if kind == "text-named-wav":
        return ".wav", b"filename\tonset\toffset\tevent_label\nclip.wav\t0\t1\tDog\n"
    if kind == "flac-empty-file":
        return ".flac", b""
    if kind == "flac-cut-mid-header":
        return ".flac", flac[:30]
    if kind == "flac-truncated-stream":
        return ".flac", flac[: len(flac) // 2]
    if kind == "flac-corrupt-stream":
        return ".flac", _flipped(flac, 200)
    if kind in ("nan-float-wav", "inf-float-wav", "neg-inf-double-wav", "nan-in-one-channel"):
        value = {"nan": np.nan, "inf": np.inf, "neg": -np.inf}[kind.split("-")[0]]
        data = clip.copy()
        if kind == "nan-in-one-channel":
            data = np.stack([clip, clip], axis=1)
            data[100, 1] = np.nan
        else:
            data[100] = value
        subtype = "DOUBLE" if "double" in kind else "FLOAT"
        return ".wav", _wav_bytes(tmp, data, subtype=subtype)
    raise ValueError(kind)


#: kind -> the phrase of the message (after "PATH: ")
BAD_AUDIO = {
    "empty-file": "cannot read audio",
    "wav-header-only": "audio file holds no samples",
    "wav-cut-mid-header": "cannot read audio",
    "wav-truncated-data": "truncated WAV: its header declares",
    "random-bytes": "cannot read audio",
    "text-named-wav": "cannot read audio",
    "flac-empty-file": "cannot read audio",
    "flac-cut-mid-header": "cannot read audio",
    "flac-truncated-stream": "cannot read audio",
    "flac-corrupt-stream": "cannot read audio",
    "nan-float-wav": "audio file holds NaN or infinite samples",
    "inf-float-wav": "audio file holds NaN or infinite samples",
    "neg-inf-double-wav": "audio file holds NaN or infinite samples",
    "nan-in-one-channel": "audio file holds NaN or infinite samples",
}


@pytest.mark.parametrize("kind", sorted(BAD_AUDIO))
def test_unusable_audio_is_an_input_file_error_naming_the_file(kind, tmp_path):
    suffix, raw = _bad_audio(kind, tmp_path)
    path = tmp_path / f"clip{suffix}"
    path.write_bytes(raw)
    with pytest.raises(InputFileError) as info:
        read_audio(path, rs.SR, n_samples=4000)
    message = str(info.value)
    assert message.startswith(f"{path}: {BAD_AUDIO[kind]}"), message
    assert "\n" not in message
    assert info.value.path == str(path)


@pytest.mark.parametrize(
    "kind", ["empty-file", "wav-cut-mid-header", "text-named-wav", "flac-cut-mid-header"]
)
def test_unreadable_header_is_an_input_file_error_for_durations_too(kind, tmp_path):
    suffix, raw = _bad_audio(kind, tmp_path)
    path = tmp_path / f"clip{suffix}"
    path.write_bytes(raw)
    with pytest.raises(InputFileError, match=f"^{path}: cannot read audio header"):
        audio_duration(path)


def test_a_folder_named_like_audio_is_not_found(tmp_path):
    folder = tmp_path / "clip.wav"
    folder.mkdir()
    with pytest.raises(InputFileError, match=f"^{folder}: audio file not found"):
        read_audio(folder, rs.SR)


def test_wav_cut_mid_data_is_refused_naming_what_is_missing(tmp_path):
    """libsndfile reads the frames that are present without a word; a clip cut short (issue 18:
    'truncated WAV data accepted without a warning') would train as a shorter, padded clip. It is
    refused, naming the bytes the header declares and the bytes present."""
    clip = rs.tone()
    raw = _wav_bytes(tmp_path, clip)  # PCM_16: 2 bytes a frame after a 44-byte header
    path = tmp_path / "cut.wav"
    path.write_bytes(raw[: 44 + 2 * 1000 + 1])  # 1000 frames and half a sample
    with pytest.raises(InputFileError) as info:
        read_audio(path, rs.SR, n_samples=4000)
    assert str(info.value) == (
        f"{path}: truncated WAV: its header declares {len(raw) - 44} bytes of samples, the file "
        "holds 2001; copy it again"
    )
    path.write_bytes(raw)  # the whole file reads as before
    np.testing.assert_allclose(read_audio(path, rs.SR).numpy(), clip, atol=2**-15)


# ------------------------------------------------------------------------ handled files
@pytest.mark.parametrize("file_rate", [8000, 22050, 44100, 48000])
def test_other_sample_rates_are_resampled(file_rate, tmp_path):
    """A 440 Hz tone at any rate becomes the same tone at 16 kHz (up- and down-sampling)."""
    path = rs.write_wav(tmp_path / "tone.wav", rs.tone(rate=file_rate), file_rate, "FLOAT")
    audio = read_audio(path, 16000)
    assert audio.dtype == torch.float32
    assert audio.shape == (int(np.ceil(rs.CLIP_S * file_rate * 16000 / file_rate)),)
    expected = rs.tone(rate=16000)
    inner = slice(200, -200)  # the windowed-sinc filter rings at the edges only
    np.testing.assert_allclose(audio.numpy()[inner], expected[inner], atol=5e-3)


@pytest.mark.parametrize(
    ("fmt", "subtype", "step"),
    [
        ("WAV", "PCM_U8", 2**-7),
        ("WAV", "PCM_16", 2**-15),
        ("WAV", "PCM_24", 2**-23),
        ("WAV", "PCM_32", 2**-24),  # read as float32: its precision bounds the error
        ("WAV", "FLOAT", 2**-24),
        ("WAV", "DOUBLE", 2**-24),
        ("FLAC", "PCM_S8", 2**-7),
        ("FLAC", "PCM_16", 2**-15),
        ("FLAC", "PCM_24", 2**-23),
    ],
)
def test_bit_depths_are_read_as_float_within_one_quantisation_step(fmt, subtype, step, tmp_path):
    clip = rs.tone()
    path = tmp_path / f"clip.{fmt.lower()}"
    soundfile.write(path, clip, rs.SR, subtype=subtype, format=fmt)
    audio = read_audio(path, rs.SR)
    assert audio.dtype == torch.float32 and audio.shape == clip.shape
    assert np.abs(audio.numpy() - clip).max() <= step


@pytest.mark.parametrize("n_channels", [2, 6])
def test_channels_are_averaged(n_channels, tmp_path):
    gains = np.linspace(1.0, -0.5, n_channels)  # includes channels that cancel others
    data = np.stack([g * rs.tone(freq=200.0 * (c + 1)) for c, g in enumerate(gains)], axis=1)
    path = rs.write_wav(tmp_path / "multi.wav", data, rs.SR, "FLOAT")
    audio = read_audio(path, rs.SR)
    assert audio.shape == (data.shape[0],)
    np.testing.assert_allclose(audio.numpy(), data.astype(np.float32).mean(axis=1), atol=1e-6)


@pytest.mark.parametrize("seconds", [0.2, 0.5, 1.3])
def test_clips_are_padded_or_cropped_to_the_clip_length(seconds, tmp_path):
    clip = rs.tone(seconds)
    path = rs.write_wav(tmp_path / "clip.wav", clip, rs.SR, "FLOAT")
    n_samples = int(rs.CLIP_S * rs.SR)
    audio = read_audio(path, rs.SR, n_samples=n_samples).numpy()
    assert audio.shape == (n_samples,)
    kept = min(len(clip), n_samples)
    np.testing.assert_allclose(audio[:kept], clip[:kept], atol=1e-7)
    assert not audio[kept:].any()


def test_silent_clip_gives_zeros_and_finite_features(tmp_path):
    path = rs.write_wav(tmp_path / "silence.wav", np.zeros(int(rs.CLIP_S * rs.SR)), rs.SR)
    audio = read_audio(path, rs.SR)
    assert audio.shape == (4000,) and not audio.any()
    batch = torch.stack([audio, torch.zeros_like(audio)])
    for normalization in ("none", "band_standardize", "clip_minmax"):
        extractor = FeatureExtractor(
            FeatureParams(
                sample_rate=rs.SR, n_fft=256, hop_length=64, n_mels=16, normalization=normalization
            )
        )
        if normalization == "band_standardize":
            extractor.fit_statistics([extractor.spectrogram(batch)])  # all-silent statistics
        features = extractor.normalize(extractor.spectrogram(batch))
        assert torch.isfinite(features).all(), normalization


# ------------------------------------------------------------------------ through `sedkit run`
#: (subset, kind): one bad file in each subset and of each family.
CLI_CASES = [
    ("synthetic", "wav-header-only"),
    ("weak", "wav-cut-mid-header"),
    ("unlabeled", "random-bytes"),
    ("validation", "text-named-wav"),
    ("synthetic", "nan-float-wav"),
    ("weak", "flac-corrupt-stream"),
    ("validation", "inf-float-wav"),
]


@pytest.mark.parametrize(("subset", "kind"), CLI_CASES, ids=[f"{s}-{k}" for s, k in CLI_CASES])
def test_bad_audio_in_a_run_is_one_line_naming_the_file_exit_2(
    subset, kind, desed_tree, desed_recipe, run_cli, tmp_path
):
    folder, stem = rs.AUDIO_FOLDERS[subset]
    bad = (desed_tree / folder / f"{stem}1.wav").resolve()
    bad.write_bytes(_bad_audio(kind, tmp_path)[1])  # keeps the .wav name the metadata lists
    run_dir = tmp_path / "run"
    result = run_cli("run", desed_recipe(desed_tree), "--run-dir", run_dir)
    rs.assert_one_line_error(result, f"sedkit: error: {bad}: {BAD_AUDIO[kind]}")
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"
    assert not (run_dir / "metrics.json").exists()


def test_unusual_but_valid_audio_trains_end_to_end(
    desed_tree, desed_recipe, run_cli_all_plugins, tmp_path
):
    """Other rates, bit depths, channel counts, lengths and silence in one tree: the run
    completes (reports and plots included) and every metric is finite."""
    variants: dict[str, tuple[np.ndarray, int, str]] = {
        "audio/train/synthetic/syn0.wav": (np.stack([rs.tone(rate=22050)] * 2, 1), 22050, "FLOAT"),
        "audio/train/synthetic/syn1.wav": (rs.tone(0.8, rate=44100), 44100, "PCM_24"),
        "audio/train/weak/weak0.wav": (
            np.stack([rs.tone(rate=48000)] * 6, 1),
            48000,
            "PCM_16",
        ),
        "audio/train/weak/weak1.wav": (rs.tone(0.2), rs.SR, "PCM_U8"),
        "audio/train/unlabel_in_domain/unl0.wav": (np.zeros(4000), rs.SR, "PCM_16"),
        "audio/validation/val0.wav": (rs.tone(0.3), rs.SR, "PCM_32"),
        "audio/validation/val1.wav": (rs.tone(1.5, rate=16000), 16000, "DOUBLE"),
    }
    for relative, (data, rate, subtype) in variants.items():
        rs.write_wav(desed_tree / relative, data, rate, subtype)
    run_dir = tmp_path / "run"
    result = run_cli_all_plugins("run", desed_recipe(desed_tree), "--run-dir", run_dir)
    assert result.code == 0, result.err[-3000:]
    assert not result.error_lines and "Traceback" not in result.err
    final = json.loads((run_dir / "metrics.json").read_text())
    assert final["status"] == "completed"
    numbers = [v for v in final["validation"].values() if isinstance(v, int | float)]
    assert numbers and all(np.isfinite(numbers))
    used = (run_dir / "clips_used.tsv").read_text()
    assert all(os.path.basename(r) in used for r in variants)  # no clip was dropped


def test_missing_clip_is_skipped_and_named_or_fatal_with_exit_2(
    desed_tree, desed_recipe, run_cli, tmp_path
):
    gone = (desed_tree / "audio/train/weak/weak1.wav").resolve()
    gone.unlink()
    recipe: Callable[..., Path] = desed_recipe
    strict = (
        recipe(desed_tree, extra="")
        .read_text()
        .replace("batch_size: 4", "batch_size: 4\n    missing_audio: error")
    )
    path = tmp_path / "strict.yaml"
    path.write_text(strict)
    result = run_cli("run", path, "--run-dir", tmp_path / "strict")
    rs.assert_one_line_error(result, "1 of 2 weak audio files are missing", str(gone))
    result = run_cli("run", recipe(desed_tree), "--run-dir", tmp_path / "skip")
    assert result.code == 0, result.err[-3000:]
    assert str(gone) in (tmp_path / "skip/clips_missing.tsv").read_text()


# ------------------------------------------------------------------------ shorter than a window
def test_a_validation_clip_shorter_than_the_fft_window_is_padded_as_scored(
    desed_tree, desed_recipe, run_cli_all_plugins, tmp_path
):
    """80 samples, fewer than n_fft (256): validation pads the clip to the clip length, and so
    does the reporting plugin's detection view of it (it used to fail in a reflect pad)."""
    short = rs.write_wav(desed_tree / "audio/validation/val0.wav", rs.tone(0.01), rs.SR)
    assert soundfile.info(str(short)).frames == 80
    run_dir = tmp_path / "run"
    result = run_cli_all_plugins("run", desed_recipe(desed_tree), "--run-dir", run_dir)
    assert result.code == 0, result.err[-3000:]
    assert not result.error_lines and "Traceback" not in result.err
    assert any("val0" in p.name for p in (run_dir / "plots").rglob("*.png"))


def test_predict_refuses_a_clip_shorter_than_the_fft_window_naming_it(
    desed_tree, desed_recipe, run_cli, tmp_path
):
    run_dir = tmp_path / "run"
    assert run_cli("run", desed_recipe(desed_tree), "--run-dir", run_dir).code == 0
    folder = tmp_path / "audio"
    rs.write_wav(folder / "long.wav", rs.tone(0.5), rs.SR)
    short = rs.write_wav(folder / "short.wav", rs.tone(0.01), rs.SR)
    out = tmp_path / "detections.tsv"
    result = run_cli("predict", run_dir, folder, "-o", out)
    rs.assert_one_line_error(
        result, f"sedkit: error: {short}: 80 samples at 8000 Hz", "shorter than one FFT window"
    )
    assert not out.exists()
    # One window exactly is enough: one frame.
    rs.write_wav(short, rs.tone(256 / rs.SR), rs.SR)
    assert run_cli("predict", run_dir, folder, "-o", out).code == 0
