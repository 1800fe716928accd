"""``sedkit predict``: detections of a trained run on audio files or folders."""

from __future__ import annotations

import argparse
import logging
import sys
from collections import defaultdict
from pathlib import Path

import pandas as pd
import torch

from sedkit.checkpoint import load_checkpoint
from sedkit.components import BuildContext
from sedkit.data.audio import read_audio
from sedkit.errors import UserError
from sedkit.plugins import Plugins
from sedkit.recipe import load_recipe
from sedkit.scoring import write_detections
from sedkit.trainer import build_model, select_device

log = logging.getLogger("sedkit")

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3"}


def audio_files(inputs: list[str]) -> list[Path]:
    """Files given directly, and audio files found (recursively) in given folders."""
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
    return files


def predict_command(args: argparse.Namespace, *, plugins: Plugins) -> int:
    run_dir = Path(args.run_dir)
    if not (run_dir / "recipe.yaml").is_file():
        raise UserError(f"{run_dir}: not a sedkit run directory (no recipe.yaml)")
    loaded = load_recipe(run_dir / "recipe.yaml", plugins=plugins)
    if loaded.recipe.task != "sed":
        raise UserError(
            f"{run_dir}: predict detects events; this run's task is {loaded.recipe.task}"
        )
    output = None if args.output == "-" else Path(args.output)
    if args.thresholds and output is None:
        raise UserError("predict: --thresholds writes one file per threshold: give -o FOLDER")
    if output is not None and output.exists() and not args.overwrite:
        raise UserError(f"{output}: exists; use --overwrite to replace it")
    state = load_checkpoint(run_dir / "checkpoints" / f"{args.checkpoint}.pt")
    files = audio_files(args.audio)
    device = select_device(args.device)
    r = loaded.recipe
    ctx = BuildContext(
        task=r.task,
        recipe_path=loaded.path,
        sample_rate=r.features.sample_rate,
        seed=r.seed,
        log=log,
    )
    data = loaded.classes["data"](loaded.params["data"], ctx)
    classes = list(state.get("classes") or data.classes)
    extractor, model, encoder = build_model(loaded, classes, data.clip_duration_s, log)
    model_state = {
        k[len("model.") :]: v for k, v in state["modules"].items() if k.startswith("model.")
    }
    model.load_state_dict(model_state)
    extractor.load_state_dict(state["extractor"])
    model.to(device).eval()
    extractor.to(device)
    decoding = r.decoding
    threshold = decoding.threshold if args.threshold is None else args.threshold
    median = decoding.median_filter_s if args.median_filter is None else args.median_filter

    # Clips of one length are batched together; any length works (no cropping).
    by_length: dict[int, list[tuple[str, torch.Tensor]]] = defaultdict(list)
    for path in files:
        audio = read_audio(path, r.features.sample_rate)
        by_length[audio.numel()].append((path.name, audio))
    thresholds = args.thresholds or [threshold]
    tables: dict[float, list[pd.DataFrame]] = {th: [] for th in thresholds}
    with torch.no_grad():
        for length, clips in sorted(by_length.items()):
            encoder.clip_duration_s = length / r.features.sample_rate
            for i in range(0, len(clips), args.batch_size):
                chunk = clips[i : i + args.batch_size]
                audio = torch.stack([a for _, a in chunk]).to(device)
                probs = model(extractor.normalize(extractor.spectrogram(audio))).frame_probs
                names = [n for n, _ in chunk]
                for th in thresholds:
                    tables[th].append(
                        encoder.decode_batch(names, probs, threshold=th, median_filter_s=median)
                    )
    for th, frames in tables.items():
        detections = pd.concat(frames, ignore_index=True)
        if output is None:
            detections.to_csv(sys.stdout, sep="\t", index=False, float_format="%.3f")
            continue
        path = output / f"{th:.6f}.tsv" if args.thresholds else output
        write_detections(detections, path, overwrite=args.overwrite)
        log.info("%d events in %d files written to %s", len(detections), len(files), path)
    return 0
