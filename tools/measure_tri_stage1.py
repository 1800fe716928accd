"""Tri-training's stage 1 against the baseline: does Omega throttle the learning of Ft?

    python tools/measure_tri_stage1.py [--data data/dcase2019] [--seeds 1 2 3] [--epochs 6] \
        [--root runs/tri_stage1] [--write docs/tri_stage1.md]

1. **Gradients** (first seed): for Omega in the default form (mean |cosine|) and in the old
   sum-per-unit form, the value of Omega and the gradient norms, on the labelers' parameters, of
   lambda * Omega and of the labelers' BCE, and on F + Ft of Ft's BCE: at step 0 and at the first
   step of epoch 3 (after two epochs of stage 1).
2. **Learning curves**: the baseline, tri-training as configured (`recipes/dcase2019_task4/
   tri.yaml`) and tri-training with the old Omega scale and one global clipping norm, for
   ``--epochs`` epochs, all of them in stage 1: Ft's training BCE (frame and clip) and the
   validation event F1 per epoch, mean ± std over seeds, and the paired difference from the
   baseline at the last epoch.
Runs are resumable (tools/reproduction.py): re-running skips finished ones.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reproduction import epoch_records, mean_std, train  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RECIPES = ROOT / "recipes/dcase2019_task4"
OLD_OMEGA = ["pseudo_labeler.params.orthogonality_reduction=sum_per_unit"]
VARIANTS = {
    "baseline": ("baseline.yaml", []),
    "tri": ("tri.yaml", []),
    "tri_old_scale_global_clip": ("tri.yaml", [*OLD_OMEGA, "trainer.grad_clip_scope=global"]),
}
CURVES = ("train_frame_bce", "train_clip_bce", "event_f1_macro")


def gradient_probe(data: Path, seed: int, overrides: list[str]) -> list[dict[str, float]]:
    """Omega and gradient norms at step 0 and at the first step of epoch 3."""
    import torch

    from sedkit.plugins import get_plugins
    from sedkit.recipe import load_recipe
    from sedkit.trainer import Trainer

    plugins = get_plugins()
    loaded = load_recipe(
        RECIPES / "tri.yaml",
        [f"data.params.root={data}", f"seed={seed}", "trainer.max_epochs=3", *overrides],
        plugins=plugins,
    )
    rows: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(loaded, plugins, Path(tmp) / "run")
        trainer.setup(resume=False)
        tri = trainer.labeler
        labeler_params = [p for p in tri.parameters() if p.requires_grad]
        model_params = [p for p in trainer.modules["model"].parameters() if p.requires_grad]
        probe_steps = {0, 2 * trainer.steps_per_epoch}
        original = trainer.step_fn

        def norm(loss: torch.Tensor, params: list[torch.Tensor]) -> float:
            grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
            return float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None)))

        def probed(x, batch, epoch, global_step, progress, stage):
            losses = original(x, batch, epoch, global_step, progress, stage)
            if global_step in probe_steps:
                rows.append(
                    {
                        "step": global_step,
                        "omega": float(tri.omega().detach()),
                        "grad_omega_labelers": norm(losses["tri_orthogonality"], labeler_params),
                        "labeler_bce": float(
                            (
                                losses["tri_labeler_frame_bce"] + losses["tri_labeler_clip_bce"]
                            ).detach()
                        ),
                        "grad_labeler_bce_labelers": norm(
                            losses["tri_labeler_frame_bce"] + losses["tri_labeler_clip_bce"],
                            labeler_params,
                        ),
                        "ft_bce": float((losses["frame_bce"] + losses["clip_bce"]).detach()),
                        "grad_ft_bce_model": norm(
                            losses["frame_bce"] + losses["clip_bce"], model_params
                        ),
                    }
                )
            return losses

        trainer.step_fn = probed
        for epoch in (1, 2, 3):
            trainer.train_epoch(epoch)
            if len(rows) == len(probe_steps):
                break
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="data/dcase2019")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--root", default="runs/tri_stage1")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", help="markdown file for the results")
    parser.add_argument("overrides", nargs="*", help="recipe overrides for every run")
    args = parser.parse_args()
    data, root = Path(args.data).resolve(), Path(args.root)
    started = time.time()

    probe_file = root / "gradients.json"
    if probe_file.is_file():
        probes = json.loads(probe_file.read_text())
    else:
        seed = args.seeds[0]
        probes = {
            "mean (default)": gradient_probe(data, seed, args.overrides),
            "sum_per_unit (old)": gradient_probe(data, seed, [*OLD_OMEGA, *args.overrides]),
        }
        root.mkdir(parents=True, exist_ok=True)
        probe_file.write_text(json.dumps(probes, indent=2))

    for seed in args.seeds:
        for name, (recipe, extra) in VARIANTS.items():
            overrides = [
                f"data.params.root={data}",
                f"seed={seed}",
                f"trainer.max_epochs={args.epochs}",
                *extra,
                *args.overrides,
            ]
            if name != "baseline":
                overrides.append(f"pseudo_labeler.params.stage1_epochs={args.epochs}")
            status = train(
                f"{name} seed {seed}", root / name / f"seed{seed}", RECIPES / recipe, overrides,
                args.threads,
            )  # fmt: skip
            print(status, flush=True)
            if "FAILED" in status:
                raise SystemExit(status)

    lines = [
        "| Omega form | step | Omega | lambda Omega grad (labelers) | labelers' BCE | its grad "
        "(labelers) | Ft's BCE | its grad (F + Ft) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for form, rows in probes.items():
        for r in rows:
            lines.append(
                f"| {form} | {r['step']} | {r['omega']:.3f} | {r['grad_omega_labelers']:.3f} | "
                f"{r['labeler_bce']:.3f} | {r['grad_labeler_bce_labelers']:.3f} | "
                f"{r['ft_bce']:.3f} | {r['grad_ft_bce_model']:.3f} |"
            )
    lines += ["", "| variant | epoch | " + " | ".join(CURVES) + " |", "|---|---|" + "---|" * 3]
    records = {
        name: {s: epoch_records(root / name / f"seed{s}") for s in args.seeds} for name in VARIANTS
    }
    for name in VARIANTS:
        for epoch in range(1, args.epochs + 1):
            cells = [mean_std([records[name][s][epoch - 1][m] for s in args.seeds]) for m in CURVES]
            lines.append(f"| {name} | {epoch} | " + " | ".join(cells) + " |")
    lines += ["", f"Paired differences from the baseline at epoch {args.epochs} (per seed):", ""]
    for name in list(VARIANTS)[1:]:
        for m in CURVES:
            diffs = [records[name][s][-1][m] - records["baseline"][s][-1][m] for s in args.seeds]
            ups = sum(d > 0 for d in diffs)
            lines.append(
                f"- {name}, {m}: {mean_std(diffs)} ({', '.join(f'{d:+.3f}' for d in diffs)}; "
                f"{ups} of {len(diffs)} above)"
            )
    report = "\n".join(lines)
    print(report)
    if args.write:
        command = (
            f"python tools/measure_tri_stage1.py --seeds {' '.join(map(str, args.seeds))} "
            f"--epochs {args.epochs} --write {args.write}"
        )
        Path(args.write).write_text(
            "# Tri-training stage 1 against the baseline\n\n"
            f"Command: `{command}` ({time.time() - started:.0f} s for what was not already "
            f"done; {args.threads} CPU threads per run). Data: `{args.data}` "
            f"(`dataset_card.md` there).\n\n{report}\n"
        )


if __name__ == "__main__":
    main()
