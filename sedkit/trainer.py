"""The training loop: ``fit`` runs epochs, ``train_epoch`` runs steps, ``train_step`` is one
optimizer step.

One epoch: the pseudo-labeler may refresh its labels; each batch goes to the device, becomes
features, is augmented, runs through the model; the loss is the sum of named terms from the
model's supervised loss, the pseudo-labeler and the domain adapter; backward, clip, step.
Validation runs every ``validate_every`` epochs; each epoch ends with one checkpoint commit
(``last``, and ``best`` when the monitored metric improved; see ``sedkit.checkpoint``). A
resumed run reloads ``last`` and continues with the same batches and random numbers, so it ends
where an uninterrupted run would; the final evaluation runs on the recorded best only.

Around the loop: the components are built by :mod:`sedkit.build`, the optimizer, schedule and
clipping live in :mod:`sedkit.optim`, transfer learning's freezing is a built-in callback
(:mod:`sedkit.freezing`). Under torchrun the step runs inside DistributedDataParallel on each
rank's share of every batch (lines marked ``DDP``; see ``sedkit.distributed``); rank 0
validates, logs and writes checkpoints.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sedkit import components as C
from sedkit import distributed as D
from sedkit.build import build_context, build_experiment, seed_everything, select_device
from sedkit.checkpoint import LAST, load_checkpoint, reconcile
from sedkit.errors import UserError
from sedkit.evaluation import check_reference, evaluate_classification, evaluate_sed
from sedkit.formatting import epoch_summary, section_metrics
from sedkit.freezing import TransferFreezing
from sedkit.optim import Schedule, build_optimizer, clip_gradients, clip_groups, grad_norm_metrics
from sedkit.plugins import Plugins
from sedkit.progress import Progress
from sedkit.recipe import LoadedRecipe
from sedkit.rundir import MetricsLog, write_json
from sedkit.step import LossStep, TrainerPredictor
from sedkit.trainer_checkpoints import TrainerCheckpoints
from sedkit.transfer import load_partial

log = logging.getLogger("sedkit")


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite; the last good checkpoint is kept."""


class Trainer(TrainerCheckpoints):
    """Builds the experiment from a validated recipe and trains it in ``run_dir``."""

    def __init__(self, loaded: LoadedRecipe, plugins: Plugins, run_dir: Path):
        self.loaded, self.plugins, self.run_dir = loaded, plugins, Path(run_dir)
        r = self.recipe = loaded.recipe
        self.tp = r.trainer
        self.device = select_device(self.tp.device)
        self.distributed = D.init_from_env(self.device.type)  # DDP
        self.device = D.local_device(self.device)  # DDP
        if not D.is_main():
            log.setLevel(logging.WARNING)  # rank 0 logs for everyone
        seed_everything(r.seed, self.tp.deterministic)
        x = build_experiment(loaded, self.device)
        self.data, self.classes, self.extractor = x.data, x.classes, x.extractor
        self.model, self.encoder, self.labeler, self.adapter = (
            x.model,
            x.encoder,
            x.labeler,
            x.adapter,
        )
        self.modules, self.callbacks = x.modules, x.callbacks
        self.freezing = TransferFreezing(self.tp.transfer, build_context(loaded), self.modules)
        self.frozen_names = self.freezing.frozen_names
        self.clip_groups = clip_groups(self.modules, self.tp.grad_clip_scope)
        self.optimizer = build_optimizer(
            self.tp.optimizer, self.freezing.param_groups(self.tp.optimizer.lr)
        )
        self.schedule = Schedule(self.optimizer, self.tp.scheduler, self.tp.monitor_mode)
        use_fp16 = self.device.type == "cuda" and self.tp.amp == "fp16"
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_fp16)
        self.predictor = TrainerPredictor(self)
        forward_model = torch.compile(self.model) if self.tp.compile else self.model
        self.loss_step = LossStep(self.modules, forward_model)
        self.step_fn: nn.Module = self.loss_step  # DDP: wrapped by wrap_step
        self.grad_norms: list[torch.Tensor] = []
        self.epoch = self.global_step = self.best_epoch = self.steps_per_epoch = 0
        self.best_value: float | None = None
        self.best_record: dict[str, Any] | None = None  # epoch and digest of best.pt
        self.should_stop, self.stop_reason = False, ""
        self.metrics_log = MetricsLog(self.run_dir / "metrics.jsonl")

    # ------------------------------------------------------------------ helpers
    def autocast(self) -> contextlib.AbstractContextManager:
        if self.device.type != "cuda" or self.tp.amp == "none":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.tp.amp == "bf16" else torch.float16
        return torch.autocast("cuda", dtype=dtype)

    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    def wrap_step(self) -> None:
        """DDP: (re)wrap the step so that it registers the parameters trained now."""
        if self.distributed:
            from torch.nn.parallel import DistributedDataParallel

            self.step_fn = DistributedDataParallel(
                self.loss_step,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=self.tp.find_unused_parameters,
            )

    def setup(self, resume: bool) -> None:
        """Prepare data (and normalisation statistics), or reload the last checkpoint."""
        self.data.setup(self.run_dir, self.encoder, self.extractor)
        if self.recipe.task == "sed":
            check_reference(self.data.reference())  # before training, not at the first validation
        self.steps_per_epoch = self._epoch_length()
        self.schedule.set_length(self.steps_per_epoch, self.tp.max_epochs)
        if resume:
            self.load_state(load_checkpoint(self.checkpoint_dir / LAST))
            if D.is_main():
                for done in reconcile(self.checkpoint_dir, self.best_record):
                    log.info("checkpoints: %s", done)
                self.metrics_log = MetricsLog(self.run_dir / "metrics.jsonl", self.epoch)
            D.barrier()  # best.pt is whole before any rank may read it
            log.info("resumed from epoch %d (step %d)", self.epoch, self.global_step)
            return
        if self.recipe.features.normalization == "band_standardize":
            self.extractor.fit_statistics(self._training_spectrograms(max_batches=32))
        if self.tp.transfer.init_from:
            report = load_partial(self.modules, self.tp.transfer.init_from)
            log.info("%s", report.summary())
            if D.is_main():
                write_json(self.run_dir / "transfer.json", report.as_dict())

    def _epoch_length(self) -> int:
        loader = self.data.train_loader(1)
        n = len(loader) if hasattr(loader, "__len__") else None
        cap = self.tp.max_steps_per_epoch
        if n is None and cap is None:
            raise UserError("trainer.max_steps_per_epoch: needed when the data has no length")
        return min(n, cap) if (n is not None and cap is not None) else (n or cap)  # type: ignore

    def _training_spectrograms(self, max_batches: int):
        for i, batch in enumerate(self.data.train_loader(0)):
            if i >= max_batches:
                break
            if batch.features is not None:
                yield batch.features.to(self.device)
            else:
                yield self.extractor.spectrogram(batch.audio.to(self.device))

    # ------------------------------------------------------------------ training
    def fit(self) -> dict[str, Any]:
        """Train until ``max_epochs`` or a callback stops; then the final evaluation."""
        started = time.time()
        for cb in self.callbacks:
            cb.on_fit_start(self)
        while self.epoch < self.tp.max_epochs and not self.should_stop:
            epoch = self.epoch + 1
            metrics = self.train_epoch(epoch)
            if epoch % self.tp.validate_every == 0 or epoch == self.tp.max_epochs:
                # Rank 0 validates; every rank gets its metrics for the same decisions.
                metrics.update(D.broadcast_object(self.validate() if D.is_main() else None))
            self.epoch = epoch
            self.schedule.epoch_end(metrics, self.tp.monitor)
            for cb in self.callbacks:
                cb.on_epoch_end(self, epoch, metrics)
            improved = self._update_best(metrics)
            metrics["best_epoch"] = self.best_epoch
            if D.is_main():
                self.metrics_log.append({"epoch": epoch, **metrics})
            self.commit(improved)
            D.barrier()  # the checkpoints are on disk before any rank may read them
            if D.is_main():
                self.plugins.epoch_end(run_dir=self.run_dir, epoch=epoch, metrics=metrics)
            log.info("epoch %d: %s", epoch, epoch_summary(metrics, self.tp.monitor))
        status = "stopped" if self.should_stop else "completed"
        if self.should_stop:
            log.info("stopped after epoch %d: %s", self.epoch, self.stop_reason)
        for cb in self.callbacks:
            cb.on_fit_end(self)
        final = self.finish()
        final.update(status=status, epochs=self.epoch, train_time_s=time.time() - started)
        if D.is_main():
            write_json(self.run_dir / "metrics.json", final)
        return final

    def _step_schedule(self) -> None:
        self.schedule.step()

    def _set_frozen(self, epoch: int) -> None:
        self.freezing.on_epoch_start(self, epoch)

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        # Seeding per epoch makes a resumed run draw the same random numbers as an
        # uninterrupted one, whatever happened before the checkpoint.
        torch.manual_seed(self.recipe.seed * 100_003 + epoch)
        stage = self.labeler.stage(epoch) if self.labeler else "train"
        metrics: dict[str, Any] = {"stage": stage}
        if self.labeler:
            started = self.labeler.on_epoch_start(epoch, self.predictor, self.data)
            metrics.update(section_metrics("pseudo_labeler", started))
        for cb in [*self.callbacks, self.freezing]:
            cb.on_epoch_start(self, epoch)
        self.modules.train()
        sums: dict[str, torch.Tensor] = {}
        n_steps, n_clips = 0, 0
        self.grad_norms = []
        progress = Progress(epoch, self.tp.max_epochs, self.steps_per_epoch, self.tp)
        batches = iter(self.data.train_loader(epoch))  # draws any loader seed: same on all ranks
        if D.rank() > 0:  # DDP: each rank its own augmentation draws
            torch.manual_seed(self.recipe.seed * 100_003 + epoch + 1_000_003 * D.rank())
        for batch in batches:
            if n_steps >= self.steps_per_epoch:
                break
            losses = self.train_step(D.shard_batch(batch, D.rank(), D.world_size()), epoch, stage)
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + v
            n_steps += 1
            n_clips += len(batch)
            progress.update(n_clips, losses)
        progress.close()
        metrics["lr"] = self.lr()
        for k, v in D.all_mean(sums).items():  # DDP: one collective per epoch
            metrics[f"train_{k}"] = float(v) / max(n_steps, 1)
        metrics.update(grad_norm_metrics(self.grad_norms, self.clip_groups, self.tp.grad_clip_norm))
        metrics["train_clips_per_s"] = progress.clips_per_s(n_clips)
        for section, part in (("pseudo_labeler", self.labeler), ("domain_adapter", self.adapter)):
            if part is not None:
                metrics.update(section_metrics(section, part.epoch_metrics()))
        return metrics

    def train_step(self, batch: C.Batch, epoch: int, stage: str) -> dict[str, torch.Tensor]:
        batch = batch.to(self.device, non_blocking=True)
        with torch.no_grad():
            x = self.extractor.extract(batch)
        x, batch = self.data.augment_features(x, batch)
        progress = self.global_step / max(self.steps_per_epoch * self.tp.max_epochs, 1)
        with self.autocast():
            losses = self.step_fn(x, batch, epoch, self.global_step, progress, stage)
        step = self.loss_step.last_step
        total = sum(losses.values())
        # The one host sync per step (all ranks agree, so none waits in a collective forever).
        if not D.all_true(torch.isfinite(total)):
            bad = [k for k, v in losses.items() if not torch.isfinite(v)]
            raise NonFiniteLossError(
                f"non-finite loss at epoch {epoch}, step {self.global_step + 1}: "
                f"term(s) {', '.join(bad)}; training stopped, the last good checkpoint "
                f"({self.checkpoint_dir / 'last.pt'}, epoch {self.epoch}) is kept"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.clip_gradients()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.schedule.after_optimizer_step()
        self.global_step += 1
        if self.labeler is not None:
            self.labeler.after_optimizer_step(step)
        for cb in self.callbacks:
            cb.after_optimizer_step(self)
        losses["loss"] = total
        return {k: v.detach() for k, v in losses.items()}

    def clip_gradients(self) -> None:
        """Record each clipping group's gradient norm (before clipping; logged per epoch to show
        spikes), then clip by value and by norm (:func:`sedkit.optim.clip_gradients`)."""
        self.scaler.unscale_(self.optimizer)  # a no-op without fp16 loss scaling
        norms = clip_gradients(self.clip_groups, self.tp, self.device)
        if norms is not None:
            self.grad_norms.append(norms)

    # ------------------------------------------------------------------ evaluation
    def validate(self, *, with_psds: bool | None = None, out_dir: Path | None = None) -> dict:
        if self.recipe.task == "classification":
            return evaluate_classification(self.predictor, self.data.val_loader(), self.classes)
        reference = self.data.reference()
        if with_psds is None:
            with_psds = self.recipe.decoding.psds_every_validation
        return evaluate_sed(
            self.predictor,
            self.data.val_loader(),
            self.encoder,
            self.recipe.decoding,
            reference,
            with_psds=with_psds,
            out_dir=out_dir,
        )

    def finish(self) -> dict[str, Any]:
        """Final evaluation with the best weights: all metrics (PSDS included), detections.
        Rank 0 only: the other ranks return without validation metrics."""
        if self.load_best_weights():
            log.info("final evaluation with the best checkpoint (epoch %d)", self.best_epoch)
        else:
            log.info("final evaluation with the last weights (no epoch was best)")
        metrics = (
            self.validate(with_psds=True, out_dir=self.run_dir / "predictions")
            if D.is_main()
            else {}
        )
        return {
            "best_epoch": self.best_epoch,
            "monitor": self.tp.monitor,
            "best_value": self.best_value,
            "validation": metrics,
        }
