"""Single-label clip classification data: clip lists, a seeded stratified labeled/unlabeled
split, two-stream batches (labeled + unlabeled, e.g. 32 + 224 as in FixMatch/FMUC) and block
mixing.

Clip lists are tab-separated text files, one clip per line: ``filename label [fold]`` without a
header (positional columns, see ``list_columns``), or any column order under a header line whose
first field is ``filename`` (recognised names: ``filename``; ``label`` / ``scene_label``;
``fold``; ``location`` / ``identifier`` / ``city``; others are ignored). That covers the
TUT/TAU acoustic scene layouts and the embedded benchmarks.

The training list is split once per ``split_seed``: a fraction ``labeled_fraction`` of every
class (stratified, at least one clip per class) keeps its labels; the rest becomes unlabeled.
Unlabeled examples carry ``Batch.label == -1``; their true labels travel in
``Batch.hidden["label"]``, for pseudo-label quality only.

Block mixing (pruned-ensemble paper, after random block mixing): an augmented clip is made of
``n`` equal segments cut at random points of random *labeled* training recordings of one class,
visiting the recording locations (cities) in turn so that a clip draws from as many different
cities as possible; segment order is shuffled. The mixed clips join the labeled stream.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import soundfile
import torch
from torch import Tensor
from torch.utils.data import Dataset

from sedkit.components import REAL, Batch, BuildContext
from sedkit.data.audio import n_clip_samples, pad_or_crop, read_audio
from sedkit.data.augment import AugmentParams, augment_view
from sedkit.data.batching import (
    BatchLoader,
    ExampleError,
    FixedBatches,
    MultiStreamBatchSampler,
    first_error,
    stack_inputs,
)
from sedkit.data.cache import CachedFeatures
from sedkit.data.features import FeatureExtractor
from sedkit.data.folder import FolderDataModule, write_tsv
from sedkit.errors import InputFileError, UserError

__all__ = [
    "BlockMixingPlan",
    "ClassificationData",
    "ClassificationParams",
    "LabeledClip",
    "ListRow",
    "block_mixing_plan",
    "read_clip_list",
    "stratified_split",
]

#: Header names understood in clip lists, by the field they fill.
HEADER_ALIASES: dict[str, str] = {
    "filename": "filename",
    "file": "filename",
    "label": "label",
    "scene_label": "label",
    "class": "label",
    "fold": "fold",
    "location": "location",
    "identifier": "location",
    "city": "location",
}


# --------------------------------------------------------------------------------------------
# Clip lists and the labeled/unlabeled split
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ListRow:
    """One line of a clip list."""

    filename: str
    label: str | None
    fold: str | None
    location: str | None
    line: int


def read_clip_list(
    path: str | Path, *, columns: Sequence[str] = ("filename", "label")
) -> list[ListRow]:
    """Rows of a tab-separated clip list (see the module docstring for the format).

    ``columns`` names the positional columns of a list without header (``filename``,
    ``label``, ``fold``, ``location``; ``-`` skips one). Raises InputFileError, naming file and
    line, for a missing or empty file, a short row, an empty filename or a duplicate.
    """
    path = Path(path)
    if not path.is_file():
        raise InputFileError(path, "clip list not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(path, f"cannot read clip list: {exc}") from exc
    lines = [(i + 1, line) for i, line in enumerate(text.splitlines()) if line.strip()]
    if not lines:
        raise InputFileError(path, "clip list is empty")
    first = [f.strip().lower() for f in lines[0][1].split("\t")]
    if first[0] in ("filename", "file"):
        names = [HEADER_ALIASES.get(f, "-") for f in first]
        lines = lines[1:]
    else:
        names = list(columns)
    unknown = sorted(set(names) - {"filename", "label", "fold", "location", "-"})
    if unknown or "filename" not in names:
        raise ValueError(f"list columns must include filename; unknown columns {unknown}")
    rows: list[ListRow] = []
    seen: dict[str, int] = {}
    for number, line in lines:
        fields = [f.strip() for f in line.split("\t")]
        values: dict[str, str] = {}
        for name, value in zip(names, fields, strict=False):
            if name != "-" and name not in values:
                values[name] = value
        if not values.get("filename"):
            raise InputFileError(path, "empty filename", line=number)
        if "label" in names and not values.get("label"):
            raise InputFileError(
                path,
                f"expected tab-separated columns {', '.join(names)}, got {line!r}",
                line=number,
            )
        filename = values["filename"]
        if filename in seen:
            raise InputFileError(
                path, f"{filename} is listed twice (first on line {seen[filename]})", line=number
            )
        seen[filename] = number
        rows.append(
            ListRow(
                filename=filename,
                label=values.get("label") or None,
                fold=values.get("fold") or None,
                location=values.get("location") or None,
                line=number,
            )
        )
    if not rows:
        raise InputFileError(path, "clip list holds a header but no clips")
    return rows


def _stable_int(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def stratified_split(
    labels: Sequence[int], fraction: float, seed: int, *, class_names: Sequence[str] | None = None
) -> tuple[list[int], list[int]]:
    """Positions of the labeled and unlabeled examples: ``round(fraction * n_c)`` of each
    class's ``n_c`` examples (at least one when ``fraction > 0``) are labeled.

    The draw within each class depends only on ``seed``, the class (by name when
    ``class_names`` is given) and the class's examples in list order, so adding a class or
    reordering classes leaves the other classes' draws unchanged. Both lists are sorted.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"labeled fraction must be in (0, 1], got {fraction}")
    labels = np.asarray(labels, dtype=np.int64)
    labeled: list[int] = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        key = _stable_int(class_names[c]) if class_names is not None else int(c)
        rng = np.random.default_rng(np.random.SeedSequence([seed, key]))
        n_keep = min(len(members), max(1, int(math.floor(fraction * len(members) + 0.5))))
        labeled += members[rng.permutation(len(members))[:n_keep]].tolist()
    labeled_set = set(labeled)
    return sorted(labeled), [i for i in range(len(labels)) if i not in labeled_set]


# --------------------------------------------------------------------------------------------
# Block mixing
# --------------------------------------------------------------------------------------------
@dataclass
class BlockMixingPlan:
    """Sources of ``N`` mixed clips of ``n_segments`` segments each.

    ``sources[j, k]`` is the clip (index into the training pool) whose audio fills segment
    ``k`` of mixed clip ``j``, cut at ``offsets[j, k]`` (a fraction of the free range of start
    positions); ``labels[j]`` is the mixed clip's class.
    """

    sources: np.ndarray  # [N, n_segments] int
    offsets: np.ndarray  # [N, n_segments] float in [0, 1)
    labels: np.ndarray  # [N] int

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def block_mixing_plan(
    groups: Sequence[str],
    locations: Sequence[str],
    labels: Sequence[int],
    pool: Sequence[int],
    n_clips: int,
    n_segments: int,
    rng: np.random.Generator,
) -> BlockMixingPlan:
    """Plan ``n_clips`` block-mixed clips from the training clips at positions ``pool``.

    Clips of one mixing group (``groups``: class or fine label) are mixed together; mixed
    clips are shared among groups in proportion to their sizes (largest remainder). Within a
    group the locations (cities) are visited round-robin in a shuffled order, continuing from
    one mixed clip to the next, and a random recording of the current location fills each
    segment, so a clip draws from ``min(n_segments, n_locations)`` different locations (as
    the authors' code does); the segment order is then shuffled.
    """
    by_group: dict[str, dict[str, list[int]]] = {}
    for i in pool:
        by_group.setdefault(groups[i], {}).setdefault(locations[i], []).append(i)
    names = sorted(by_group)
    sizes = np.array([sum(len(v) for v in by_group[g].values()) for g in names], dtype=float)
    exact = sizes / sizes.sum() * n_clips if n_clips > 0 else np.zeros(len(names))
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: n_clips - counts.sum()]:
        counts[i] += 1
    sources = np.zeros((n_clips, n_segments), dtype=np.int64)
    out_labels = np.zeros(n_clips, dtype=np.int64)
    row = 0
    for g, count in zip(names, counts, strict=True):
        cities = sorted(by_group[g])
        order = [cities[i] for i in rng.permutation(len(cities))]
        turn = 0
        for _ in range(count):
            picks = []
            for _ in range(n_segments):
                recordings = by_group[g][order[turn % len(order)]]
                picks.append(recordings[int(rng.integers(len(recordings)))])
                turn += 1
            sources[row] = np.asarray(picks)[rng.permutation(n_segments)]
            out_labels[row] = labels[picks[0]]
            row += 1
    offsets = rng.random((n_clips, n_segments))
    return BlockMixingPlan(sources=sources, offsets=offsets, labels=out_labels)


def segment_bounds(length: int, n_segments: int) -> list[tuple[int, int]]:
    """``n_segments`` consecutive ``(start, stop)`` spans covering ``range(length)``."""
    edges = [round(k * length / n_segments) for k in range(n_segments + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def read_segment(path: Path, sample_rate: int, start: int, length: int, n_samples: int) -> Tensor:
    """Samples ``[start, start + length)`` of a clip read as :func:`read_audio` would read it
    (mono, ``sample_rate``, padded or cropped to ``n_samples``), reading only that span from
    disk when the file is already at ``sample_rate``."""
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        raise InputFileError(path, f"cannot read audio: {exc}") from exc
    if info.samplerate != sample_rate:
        return read_audio(path, sample_rate, n_samples=n_samples)[start : start + length]
    try:
        data, _ = soundfile.read(
            str(path), start=start, frames=length, dtype="float32", always_2d=True
        )
    except (soundfile.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        raise InputFileError(path, f"cannot read audio: {exc}") from exc
    if not np.isfinite(data).all():
        raise InputFileError(path, "audio file holds NaN or infinite samples")
    return pad_or_crop(torch.from_numpy(data.mean(axis=1)), length)


# --------------------------------------------------------------------------------------------
# Params
# --------------------------------------------------------------------------------------------
@dataclass
class ClassificationParams:
    """A single-label clip classification dataset.

    ``root`` is resolved against the current directory, every other path against ``root``
    (absolute paths stay as given); audio files are ``<root>/<audio_dir>/<filename>``.
    ``train_list`` / ``test_list``: clip lists; with ``test_list: null`` the clips of
    ``train_list`` whose fold is in ``test_folds`` form the test set. ``list_columns``: the
    positional columns of lists without a header. ``classes``: class names in output order;
    ``label_map`` maps list labels to classes (e.g. fine scenes to coarse classes).

    ``labeled_fraction`` of every training class keeps its labels (stratified draw with
    ``split_seed``, default the recipe seed); the rest is the unlabeled stream.
    ``labeled_batch_size`` + ``unlabeled_batch_size`` examples per training batch (FMUC: 32 +
    224; 0 unlabeled: supervised). ``batches_per_epoch`` defaults to one pass over the stream
    that needs most batches. ``augment`` (time shift, masks, noise; no mixup: labels are hard)
    applies on the training device to the streams in ``augment_streams``; consistency methods
    augment the unlabeled stream themselves.

    ``block_mixing``: add ``block_mixing_ratio`` x (labeled clips) block-mixed clips of
    ``block_mixing_segments`` segments to the labeled stream, mixing clips of one class
    (``block_mixing_by: label``) or of one fine label (``fine``); one fixed set per seed as the
    authors precomputed it, or a new set every epoch with ``block_mixing_refresh``.

    ``missing_audio``: ``skip`` (named in a warning and ``clips_missing.tsv``) or ``error``.
    ``synthesize_if_missing``: build the embedded benchmark in an empty or missing ``root``
    (``synth_preset``, ``synth_seed``). ``cache_features``: un-normalised features cached on
    disk in ``cache_dir`` (default ``<root>/.sedkit_cache``). ``max_clips``: keep N clips of
    each list, taken round-robin over classes (quick tests).
    """

    root: str = "data/classification"
    train_list: str = "evaluation_setup/train.tsv"
    test_list: str | None = "evaluation_setup/test.tsv"
    test_folds: list[str] = field(default_factory=list)
    list_columns: list[str] = field(default_factory=lambda: ["filename", "label", "fold"])
    audio_dir: str = ""
    classes: list[str] = field(default_factory=list)
    label_map: dict[str, str] = field(default_factory=dict)
    clip_duration_s: float = 10.0
    labeled_fraction: float = 1.0
    split_seed: int | None = None
    labeled_batch_size: int = 32
    unlabeled_batch_size: int = 224
    batches_per_epoch: int | None = None
    eval_batch_size: int = 64
    augment: AugmentParams = field(default_factory=AugmentParams)
    augment_streams: list[str] = field(default_factory=lambda: ["labeled"])
    block_mixing: bool = False
    block_mixing_segments: int = 10
    block_mixing_ratio: float = 1.0
    block_mixing_by: Literal["label", "fine"] = "label"
    block_mixing_refresh: bool = False
    missing_audio: Literal["skip", "error"] = "skip"
    synthesize_if_missing: bool = False
    synth_preset: str = "default"
    synth_seed: int = 0
    cache_features: bool = False
    cache_dir: str | None = None
    cache_dtype: Literal["float32", "float16"] = "float32"
    num_workers: int = 0
    pin_memory: bool = True  # used only when CUDA is available
    max_clips: int | None = None

    def __post_init__(self) -> None:
        if not self.classes or len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes must be a non-empty list without duplicates: {self.classes}")
        bad = sorted(v for v in self.label_map.values() if v not in self.classes)
        if bad:
            raise ValueError(f"label_map targets {bad} are not among classes {self.classes}")
        if self.test_list is None and not self.test_folds:
            raise ValueError("test_list is null: give test_folds (folds of train_list to test on)")
        if "filename" not in self.list_columns:
            raise ValueError(f"list_columns must include filename, got {self.list_columns}")
        allowed = {"filename", "label", "fold", "location", "-"}
        if set(self.list_columns) - allowed:
            raise ValueError(f"list_columns: each of {sorted(allowed)}, got {self.list_columns}")
        if self.clip_duration_s <= 0:
            raise ValueError(f"clip_duration_s must be positive, got {self.clip_duration_s}")
        if not 0.0 < self.labeled_fraction <= 1.0:
            raise ValueError(f"labeled_fraction must be in (0, 1], got {self.labeled_fraction}")
        if self.labeled_batch_size <= 0:
            raise ValueError(f"labeled_batch_size must be positive, got {self.labeled_batch_size}")
        if self.unlabeled_batch_size < 0:
            raise ValueError(f"unlabeled_batch_size must be >= 0, got {self.unlabeled_batch_size}")
        if self.batches_per_epoch is not None and self.batches_per_epoch <= 0:
            raise ValueError(f"batches_per_epoch must be positive, got {self.batches_per_epoch}")
        if self.eval_batch_size <= 0:
            raise ValueError(f"eval_batch_size must be positive, got {self.eval_batch_size}")
        if self.augment.mixup_prob > 0:
            raise ValueError("augment.mixup_prob: mixup needs soft targets; single labels are hard")
        if self.block_mixing_segments < 1:
            raise ValueError("block_mixing_segments must be >= 1")
        if self.block_mixing_ratio < 0:
            raise ValueError(f"block_mixing_ratio must be >= 0, got {self.block_mixing_ratio}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        if self.max_clips is not None and self.max_clips <= 0:
            raise ValueError("max_clips must be positive or null")


# --------------------------------------------------------------------------------------------
# Clips, examples, batches
# --------------------------------------------------------------------------------------------
@dataclass
class LabeledClip:
    """A clip of a list with its class, the label as listed (``raw_label``), a fine label for
    block mixing and its recording location or city."""

    filename: str
    path: Path
    label: int
    raw_label: str
    fine: str = ""
    location: str = ""


@dataclass
class _Item:
    """What one dataset key yields: a clip (``source`` ``train`` or ``test``) or a mixed clip
    (``mixed``), the stream name shown in the batch and whether its label is shown."""

    source: str
    index: int
    stream: str
    show_label: bool


@dataclass
class _Example:
    filename: str
    stream: str
    label: int  # -1 when hidden
    true_label: int
    audio: Tensor | None = None
    features: Tensor | None = None


def collate_examples(examples: Sequence[_Example | ExampleError]) -> Batch | ExampleError:
    """Build a :class:`Batch` (``label`` [B] long, ``hidden["label"]`` [B] long)."""
    error = first_error(examples)
    if error is not None:
        return error
    return Batch(
        filenames=[e.filename for e in examples],
        stream=[e.stream for e in examples],
        domain=torch.full((len(examples),), REAL, dtype=torch.float32),
        label=torch.tensor([e.label for e in examples], dtype=torch.long),
        hidden={"label": torch.tensor([e.true_label for e in examples], dtype=torch.long)},
        **stack_inputs(examples),
    )


class ClipDataset(Dataset):
    """Examples by key ``(view, position)``; a view is a list of :class:`_Item`."""

    def __init__(
        self,
        clips: dict[str, list[LabeledClip]],
        views: dict[str, list[_Item]],
        plan: BlockMixingPlan | None,
        *,
        sample_rate: int,
        n_samples: int,
        cached: dict[str, CachedFeatures] | None,
    ):
        self.clips, self.views, self.plan = clips, views, plan
        self.sample_rate, self.n_samples = sample_rate, n_samples
        self.cached = cached

    def __len__(self) -> int:
        return sum(len(v) for v in self.views.values())

    def __getitem__(self, key: tuple[str, int]) -> _Example | ExampleError:
        item = self.views[key[0]][key[1]]
        try:
            if item.source == "mixed":
                return self._mixed(item)
            clip = self.clips[item.source][item.index]
            example = _Example(
                clip.filename, item.stream, clip.label if item.show_label else -1, clip.label
            )
            if self.cached is not None:
                example.features = self.cached[item.source][item.index]
            else:
                example.audio = read_audio(clip.path, self.sample_rate, n_samples=self.n_samples)
            return example
        except InputFileError as exc:
            return ExampleError(exc.path, str(exc))

    def _mixed(self, item: _Item) -> _Example:
        """A block-mixed clip: segments of its source clips, cut at the planned offsets."""
        plan = self.plan
        assert plan is not None
        sources, offsets = plan.sources[item.index], plan.offsets[item.index]
        train = self.clips["train"]
        label = int(plan.labels[item.index])
        example = _Example(f"block_mix_{item.index:06d}", item.stream, label, label)
        if self.cached is not None:
            first = self.cached["train"][int(sources[0])]
            out = torch.empty_like(first)
            for k, (start, stop) in enumerate(segment_bounds(first.shape[-1], len(sources))):
                source = first if k == 0 else self.cached["train"][int(sources[k])]
                at = int(offsets[k] * (first.shape[-1] - (stop - start) + 1))
                out[:, start:stop] = source[:, at : at + stop - start]
            example.features = out
        else:
            out = torch.zeros(self.n_samples)
            for k, (start, stop) in enumerate(segment_bounds(self.n_samples, len(sources))):
                length = stop - start
                at = int(offsets[k] * (self.n_samples - length + 1))
                clip = train[int(sources[k])]
                out[start:stop] = read_segment(
                    clip.path, self.sample_rate, at, length, self.n_samples
                )
            example.audio = out
        return example


# --------------------------------------------------------------------------------------------
# The DataModule
# --------------------------------------------------------------------------------------------
class ClassificationData(FolderDataModule):
    """Single-label clip classification: labeled + unlabeled training batches, test batches.

    ``setup`` resolves the root (building the embedded benchmark there when asked), reads the
    lists, drops (or fails on) clips whose audio is missing, draws the labeled split, plans
    block mixing, writes ``data_source.json``, ``clips_used.tsv`` (subset labeled / unlabeled
    / test with label, location and path) and ``clips_missing.tsv`` into ``run_dir``, and fills
    the feature cache when asked. Subclasses set ``Params`` defaults and ``synthesize`` and
    may refine clips in :meth:`annotate` (fine labels, cities).
    """

    Params: ClassVar[type] = ClassificationParams
    benchmark_name: ClassVar[str] = "classification"

    def __init__(self, params: ClassificationParams, context: BuildContext):
        super().__init__(params, context)
        self.clips: dict[str, list[LabeledClip]] = {}
        self.labeled: list[int] = []
        self.unlabeled: list[int] = []
        self._sample_rate = 0
        self._n_samples = 0
        self._input_hop_s = 0.0
        self._cached: dict[str, CachedFeatures] | None = None
        self._fixed_plan: BlockMixingPlan | None = None
        self._ready = False

    @property
    def split_seed(self) -> int:
        p = self.params
        return self.context.seed if p.split_seed is None else p.split_seed

    # ------------------------------------------------------------------------------ setup
    def setup(self, run_dir: Path | None, encoder: Any, extractor: FeatureExtractor) -> None:
        """Read the lists, check audio, split, plan mixing, write run records, fill the cache."""
        p = self.params
        if self.context.task != "classification":
            raise UserError(
                f"data: this dataset needs task: classification, not {self.context.task}"
            )
        source = self._ensure_root()
        self._sample_rate = extractor.params.sample_rate
        self._n_samples = n_clip_samples(self.clip_duration_s, self._sample_rate)
        self._input_hop_s = extractor.hop_s

        clips, missing = self._drop_missing_audio(self._read_clips())
        for name in ("train", "test"):
            if not clips[name]:
                raise InputFileError(self._list_path(name), f"no {name} clip with audio")
        self.clips = clips
        self.labeled, self.unlabeled = stratified_split(
            [c.label for c in clips["train"]],
            p.labeled_fraction,
            self.split_seed,
            class_names=self.classes,
        )
        present = {c.label for c in clips["train"]}
        absent = [name for i, name in enumerate(self.classes) if i not in present]
        if absent:
            self.log.warning("data: no training clip of class(es) %s", ", ".join(absent))
        if p.unlabeled_batch_size > 0 and not self.unlabeled:
            self.log.warning(
                "data: labeled_fraction %.3g leaves no unlabeled clip; batches hold %d labeled "
                "clips only",
                p.labeled_fraction,
                p.labeled_batch_size,
            )
        if p.block_mixing and not p.block_mixing_refresh:
            self._fixed_plan = self._plan(epoch=None)
        if run_dir is not None:
            run_dir = Path(run_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
            self._write_run_records(run_dir, source, missing)
            self._write_clips_used(run_dir)
        if p.cache_features:
            self._fill_cache(extractor)
        self._ready = True
        self.log.info(
            "data: %d labeled, %d unlabeled, %d test clips (%d classes); per batch %d + %d%s",
            len(self.labeled),
            len(self.unlabeled),
            len(clips["test"]),
            len(self.classes),
            p.labeled_batch_size,
            p.unlabeled_batch_size if self.unlabeled else 0,
            f"; {self._n_mixed()} block-mixed clips" if p.block_mixing else "",
        )

    def _list_path(self, name: str) -> Path:
        p = self.params
        return self.path(p.test_list if name == "test" and p.test_list else p.train_list)

    def _read_clips(self) -> dict[str, list[LabeledClip]]:
        p = self.params
        train_path = self.path(p.train_list)
        rows = read_clip_list(train_path, columns=p.list_columns)
        if p.test_list is not None:
            test_path = self.path(p.test_list)
            test_rows = read_clip_list(test_path, columns=p.list_columns)
            lists = {"train": (train_path, rows), "test": (test_path, test_rows)}
        else:
            if any(r.fold is None for r in rows):
                bad = next(r for r in rows if r.fold is None)
                raise InputFileError(
                    train_path,
                    "test_list is null, so every row needs a fold column (test_folds "
                    f"{p.test_folds}); none found",
                    line=bad.line,
                )
            folds = set(p.test_folds)
            lists = {
                "train": (train_path, [r for r in rows if r.fold not in folds]),
                "test": (train_path, [r for r in rows if r.fold in folds]),
            }
        audio_root = self.path(p.audio_dir) if p.audio_dir else self.root
        clips: dict[str, list[LabeledClip]] = {}
        for name, (path, list_rows) in lists.items():
            made = [self._clip(path, row, audio_root) for row in list_rows]
            self.annotate(made)
            clips[name] = self._limit(made)
        return clips

    def _clip(self, path: Path, row: ListRow, audio_root: Path) -> LabeledClip:
        p = self.params
        if row.label is None:
            raise InputFileError(path, f"{row.filename} has no label", line=row.line)
        name = p.label_map.get(row.label, row.label)
        if name not in self.classes:
            raise InputFileError(
                path,
                f"label {row.label!r} is not one of the classes {self.classes} "
                "(set data.params.classes, or map it with data.params.label_map)",
                line=row.line,
            )
        return LabeledClip(
            filename=row.filename,
            path=audio_root / Path(row.filename),
            label=self.classes.index(name),
            raw_label=row.label,
            fine=row.label,
            location=row.location or "",
        )

    def annotate(self, clips: list[LabeledClip]) -> None:
        """Refine clips after reading (fine labels, cities); the base class keeps the list's."""

    def _limit(self, clips: list[LabeledClip]) -> list[LabeledClip]:
        """The first ``max_clips`` clips taken round-robin over classes, in list order."""
        limit = self.params.max_clips
        if limit is None or len(clips) <= limit:
            return clips
        queues: dict[int, list[int]] = {}
        for i, clip in enumerate(clips):
            queues.setdefault(clip.label, []).append(i)
        chosen: list[int] = []
        while len(chosen) < limit:
            for queue in queues.values():
                if queue and len(chosen) < limit:
                    chosen.append(queue.pop(0))
        return [clips[i] for i in sorted(chosen)]

    def _write_clips_used(self, run_dir: Path) -> None:
        """``clips_used.tsv``: subset (labeled / unlabeled / test), label, location, path."""
        train = self.clips["train"]
        subsets = [
            ("labeled", [train[i] for i in self.labeled]),
            ("unlabeled", [train[i] for i in self.unlabeled]),
            ("test", self.clips["test"]),
        ]
        write_tsv(
            run_dir / "clips_used.tsv",
            ["subset", "filename", "label", "location", "path"],
            (
                [name, c.filename, self.classes[c.label], c.location, str(c.path)]
                for name, clips in subsets
                for c in clips
            ),
        )

    def _fill_cache(self, extractor: FeatureExtractor) -> None:
        """Compute (or find) un-normalised features of the train and test clips."""
        self._cached = {
            name: self._cached_features(name, clips, extractor, self._n_samples)
            for name, clips in self.clips.items()
        }

    # ------------------------------------------------------------------------------ mixing
    def _n_mixed(self) -> int:
        p = self.params
        if not p.block_mixing:
            return 0
        return int(math.floor(p.block_mixing_ratio * len(self.labeled) + 0.5))

    def _plan(self, epoch: int | None) -> BlockMixingPlan:
        """The block-mixing plan: fixed per seed, or per epoch with ``block_mixing_refresh``."""
        p = self.params
        train = self.clips["train"]
        groups = [c.fine if p.block_mixing_by == "fine" else str(c.label) for c in train]
        parts = [self.context.seed, 0xB10C] + ([] if epoch is None else [epoch])
        rng = np.random.default_rng(np.random.SeedSequence(parts))
        return block_mixing_plan(
            groups,
            [c.location for c in train],
            [c.label for c in train],
            self.labeled,
            self._n_mixed(),
            p.block_mixing_segments,
            rng,
        )

    # ------------------------------------------------------------------------------ loaders
    def _dataset(self, views: dict[str, list[_Item]], plan: BlockMixingPlan | None) -> ClipDataset:
        if not self._ready:
            raise RuntimeError("ClassificationData.setup() must run before the loaders")
        return ClipDataset(
            self.clips,
            views,
            plan,
            sample_rate=self._sample_rate,
            n_samples=self._n_samples,
            cached=self._cached,
        )

    def train_loader(self, epoch: int) -> BatchLoader:
        """Batches of ``labeled_batch_size`` labeled (and block-mixed) plus
        ``unlabeled_batch_size`` unlabeled clips; order depends only on (seed, epoch)."""
        p = self.params
        plan = None
        if p.block_mixing:
            plan = self._fixed_plan if not p.block_mixing_refresh else self._plan(epoch)
        labeled = [_Item("train", i, "labeled", True) for i in self.labeled]
        if plan is not None:
            labeled += [_Item("mixed", j, "labeled", True) for j in range(len(plan))]
        views = {
            "labeled": labeled,
            "unlabeled": [_Item("train", i, "unlabeled", False) for i in self.unlabeled],
        }
        counts = {"labeled": p.labeled_batch_size}
        if self.unlabeled and p.unlabeled_batch_size > 0:
            counts["unlabeled"] = p.unlabeled_batch_size
        sampler = MultiStreamBatchSampler(
            {k: len(v) for k, v in views.items()},
            counts,
            seed=self.context.seed,
            epoch=epoch,
            n_batches=p.batches_per_epoch,
        )
        return self._loader(self._dataset(views, plan), sampler, collate_examples, epoch=epoch)

    def evaluation_loader(self, subset: Literal["test", "labeled", "unlabeled"]) -> BatchLoader:
        """Clips of ``subset`` in list order with their *true* labels in ``label`` (for
        evaluation only: the paper also scores the left-out unlabeled clips)."""
        if subset == "test":
            items = [_Item("test", i, "validation", True) for i in range(len(self.clips["test"]))]
        elif subset in ("labeled", "unlabeled"):
            chosen = self.labeled if subset == "labeled" else self.unlabeled
            items = [_Item("train", i, subset, True) for i in chosen]
        else:
            raise ValueError(f"subset must be test, labeled or unlabeled, got {subset!r}")
        return self._fixed_loader("eval", items)

    def val_loader(self) -> BatchLoader:
        """Test clips in list order, labels shown, no augmentation."""
        return self.evaluation_loader("test")

    def unlabeled_loader(self) -> BatchLoader:
        """Unlabeled clips in list order (``label`` -1, true labels in ``hidden``)."""
        items = [_Item("train", i, "unlabeled", False) for i in self.unlabeled]
        return self._fixed_loader("unlabeled", items)

    def _fixed_loader(self, view: str, items: list[_Item]) -> BatchLoader:
        """``items`` in order, ``eval_batch_size`` per batch, no block mixing."""
        keys = [(view, i) for i in range(len(items))]
        batches = FixedBatches(keys, self.params.eval_batch_size)
        return self._loader(self._dataset({view: items}, None), batches, collate_examples)

    def augment_features(self, features: Tensor, batch: Batch) -> tuple[Tensor, Batch]:
        """Augment the rows of ``augment_streams`` (shift, masks, noise) on their device,
        seeded by (seed, epoch, batch index) of the last training batch yielded."""
        p = self.params
        if not p.augment.enabled:
            return features, batch
        rows = [i for i, s in enumerate(batch.stream) if s in p.augment_streams]
        if not rows:
            return features, batch
        generator = self._augment_generator(features.device)
        index = torch.tensor(rows, device=features.device)
        out = features.clone()
        out[index] = augment_view(
            features[index],
            p.augment,
            generator,
            frame_hop_s=self._input_hop_s,
            input_hop_s=self._input_hop_s,
        )
        return out, batch
