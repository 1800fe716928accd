"""Mixed-stream batches: fixed per-batch shares of several streams, deterministic per epoch.

The DCASE 2019 task 4 baseline fills each batch with strong synthetic, weak and unlabeled clips
in the proportions 1/4, 1/4, 1/2. :class:`MultiStreamBatchSampler` does that for any streams;
:class:`BatchCollator` turns the examples into one :class:`~sedkit.components.Batch` with
zero-filled targets and masks.

The loader plumbing that dataset plugins share lives here too: :class:`FixedBatches` (fixed
order), :class:`BatchLoader` (a DataLoader per iteration that raises load failures as
InputFileError), :class:`AudioOnlyDataset` and :func:`spectrogram_chunks` (filling the feature
cache).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from sedkit.data.audio import read_audio
from sedkit.data.augment import make_generator
from sedkit.errors import InputFileError
from sedkit.values import Batch

if TYPE_CHECKING:
    from sedkit.data.features import FeatureExtractor

__all__ = [
    "AudioOnlyDataset",
    "BatchCollator",
    "BatchLoader",
    "Example",
    "ExampleError",
    "FixedBatches",
    "MultiStreamBatchSampler",
    "first_error",
    "spectrogram_chunks",
    "stack_inputs",
    "stream_counts",
]


def stream_counts(proportions: Mapping[str, float], batch_size: int) -> dict[str, int]:
    """Examples of each stream per batch: ``proportion * batch_size`` rounded by largest
    remainder, so the counts sum to ``batch_size`` (24 x (.25, .25, .5) -> 6, 6, 12).

    Proportions are renormalised to sum to 1; streams with proportion 0 get 0.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    total = sum(proportions.values())
    if total <= 0 or any(p < 0 for p in proportions.values()):
        raise ValueError(f"stream proportions must be >= 0 with a positive sum: {proportions}")
    exact = {s: p / total * batch_size for s, p in proportions.items()}
    counts = {s: math.floor(x) for s, x in exact.items()}
    left = batch_size - sum(counts.values())
    by_remainder = sorted(exact, key=lambda s: (-(exact[s] - counts[s]), list(exact).index(s)))
    for s in by_remainder[:left]:
        counts[s] += 1
    return counts


class MultiStreamBatchSampler:
    """Yields batches as lists of ``(stream, index)``, ``counts[stream]`` of each stream.

    Each stream is read in a fresh random permutation per pass and restarted when exhausted, so
    small streams cycle within an epoch. The order depends only on ``(seed, epoch)``: a resumed
    run sees the same batches. ``n_batches`` defaults to one pass over the stream that needs the
    most batches (``max ceil(size / count)``): every clip of every stream is seen at least once
    per epoch.
    """

    def __init__(
        self,
        stream_sizes: Mapping[str, int],
        counts: Mapping[str, int],
        *,
        seed: int,
        epoch: int,
        n_batches: int | None = None,
    ):
        self.counts = {s: c for s, c in counts.items() if c > 0}
        for stream, count in self.counts.items():
            if stream_sizes.get(stream, 0) <= 0:
                raise ValueError(f"stream {stream!r} has {count} examples per batch but no clips")
        if not self.counts:
            raise ValueError("no stream has examples per batch")
        self.sizes = {s: int(stream_sizes[s]) for s in self.counts}
        self.seed, self.epoch = seed, epoch
        if n_batches is None:
            n_batches = max(math.ceil(self.sizes[s] / c) for s, c in self.counts.items())
        self.n_batches = int(n_batches)

    def __len__(self) -> int:
        return self.n_batches

    def __iter__(self) -> Iterator[list[tuple[str, int]]]:
        order: dict[str, list[int]] = {}
        for k, (stream, count) in enumerate(self.counts.items()):
            generator = make_generator("cpu", self.seed, self.epoch, k)
            needed = self.n_batches * count
            passes = math.ceil(needed / self.sizes[stream])
            perms = [torch.randperm(self.sizes[stream], generator=generator) for _ in range(passes)]
            order[stream] = torch.cat(perms)[:needed].tolist()
        for b in range(self.n_batches):
            batch: list[tuple[str, int]] = []
            for stream, count in self.counts.items():
                batch += [(stream, i) for i in order[stream][b * count : (b + 1) * count]]
            yield batch


@dataclass
class Example:
    """One clip as produced by a dataset, before collation."""

    filename: str
    stream: str
    domain: float
    audio: Tensor | None = None  # [S]
    features: Tensor | None = None  # [M, T] un-normalised
    strong: Tensor | None = None  # [T', C]
    weak: Tensor | None = None  # [C]
    hidden_strong: Tensor | None = None  # [T', C]
    hidden_weak: Tensor | None = None  # [C]


@dataclass
class ExampleError:
    """Returned (not raised) by a dataset for a clip it cannot load: exceptions raised in
    DataLoader workers lose their type, so the error travels back as a value and the main
    process raises InputFileError from it."""

    path: str
    message: str

    def to_input_error(self) -> InputFileError:
        """The InputFileError again (its message already names the file, so the path prefix
        is not repeated)."""
        prefix = f"{self.path}: "
        message = self.message[len(prefix) :] if self.message.startswith(prefix) else self.message
        return InputFileError(self.path, message)


def first_error(items: Iterable[Any]) -> ExampleError | None:
    """The first :class:`ExampleError` among ``items`` (a collate function returns it in place
    of the batch), or None."""
    return next((item for item in items if isinstance(item, ExampleError)), None)


class _HasInputs(Protocol):
    audio: Tensor | None
    features: Tensor | None


def stack_inputs(examples: Sequence[_HasInputs]) -> dict[str, Tensor]:
    """``{"features": [B, M, T]}`` when every example carries features, else ``{"audio":
    [B, S]}`` when every one carries audio (a batch never mixes the two)."""
    if all(e.features is not None for e in examples):
        return {"features": torch.stack([e.features for e in examples])}
    if all(e.audio is not None for e in examples):
        return {"audio": torch.stack([e.audio for e in examples])}
    raise ValueError("examples of one batch must all carry audio or all features")


class BatchCollator:
    """``collate_fn`` building a :class:`Batch` from :class:`Example` objects.

    Targets an example lacks are zero-filled and masked; ``hidden`` is filled (with
    ``hidden_mask``) only when some example carries hidden labels.
    """

    def __init__(self, n_frames: int, n_classes: int):
        self.n_frames, self.n_classes = n_frames, n_classes

    def __call__(self, examples: Sequence[Example | ExampleError]) -> Batch | ExampleError:
        error = first_error(examples)
        if error is not None:
            return error
        strong_shape, weak_shape = (self.n_frames, self.n_classes), (self.n_classes,)

        def stack(values: list[Tensor | None], shape: tuple[int, ...]) -> tuple[Tensor, Tensor]:
            mask = torch.tensor([v is not None for v in values], dtype=torch.bool)
            return torch.stack([torch.zeros(shape) if v is None else v for v in values]), mask

        strong, strong_mask = stack([e.strong for e in examples], strong_shape)
        weak, weak_mask = stack([e.weak for e in examples], weak_shape)
        hidden: dict[str, Tensor] = {}
        if any(e.hidden_weak is not None for e in examples):
            hidden["weak"], hidden["hidden_mask"] = stack(
                [e.hidden_weak for e in examples], weak_shape
            )
            hidden["strong"], _ = stack([e.hidden_strong for e in examples], strong_shape)
        return Batch(
            filenames=[e.filename for e in examples],
            stream=[e.stream for e in examples],
            domain=torch.tensor([e.domain for e in examples], dtype=torch.float32),
            strong=strong,
            strong_mask=strong_mask,
            weak=weak,
            weak_mask=weak_mask,
            hidden=hidden,
            **stack_inputs(examples),
        )


class FixedBatches:
    """Batches of keys in a fixed order (evaluation, pseudo-labeling, cache filling)."""

    def __init__(self, keys: list[Any], batch_size: int):
        self.keys, self.batch_size = keys, batch_size

    def __len__(self) -> int:
        return math.ceil(len(self.keys) / self.batch_size)

    def __iter__(self) -> Iterator[list[Any]]:
        for start in range(0, len(self.keys), self.batch_size):
            yield self.keys[start : start + self.batch_size]


class BatchLoader:
    """An iterable of :class:`Batch` with a length; builds its DataLoader on each iteration.

    Load failures that the collate function returns as :class:`ExampleError` are raised here
    as InputFileError (an exception raised inside a worker would lose its type).
    ``on_batch(index)`` runs before each batch is yielded (datasets key their augmentation on
    the batch index).
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_sampler: Iterable[list[Any]],
        collate_fn: Callable[[list[Any]], Any],
        *,
        num_workers: int = 0,
        pin_memory: bool = False,
        on_batch: Callable[[int], None] | None = None,
    ):
        self.dataset, self.batch_sampler, self.collate_fn = dataset, batch_sampler, collate_fn
        self.num_workers, self.pin_memory, self.on_batch = num_workers, pin_memory, on_batch

    def __len__(self) -> int:
        return len(self.batch_sampler)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Batch]:
        loader = DataLoader(
            self.dataset,
            batch_sampler=self.batch_sampler,
            collate_fn=self.collate_fn,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory and torch.cuda.is_available(),
        )
        for index, batch in enumerate(loader):
            if isinstance(batch, ExampleError):
                raise batch.to_input_error()
            if self.on_batch is not None:
                self.on_batch(index)
            yield batch


class _HasPath(Protocol):
    path: Path


class AudioOnlyDataset(Dataset):
    """Clips' audio only, by position (for filling the feature cache); a clip that fails to
    load comes back as an :class:`ExampleError`."""

    def __init__(self, clips: Sequence[_HasPath], sample_rate: int, n_samples: int):
        self.clips, self.sample_rate, self.n_samples = clips, sample_rate, n_samples

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> tuple[int, Tensor | ExampleError]:
        clip = self.clips[index]
        try:
            return index, read_audio(clip.path, self.sample_rate, n_samples=self.n_samples)
        except InputFileError as exc:
            return index, ExampleError(exc.path, str(exc))

    @staticmethod
    def collate(items: list[tuple[int, Tensor | ExampleError]]) -> tuple[list[int], Any]:
        """``(positions, [b, S] audio)``, or ``([], error)`` when a clip failed to load."""
        error = first_error(audio for _, audio in items)
        if error is not None:
            return [], error
        return [i for i, _ in items], torch.stack([a for _, a in items])


def spectrogram_chunks(
    loader: Iterable[tuple[list[int], Any]], extractor: FeatureExtractor, device: torch.device
) -> Iterator[tuple[list[int], Tensor]]:
    """``(rows, [b, M, T] features)`` from an :class:`AudioOnlyDataset` loader, for
    :func:`sedkit.data.cache.fill_cache`; load failures are raised as InputFileError."""
    for rows, audio in loader:
        if isinstance(audio, ExampleError):
            raise audio.to_input_error()
        with torch.no_grad():
            yield rows, extractor.spectrogram(audio.to(device))
