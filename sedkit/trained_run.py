"""A trained run, loaded back for inference: recipe, classes, feature extractor, model and label
encoder with the checkpoint's weights. Used by ``sedkit predict`` and the reporting plugin."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from sedkit.build import build_data, build_model, select_device
from sedkit.checkpoint import LAST, load_checkpoint, recorded_best
from sedkit.components import Model, ModelOutput
from sedkit.data.audio import n_clip_samples, pad_or_crop, read_audio
from sedkit.data.features import FeatureExtractor
from sedkit.data.labels import LabelEncoder
from sedkit.errors import InputFileError, UserError
from sedkit.plugins import Plugins
from sedkit.recipe import LoadedRecipe, load_recipe

log = logging.getLogger("sedkit")


@dataclass
class TrainedRun:
    """The parts of a finished (or interrupted) run needed to run its model on audio."""

    run_dir: Path
    loaded: LoadedRecipe
    classes: list[str]
    clip_duration_s: float
    extractor: FeatureExtractor
    model: Model
    encoder: LabelEncoder | None  # SED only
    device: torch.device
    checkpoint: Path

    @property
    def sample_rate(self) -> int:
        return int(self.loaded.recipe.features.sample_rate)

    @torch.no_grad()
    def infer(self, audio: Tensor) -> tuple[Tensor, ModelOutput]:
        """Waveforms ``[B, S]`` (one length) -> (un-normalised spectrograms ``[B, M, T]``,
        the model's output on the normalised ones), in evaluation mode."""
        audio = audio.to(self.device)
        spectrogram = self.extractor.spectrogram(audio)
        return spectrogram, self.model(self.extractor.normalize(spectrogram))

    def read_clip(self, path: Path, *, pad_to_clip: bool = False) -> Tensor:
        """``path`` as a mono waveform at the run's sample rate, at its own length; with
        ``pad_to_clip``, a clip shorter than the run's clip length is padded with silence to it,
        as the run's data were for training and validation. A clip shorter than one FFT window
        (``features.n_fft``) is refused naming the file: no spectrogram frame fits in it."""
        audio = read_audio(path, self.sample_rate)
        clip = n_clip_samples(self.clip_duration_s, self.sample_rate)
        if pad_to_clip and audio.numel() < clip:
            audio = pad_or_crop(audio, clip)
        n_fft = self.extractor.params.n_fft
        if audio.numel() < n_fft:
            raise InputFileError(
                path,
                f"{audio.numel()} samples at {self.sample_rate} Hz "
                f"({audio.numel() / self.sample_rate:.4f} s) is shorter than one FFT window "
                f"(features.n_fft: {n_fft} samples, {n_fft / self.sample_rate:.4f} s) of run "
                f"{self.run_dir}",
            )
        return audio

    def encoder_for(self, n_samples: int) -> LabelEncoder:
        """The label encoder, with offsets clipped to a clip of ``n_samples`` samples (clips of
        any length can be decoded, as ``sedkit predict`` does)."""
        if self.encoder is None:
            raise UserError(f"{self.run_dir}: this run's task is {self.loaded.recipe.task}")
        self.encoder.clip_duration_s = n_samples / self.sample_rate
        return self.encoder


def load_trained_run(
    run_dir: str | Path,
    *,
    plugins: Plugins,
    checkpoint: str = "best",
    device: str = "cpu",
) -> TrainedRun:
    """Rebuild a run's model from ``recipe.yaml`` and ``checkpoints/<checkpoint>.pt``.

    ``checkpoint`` is ``"best"`` or ``"last"``; ``"best"`` falls back to ``"last"`` when the run
    never validated an improvement. The data component is only constructed (cheap, no I/O) for
    its class list and clip duration; the checkpoint's class list wins when it has one.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "recipe.yaml").is_file():
        raise UserError(f"{run_dir}: not a sedkit run directory (no recipe.yaml)")
    checkpoints = run_dir / "checkpoints"
    # The best checkpoint is the one last.pt records (digest checked), never another.
    record = recorded_best(checkpoints) if checkpoint == "best" else None
    path = checkpoints / f"{checkpoint}.pt"
    if not path.is_file() and checkpoint == "best" and record is None:
        path = checkpoints / LAST
    if not path.is_file() and record is None:
        raise UserError(f"{run_dir}: no checkpoint {path.name} (the run saved no weights)")
    loaded = load_recipe(run_dir / "recipe.yaml", plugins=plugins)
    state = load_checkpoint(path, sha256=record["sha256"] if record else None)
    data = build_data(loaded)
    classes = list(state.get("classes") or data.classes)
    extractor, model, encoder = build_model(loaded, classes, data.clip_duration_s, log)
    prefix = "model."
    model.load_state_dict(
        {k[len(prefix) :]: v for k, v in state["modules"].items() if k.startswith(prefix)}
    )
    extractor.load_state_dict(state["extractor"])
    target = select_device(device)
    model.to(target).eval()
    extractor.to(target)
    return TrainedRun(
        run_dir=run_dir,
        loaded=loaded,
        classes=classes,
        clip_duration_s=float(data.clip_duration_s),
        extractor=extractor,
        model=model,
        encoder=encoder,
        device=target,
        checkpoint=path,
    )
