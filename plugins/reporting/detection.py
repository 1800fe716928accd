"""The detection view of a clip from a trained SED run: its log-mel spectrogram, reference and
predicted events, and the model's frame probabilities (``sedkit show``, and the report's
chosen validation clips).

Clips are found by file name in the run's ``clips_used.tsv`` (validation first) or given as an
audio path; reference events come from the run's ``validation_ground_truth.tsv``. Predicted
events are decoded from the shown probabilities with the recipe's decoding parameters, so the
bars and the curves always agree.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sedkit.data.labels import read_strong_tsv
from sedkit.errors import UserError
from sedkit.trained_run import TrainedRun
from sedkit_plugins.reporting.plots import DetectionView, Event, save_detection_view
from sedkit_plugins.reporting.rundata import read_table

GROUND_TRUTH = "validation_ground_truth.tsv"
DURATIONS = "validation_durations.tsv"

#: Clips drawn into a report: a number of validation clips (those with the most reference
#: events first) or a comma-separated list of file names.
REPORT_CLIPS_ENV = "SEDKIT_REPORT_CLIPS"
DEFAULT_REPORT_CLIPS = 3


def find_clip_audio(run_dir: Path, clip: str) -> tuple[str, Path]:
    """(file name, audio path) of ``clip``: an existing audio file, or a file name listed in
    the run's ``clips_used.tsv`` (its validation row first)."""
    path = Path(clip)
    if path.is_file():
        return path.name, path
    rows = read_table(Path(run_dir) / "clips_used.tsv")
    matches = [r for r in rows if r.get("filename") == clip and r.get("path")]
    matches.sort(key=lambda r: r.get("subset") != "validation")
    if matches:
        return clip, Path(matches[0]["path"])
    validation = [r["filename"] for r in rows if r.get("subset") == "validation"][:5]
    hint = f" (validation clips include: {', '.join(validation)})" if validation else ""
    raise UserError(
        f"{clip}: neither an audio file nor a clip listed in {Path(run_dir) / 'clips_used.tsv'}"
        + hint
    )


def reference_events(run_dir: Path) -> dict[str, list[Event]]:
    """Reference events per validation clip, from the run's ground truth (empty if none)."""
    path = Path(run_dir) / GROUND_TRUTH
    if not path.is_file():
        return {}
    return {
        name: [(e.onset, e.offset, e.event_label) for e in events]
        for name, events in read_strong_tsv(path).items()
    }


def detection_view(
    trained: TrainedRun, filename: str, audio_path: Path, reference: list[Event] | None
) -> DetectionView:
    """Run ``trained`` on one clip and gather what its detection view shows."""
    if trained.encoder is None:
        raise UserError(
            f"{trained.run_dir}: the detection view needs a sound event detection run; "
            f"this run's task is {trained.loaded.recipe.task}"
        )
    # A validation clip, shown as the run scored it: padded to the clip length when shorter.
    audio = trained.read_clip(audio_path, pad_to_clip=True)
    spectrogram, out = trained.infer(audio.unsqueeze(0))
    if out.frame_probs is None:
        raise UserError(f"{trained.run_dir}: the model gives no frame probabilities")
    probs = out.frame_probs.detach().float().cpu()
    decoding = trained.loaded.recipe.decoding
    encoder = trained.encoder_for(audio.numel())
    predicted = encoder.decode_batch(
        [filename],
        probs,
        threshold=decoding.threshold,
        median_filter_s=decoding.median_filter_s,
    )
    return DetectionView(
        clip=filename,
        log_mel=spectrogram[0].detach().float().cpu().numpy(),
        feature_hop_s=trained.extractor.hop_s,
        frame_probs=probs[0].numpy().astype(np.float64),
        frame_hop_s=encoder.frame_hop_s,
        classes=list(trained.classes),
        reference=list(reference or []),
        predicted=[
            (float(r.onset), float(r.offset), str(r.event_label)) for r in predicted.itertuples()
        ],
        duration_s=audio.numel() / trained.sample_rate,
        threshold=decoding.threshold,
    )


def render_clip(trained: TrainedRun, clip: str, out_png: Path) -> Path:
    """Find ``clip``, run the model on it and write its detection view to ``out_png``."""
    filename, audio_path = find_clip_audio(trained.run_dir, clip)
    reference = reference_events(trained.run_dir).get(filename)
    return save_detection_view(detection_view(trained, filename, audio_path, reference), out_png)


def report_clips(run_dir: Path) -> list[str]:
    """Validation clips whose detection view goes into the report: ``$SEDKIT_REPORT_CLIPS``
    (a count, or file names separated by commas), by default the three validation clips with the
    most reference events (ties by name), among those whose audio the run lists."""
    setting = os.environ.get(REPORT_CLIPS_ENV, "").strip()
    if setting and not setting.isdigit():
        return [name.strip() for name in setting.split(",") if name.strip()]
    count = int(setting) if setting else DEFAULT_REPORT_CLIPS
    listed = {
        r["filename"]
        for r in read_table(Path(run_dir) / "clips_used.tsv")
        if r.get("subset") == "validation" and r.get("path") and r.get("filename")
    }
    events = reference_events(run_dir)
    ranked = sorted((n for n in events if n in listed), key=lambda n: (-len(events[n]), n))
    return ranked[:count]
