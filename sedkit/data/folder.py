"""What dataset plugins that read clips below a root folder share.

:class:`FolderDataModule` resolves recipe paths against ``root``, builds the embedded benchmark
in a missing or empty root when asked (and records where the data came from), drops or fails
on clips whose audio is missing, fills the on-disk feature cache, builds loaders and seeds
training augmentation by ``(seed, epoch, batch index)``. The ``desed`` and classification
datasets subclass it; their Params carry the fields it reads (``root``, ``classes``,
``clip_duration_s``, ``missing_audio``, ``synthesize_if_missing``, ``synth_preset``,
``synth_seed``, ``cache_dir``, ``cache_dtype``, ``num_workers``, ``pin_memory``).
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import torch
from torch.utils.data import DataLoader, Dataset

from sedkit.components import BuildContext, DataModule
from sedkit.data.augment import make_generator
from sedkit.data.batching import AudioOnlyDataset, BatchLoader, spectrogram_chunks
from sedkit.data.cache import CachedFeatures, audio_fingerprint, cache_path, fill_cache
from sedkit.data.features import FeatureExtractor
from sedkit.errors import InputFileError

__all__ = [
    "CARD_FIELDS",
    "DATASET_CARD",
    "N_NAMED_MISSING",
    "FolderDataModule",
    "write_data_source",
    "write_tsv",
]

#: Written by the embedded benchmark generators at the root of their trees.
DATASET_CARD = "dataset_card.json"
#: Fields of the dataset card copied into the run's ``data_source.json``.
CARD_FIELDS = ("name", "generator", "generator_version", "preset", "seed", "sample_rate")
#: How many missing files a warning names before "and N more".
N_NAMED_MISSING = 5


class _Clip(Protocol):
    filename: str
    path: Path


ClipT = TypeVar("ClipT", bound=_Clip)


def write_tsv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """A tab-separated file with a header line (the run records: clip lists, ground truth)."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def write_data_source(path: Path, source: dict[str, Any]) -> None:
    """Record where the data came from; a resumed run keeps the fact that its first attempt
    synthesized the data."""
    if path.is_file():
        try:
            before = json.loads(path.read_text())
        except ValueError:
            before = {}
        if before.get("root") == source["root"] and before.get("synthesized_by_this_run"):
            source = {**source, "synthesized_by_this_run": True}
    path.write_text(json.dumps(source, indent=2, sort_keys=True) + "\n")


class FolderDataModule(DataModule):
    """A DataModule reading clips below ``params.root`` (see the module docstring)."""

    #: Name of the embedded benchmark (``sedkit synth NAME``), used in messages.
    benchmark_name: ClassVar[str] = "data"
    #: How messages call the embedded benchmark and the real data it stands in for.
    benchmark_title: ClassVar[str | None] = None  # None: benchmark_name
    real_dataset: ClassVar[str] = "the real dataset"
    #: What ``root`` should point at, in the message for a missing root.
    root_description: ClassVar[str] = "it"

    def __init__(self, params: Any, context: BuildContext):
        super().__init__(params, context)
        self.classes = list(params.classes)
        self.clip_duration_s = float(params.clip_duration_s)
        self.root = (Path.cwd() / Path(params.root).expanduser()).resolve()
        self.log = context.log if context.log is not None else logging.getLogger("sedkit.data")
        self._augment_key: tuple[int, int] | None = None
        self._augment_calls = 0

    # ------------------------------------------------------------------------------ paths
    def path(self, relative: str) -> Path:
        """A recipe path: absolute as given, else below ``root``."""
        return self.root / Path(relative).expanduser()

    def _root_is_empty(self) -> bool:
        return not self.root.is_dir() or not any(self.root.iterdir())

    # ------------------------------------------------------------------------------ setup
    def _ensure_root(self) -> dict[str, Any]:
        """Make sure ``root`` holds data (synthesizing it when asked) and describe its source."""
        p = self.params
        synthesized_now = False
        if self._root_is_empty():
            name = self.benchmark_name
            if not p.synthesize_if_missing or self.synthesize is None:
                hint = (
                    f", build the embedded benchmark with `sedkit synth {name} {self.root}`, or "
                    "set data.params.synthesize_if_missing: true"
                    if self.synthesize is not None
                    else ""
                )
                raise InputFileError(
                    self.root,
                    "data folder is missing or empty; point data.params.root at "
                    f"{self.root_description}{hint}",
                )
            self.log.warning(
                "data: %s is missing or empty: synthesizing the embedded %s benchmark there "
                "(preset %r, seed %d); results are NOT comparable with %s",
                self.root,
                self.benchmark_title or name,
                p.synth_preset,
                p.synth_seed,
                self.real_dataset,
            )
            self.synthesize(self.root, preset=p.synth_preset, seed=p.synth_seed, log=self.log)
            synthesized_now = True
        source: dict[str, Any] = {"root": str(self.root), "source": "existing"}
        card_path = self.root / DATASET_CARD
        if card_path.is_file():
            # A tree built by the embedded generator, now or by an earlier run (or a resume).
            try:
                card = json.loads(card_path.read_text())
            except (OSError, ValueError) as exc:
                raise InputFileError(card_path, f"unreadable dataset card: {exc}") from exc
            source.update(source="synthesized", dataset_card=str(card_path))
            source.update({k: card.get(k) for k in CARD_FIELDS})
        elif synthesized_now:
            source.update(source="synthesized", preset=p.synth_preset, seed=p.synth_seed)
        source["synthesized_by_this_run"] = synthesized_now
        return source

    def _drop_missing_audio(
        self, clips: dict[str, list[ClipT]]
    ) -> tuple[dict[str, list[ClipT]], dict[str, list[ClipT]]]:
        """``(kept, missing)``: the clips of each subset whose audio file exists, and the
        others, named in a warning (``missing_audio: skip``) or an InputFileError (``error``)."""
        kept: dict[str, list[ClipT]] = {}
        missing: dict[str, list[ClipT]] = {}
        for name, subset in clips.items():
            gone = [c for c in subset if not c.path.is_file()]
            kept[name] = subset
            if not gone:
                continue
            missing[name] = gone
            named = ", ".join(str(c.path) for c in gone[:N_NAMED_MISSING])
            more = len(gone) - N_NAMED_MISSING
            text = f"{len(gone)} of {len(subset)} {name} audio files are missing: {named}"
            text += f" and {more} more" if more > 0 else ""
            if self.params.missing_audio == "error":
                raise InputFileError(
                    gone[0].path.parent,
                    text + " (set data.params.missing_audio: skip to go on without them)",
                )
            self.log.warning("data: %s; skipping them", text)
            gone_ids = {id(c) for c in gone}
            kept[name] = [c for c in subset if id(c) not in gone_ids]
        return kept, missing

    def _write_run_records(
        self, run_dir: Path, source: dict[str, Any], missing: dict[str, list[ClipT]]
    ) -> None:
        """``data_source.json`` and, when clips were skipped, ``clips_missing.tsv``."""
        write_data_source(run_dir / "data_source.json", source)
        if missing:
            write_tsv(
                run_dir / "clips_missing.tsv",
                ["subset", "filename", "path"],
                ([name, c.filename, str(c.path)] for name, clips in missing.items() for c in clips),
            )

    def _cached_features(
        self, name: str, clips: Sequence[ClipT], extractor: FeatureExtractor, n_samples: int
    ) -> CachedFeatures:
        """Un-normalised features of ``clips`` from the cache in ``cache_dir`` (default
        ``<root>/.sedkit_cache``), computed on the extractor's device when not there yet."""
        p = self.params
        cache_dir = (
            self.path(p.cache_dir) if p.cache_dir is not None else self.root / ".sedkit_cache"
        )
        key = f"{extractor.cache_key()}-{n_samples}"
        path = cache_path(cache_dir, key, name, audio_fingerprint([c.path for c in clips]))
        if not path.is_file():
            self.log.info("data: caching features of %d %s clips in %s", len(clips), name, path)
            shape = (len(clips), extractor.params.n_mels, extractor.n_frames(n_samples))
            loader = DataLoader(
                AudioOnlyDataset(clips, extractor.params.sample_rate, n_samples),
                batch_size=32,
                num_workers=p.num_workers,
                collate_fn=AudioOnlyDataset.collate,
            )
            chunks = spectrogram_chunks(loader, extractor, extractor.band_mean.device)
            fill_cache(path, shape, chunks, dtype=p.cache_dtype)
        return CachedFeatures(path)

    # ------------------------------------------------------------------------------ loaders
    def _loader(
        self,
        dataset: Dataset,
        batch_sampler: Iterable[list[Any]],
        collate_fn: Callable[[list[Any]], Any],
        *,
        epoch: int | None = None,
    ) -> BatchLoader:
        """A loader of ``dataset``; with ``epoch`` (training) each batch yielded sets the key
        that seeds :meth:`_augment_generator`."""

        def remember(index: int) -> None:
            self._augment_key = (epoch, index)

        return BatchLoader(
            dataset,
            batch_sampler,
            collate_fn,
            num_workers=self.params.num_workers,
            pin_memory=self.params.pin_memory,
            on_batch=remember if epoch is not None else None,
        )

    def _augment_generator(self, device: torch.device) -> torch.Generator:
        """The generator of one augmentation call: seeded by ``(seed, epoch, batch index)``
        of the training batch most recently yielded, so a resumed run repeats the draws;
        outside training iteration still deterministic per call count."""
        if self._augment_key is not None:
            parts = (self.context.seed, *self._augment_key)
        else:
            self._augment_calls += 1
            parts = (self.context.seed, -1, self._augment_calls)
        return make_generator(device, *parts)
