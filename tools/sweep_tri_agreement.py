"""How good would tri-training's pseudo-labels be at other agreement settings?

    python tools/sweep_tri_agreement.py RUN_DIR [--checkpoint best|last] [--epoch-note TEXT]

Loads a finished tri-training run (its recipe and checkpoint), runs the labelers F1 and F2 over
the weak and unlabeled clips exactly as stage 2 would, and prints, for every agreement threshold
and margin in the grid, the share of labels kept, the precision and recall of the kept positive
labels, and the share of true positives pseudo-labeled *negative* (the labels that teach the
detector silence). Needs the true labels of the "unlabeled" clips, which the embedded benchmark
keeps aside. Forward passes only: about a minute on one CPU core.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from sedkit.checkpoint import load_checkpoint
from sedkit.components import example_mask
from sedkit.plugins import get_plugins
from sedkit.recipe import load_recipe
from sedkit.trainer import Trainer
from sedkit_plugins.tri_training.labeler import agreement_labels, weak_consistent

THRESHOLDS = [0.3, 0.4, 0.5]
MARGINS = [0.0, 0.1, 0.2, 0.3]


def collect(run_dir: Path, checkpoint: str) -> dict[str, torch.Tensor]:
    """Labeler probabilities and truths over the stage-2 clips (clip and frame level)."""
    loaded = load_recipe(run_dir / "recipe.yaml", plugins=get_plugins())
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(loaded, get_plugins(), Path(tmp))
        trainer.setup(resume=False)
        trainer.load_state(load_checkpoint(run_dir / "checkpoints" / f"{checkpoint}.pt"))
        tri = trainer.labeler
        tri.labelers.eval()
        parts: dict[str, list[torch.Tensor]] = {}
        with torch.no_grad():
            for batch, out in trainer.predictor.predict(trainer.data.unlabeled_loader()):
                (f1, c1), (f2, c2) = (labeler(out.h.float()) for labeler in tri.labelers)
                size = len(batch)
                unlabeled = ~example_mask(batch.weak_mask, size)
                weak = example_mask(batch.weak_mask, size)
                truth = batch.hidden["weak"].cpu() > 0.5
                for key, value in {
                    "c1": c1[unlabeled], "c2": c2[unlabeled], "ct": truth[unlabeled],
                    "f1": f1, "f2": f2, "ft": batch.hidden["strong"].cpu() > 0.5,
                    "weak": weak,
                    "weak_truth": torch.where(weak[:, None], batch.weak.cpu() > 0.5, truth),
                }.items():  # fmt: skip
                    parts.setdefault(key, []).append(value.cpu())
    return {key: torch.cat(values) for key, values in parts.items()}


def quality(y: torch.Tensor, kept: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    positive = kept & (y == 1)
    negative = kept & (y == 0)
    tp = (positive & truth).sum().item()
    return {
        "kept": kept.float().mean().item(),
        "precision": tp / max(positive.sum().item(), 1),
        "recall": tp / max(truth.sum().item(), 1),
        "true_as_negative": (negative & truth).sum().item() / max(truth.sum().item(), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--checkpoint", default="best", choices=["best", "last"])
    args = parser.parse_args()
    p = collect(args.run_dir, args.checkpoint)
    print(f"{len(p['c1'])} unlabeled clips (clip level), {len(p['f1'])} clips (frame level)")
    print("| level | threshold | margin | kept | precision | recall | true positives as 0 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for thr in THRESHOLDS:
        for margin in MARGINS:
            if margin >= min(thr, 1 - thr):
                continue
            y, kept = agreement_labels(p["c1"], p["c2"], thr, margin)
            clip = quality(y, kept, p["ct"])
            fy, fkept = agreement_labels(p["f1"], p["f2"], thr, margin)
            fy, fkept = weak_consistent(fy, fkept, p["weak_truth"], p["weak"])
            frame = quality(fy, fkept, p["ft"][:, : fy.shape[1]])
            for level, q in (("clip (U)", clip), ("frame (W+U)", frame)):
                print(
                    f"| {level} | {thr} | {margin} | {q['kept']:.3f} | {q['precision']:.3f} "
                    f"| {q['recall']:.3f} | {q['true_as_negative']:.3f} |"
                )


if __name__ == "__main__":
    main()
