"""The ``desed`` dataset: DESED / DCASE task 4 folders of audio plus tab-separated metadata.

Subsets (every path settable; relative paths are resolved against ``root``, ``root`` against
the current directory):

- synthetic: strong labels ``filename onset offset event_label`` (domain SYNTHETIC);
- weak: ``filename event_labels`` (comma-separated; domain REAL);
- unlabeled (unlabel_in_domain): ``filename`` (domain REAL);
- validation: strong labels (domain REAL), scored against by :meth:`DESEDData.reference`.

Optionally ``metadata/hidden/{weak,unlabel_in_domain}.tsv`` hold true strong labels of clips
that training treats as weak or unlabeled (the embedded benchmark writes them); they reach
``Batch.hidden`` for pseudo-label quality metrics only.

Training batches mix the three training streams in fixed shares (DCASE 2019 baseline: 1/4,
1/4, 1/2). An epoch is one pass over the stream that needs the most batches at its share
(``ceil(clips / clips_per_batch)``; with DESED 2019 that is the unlabeled set), smaller streams
cycling in fresh random orders; ``batches_per_epoch`` overrides it. Batch order and
augmentation depend only on ``(seed, epoch, batch index)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from torch import Tensor
from torch.utils.data import Dataset

from sedkit import hookimpl
from sedkit.components import REAL, SYNTHETIC, Batch, BuildContext, ScoringReference
from sedkit.data.audio import audio_duration, n_clip_samples, read_audio
from sedkit.data.augment import AugmentParams, augment_batch
from sedkit.data.batching import (
    BatchCollator,
    BatchLoader,
    Example,
    ExampleError,
    FixedBatches,
    MultiStreamBatchSampler,
    stream_counts,
)
from sedkit.data.cache import CachedFeatures
from sedkit.data.features import FeatureExtractor
from sedkit.data.folder import FolderDataModule, write_tsv
from sedkit.data.labels import (
    DESED_CLASSES,
    Event,
    LabelEncoder,
    read_durations_tsv,
    read_strong_tsv,
    read_unlabeled_tsv,
    read_weak_tsv,
)
from sedkit.errors import InputFileError, UserError

__all__ = ["DESEDData", "DESEDParams"]

TRAIN_STREAMS = ("synthetic", "weak", "unlabeled")


def _synthesize(
    out_dir: str | Path,
    *,
    preset: str = "default",
    seed: int = 0,
    log: Any = None,
    source: str | None = None,
    fetch: bool = False,
):
    """Build the embedded DESED-like benchmark in ``out_dir`` (see :mod:`.synth`); returns
    the path of its dataset card.

    Imported on call so that this module loads even where the generator's dependencies
    (scaper) are not installed. ``log`` may be a logger (its ``info`` is used) or a callable
    taking one message. ``source``: ``procedural`` (default) or ``real`` (``--fetch`` first
    downloads its Debian packages).
    """
    from sedkit_plugins.desed.synth import synthesize

    say = getattr(log, "info", log)
    options = {"source": source, "fetch": fetch} if source is not None or fetch else {}
    return synthesize(out_dir, preset=preset, seed=seed, log=say, **options)


@dataclass
class DESEDParams:
    """The ``desed`` dataset (DESED / DCASE task 4 layout).

    ``root`` is resolved against the current directory, every other path against ``root``
    (absolute paths stay as given); defaults are the DESED 2019 layout. ``*_tsv`` are the
    metadata files, ``*_audio`` the audio folders. Optional files (``validation_durations_tsv``,
    ``hidden_*_tsv``: true labels of weak/unlabeled clips, for pseudo-label quality only) are
    used when present; ``null`` turns them off. A training subset whose share in
    ``stream_proportions`` (synthetic, weak, unlabeled) is 0 may be absent.
    ``batches_per_epoch`` (default: one pass over the stream that needs most batches) and
    ``eval_batch_size`` (default ``batch_size``) size the loaders. ``missing_audio``: ``skip``
    (named in a warning and in ``clips_missing.tsv``) or ``error``. ``synthesize_if_missing``:
    when ``root`` is missing or empty, build the embedded benchmark there
    (``synth_preset``, ``synth_seed``), announced and recorded in ``data_source.json``.
    ``cache_features``: keep un-normalised features on disk in ``cache_dir`` (default
    ``<root>/.sedkit_cache``), keyed by every feature parameter and file. ``pin_memory`` applies
    only with CUDA. ``augment``: on-device training augmentation (all off by default).
    ``max_clips_per_subset`` keeps the first N clips of each subset (quick tests).
    ``oracle_labels`` (a diagnostic, never for a reported system): weak and unlabeled clips train
    with their hidden true strong labels, the most that pseudo-labels could give (the G2
    headroom of ``tools/measure_headroom.py``).
    """

    root: str = "data/dcase2019"
    synthetic_tsv: str = "metadata/train/synthetic.tsv"
    weak_tsv: str = "metadata/train/weak.tsv"
    unlabeled_tsv: str = "metadata/train/unlabel_in_domain.tsv"
    validation_tsv: str = "metadata/validation/validation.tsv"
    validation_durations_tsv: str | None = "metadata/validation/validation_durations.tsv"
    synthetic_audio: str = "audio/train/synthetic"
    weak_audio: str = "audio/train/weak"
    unlabeled_audio: str = "audio/train/unlabel_in_domain"
    validation_audio: str = "audio/validation"
    hidden_weak_tsv: str | None = "metadata/hidden/weak.tsv"
    hidden_unlabeled_tsv: str | None = "metadata/hidden/unlabel_in_domain.tsv"
    classes: list[str] = field(default_factory=lambda: list(DESED_CLASSES))
    clip_duration_s: float = 10.0
    batch_size: int = 24
    #: Shares of (synthetic, weak, unlabeled) in every training batch.
    stream_proportions: tuple[float, float, float] = (0.25, 0.25, 0.5)
    batches_per_epoch: int | None = None
    eval_batch_size: int | None = None  # val/unlabeled loaders; None -> batch_size
    missing_audio: Literal["skip", "error"] = "skip"
    #: When ``root`` is missing or empty, build the embedded benchmark there (announced).
    synthesize_if_missing: bool = False
    synth_preset: str = "default"
    synth_seed: int = 0
    cache_features: bool = False
    cache_dir: str | None = None  # None -> <root>/.sedkit_cache
    cache_dtype: Literal["float32", "float16"] = "float32"
    num_workers: int = 0
    pin_memory: bool = True  # used only when CUDA is available
    augment: AugmentParams = field(default_factory=AugmentParams)
    max_clips_per_subset: int | None = None
    oracle_labels: bool = False

    def __post_init__(self) -> None:
        if not self.classes or len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes must be a non-empty list without duplicates: {self.classes}")
        if self.clip_duration_s <= 0:
            raise ValueError(f"clip_duration_s must be positive, got {self.clip_duration_s}")
        if self.batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {self.batch_size}")
        if self.eval_batch_size is not None and self.eval_batch_size <= 0:
            raise ValueError(f"eval_batch_size must be positive, got {self.eval_batch_size}")
        if len(self.stream_proportions) != 3 or any(p < 0 for p in self.stream_proportions):
            raise ValueError("stream_proportions: three shares >= 0 (synthetic, weak, unlabeled)")
        if sum(self.stream_proportions) <= 0:
            raise ValueError("stream_proportions: at least one share must be positive")
        if self.batches_per_epoch is not None and self.batches_per_epoch <= 0:
            raise ValueError(f"batches_per_epoch must be positive, got {self.batches_per_epoch}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        if self.max_clips_per_subset is not None and self.max_clips_per_subset <= 0:
            raise ValueError("max_clips_per_subset must be positive or null")


@dataclass
class Clip:
    """One clip of a subset with whatever labels the subset has."""

    filename: str
    path: Path
    events: list[Event] | None = None  # strong subsets
    labels: list[str] | None = None  # weak subset
    hidden: list[Event] | None = None  # true labels of weak/unlabeled clips, when known


@dataclass
class Subset:
    name: str  # "synthetic", "weak", "unlabeled", "validation"
    stream: str
    domain: float
    clips: list[Clip]
    cached: CachedFeatures | None = None


class ClipDataset(Dataset):
    """Examples addressed by ``(subset name, index)``: audio (or cached features) and targets."""

    def __init__(
        self,
        subsets: dict[str, Subset],
        encoder: LabelEncoder,
        sample_rate: int,
        n_samples: int,
        *,
        use_cache: bool,
    ):
        self.subsets, self.encoder = subsets, encoder
        self.sample_rate, self.n_samples = sample_rate, n_samples
        self.use_cache = use_cache

    def __len__(self) -> int:
        return sum(len(s.clips) for s in self.subsets.values())

    def __getitem__(self, key: tuple[str, int]) -> Example | ExampleError:
        subset = self.subsets[key[0]]
        clip = subset.clips[key[1]]
        example = Example(filename=clip.filename, stream=subset.stream, domain=subset.domain)
        if self.use_cache and subset.cached is not None:
            example.features = subset.cached[key[1]]
        else:
            try:
                example.audio = read_audio(clip.path, self.sample_rate, n_samples=self.n_samples)
            except InputFileError as exc:
                return ExampleError(exc.path, str(exc))
        encoder = self.encoder
        if clip.events is not None:
            example.strong = encoder.encode_strong(clip.events)
            example.weak = encoder.encode_weak(e.event_label for e in clip.events)
        elif clip.labels is not None:
            example.weak = encoder.encode_weak(clip.labels)
        if clip.hidden is not None:
            example.hidden_strong = encoder.encode_strong(clip.hidden)
            example.hidden_weak = encoder.encode_weak(e.event_label for e in clip.hidden)
        return example


class DESEDData(FolderDataModule):
    """DESED-format data: mixed training batches, validation, unlabeled clips, scoring reference.

    ``setup`` resolves the root (building the embedded benchmark there when asked and the root is
    missing or empty), reads the metadata, drops (or fails on) clips whose audio is missing,
    writes into ``run_dir``: ``data_source.json``, ``clips_used.tsv``, ``clips_missing.tsv`` (if
    any), ``validation_ground_truth.tsv`` and ``validation_durations.tsv`` for the clips used,
    and fills the feature cache when ``cache_features`` is on.
    """

    Params = DESEDParams
    synthesize = staticmethod(_synthesize)
    benchmark_name = "desed"
    benchmark_title = "DESED-like"
    real_dataset = "real DESED"
    root_description = "a DESED tree"

    def __init__(self, params: DESEDParams, context: BuildContext):
        super().__init__(params, context)
        self.subsets: dict[str, Subset] = {}
        self._dataset: ClipDataset | None = None
        self._collator: BatchCollator | None = None
        self._counts: dict[str, int] = {}
        self._reference: ScoringReference | None = None
        self._frame_hop_s = 0.0
        self._input_hop_s = 0.0

    # ------------------------------------------------------------------------------ setup
    def setup(
        self, run_dir: Path | None, encoder: LabelEncoder | None, extractor: FeatureExtractor
    ) -> None:
        """Read metadata, check audio, write the run's data records, fill the feature cache."""
        p = self.params
        if encoder is None:
            raise UserError("data: the desed dataset needs task: sed (it has strong labels)")
        if list(encoder.classes) != self.classes:
            raise ValueError("encoder classes differ from the dataset's classes")
        source = self._ensure_root()
        sample_rate = extractor.params.sample_rate
        n_samples = n_clip_samples(self.clip_duration_s, sample_rate)
        self._frame_hop_s, self._input_hop_s = encoder.frame_hop_s, extractor.hop_s

        subsets = self._read_subsets()
        kept, missing = self._drop_missing_audio({n: s.clips for n, s in subsets.items()})
        for name, subset in subsets.items():
            subset.clips = kept[name]
        self.subsets = subsets
        if not subsets["validation"].clips:
            raise InputFileError(
                self.path(p.validation_tsv), "no validation clip with audio to validate on"
            )
        if run_dir is not None:
            run_dir = Path(run_dir)
            run_dir.mkdir(parents=True, exist_ok=True)
            self._write_run_records(run_dir, source, missing)
            write_tsv(
                run_dir / "clips_used.tsv",
                ["subset", "filename", "path"],
                ([n, c.filename, str(c.path)] for n, s in subsets.items() for c in s.clips),
            )
        self._reference = self._write_reference(run_dir)

        proportions = dict(zip(TRAIN_STREAMS, p.stream_proportions, strict=True))
        empty = [s for s in TRAIN_STREAMS if proportions[s] > 0 and not self._n_clips(s)]
        if empty:
            self.log.warning(
                "data: no clips in stream(s) %s; their batch share goes to the others",
                ", ".join(empty),
            )
            for s in empty:
                proportions[s] = 0.0
        if sum(proportions.values()) <= 0:
            raise InputFileError(self.root, "no training clips with audio in any training stream")
        self._counts = stream_counts(proportions, p.batch_size)

        if p.cache_features:
            self._fill_cache(extractor, n_samples)
        self._dataset = ClipDataset(
            self.subsets, encoder, sample_rate, n_samples, use_cache=p.cache_features
        )
        self._collator = BatchCollator(encoder.n_frames, encoder.n_classes)
        self.log.info(
            "data: %s; per batch %s",
            ", ".join(f"{name} {len(s.clips)} clips" for name, s in self.subsets.items()),
            ", ".join(f"{s} {c}" for s, c in self._counts.items()),
        )

    def _optional(self, relative: str | None) -> Path | None:
        if relative is None:
            return None
        path = self.path(relative)
        return path if path.is_file() else None

    def _read_subsets(self) -> dict[str, Subset]:
        p = self.params
        proportions = dict(zip(TRAIN_STREAMS, p.stream_proportions, strict=True))
        hidden: dict[str, list[Event]] = {}
        for relative in (p.hidden_weak_tsv, p.hidden_unlabeled_tsv):
            path = self._optional(relative)
            if path is not None:
                hidden.update(read_strong_tsv(path, self.classes))

        def needed(stream: str, tsv: str) -> bool:
            # A training subset with share 0 may be absent; one with a share must exist.
            return proportions[stream] > 0 or self.path(tsv).is_file()

        subsets: dict[str, Subset] = {}
        if needed("synthetic", p.synthetic_tsv):
            strong = read_strong_tsv(self.path(p.synthetic_tsv), self.classes)
            audio = self.path(p.synthetic_audio)
            clips = [Clip(f, audio / f, events=ev) for f, ev in strong.items()]
            subsets["synthetic"] = Subset("synthetic", "synthetic", SYNTHETIC, clips)
        if needed("weak", p.weak_tsv):
            weak = read_weak_tsv(self.path(p.weak_tsv), self.classes)
            audio = self.path(p.weak_audio)
            clips = [
                Clip(f, audio / f, labels=lab, hidden=hidden.get(f)) for f, lab in weak.items()
            ]
            subsets["weak"] = Subset("weak", "weak", REAL, clips)
        if needed("unlabeled", p.unlabeled_tsv):
            names = read_unlabeled_tsv(self.path(p.unlabeled_tsv))
            audio = self.path(p.unlabeled_audio)
            clips = [Clip(f, audio / f, hidden=hidden.get(f)) for f in names]
            subsets["unlabeled"] = Subset("unlabeled", "unlabeled", REAL, clips)
        if p.oracle_labels:
            self._give_oracle_labels(subsets, hidden)
        strong = read_strong_tsv(self.path(p.validation_tsv), self.classes)
        audio = self.path(p.validation_audio)
        clips = [Clip(f, audio / f, events=ev) for f, ev in strong.items()]
        subsets["validation"] = Subset("validation", "validation", REAL, clips)
        if p.max_clips_per_subset is not None:
            for subset in subsets.values():
                subset.clips = subset.clips[: p.max_clips_per_subset]
        return subsets

    def _give_oracle_labels(self, subsets: dict[str, Subset], hidden: dict[str, list[Event]]):
        """``oracle_labels``: weak and unlabeled clips get their hidden strong labels."""
        for name in ("weak", "unlabeled"):
            if name not in subsets:
                continue
            lacking = [c.filename for c in subsets[name].clips if c.filename not in hidden]
            if lacking:
                where = self.params.hidden_weak_tsv if name == "weak" else None
                where = where or self.params.hidden_unlabeled_tsv or "hidden_*_tsv"
                raise InputFileError(
                    self.path(where),
                    f"data.params.oracle_labels: no hidden labels for {len(lacking)} {name} "
                    f"clip(s), e.g. {lacking[0]}",
                )
            for clip in subsets[name].clips:
                clip.events, clip.labels = hidden[clip.filename], None
        self.log.warning("data: oracle_labels: weak and unlabeled clips use their true labels")

    def _n_clips(self, name: str) -> int:
        return len(self.subsets[name].clips) if name in self.subsets else 0

    def _write_reference(self, run_dir: Path | None) -> ScoringReference:
        """Ground truth and durations of the validation clips actually used.

        Written into ``run_dir`` (or a temporary folder) so that skipped clips are not scored
        as misses; durations come from the durations file when it covers every clip, else
        from the audio headers.
        """
        import tempfile

        out_dir = Path(run_dir) if run_dir is not None else Path(tempfile.mkdtemp(prefix="sedkit-"))
        clips = self.subsets["validation"].clips
        gt_path = out_dir / "validation_ground_truth.tsv"
        gt_rows: list[list[str]] = []
        for clip in clips:
            if not clip.events:
                gt_rows.append([clip.filename, "", "", ""])
            for e in clip.events or []:
                gt_rows.append([clip.filename, f"{e.onset:.6f}", f"{e.offset:.6f}", e.event_label])
        write_tsv(gt_path, ["filename", "onset", "offset", "event_label"], gt_rows)
        known: dict[str, float] = {}
        durations_file = self._optional(self.params.validation_durations_tsv)
        if durations_file is not None:
            known = read_durations_tsv(durations_file)
        if not all(c.filename in known for c in clips):
            if durations_file is not None:
                self.log.warning(
                    "data: %s does not list every validation clip; durations are "
                    "read from the audio files",
                    durations_file,
                )
            known = {c.filename: audio_duration(c.path) for c in clips}
        durations_path = out_dir / "validation_durations.tsv"
        write_tsv(
            durations_path,
            ["filename", "duration"],
            ([c.filename, f"{known[c.filename]:.6f}"] for c in clips),
        )
        return ScoringReference(ground_truth_tsv=gt_path, durations_tsv=durations_path)

    def _fill_cache(self, extractor: FeatureExtractor, n_samples: int) -> None:
        """Compute (or find) un-normalised features of every subset on the extractor's device."""
        for name, subset in self.subsets.items():
            subset.cached = None
            if subset.clips:
                subset.cached = self._cached_features(name, subset.clips, extractor, n_samples)

    # ------------------------------------------------------------------------------ loaders
    def _require_setup(self) -> None:
        if self._dataset is None:
            raise RuntimeError("DESEDData.setup() must run before the loaders")

    def _batches(self, batch_sampler: Any, epoch: int | None = None) -> BatchLoader:
        self._require_setup()
        return self._loader(self._dataset, batch_sampler, self._collator, epoch=epoch)

    def _eval_batch_size(self) -> int:
        return self.params.eval_batch_size or self.params.batch_size

    def train_loader(self, epoch: int) -> BatchLoader:
        """Mixed synthetic/weak/unlabeled batches of ``epoch``, the same for a given seed."""
        self._require_setup()
        sampler = MultiStreamBatchSampler(
            {s: self._n_clips(s) for s in TRAIN_STREAMS},
            self._counts,
            seed=self.context.seed,
            epoch=epoch,
            n_batches=self.params.batches_per_epoch,
        )
        return self._batches(sampler, epoch=epoch)

    def val_loader(self) -> BatchLoader:
        """Validation clips in metadata order, strong and weak targets, no augmentation."""
        self._require_setup()
        keys = [("validation", i) for i in range(self._n_clips("validation"))]
        return self._batches(FixedBatches(keys, self._eval_batch_size()))

    def unlabeled_loader(self) -> BatchLoader:
        """Weak then unlabeled clips in metadata order, no augmentation (for pseudo-labels,
        keyed by ``Batch.filenames``)."""
        self._require_setup()
        keys = [(s, i) for s in ("weak", "unlabeled") for i in range(self._n_clips(s))]
        return self._batches(FixedBatches(keys, self._eval_batch_size()))

    def augment_features(self, features: Tensor, batch: Batch) -> tuple[Tensor, Batch]:
        """Augment a training batch's features on their device (settings in ``augment``).

        The random draws are seeded by ``(seed, epoch, batch index)`` of the training batch
        most recently yielded by :meth:`train_loader`, so a resumed run repeats them.
        """
        augment = self.params.augment
        if not augment.enabled:
            return features, batch
        return augment_batch(
            features,
            batch,
            augment,
            self._augment_generator(features.device),
            frame_hop_s=self._frame_hop_s,
            input_hop_s=self._input_hop_s,
        )

    def reference(self) -> ScoringReference | None:
        """Ground truth and durations of the validation clips used (written by ``setup``)."""
        return self._reference


@hookimpl
def sedkit_register_datasets(register) -> None:
    register("desed", DESEDData)
