"""Log-mel features computed in batches on the training device, and their normalisation.

The spectrogram is ``torch.stft`` (Hann window) followed by a mel filter bank from
``torchaudio.functional.melscale_fbanks``, i.e. what ``torchaudio.transforms.MelSpectrogram``
computes (the tests check this), but with the window and filter bank as non-persistent buffers so
that a checkpoint holds only the fitted normalisation statistics.

Decibels are computed per clip: ``torchaudio.transforms.AmplitudeToDB`` applies ``top_db``
relative to the maximum of the whole ``[B, M, T]`` batch, which would make a clip's features
depend on the clips it is batched with (and cached features differ from on-the-fly ones).

Frame-time convention: with ``center=True`` input frame ``i`` is centred at ``i * hop_s``
seconds; :class:`sedkit.data.labels.LabelEncoder` gives frame ``i`` the span
``[i * hop_s, (i + 1) * hop_s)``, as the DCASE baselines do.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
import torchaudio.functional as AF
from torch import Tensor, nn

if TYPE_CHECKING:
    from sedkit.values import Batch

__all__ = ["FeatureExtractor", "FeatureParams"]

#: Bumped when the computation changes in a way the parameters do not show (invalidates caches).
FEATURE_VERSION = 1


@dataclass
class FeatureParams:
    """The recipe's ``features:`` section.

    Paper setting (tri-training, DCASE 2019): ``sample_rate: 22050, n_fft: 2048, hop_length: 345,
    n_mels: 128`` (640 frames per 10 s). DCASE 2020+ baselines: the defaults with ``f_max: 8000``.
    """

    sample_rate: int = 16000
    n_fft: int = 2048
    win_length: int | None = None  # None -> n_fft
    hop_length: int = 256
    n_mels: int = 128
    f_min: float = 0.0
    f_max: float | None = None  # None -> sample_rate / 2
    center: bool = True
    power: float = 2.0
    mel_scale: Literal["htk", "slaney"] = "htk"
    mel_norm: Literal["none", "slaney"] = "none"
    to_db: bool = True
    db_amin: float = 1e-10
    db_top_db: float | None = 80.0
    normalization: Literal["none", "band_standardize", "clip_minmax"] = "band_standardize"

    def __post_init__(self) -> None:
        if self.sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {self.sample_rate}")
        if self.n_fft <= 0 or self.hop_length <= 0 or self.n_mels <= 0:
            raise ValueError("n_fft, hop_length and n_mels must be positive")
        if self.win_length is not None and not 0 < self.win_length <= self.n_fft:
            raise ValueError(
                f"win_length must be in 1..n_fft ({self.n_fft}), got {self.win_length}"
            )
        nyquist = self.sample_rate / 2
        f_max = nyquist if self.f_max is None else self.f_max
        if not 0 <= self.f_min < f_max <= nyquist:
            raise ValueError(
                f"need 0 <= f_min < f_max <= sample_rate/2 ({nyquist:g}), "
                f"got f_min={self.f_min:g}, f_max={f_max:g}"
            )
        if self.power <= 0:
            raise ValueError(f"power must be positive, got {self.power}")
        if self.db_amin <= 0:
            raise ValueError(f"db_amin must be positive, got {self.db_amin}")
        if self.db_top_db is not None and self.db_top_db <= 0:
            raise ValueError(f"db_top_db must be positive or null, got {self.db_top_db}")


class FeatureExtractor(nn.Module):
    """Waveforms ``[B, S]`` -> (log-)mel spectrograms ``[B, M, T]``, plus normalisation.

    ``band_standardize`` subtracts a per-band mean and divides by a per-band standard deviation
    fitted on training features with :meth:`fit_statistics` (buffers, saved in the state dict);
    ``clip_minmax`` rescales each clip to [0, 1]; ``none`` leaves features as they are.
    """

    band_mean: Tensor
    band_std: Tensor
    fitted: Tensor

    def __init__(self, params: FeatureParams):
        super().__init__()
        self.params = params
        win_length = params.win_length or params.n_fft
        f_max = params.sample_rate / 2 if params.f_max is None else params.f_max
        window = torch.hann_window(win_length)
        mel_fb = AF.melscale_fbanks(
            n_freqs=params.n_fft // 2 + 1,
            f_min=params.f_min,
            f_max=f_max,
            n_mels=params.n_mels,
            sample_rate=params.sample_rate,
            norm=None if params.mel_norm == "none" else params.mel_norm,
            mel_scale=params.mel_scale,
        )  # [F, M]
        self.register_buffer("window", window, persistent=False)
        self.register_buffer("mel_fb", mel_fb, persistent=False)
        self.register_buffer("band_mean", torch.zeros(params.n_mels))
        self.register_buffer("band_std", torch.ones(params.n_mels))
        self.register_buffer("fitted", torch.tensor(False))

    # ---------------------------------------------------------------------------------------
    @property
    def hop_s(self) -> float:
        """Seconds between input frames."""
        return self.params.hop_length / self.params.sample_rate

    @property
    def is_fitted(self) -> bool:
        """Whether band statistics have been fitted (or loaded from a checkpoint)."""
        return bool(self.fitted.item())

    def n_frames(self, n_samples: int) -> int:
        """Input frames ``T`` that :meth:`spectrogram` gives for ``n_samples`` samples."""
        if self.params.center:
            return 1 + n_samples // self.params.hop_length
        if n_samples < self.params.n_fft:
            raise ValueError(f"{n_samples} samples are fewer than n_fft ({self.params.n_fft})")
        return 1 + (n_samples - self.params.n_fft) // self.params.hop_length

    def cache_key(self) -> str:
        """A hash of every feature parameter (and the code version) naming cached features.

        The normalisation choice is left out: caches hold un-normalised features.
        """
        fields = dataclasses.asdict(self.params)
        fields.pop("normalization")
        fields["_version"] = FEATURE_VERSION
        text = json.dumps(fields, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # ---------------------------------------------------------------------------------------
    def spectrogram(self, audio: Tensor) -> Tensor:
        """``[B, S]`` (or ``[S]``) waveforms -> ``[B, M, T]`` float32 mel (dB when ``to_db``).

        Computed in float32 with autocast off (an FFT in half precision loses the quiet bands),
        on the device of ``audio``.
        """
        squeeze = audio.dim() == 1
        if squeeze:
            audio = audio.unsqueeze(0)
        p = self.params
        device_type = audio.device.type
        with torch.autocast(device_type=device_type, enabled=False):
            audio = audio.float()
            window = self.window.to(audio.device)
            stft = torch.stft(
                audio,
                n_fft=p.n_fft,
                hop_length=p.hop_length,
                win_length=window.shape[0],
                window=window,
                center=p.center,
                pad_mode="reflect",
                normalized=False,
                onesided=True,
                return_complex=True,
            )  # [B, F, T]
            spec = stft.abs()
            if p.power != 1.0:
                spec = spec.pow(p.power)
            mel = torch.matmul(spec.transpose(1, 2), self.mel_fb.to(audio.device)).transpose(1, 2)
            if p.to_db:
                mel = self._to_db(mel)
        return mel.squeeze(0) if squeeze else mel

    def _to_db(self, mel: Tensor) -> Tensor:
        # |X|^p in dB: 10 log10(|X|^2) = (20 / p) log10(|X|^p).
        multiplier = 20.0 / self.params.power
        db = multiplier * torch.log10(torch.clamp(mel, min=self.params.db_amin))
        if self.params.db_top_db is not None:
            floor = db.amax(dim=(-2, -1), keepdim=True) - self.params.db_top_db
            db = torch.maximum(db, floor)
        return db

    def normalize(self, features: Tensor) -> Tensor:
        """Apply the chosen normalisation to ``[B, M, T]`` (or ``[M, T]``) features."""
        mode = self.params.normalization
        if mode == "none":
            return features
        if mode == "clip_minmax":
            lo = features.amin(dim=(-2, -1), keepdim=True)
            hi = features.amax(dim=(-2, -1), keepdim=True)
            return (features - lo) / (hi - lo).clamp_min(1e-8)
        if not self.is_fitted:
            raise RuntimeError(
                "band_standardize normalisation needs fit_statistics() on training features "
                "(or a state dict that holds them) first"
            )
        mean = self.band_mean.to(features.device, features.dtype).unsqueeze(-1)
        std = self.band_std.to(features.device, features.dtype).unsqueeze(-1)
        return (features - mean) / std

    def extract(self, batch: Batch) -> Tensor:
        """Normalised model input for ``batch``: its cached ``features`` when set, else the
        spectrogram of its ``audio``."""
        if batch.features is not None:
            features = batch.features.float()
        elif batch.audio is not None:
            features = self.spectrogram(batch.audio)
        else:
            raise ValueError("batch has neither audio nor features")
        return self.normalize(features)

    @torch.no_grad()
    def fit_statistics(self, features: Iterable[Tensor]) -> None:
        """Fit per-band mean and standard deviation over all frames of the given un-normalised
        features (each ``[B, M, T]`` or ``[M, T]``).

        Sums are accumulated in float64 so millions of frames do not lose precision; the
        standard deviation is the population one (divide by N), floored at 1e-5.
        """
        n_mels = self.params.n_mels
        total = torch.zeros(n_mels, dtype=torch.float64)
        total_sq = torch.zeros(n_mels, dtype=torch.float64)
        count = 0
        for chunk in features:
            chunk = chunk.detach().to("cpu", torch.float64)
            if chunk.dim() == 2:
                chunk = chunk.unsqueeze(0)
            if chunk.dim() != 3 or chunk.shape[1] != n_mels:
                raise ValueError(f"expected features [B, {n_mels}, T], got {list(chunk.shape)}")
            total += chunk.sum(dim=(0, 2))
            total_sq += chunk.pow(2).sum(dim=(0, 2))
            count += chunk.shape[0] * chunk.shape[2]
        if count == 0:
            raise ValueError("fit_statistics got no features")
        mean = total / count
        var = (total_sq / count - mean.pow(2)).clamp_min(0.0)
        self.band_mean.copy_(mean.float())
        self.band_std.copy_(var.sqrt().clamp_min(1e-5).float())
        self.fitted.fill_(True)
