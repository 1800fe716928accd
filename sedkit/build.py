"""Building an experiment from a validated recipe: device, seeds, the components in the
recipe's order, and the model with its feature extractor and label encoder. Shared by training
(:class:`sedkit.trainer.Trainer`) and trained runs (``sedkit predict``, reports)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sedkit import components as C
from sedkit.data.features import FeatureExtractor
from sedkit.data.labels import LabelEncoder
from sedkit.errors import UserError
from sedkit.recipe import DecodingParams, LoadedRecipe

log = logging.getLogger("sedkit")


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


def build_context(loaded: LoadedRecipe) -> C.BuildContext:
    """What every component of the recipe may know when it is built."""
    r = loaded.recipe
    return C.BuildContext(
        task=r.task,
        recipe_path=loaded.path,
        sample_rate=r.features.sample_rate,
        seed=r.seed,
        log=log,
    )


def build_data(loaded: LoadedRecipe) -> C.DataModule:
    """The recipe's ``data`` component (cheap: no I/O beyond checking paths)."""
    with component_params_errors("data"):
        return loaded.classes["data"](loaded.params["data"], build_context(loaded))


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


@dataclass
class Experiment:
    """The built components of a recipe, on the training device."""

    data: C.DataModule
    classes: list[str]
    extractor: FeatureExtractor
    model: C.Model
    encoder: LabelEncoder | None
    labeler: C.PseudoLabeler | None
    adapter: C.DomainAdapter | None
    modules: nn.ModuleDict  # model, pseudo_labeler, domain_adapter: what is trained and saved
    callbacks: list[C.Callback]


def build_experiment(loaded: LoadedRecipe, device: torch.device) -> Experiment:
    """Every component of the recipe, in a fixed order (data, model, pseudo-labeler, domain
    adapter, callbacks): their constructors draw random numbers in that order."""
    r = loaded.recipe
    data = build_data(loaded)
    classes = list(data.classes)
    check_decoding_classes(r.decoding, classes)
    extractor, model, encoder = build_model(loaded, classes, data.clip_duration_s, log)
    extractor.to(device)
    ctx = vars(build_context(loaded))
    head_ctx = C.HeadContext(
        **ctx,
        n_classes=len(classes),
        feature_dim=getattr(model, "feature_dim", 0),
        model=model,
        classes=classes,
    )
    parts: dict[str, nn.Module] = {"model": model}
    for key in ("pseudo_labeler", "domain_adapter"):
        if key in loaded.classes:
            with component_params_errors(key):
                parts[key] = loaded.classes[key](loaded.params[key], head_ctx)
    modules = nn.ModuleDict(parts).to(device)
    callbacks = []
    for key in sorted(
        (k for k in loaded.classes if k.startswith("callbacks[")),
        key=lambda k: int(k[len("callbacks[") : -1]),
    ):
        with component_params_errors(key):
            callbacks.append(loaded.classes[key](loaded.params[key], C.BuildContext(**ctx)))
    return Experiment(
        data=data,
        classes=classes,
        extractor=extractor,
        model=model,
        encoder=encoder,
        labeler=parts.get("pseudo_labeler"),  # type: ignore[arg-type]
        adapter=parts.get("domain_adapter"),  # type: ignore[arg-type]
        modules=modules,
        callbacks=callbacks,
    )
