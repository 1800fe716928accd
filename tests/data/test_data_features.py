"""Audio reading and log-mel features, checked against torchaudio's own transforms."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile
import torch
import torchaudio

from sedkit.components import Batch
from sedkit.data.audio import audio_duration, n_clip_samples, pad_or_crop, read_audio
from sedkit.data.features import FeatureExtractor, FeatureParams
from sedkit.errors import InputFileError

SMALL = dict(sample_rate=8000, n_fft=256, hop_length=64, n_mels=16)


# ------------------------------------------------------------------------------------ audio
def test_read_audio_mixes_down_resamples_and_pads(tmp_path):
    t = np.arange(4000) / 8000
    left, right = np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 440 * t)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.stack([left, right], axis=1), 8000, subtype="FLOAT")
    mono = read_audio(path, 8000)
    assert mono.dtype == torch.float32 and mono.shape == (4000,)
    np.testing.assert_allclose(mono.numpy(), 0.75 * left, atol=1e-6)
    resampled = read_audio(path, 16000)
    assert resampled.shape == (8000,)
    expected = torchaudio.functional.resample(torch.from_numpy(0.75 * left).float(), 8000, 16000)
    torch.testing.assert_close(resampled, expected, atol=1e-5, rtol=0)
    padded = read_audio(path, 8000, n_samples=8000)
    assert padded.shape == (8000,) and padded[4000:].abs().max() == 0
    assert read_audio(path, 8000, n_samples=1000).shape == (1000,)
    assert audio_duration(path) == pytest.approx(0.5)
    assert n_clip_samples(10.0, 22050) == 220500
    assert pad_or_crop(torch.ones(3), 5).tolist() == [1, 1, 1, 0, 0]


@pytest.mark.parametrize("content", [b"", b"RIFF\x00\x00garbage that is not audio"])
def test_unreadable_audio_names_the_file(tmp_path, content):
    path = tmp_path / "broken.wav"
    path.write_bytes(content)
    with pytest.raises(InputFileError) as info:
        read_audio(path, 8000)
    assert str(path) in str(info.value)


def test_empty_and_missing_audio_name_the_file(tmp_path):
    path = tmp_path / "empty.wav"
    soundfile.write(path, np.zeros(0), 8000)
    with pytest.raises(InputFileError, match="no samples"):
        read_audio(path, 8000)
    with pytest.raises(InputFileError, match="not found"):
        read_audio(tmp_path / "absent.wav", 8000)


# ------------------------------------------------------------------------------------ features
@pytest.mark.parametrize(
    "params",
    [
        FeatureParams(f_max=8000.0),  # DCASE 2020+ baseline
        FeatureParams(**SMALL, mel_scale="slaney", mel_norm="slaney", f_min=50.0, db_top_db=None),
        FeatureParams(**SMALL, center=False, power=1.0, win_length=200),
    ],
)
def test_spectrogram_matches_torchaudio_transforms(params):
    torch.manual_seed(0)
    audio = torch.randn(2, params.sample_rate) * torch.tensor([[1.0], [0.01]])
    ours = FeatureExtractor(params).spectrogram(audio)
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=params.sample_rate,
        n_fft=params.n_fft,
        win_length=params.win_length,
        hop_length=params.hop_length,
        f_min=params.f_min,
        f_max=params.f_max,
        n_mels=params.n_mels,
        power=params.power,
        center=params.center,
        norm=None if params.mel_norm == "none" else params.mel_norm,
        mel_scale=params.mel_scale,
    )(audio)
    to_db = torchaudio.transforms.AmplitudeToDB(
        stype="power" if params.power == 2.0 else "magnitude", top_db=params.db_top_db
    )
    # torchaudio's top_db is relative to the whole batch's maximum: apply it clip by clip.
    expected = torch.stack([to_db(m) for m in mel])
    assert ours.shape == (2, params.n_mels, FeatureExtractor(params).n_frames(params.sample_rate))
    torch.testing.assert_close(ours, expected, atol=1e-3, rtol=1e-5)


def test_features_of_a_clip_do_not_depend_on_its_batch():
    extractor = FeatureExtractor(FeatureParams(**SMALL))
    torch.manual_seed(1)
    quiet, loud = torch.randn(8000) * 1e-3, torch.randn(8000)
    together = extractor.spectrogram(torch.stack([quiet, loud]))
    torch.testing.assert_close(together[0], extractor.spectrogram(quiet))


def test_frame_counts_of_paper_and_baseline_settings():
    paper = FeatureExtractor(FeatureParams(sample_rate=22050, n_fft=2048, hop_length=345))
    assert paper.n_frames(220500) == 640  # METHODS.md: 640 frames for 10 s
    assert paper.hop_s == pytest.approx(345 / 22050)
    baseline = FeatureExtractor(FeatureParams(f_max=8000.0))
    assert baseline.n_frames(160000) == 626


def test_band_standardize_statistics_are_fitted_saved_and_reloaded():
    params = FeatureParams(**SMALL)
    extractor = FeatureExtractor(params)
    torch.manual_seed(2)
    chunks = [extractor.spectrogram(torch.randn(3, 8000) * s) for s in (0.1, 1.0, 3.0)]
    with pytest.raises(RuntimeError, match="fit_statistics"):
        extractor.normalize(chunks[0])
    extractor.fit_statistics(iter(chunks))
    normalized = extractor.normalize(torch.cat(chunks))
    per_band = normalized.transpose(0, 1).reshape(params.n_mels, -1)
    torch.testing.assert_close(per_band.mean(1), torch.zeros(16), atol=1e-4, rtol=0)
    torch.testing.assert_close(per_band.std(1, unbiased=False), torch.ones(16), atol=1e-4, rtol=0)
    state = extractor.state_dict()
    assert set(state) == {"band_mean", "band_std", "fitted"}
    restored = FeatureExtractor(params)
    restored.load_state_dict(state)
    torch.testing.assert_close(restored.normalize(chunks[1]), extractor.normalize(chunks[1]))


def test_clip_minmax_and_none():
    features = torch.randn(2, 16, 10) * 20 - 50
    minmax = FeatureExtractor(FeatureParams(**SMALL, normalization="clip_minmax")).normalize(
        features
    )
    assert torch.allclose(minmax.amin(dim=(1, 2)), torch.zeros(2))
    assert torch.allclose(minmax.amax(dim=(1, 2)), torch.ones(2))
    none = FeatureExtractor(FeatureParams(**SMALL, normalization="none"))
    assert torch.equal(none.normalize(features), features)


def test_extract_prefers_cached_features():
    extractor = FeatureExtractor(FeatureParams(**SMALL, normalization="none"))
    audio = torch.randn(2, 8000)
    batch = Batch(filenames=["a", "b"], stream=["weak"] * 2, domain=torch.ones(2), audio=audio)
    torch.testing.assert_close(extractor.extract(batch), extractor.spectrogram(audio))
    cached = dataclasses.replace(batch, features=torch.zeros(2, 16, 126))
    assert torch.equal(extractor.extract(cached), torch.zeros(2, 16, 126))


def test_cache_key_covers_every_feature_parameter_but_normalization():
    base = FeatureParams(**SMALL)
    key = FeatureExtractor(base).cache_key()
    changes = dict(
        sample_rate=16000,
        n_fft=512,
        win_length=128,
        hop_length=32,
        n_mels=8,
        f_min=20.0,
        f_max=3000.0,
        center=False,
        power=1.0,
        mel_scale="slaney",
        mel_norm="slaney",
        to_db=False,
        db_amin=1e-5,
        db_top_db=None,
    )
    assert set(changes) | {"normalization"} == {f.name for f in dataclasses.fields(FeatureParams)}
    for name, value in changes.items():
        changed = FeatureExtractor(dataclasses.replace(base, **{name: value})).cache_key()
        assert changed != key, name
    same = dataclasses.replace(base, normalization="clip_minmax")
    assert FeatureExtractor(same).cache_key() == key


def test_feature_params_reject_bad_values():
    with pytest.raises(ValueError, match="f_max"):
        FeatureParams(sample_rate=16000, f_max=9000.0)
    with pytest.raises(ValueError, match="win_length"):
        FeatureParams(n_fft=512, win_length=1024)
