"""The training loop: composes data, model, pseudo-labeler, domain adapter and callbacks.

One epoch: the pseudo-labeler may refresh its labels; each batch goes to the device, becomes
features, is augmented, runs through the model; the loss is the sum of named terms from the
model's supervised loss, the pseudo-labeler and the domain adapter; backward, clip, step.
Validation runs every ``validate_every`` epochs; each epoch ends with one checkpoint commit
(``last``, and ``best`` when the monitored metric improved; see ``sedkit.checkpoint``). A
resumed run reloads ``last`` and continues with the same batches and random numbers, so it ends
where an uninterrupted run would; the final evaluation runs on the recorded best only.

Under torchrun the step runs inside DistributedDataParallel on each rank's share of every batch
(see ``sedkit.distributed``); rank 0 validates, logs and writes checkpoints. Transfer learning
(``trainer.transfer``) loads a checkpoint by name and freezes, then unfreezes, reused layers.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sedkit import components as C
from sedkit import distributed as D
from sedkit.checkpoint import (
    BEST,
    LAST,
    CheckpointMismatchError,
    commit_epoch,
    load_checkpoint,
    reconcile,
    rng_state,
    set_rng_state,
)
from sedkit.data.features import FeatureExtractor
from sedkit.data.labels import LabelEncoder
from sedkit.errors import UserError
from sedkit.evaluation import check_reference, evaluate_classification, evaluate_sed
from sedkit.plugins import Plugins
from sedkit.recipe import DecodingParams, LoadedRecipe, OptimizerParams, SchedulerParams
from sedkit.rundir import MetricsLog, write_json
from sedkit.transfer import load_partial, matching_parameters

log = logging.getLogger("sedkit")

CHECKPOINT_FORMAT = 1


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite; the last good checkpoint is kept."""


def select_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("trainer.device: 'cuda' requested but no CUDA device is available")
    return torch.device(name)


def seed_everything(seed: int, deterministic: bool) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def build_optimizer(p: OptimizerParams, params: list[Any]) -> torch.optim.Optimizer:
    """``params``: parameters, or param groups (dicts) with their own ``lr``. The fused
    implementations (one kernel for all tensors; CPU and CUDA) are used where they apply."""
    tensors = [t for g in params for t in (g["params"] if isinstance(g, dict) else [g])]
    fused = all(t.is_floating_point() and t.device.type in ("cpu", "cuda") for t in tensors)
    common = dict(lr=p.lr, weight_decay=p.weight_decay, fused=fused or None)
    if p.name == "adam":
        return torch.optim.Adam(params, betas=p.betas, **common)
    if p.name == "adamw":
        return torch.optim.AdamW(params, betas=p.betas, **common)
    return torch.optim.SGD(params, momentum=p.momentum, **common)


def lr_factor(p: SchedulerParams, t: int, total: int) -> float:
    """Multiplier of the initial learning rate at step/epoch ``t`` (lecture-notes formulas)."""
    warm = min(1.0, (t + 1) / p.warmup_steps) if p.warmup_steps > 0 else 1.0
    if p.name == "power":
        f = (1.0 + t / p.s) ** (-p.c)
    elif p.name == "exponential":
        f = 0.1 ** (t / p.s)
    elif p.name == "cosine":
        f = 0.5 * (1.0 + math.cos(math.pi * min(t, total) / max(total, 1)))
    else:
        f = 1.0
    return warm * f


@contextlib.contextmanager
def component_params_errors(section: str) -> Iterator[None]:
    """Report a ValueError from building the component of recipe ``section`` (``model``,
    ``callbacks[0]``, ...) as a UserError naming ``SECTION.params``: a constructor that rejects
    its parameters (``nn.Dropout(1.5)``, a size that does not divide) is the user's recipe at
    fault, not a bug, and deserves one line rather than a traceback."""
    try:
        yield
    except ValueError as exc:
        raise UserError(f"{section}.params: {exc}") from exc


def check_decoding_classes(decoding: DecodingParams, classes: list[str]) -> None:
    """Per-class decoding settings must name the data's classes; checked when a run starts
    (the recipe validator cannot know the classes) rather than at the first validation, after
    an epoch of training."""
    if isinstance(decoding.median_filter_s, dict):
        unknown = [c for c in decoding.median_filter_s if c not in classes]
        if unknown:
            raise UserError(
                f"decoding.median_filter_s: unknown class(es) {', '.join(map(repr, unknown))}; "
                f"the data's classes are {', '.join(classes)}"
            )


def build_model(
    loaded: LoadedRecipe,
    classes: list[str],
    clip_duration_s: float,
    log: Any,
    *,
    model_device: str | None = None,
) -> tuple[FeatureExtractor, C.Model, LabelEncoder | None]:
    """The feature extractor, the model and (SED) the label encoder at the model's output
    frame rate: shared by training and ``sedkit predict``. With ``model_device`` the model's
    tensors are made there (``"meta"``: shapes only, for the limits checked up front)."""
    r = loaded.recipe
    extractor = FeatureExtractor(r.features)
    n_frames = extractor.n_frames(round(clip_duration_s * r.features.sample_rate))
    where = torch.device(model_device) if model_device else contextlib.nullcontext()
    with component_params_errors("model"), where:
        model = loaded.classes["model"](
            loaded.params["model"],
            C.ModelContext(
                task=r.task,
                recipe_path=loaded.path,
                sample_rate=r.features.sample_rate,
                seed=r.seed,
                log=log,
                n_classes=len(classes),
                n_mels=r.features.n_mels,
                n_frames=n_frames,
            ),
        )
    encoder = None
    if r.task == "sed":
        out_frames = model.output_frames(n_frames)
        pooling = getattr(model, "frames_per_output", None) or time_pooling(model)
        encoder = LabelEncoder(
            classes,
            frame_hop_s=extractor.hop_s * pooling,
            n_frames=out_frames,
            clip_duration_s=clip_duration_s,
        )
    return extractor, model, encoder


def time_pooling(model: C.Model) -> float:
    """Input frames per output frame, exactly: measured on a frame count that every
    product of small pooling factors divides."""
    n = 2**10 * 3**5 * 5**3 * 7**2
    return n / model.output_frames(n)


class _Predictor(C.Predictor):
    """Inference for components: eval mode, no gradients, features and autocast as training."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer

    def predict(self, loader: Iterable[C.Batch]) -> Iterator[tuple[C.Batch, C.ModelOutput]]:
        t = self.trainer
        modes = {m: m.training for m in t.modules.modules()}
        t.modules.eval()
        try:
            with torch.no_grad():
                for batch in loader:
                    batch = batch.to(t.device, non_blocking=True)
                    with t.autocast():
                        out = t.model(t.extractor.extract(batch))
                    yield batch, out
        finally:
            for module, mode in modes.items():
                module.train(mode)


class _LossStep(nn.Module):
    """The loss of one training step as a module's forward, so that DistributedDataParallel
    sees the whole computation (model, pseudo-labeler, domain adapter) and averages every
    gradient. ``last_step`` keeps the :class:`Step` for ``after_optimizer_step``."""

    def __init__(self, parts: nn.ModuleDict, forward_model: Any):
        super().__init__()
        self.parts = parts
        self.__dict__["forward_model"] = forward_model  # maybe compiled; not a second submodule
        self.last_step: C.Step | None = None

    def forward(
        self, x: torch.Tensor, batch: C.Batch, epoch: int, global_step: int, progress: float,
        stage: str,
    ) -> dict[str, torch.Tensor]:  # fmt: skip
        model = self.parts["model"]
        out = self.forward_model(x)
        step = C.Step(model, x, out, batch, epoch, global_step, progress, stage)
        losses = dict(model.supervised_loss(out, batch))
        for key in ("pseudo_labeler", "domain_adapter"):
            if key in self.parts:
                terms = self.parts[key].loss(step)
                clash = set(terms) & set(losses)
                if clash:
                    raise RuntimeError(f"loss terms named twice: {sorted(clash)}")
                losses.update(terms)
        self.last_step = step
        return losses


class Trainer:
    """Builds the experiment from a validated recipe and trains it in ``run_dir``."""

    def __init__(self, loaded: LoadedRecipe, plugins: Plugins, run_dir: Path):
        self.loaded, self.plugins, self.run_dir = loaded, plugins, Path(run_dir)
        r = self.recipe = loaded.recipe
        self.tp = r.trainer
        self.device = select_device(self.tp.device)
        self.distributed = D.init_from_env(self.device.type)
        self.device = D.local_device(self.device)
        if not D.is_main():
            log.setLevel(logging.WARNING)  # rank 0 logs for everyone
        seed_everything(r.seed, self.tp.deterministic)
        ctx = dict(
            task=r.task,
            recipe_path=loaded.path,
            sample_rate=r.features.sample_rate,
            seed=r.seed,
            log=log,
        )

        with component_params_errors("data"):
            self.data: C.DataModule = loaded.classes["data"](
                loaded.params["data"], C.BuildContext(**ctx)
            )
        self.classes = list(self.data.classes)
        check_decoding_classes(r.decoding, self.classes)
        self.extractor, self.model, self.encoder = build_model(
            loaded, self.classes, self.data.clip_duration_s, log
        )
        self.extractor.to(self.device)
        head_ctx = C.HeadContext(
            **ctx,
            n_classes=len(self.classes),
            feature_dim=getattr(self.model, "feature_dim", 0),
            model=self.model,
            classes=self.classes,
        )
        parts = {"model": self.model}
        self.labeler: C.PseudoLabeler | None = None
        self.adapter: C.DomainAdapter | None = None
        if "pseudo_labeler" in loaded.classes:
            with component_params_errors("pseudo_labeler"):
                self.labeler = loaded.classes["pseudo_labeler"](
                    loaded.params["pseudo_labeler"], head_ctx
                )
            parts["pseudo_labeler"] = self.labeler
        if "domain_adapter" in loaded.classes:
            with component_params_errors("domain_adapter"):
                self.adapter = loaded.classes["domain_adapter"](
                    loaded.params["domain_adapter"], head_ctx
                )
            parts["domain_adapter"] = self.adapter
        self.modules = nn.ModuleDict(parts).to(self.device)
        self.callbacks: list[C.Callback] = []
        for key in sorted(
            (k for k in loaded.classes if k.startswith("callbacks[")),
            key=lambda k: int(k[len("callbacks[") : -1]),
        ):
            with component_params_errors(key):
                callback = loaded.classes[key](loaded.params[key], C.BuildContext(**ctx))
            self.callbacks.append(callback)

        # Transfer learning: the frozen (reused) parameters get their own param group, whose
        # learning rate is scaled once they train again; frozen, they have no gradient and the
        # optimizer skips them.
        tr = self.tp.transfer
        self.frozen_names = set(matching_parameters(self.modules, tr.freeze))
        trainable = [(n, p) for n, p in self.modules.named_parameters() if p.requires_grad]
        self.trainable = [p for _, p in trainable]
        # Gradient clipping groups: one per component, or all together (trainer.grad_clip_scope).
        self.clip_groups: dict[str, list[nn.Parameter]] = (
            {"all": self.trainable}
            if self.tp.grad_clip_scope == "global"
            else {
                name: [p for p in module.parameters() if p.requires_grad]
                for name, module in self.modules.items()
            }
        )
        groups = [
            {"params": [p for n, p in trainable if n not in self.frozen_names]},
            {
                "params": [p for n, p in trainable if n in self.frozen_names],
                "lr": self.tp.optimizer.lr * tr.unfreeze_lr_scale,
            },
        ]
        self.optimizer = build_optimizer(self.tp.optimizer, [g for g in groups if g["params"]])
        sp = self.tp.scheduler
        self.total_schedule_steps = 1  # set in setup(), once the epoch length is known
        self.plateau = None
        if sp.name == "plateau":
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer,
                mode=sp.monitor_mode or self.tp.monitor_mode,
                factor=sp.factor,
                patience=sp.patience,
                min_lr=sp.min_lr,
            )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda t: lr_factor(sp, t, self.total_schedule_steps)
        )
        use_fp16 = self.device.type == "cuda" and self.tp.amp == "fp16"
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_fp16)
        self.predictor = _Predictor(self)
        forward_model = torch.compile(self.model) if self.tp.compile else self.model
        self.loss_step = _LossStep(self.modules, forward_model)
        self.step_fn: nn.Module = self.loss_step  # DDP-wrapped in train_epoch when distributed
        self.frozen_now: bool | None = None
        self.grad_norms: list[torch.Tensor] = []

        self.epoch = 0
        self.global_step = 0
        self.best_value: float | None = None
        self.best_epoch = 0
        self.best_record: dict[str, Any] | None = None  # epoch and digest of best.pt
        self.should_stop = False
        self.stop_reason = ""
        self.steps_per_epoch = 0
        self.total_schedule_steps = 1
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

    def setup(self, resume: bool) -> None:
        """Prepare data (and normalisation statistics), or reload the last checkpoint."""
        self.data.setup(self.run_dir, self.encoder, self.extractor)
        if self.recipe.task == "sed":
            check_reference(self.data.reference())  # before training, not at the first validation
        steps = self._epoch_length()
        self.steps_per_epoch = steps
        sp = self.tp.scheduler
        self.total_schedule_steps = (
            steps * self.tp.max_epochs if sp.interval == "step" else self.tp.max_epochs
        )
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

    def _set_frozen(self, epoch: int) -> None:
        """Freeze the reused parameters before ``transfer.unfreeze_epoch``, train them from
        then on; (re)wrap the step in DDP when the set of trained parameters changes."""
        tr = self.tp.transfer
        frozen = bool(self.frozen_names) and (
            tr.unfreeze_epoch is None or epoch < tr.unfreeze_epoch
        )
        if frozen == self.frozen_now:
            return
        for name, p in self.modules.named_parameters():
            if name in self.frozen_names:
                p.requires_grad_(not frozen)
        if self.frozen_names:
            state = "frozen" if frozen else f"trained at {tr.unfreeze_lr_scale:g} x lr"
            log.info(
                "epoch %d: %d reused parameter tensors %s", epoch, len(self.frozen_names), state
            )
        self.frozen_now = frozen
        if self.distributed:
            from torch.nn.parallel import DistributedDataParallel

            self.step_fn = DistributedDataParallel(
                self.loss_step,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=self.tp.find_unused_parameters,
            )

    def _epoch_length(self) -> int:
        loader = self.data.train_loader(1)
        n = len(loader) if hasattr(loader, "__len__") else None
        cap = self.tp.max_steps_per_epoch
        if n is None and cap is None:
            raise UserError("trainer.max_steps_per_epoch: needed when the data has no length")
        return min(n, cap) if (n is not None and cap is not None) else (n or cap)  # type: ignore

    def _training_spectrograms(self, max_batches: int) -> Iterator[torch.Tensor]:
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
        status = "completed"
        while self.epoch < self.tp.max_epochs and not self.should_stop:
            epoch = self.epoch + 1
            metrics = self.train_epoch(epoch)
            if epoch % self.tp.validate_every == 0 or epoch == self.tp.max_epochs:
                # Rank 0 validates; every rank gets its metrics for the same decisions.
                metrics.update(D.broadcast_object(self.validate() if D.is_main() else None))
            self.epoch = epoch
            plateau_metric = self.tp.scheduler.monitor or self.tp.monitor
            if self.plateau is not None and plateau_metric in metrics:
                self.plateau.step(metrics[plateau_metric])
            if self.tp.scheduler.interval == "epoch":
                self._step_schedule()
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
            log.info("epoch %d: %s", epoch, _summary(metrics, self.tp.monitor))
        if self.should_stop:
            status = "stopped"
            log.info("stopped after epoch %d: %s", self.epoch, self.stop_reason)
        for cb in self.callbacks:
            cb.on_fit_end(self)
        final = self.finish()
        final.update(status=status, epochs=self.epoch, train_time_s=time.time() - started)
        if D.is_main():
            write_json(self.run_dir / "metrics.json", final)
        return final

    def _step_schedule(self) -> None:
        """Advance the LambdaLR schedule. With ``plateau`` it only does the warm-up: after
        that the learning rate is ReduceLROnPlateau's alone (LambdaLR would overwrite it)."""
        sp = self.tp.scheduler
        if sp.name != "plateau" or self.scheduler.last_epoch < sp.warmup_steps:
            self.scheduler.step()

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        # Seeding per epoch makes a resumed run draw the same random numbers as an
        # uninterrupted one, whatever happened before the checkpoint.
        torch.manual_seed(self.recipe.seed * 100_003 + epoch)
        stage = self.labeler.stage(epoch) if self.labeler else "train"
        metrics: dict[str, Any] = {"stage": stage}
        if self.labeler:
            metrics.update(self.labeler.on_epoch_start(epoch, self.predictor, self.data))
        for cb in self.callbacks:
            cb.on_epoch_start(self, epoch)
        self._set_frozen(epoch)
        self.modules.train()
        sums: dict[str, torch.Tensor] = {}
        n_steps, n_clips = 0, 0
        self.grad_norms = []
        progress = Progress(epoch, self.tp.max_epochs, self.steps_per_epoch, self.tp)
        batches = iter(self.data.train_loader(epoch))  # draws any loader seed: same on all ranks
        if D.rank() > 0:
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
        for k, v in D.all_mean(sums).items():  # one collective per epoch
            metrics[f"train_{k}"] = float(v) / max(n_steps, 1)
        if self.grad_norms:
            # Gradient norms before clipping, per clipping group (after DDP's averaging: the
            # same on all ranks); the total over all groups as grad_norm_max/mean.
            norms = torch.stack(self.grad_norms).float().cpu()  # [steps, groups]
            total = norms.square().sum(dim=1).sqrt()
            metrics["grad_norm_max"] = float(total.max())
            metrics["grad_norm_mean"] = float(total.mean())
            names = [n for n, params in self.clip_groups.items() if params]
            if len(names) > 1:
                for i, name in enumerate(names):
                    metrics[f"grad_norm_mean_{name}"] = float(norms[:, i].mean())
            if self.tp.grad_clip_norm is not None:
                clipped = norms > self.tp.grad_clip_norm
                metrics["grad_clipped_share"] = float(clipped.any(dim=1).float().mean())
                if len(names) > 1:
                    for i, name in enumerate(names):
                        metrics[f"grad_clipped_share_{name}"] = float(clipped[:, i].float().mean())
        metrics["train_clips_per_s"] = progress.clips_per_s(n_clips)
        for part in (self.labeler, self.adapter):
            if part is not None:
                metrics.update(part.epoch_metrics())
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
        if self.tp.scheduler.interval == "step":
            self._step_schedule()
        self.global_step += 1
        if self.labeler is not None:
            self.labeler.after_optimizer_step(step)
        for cb in self.callbacks:
            cb.after_optimizer_step(self)
        losses["loss"] = total
        return {k: v.detach() for k, v in losses.items()}

    def clip_gradients(self) -> None:
        """Record each clipping group's gradient norm (before clipping; logged per epoch to show
        spikes), then clip by value and by norm, each group on its own norm
        (``trainer.grad_clip_scope``). No host sync: the norms stay on the device."""
        self.scaler.unscale_(self.optimizer)  # a no-op without fp16 loss scaling
        norms = []
        for params in self.clip_groups.values():
            if not params:
                continue
            grads = [p.grad for p in params if p.grad is not None]
            if not grads:
                norms.append(torch.zeros((), device=self.device))
                continue
            norm = torch.nn.utils.get_total_norm(grads)
            norms.append(norm.detach())
            if self.tp.grad_clip_value is not None:
                torch.nn.utils.clip_grad_value_(params, self.tp.grad_clip_value)
                if self.tp.grad_clip_norm is not None:
                    norm = torch.nn.utils.get_total_norm(grads)  # changed by the value clipping
            if self.tp.grad_clip_norm is not None:
                torch.nn.utils.clip_grads_with_norm_(params, self.tp.grad_clip_norm, norm)
        if norms:
            self.grad_norms.append(torch.stack([n.float() for n in norms]))

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

    def _update_best(self, metrics: dict[str, Any]) -> bool:
        value = metrics.get(self.tp.monitor)
        if value is None:
            return False
        better = (
            self.best_value is None
            or (self.tp.monitor_mode == "max" and value > self.best_value)
            or (self.tp.monitor_mode == "min" and value < self.best_value)
        )
        if better:
            self.best_value, self.best_epoch = float(value), self.epoch
        return better

    def load_best_weights(self) -> bool:
        """Put the best checkpoint's weights into the modules (early stopping, final eval):
        only the file this run recorded (digest and epoch), never another epoch's weights.
        False when no epoch was ever best."""
        if self.best_record is None:
            if self.best_epoch:
                raise CheckpointMismatchError(
                    f"{self.checkpoint_dir / LAST}: records best epoch {self.best_epoch} "
                    f"but no digest of {BEST} (a checkpoint of an older sedkit); refusing to "
                    "evaluate other weights as the best"
                )
            return False
        path = self.checkpoint_dir / BEST
        state = load_checkpoint(path, map_location=self.device, sha256=self.best_record["sha256"])
        if state.get("epoch") != self.best_epoch:
            raise CheckpointMismatchError(
                f"{path}: holds epoch {state.get('epoch')}, the run's best is {self.best_epoch}"
            )
        self.modules.load_state_dict(state["modules"])
        self.extractor.load_state_dict(state["extractor"])
        return True

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

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "epoch": self.epoch,
            "global_step": self.global_step,
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "should_stop": self.should_stop,
            "stop_reason": self.stop_reason,
            "modules": self.modules.state_dict(),
            "extractor": self.extractor.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "plateau": self.plateau.state_dict() if self.plateau else {},
            "scaler": self.scaler.state_dict(),
            "callbacks": [cb.state_dict() for cb in self.callbacks],
            "data": self.data.state_dict(),
            "classes": self.classes,
            "rng": rng_state(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise UserError(f"checkpoint format {state.get('format')} is not supported")
        try:
            self.modules.load_state_dict(state["modules"])
        except RuntimeError as exc:  # shapes or names differ: the recipe's model changed
            first = str(exc).strip().splitlines()
            raise UserError(
                f"{self.checkpoint_dir / LAST}: does not fit the recipe's model "
                f"({first[1].strip() if len(first) > 1 else first[0]})"
            ) from None
        self.extractor.load_state_dict(state["extractor"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.plateau is not None:
            self.plateau.load_state_dict(state["plateau"])
        self.scaler.load_state_dict(state["scaler"])
        for cb, cb_state in zip(self.callbacks, state["callbacks"], strict=True):
            cb.load_state_dict(cb_state)
        self.data.load_state_dict(state["data"])
        self.epoch, self.global_step = state["epoch"], state["global_step"]
        self.best_value, self.best_epoch = state["best_value"], state["best_epoch"]
        self.best_record = state.get("best")
        # An early stop decided in the checkpointed epoch holds after a resume.
        self.should_stop = bool(state.get("should_stop", False))
        self.stop_reason = str(state.get("stop_reason", ""))
        set_rng_state(state["rng"])

    def commit(self, improved: bool) -> None:
        """Checkpoint this epoch: ``last`` and, when ``improved``, ``best``, in one commit
        (rank 0 writes: the ranks hold the same state; every rank keeps the record)."""
        if D.is_main():
            self.best_record = commit_epoch(
                self.checkpoint_dir, self.state_dict(), improved=improved, best=self.best_record
            )
        self.best_record = D.broadcast_object(self.best_record)
        if not D.is_main():
            return
        for kind in ("best", "last") if improved else ("last",):
            self.plugins.checkpoint_saved(
                run_dir=self.run_dir, path=self.checkpoint_dir / f"{kind}.pt", kind=kind,
                epoch=self.epoch,
            )  # fmt: skip


def _summary(metrics: dict[str, Any], monitor: str) -> str:
    keys = ["train_loss", monitor, "event_f1_macro", "segment_f1_macro", "accuracy", "lr"]
    shown = dict.fromkeys(k for k in keys if k in metrics)
    return " ".join(f"{k}={metrics[k]:.4g}" for k in shown if isinstance(metrics[k], float))


class Progress:
    """A tqdm bar on a terminal; plain periodic log lines otherwise."""

    def __init__(self, epoch: int, max_epochs: int, total: int, tp: Any):
        self.start = time.time()
        self.last_line = self.start
        self.every = tp.log_every_s
        self.desc = f"epoch {epoch}/{max_epochs}"
        self.total = total
        self.steps = 0
        self.bar = None
        self.last_postfix = 0.0
        if not D.is_main():
            self.every = math.inf
        elif tp.progress_bar and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.desc, unit="step", leave=False)

    def clips_per_s(self, n_clips: int) -> float:
        return n_clips / max(time.time() - self.start, 1e-9)

    def update(self, n_clips: int, losses: dict[str, torch.Tensor]) -> None:
        self.steps += 1
        if self.bar is not None:
            self.bar.update(1)
            if time.time() - self.last_postfix >= 1.0:  # float(loss) waits for the device
                self.last_postfix = time.time()
                self.bar.set_postfix(
                    loss=f"{float(losses['loss']):.4f}",
                    clips_per_s=f"{self.clips_per_s(n_clips):.1f}",
                )
        elif time.time() - self.last_line >= self.every:
            self.last_line = time.time()
            log.info(
                "%s step %d/%d loss %.4f clips/s %.1f",
                self.desc,
                self.steps,
                self.total,
                float(losses["loss"]),
                self.clips_per_s(n_clips),
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
