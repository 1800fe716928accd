"""The parts of an experiment and the values that pass between them.

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

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from torch import Tensor, nn

# Re-exported for plugins; defined without torch, so that `sedkit score` starts without it.
from sedkit.command import Command  # noqa: F401

if TYPE_CHECKING:
    from sedkit.data.features import FeatureExtractor
    from sedkit.data.labels import LabelEncoder

Task = Literal["sed", "classification"]

#: Domain tags carried by every example (``Batch.domain``).
SYNTHETIC, REAL = 0.0, 1.0


@dataclass
class NoParams:
    """Params of a component that takes none."""


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------
def example_mask(mask: Tensor | None, size: int, device: torch.device | str = "cpu") -> Tensor:
    """One of a :class:`Batch`'s ``[B]`` masks as bool on ``device``; all False when the batch
    has none (e.g. ``example_mask(batch.weak_mask, len(batch))``)."""
    if mask is None:
        return torch.zeros(size, dtype=torch.bool, device=device)
    return mask.detach().to(device=device, dtype=torch.bool)


@dataclass
class Batch:
    """A batch of examples, possibly mixed from several streams (strong, weak, unlabeled).

    Targets that a stream lacks are zero-filled and excluded by the masks, so every tensor has the
    full batch size. ``hidden`` holds true labels of examples that training must treat as
    unlabeled; only pseudo-label quality metrics may read it.
    """

    filenames: list[str]
    stream: list[str]  # per example: "synthetic", "weak", "unlabeled", "validation", ...
    domain: Tensor  # [B] float, SYNTHETIC (0.0) or REAL (1.0)
    audio: Tensor | None = None  # [B, S] at the recipe's sample rate
    features: Tensor | None = None  # [B, M, T] when the data component supplies features itself
    strong: Tensor | None = None  # [B, T', C] frame targets (SED)
    strong_mask: Tensor | None = None  # [B] bool: example has strong labels
    weak: Tensor | None = None  # [B, C] clip targets (SED, multi-label)
    weak_mask: Tensor | None = None  # [B] bool: example has clip labels (strong examples too)
    label: Tensor | None = None  # [B] long, single-label classification target, -1 unlabeled
    hidden: dict[str, Tensor] = field(default_factory=dict)  # true labels of "unlabeled" examples

    def __len__(self) -> int:
        return len(self.filenames)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """A copy with every tensor moved to ``device``."""

        def move(value: Any) -> Any:
            if isinstance(value, Tensor):
                return value.to(device, non_blocking=non_blocking)
            if isinstance(value, dict):
                return {k: move(v) for k, v in value.items()}
            return value

        return dataclasses.replace(
            self, **{f.name: move(getattr(self, f.name)) for f in dataclasses.fields(self)}
        )

    def pin_memory(self) -> Batch:
        """Called by ``torch.utils.data.DataLoader(pin_memory=True)``."""

        def pin(value: Any) -> Any:
            if isinstance(value, Tensor):
                return value.pin_memory()
            if isinstance(value, dict):
                return {k: pin(v) for k, v in value.items()}
            return value

        return dataclasses.replace(
            self, **{f.name: pin(getattr(self, f.name)) for f in dataclasses.fields(self)}
        )


@dataclass
class ModelOutput:
    """What a model returns for a batch of features.

    SED models fill ``frame_probs`` and ``clip_probs`` (sigmoid outputs), their logits
    ``frame_logits`` and ``clip_logits`` (the SED losses of :mod:`sedkit.losses` take logits, so
    that bf16 autocast cannot saturate them), and ``h``, the shared features on which
    pseudo-labelers and domain adapters put their heads. Classification models fill
    ``clip_logits`` (softmax over classes) and may fill ``h``.
    """

    clip_probs: Tensor | None = None  # [B, C]
    clip_logits: Tensor | None = None  # [B, C]
    frame_probs: Tensor | None = None  # [B, T', C]
    frame_logits: Tensor | None = None  # [B, T', C]
    h: Tensor | None = None  # [B, T', D] (or [B, D] for clip-level models)


@dataclass
class ScoringReference:
    """Where the validation ground truth lives, for ``sedkit.scoring``."""

    ground_truth_tsv: Path  # strong labels: filename onset offset event_label
    durations_tsv: Path | None = None  # filename duration


@dataclass
class Step:
    """Everything a loss term may need for one training step.

    ``features`` is the (augmented) model input; ``out`` the model's output on it.
    ``progress`` runs from 0 to 1 over the whole training, counted in optimizer steps.
    """

    model: "Model"
    features: Tensor
    out: ModelOutput
    batch: Batch
    epoch: int
    global_step: int
    progress: float
    stage: str


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
    recompute pseudo-labels) and returns statistics to log.
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
        return {}


class Callback:
    """A ``callbacks`` entry: code run at fixed points of training that may change it.

    ``trainer`` is :class:`sedkit.trainer.Trainer`; callbacks may read its attributes, set
    ``trainer.should_stop = True`` (and ``trainer.stop_reason``), change parameters (pruning)
    or learning rates, add keys to the ``metrics`` of ``on_epoch_end``, and reset the best
    checkpoint's bookkeeping (``trainer.best_value = None``) when earlier epochs stop being
    comparable (e.g. after a pruning step).
    ``state_dict`` is saved in checkpoints so a resumed run continues identically.
    """

    Params: ClassVar[type] = NoParams

    def __init__(self, params: Any, context: BuildContext):
        self.params = params
        self.context = context

    def on_fit_start(self, trainer: Any) -> None: ...
    def on_epoch_start(self, trainer: Any, epoch: int) -> None: ...
    def after_optimizer_step(self, trainer: Any) -> None: ...
    def on_epoch_end(self, trainer: Any, epoch: int, metrics: dict[str, Any]) -> None: ...
    def on_fit_end(self, trainer: Any) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
