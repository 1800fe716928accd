"""Reading clips: soundfile, mono mix-down, torchaudio resampling, pad or crop to clip length.

torchaudio 2.9+ does no audio I/O, so files are read with ``soundfile``; torchaudio only
resamples. Every failure to get usable samples out of a file becomes an
:class:`~sedkit.errors.InputFileError` naming the file, so a bad clip among thousands is found
at once.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio.functional as AF
from torch import Tensor

from sedkit.errors import InputFileError

__all__ = ["audio_duration", "n_clip_samples", "pad_or_crop", "read_audio"]


def pad_or_crop(waveform: Tensor, n_samples: int) -> Tensor:
    """Zero-pad at the end or keep the first ``n_samples`` of a ``[S]`` waveform.

    Clips shorter than the nominal duration (DESED has some) are padded with silence rather
    than stretched, so label times stay valid.
    """
    length = waveform.shape[-1]
    if length == n_samples:
        return waveform
    if length > n_samples:
        return waveform[..., :n_samples]
    return torch.nn.functional.pad(waveform, (0, n_samples - length))


def wav_truncation(path: Path) -> tuple[int, int] | None:
    """For a RIFF/WAVE file whose ``data`` chunk declares more bytes than the file holds (a copy
    or download cut short): (declared bytes, bytes present). None for complete files, other
    formats, and streams whose size field is unknown (0 or 0xFFFFFFFF). libsndfile reads such a
    file without complaint and returns the shorter signal, so it is checked here."""
    try:
        with path.open("rb") as handle:
            if handle.read(4) != b"RIFF":
                return None
            handle.read(4)
            if handle.read(4) != b"WAVE":
                return None
            size = path.stat().st_size
            while True:
                header = handle.read(8)
                if len(header) < 8:
                    return None
                chunk, length = header[:4], int.from_bytes(header[4:], "little")
                if chunk == b"data":
                    if length in (0, 0xFFFFFFFF):
                        return None
                    present = size - handle.tell()
                    return (length, present) if present < length else None
                handle.seek(length + (length & 1), 1)  # chunks are word-aligned
    except OSError:
        return None


def read_audio(
    path: str | Path,
    sample_rate: int,
    *,
    n_samples: int | None = None,
) -> Tensor:
    """Read ``path`` as a mono float32 ``[S]`` tensor at ``sample_rate``.

    Channels are averaged; other rates are resampled with ``torchaudio.functional.resample``
    (windowed sinc); with ``n_samples`` the result is zero-padded or cropped to that length.
    Raises InputFileError for a file that is missing, unreadable, empty, truncated (a WAV whose
    samples stop before its header says) or holds non-finite samples.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "audio file not found")
    try:
        data, file_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        raise InputFileError(path, f"cannot read audio: {exc}") from exc
    if data.shape[0] == 0:
        raise InputFileError(path, "audio file holds no samples")
    cut = wav_truncation(path)
    if cut is not None:
        raise InputFileError(
            path,
            f"truncated WAV: its header declares {cut[0]} bytes of samples, the file holds "
            f"{cut[1]}; copy it again",
        )
    if not np.isfinite(data).all():
        raise InputFileError(path, "audio file holds NaN or infinite samples")
    waveform = torch.from_numpy(data.mean(axis=1))
    if file_rate != sample_rate:
        # resample() works on the highest precision it gets; float32 is plenty for audio.
        waveform = AF.resample(waveform, int(file_rate), int(sample_rate))
    if n_samples is not None:
        waveform = pad_or_crop(waveform, n_samples)
    return waveform.contiguous()


def audio_duration(path: str | Path) -> float:
    """Duration in seconds from the file header (no samples read)."""
    path = Path(path)
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        raise InputFileError(path, f"cannot read audio header: {exc}") from exc
    if info.frames <= 0 or info.samplerate <= 0:
        raise InputFileError(path, "audio file holds no samples")
    return info.frames / info.samplerate


def n_clip_samples(clip_duration_s: float, sample_rate: int) -> int:
    """Samples in a clip of ``clip_duration_s`` (rounded, so 10 s at 22,050 Hz is 220,500)."""
    return int(math.floor(clip_duration_s * sample_rate + 0.5))
