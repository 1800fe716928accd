"""Mixed-stream batches: fixed per-batch shares of several streams, deterministic per epoch.

The DCASE 2019 task 4 baseline fills each batch with strong synthetic, weak and unlabeled clips
in the proportions 1/4, 1/4, 1/2. :class:`MultiStreamBatchSampler` does that for any streams;
:class:`BatchCollator` turns the examples into one :class:`~sedkit.components.Batch` with
zero-filled targets and masks.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from sedkit.components import Batch
from sedkit.data.augment import make_generator

__all__ = [
    "BatchCollator",
    "Example",
    "ExampleError",
    "MultiStreamBatchSampler",
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


class BatchCollator:
    """``collate_fn`` building a :class:`Batch` from :class:`Example` objects.

    Targets an example lacks are zero-filled and masked; ``hidden`` is filled (with
    ``hidden_mask``) only when some example carries hidden labels.
    """

    def __init__(self, n_frames: int, n_classes: int):
        self.n_frames, self.n_classes = n_frames, n_classes

    def __call__(self, examples: Sequence[Example | ExampleError]) -> Batch | ExampleError:
        for example in examples:
            if isinstance(example, ExampleError):
                return example
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
        fields: dict[str, Any] = {}
        if all(e.features is not None for e in examples):
            fields["features"] = torch.stack([e.features for e in examples])
        elif all(e.audio is not None for e in examples):
            fields["audio"] = torch.stack([e.audio for e in examples])
        else:
            raise ValueError("examples of one batch must all carry audio or all features")
        return Batch(
            filenames=[e.filename for e in examples],
            stream=[e.stream for e in examples],
            domain=torch.tensor([e.domain for e in examples], dtype=torch.float32),
            strong=strong,
            strong_mask=strong_mask,
            weak=weak,
            weak_mask=weak_mask,
            hidden=hidden,
            **fields,
        )
