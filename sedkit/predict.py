"""``sedkit predict``: detections of a trained run on audio files or folders."""

from __future__ import annotations

import argparse
import logging
import sys
from collections import defaultdict
from pathlib import Path

import pandas as pd
import torch

from sedkit.errors import UserError
from sedkit.mc_dropout import mc_dropout_passes, mean_and_std
from sedkit.outputs import check_output, write_output
from sedkit.plugins import Plugins
from sedkit.scoring import write_detections
from sedkit.scoring.score_tables import ScoreTables, tables_from_probs, write_score_tables
from sedkit.trained_run import TrainedRun, load_trained_run

log = logging.getLogger("sedkit")

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3"}


def audio_files(inputs: list[str]) -> list[Path]:
    """Files given directly, and audio files found (recursively) in given folders, each once.

    Detections name a clip by its file name (as DESED ground truths do), so two files of one
    name in different folders could not be told apart: they are refused, naming both."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
            if not found:
                raise UserError(f"{path}: no audio files found in this folder")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise UserError(f"{path}: no such file or folder")
    named: dict[str, Path] = {}
    for path in files:
        first = named.setdefault(path.name, path)
        if first is not path and first.resolve() != path.resolve():
            raise UserError(
                f"{first} and {path}: two clips named {path.name}; the detections name clips "
                f"by file name and could not tell them apart (predict each folder on its own)"
            )
    return [named[name] for name in dict.fromkeys(p.name for p in files)]


def frame_probabilities(
    trained: TrainedRun, audio: torch.Tensor, mc_passes: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Frame probabilities ``[B, T', C]`` of waveforms ``[B, S]``; with ``mc_passes`` > 0, the
    mean over that many MC-dropout passes and their standard deviation (biased)."""
    if mc_passes <= 0:
        return trained.infer(audio)[1].frame_probs, None
    with torch.no_grad():
        x = trained.extractor.normalize(trained.extractor.spectrogram(audio.to(trained.device)))
    samples = mc_dropout_passes(trained.model, x, mc_passes, select=lambda o: o.frame_probs)
    return mean_and_std(samples)


def predict_command(args: argparse.Namespace, *, plugins: Plugins) -> int:
    output = None if args.output == "-" else Path(args.output)
    if args.thresholds and output is None:
        raise UserError("predict: --thresholds writes one file per threshold: give -o FOLDER")
    if args.mc_dropout and output is None:
        raise UserError("predict: --mc-dropout also writes uncertainties: give -o FILE")
    if output is not None:  # refused before any work; nothing is written
        check_output(output, overwrite=args.overwrite, what="folder" if args.thresholds else "file")
        if args.mc_dropout:
            check_output(_uncertainty_path(output), overwrite=args.overwrite)
    scores_dir = score_tables_folder(output, args.scores, bool(args.thresholds))
    if scores_dir is not None and scores_dir.exists() and not args.overwrite:
        raise UserError(f"{scores_dir}: exists; use --overwrite to replace the score tables")
    trained = load_trained_run(
        args.run_dir, plugins=plugins, checkpoint=args.checkpoint, device=args.device
    )
    if trained.encoder is None:
        raise UserError(f"{args.run_dir}: predict detects events; this run is not a SED run")
    decoding = trained.loaded.recipe.decoding
    threshold = decoding.threshold if args.threshold is None else args.threshold
    median = decoding.median_filter_s if args.median_filter is None else args.median_filter
    thresholds = args.thresholds or [threshold]

    # Read every file before writing anything: a bad file stops the command with no output.
    files = audio_files(args.audio)
    by_length: dict[int, list[tuple[str, torch.Tensor]]] = defaultdict(list)
    for path in files:
        audio = trained.read_clip(path)
        by_length[audio.numel()].append((path.name, audio))  # one length per batch, any length

    tables: dict[float, list[pd.DataFrame]] = {th: [] for th in thresholds}
    uncertainty: list[pd.DataFrame] = []
    score_tables: list[ScoreTables] = []
    for length, clips in sorted(by_length.items()):
        encoder = trained.encoder_for(length)
        for i in range(0, len(clips), args.batch_size):
            chunk = clips[i : i + args.batch_size]
            names = [n for n, _ in chunk]
            probs, std = frame_probabilities(
                trained, torch.stack([a for _, a in chunk]), args.mc_dropout
            )
            for th in thresholds:
                tables[th].append(
                    encoder.decode_batch(names, probs, threshold=th, median_filter_s=median)
                )
            if std is not None:
                uncertainty.append(_uncertainty_table(names, trained.classes, probs, std))
            if scores_dir is not None:
                score_tables.append(
                    tables_from_probs(
                        names,
                        probs.detach().float().cpu().numpy(),
                        trained.classes,
                        frame_hop=encoder.frame_hop_s,
                        duration=encoder.clip_duration_s,
                        median_filter_frames=encoder.median_filter_lengths(median),
                    )
                )

    for th, frames in tables.items():
        detections = pd.concat(frames, ignore_index=True)
        if output is None:
            detections.to_csv(sys.stdout, sep="\t", index=False, float_format="%.3f")
            continue
        path = output / f"{th:.6f}.tsv" if args.thresholds else output
        write_detections(detections, path, overwrite=args.overwrite)
        log.info("%d events in %d files written to %s", len(detections), len(files), path)
    for table in score_tables:
        write_score_tables(scores_dir, table)
    if score_tables:
        log.info("frame score tables of %d files written to %s", len(files), scores_dir)
    if uncertainty:
        text = pd.concat(uncertainty, ignore_index=True).to_csv(
            sep="\t", index=False, float_format="%.4f"
        )
        path = write_output(
            _uncertainty_path(output), lambda f: f.write(text.encode()), overwrite=args.overwrite
        )
        log.info("MC-dropout uncertainties (%d passes) written to %s", args.mc_dropout, path)
    return 0


def _uncertainty_path(output: Path) -> Path:
    return output.with_name(output.stem + ".uncertainty.tsv")


def score_tables_folder(
    output: Path | None, scores: str | None, per_threshold: bool
) -> Path | None:
    """Where ``predict`` writes the frame score tables (``sedkit score --scores`` reads them):
    ``--scores DIR``; else beside the detections: ``FOLDER/scores`` with ``--thresholds``,
    ``NAME_scores/`` next to ``-o NAME.tsv``; none when detections go to stdout."""
    if scores is not None:
        return Path(scores)
    if output is None:
        return None
    return output / "scores" if per_threshold else output.with_name(f"{output.stem}_scores")


def _uncertainty_table(
    names: list[str], classes: list[str], mean: torch.Tensor, std: torch.Tensor
) -> pd.DataFrame:
    """Per clip and class: the clip probability (max over frames of the MC mean) and the mean
    over frames of the MC standard deviation."""
    clip = mean.amax(dim=1).cpu().numpy()
    spread = std.mean(dim=1).cpu().numpy()
    rows = [
        (name, label, float(clip[i, k]), float(spread[i, k]))
        for i, name in enumerate(names)
        for k, label in enumerate(classes)
    ]
    return pd.DataFrame(rows, columns=["filename", "event_label", "probability", "std"])
