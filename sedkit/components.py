"""The parts of an experiment (the values that pass between them: :mod:`sedkit.values`).

A recipe names one component of each kind; plugins register the classes (see ``hookspecs.py``).
Every component class declares ``Params``, a dataclass whose fields are the keys allowed in the
``params:`` section of its recipe entry. The engine validates that section against ``Params``
before any work starts and builds the component as ``cls(params, context)``.

Shapes used throughout (B batch, S samples, M mel bands, T input frames, T' output frames after
the model's time pooling, C classes, D feature dimension):

- waveforms ``[B, S]``; features ``[B, M, T]``; frame outputs ``[B, T', C]``; clip outputs
  ``[B, C]``; shared features ``h`` ``[B, T', D]``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

import torch
from torch import Tensor, nn

# Re-exported for plugins; defined without torch, so that `sedkit score` starts without it.
from sedkit.command import Command  # noqa: F401

# The values, re-exported: plugins import every type they implement against from here.
from sedkit.values import (  # noqa: F401
    REAL,
    SYNTHETIC,
    Batch,
    ModelOutput,
    ScoringReference,
    Step,
    example_mask,
)

if TYPE_CHECKING:
    from sedkit.data.features import FeatureExtractor
    from sedkit.data.labels import LabelEncoder

Task = Literal["sed", "classification"]


@dataclass
class NoParams:
    """Params of a component that takes none."""


class Predictor:
    """Runs a model over a loader in evaluation mode; given to components that need inference.

    ``predict(loader)`` yields ``(batch, output)`` pairs with dropout off, batch norm frozen and
    no gradients. Built by the trainer, so device, feature extraction and autocast are handled.
    """

    def predict(self, loader: Iterable[Batch]) -> Iterator[tuple[Batch, ModelOutput]]:
        raise NotImplementedError


# --------------------------------------------------------------------------------------------
# Contexts handed to constructors
# --------------------------------------------------------------------------------------------
@dataclass
class BuildContext:
    """What every component may know when it is built."""

    task: Task
    recipe_path: Path | None
    sample_rate: int
    seed: int
    log: Any  # logging.Logger-like: .info/.warning


@dataclass
class ModelContext(BuildContext):
    n_classes: int = 0
    n_mels: int = 0
    n_frames: int = 0  # input frames per clip


@dataclass
class HeadContext(BuildContext):
    """For pseudo-labelers and domain adapters: they attach heads to the model's ``h``."""

    n_classes: int = 0
    feature_dim: int = 0  # D of the model's h
    model: "Model | None" = None
    classes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Component base classes
# --------------------------------------------------------------------------------------------
class DataModule:
    """A ``data`` component: where clips, labels and batches come from.

    Lifecycle: ``__init__(params, context)`` (cheap: no I/O beyond checking paths); ``classes``
    must be known then. ``setup(run_dir, encoder, extractor)`` once before training (may
    synthesize data, read metadata, report missing files, write the list of clips used into
    ``run_dir``, fill a feature cache with ``extractor``); then the loaders. ``encoder`` turns
    strong labels into frame targets at the model's output frame rate (None for classification).
    """

    Params: ClassVar[type] = NoParams
    #: Optional: a dataset that can build itself. ``sedkit synth NAME OUT_DIR`` calls
    #: ``cls.synthesize(out_dir, preset=..., seed=..., log=...)``.
    synthesize: ClassVar[Any] = None

    classes: list[str]
    clip_duration_s: float

    def __init__(self, params: Any, context: BuildContext):
        self.params = params
        self.context = context

    def setup(
        self,
        run_dir: Path | None,
        encoder: "LabelEncoder | None",
        extractor: "FeatureExtractor",
    ) -> None:
        """Prepare data for this run (called once, before any loader)."""

    def train_loader(self, epoch: int) -> Iterable[Batch]:
        """Training batches for one epoch (mixed streams, augmented)."""
        raise NotImplementedError

    def val_loader(self) -> Iterable[Batch]:
        """Validation batches, in a fixed order, no augmentation."""
        raise NotImplementedError

    def unlabeled_loader(self) -> Iterable[Batch]:
        """Weak and unlabeled real clips, fixed order, no augmentation (for pseudo-labeling)."""
        raise NotImplementedError

    def augment_features(self, features: Tensor, batch: Batch) -> tuple[Tensor, Batch]:
        """Training-time augmentation of the model input on the training device (masking,
        mixup, ...). Called by the trainer after feature extraction; may change targets too."""
        return features, batch

    def reference(self) -> ScoringReference | None:
        """Ground truth of the validation set for scoring (SED); None for classification."""
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class Model(nn.Module):
    """A ``model`` component: features ``[B, M, T]`` in, :class:`ModelOutput` out.

    Any component class may also define ``validate_params(params, key) -> list[str]``
    (a classmethod) for checks that need more than its ``Params`` dataclass, such as nested
    component specs; the recipe validator reports its messages with the others.
    """

    Params: ClassVar[type] = NoParams
    feature_dim: int  # D of h

    def __init__(self, params: Any, context: ModelContext):
        super().__init__()
        self.params = params
        self.context = context

    def output_frames(self, n_frames: int) -> int:
        """Number of output frames T' for T input frames (time pooling).

        Output frame j covers input frames [j*p, (j+1)*p) with p = the time pooling factor, so
        the output hop is the feature hop times p. A model may state p as ``frames_per_output``;
        otherwise the engine measures it with this method.
        """
        return n_frames

    def supervised_loss(self, out: ModelOutput, batch: Batch) -> dict[str, Tensor]:
        """Named loss terms on the labeled examples of ``batch`` (summed by the trainer)."""
        raise NotImplementedError


class PseudoLabeler(nn.Module):
    """A ``pseudo_labeler`` component: adds loss terms on unlabeled (or weakly labeled) data.

    Its parameters (extra heads, an EMA teacher's buffers) are trained and checkpointed with the
    model. ``stage(epoch)`` names the training stage; the trainer logs it and passes it in
    :class:`Step`. ``on_epoch_start`` may run inference with ``predictor`` (for example to
    recompute pseudo-labels) and returns statistics to log. The trainer logs the statistics of
    ``on_epoch_start`` and ``epoch_metrics`` under the recipe section (``quality`` as
    ``pseudo_labeler/quality``), so name them without a method prefix.
    """

    Params: ClassVar[type] = NoParams

    def __init__(self, params: Any, context: HeadContext):
        super().__init__()
        self.params = params
        self.context = context

    def stage(self, epoch: int) -> str:
        return "train"

    def on_epoch_start(self, epoch: int, predictor: Predictor, data: DataModule) -> dict[str, Any]:
        return {}

    def loss(self, step: Step) -> dict[str, Tensor]:
        raise NotImplementedError

    def after_optimizer_step(self, step: Step) -> None:
        """E.g. update an EMA teacher."""

    def epoch_metrics(self) -> dict[str, Any]:
        """Statistics gathered during the epoch (share kept, agreement, quality); then reset."""
        return {}


class DomainAdapter(nn.Module):
    """A ``domain_adapter`` component: adversarial (or other) terms using ``Batch.domain``."""

    Params: ClassVar[type] = NoParams

    def __init__(self, params: Any, context: HeadContext):
        super().__init__()
        self.params = params
        self.context = context

    def loss(self, step: Step) -> dict[str, Tensor]:
        raise NotImplementedError

    def epoch_metrics(self) -> dict[str, Any]:
        """Statistics of the epoch, logged as ``domain_adapter/NAME``; then reset."""
        return {}


class TrainerView(Protocol):
    """What a :class:`Callback` may use of the trainer (:class:`sedkit.trainer.Trainer`)."""

    model: Model
    modules: nn.ModuleDict  # model, pseudo_labeler, domain_adapter
    optimizer: torch.optim.Optimizer
    epoch: int  # the last completed epoch
    global_step: int
    best_value: float | None  # settable: None forgets the earlier epochs' best
    best_epoch: int
    should_stop: bool  # settable: True stops training after this epoch
    stop_reason: str

    def load_best_weights(self) -> bool: ...
    def wrap_step(self) -> None: ...


class Callback:
    """A ``callbacks`` entry: code run at fixed points of training that may change it.

    ``trainer`` is a :class:`TrainerView`; callbacks may read its attributes, set
    ``trainer.should_stop = True`` (and ``trainer.stop_reason``), change parameters (pruning)
    or learning rates, add keys to the ``metrics`` of ``on_epoch_end`` (named
    ``callbacks/NAME``: :func:`sedkit.formatting.section_metrics`), and reset the best
    checkpoint's bookkeeping (``trainer.best_value = None``) when earlier epochs stop being
    comparable (e.g. after a pruning step).
    ``state_dict`` is saved in checkpoints so a resumed run continues identically.
    """

    Params: ClassVar[type] = NoParams

    def __init__(self, params: Any, context: BuildContext):
        self.params = params
        self.context = context

    def on_fit_start(self, trainer: TrainerView) -> None: ...
    def on_epoch_start(self, trainer: TrainerView, epoch: int) -> None: ...
    def after_optimizer_step(self, trainer: TrainerView) -> None: ...
    def on_epoch_end(self, trainer: TrainerView, epoch: int, metrics: dict[str, Any]) -> None: ...
    def on_fit_end(self, trainer: TrainerView) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
