"""Data primitives shared by dataset plugins: audio reading, features, labels, batches and
loaders, augmentation, the feature cache, and :class:`FolderDataModule` (the base of datasets
read from a root folder)."""

from sedkit.data.audio import audio_duration, n_clip_samples, pad_or_crop, read_audio
from sedkit.data.augment import AugmentParams, augment_batch, make_generator, two_views
from sedkit.data.batching import (
    BatchCollator,
    BatchLoader,
    Example,
    FixedBatches,
    MultiStreamBatchSampler,
    stream_counts,
)
from sedkit.data.features import FeatureExtractor, FeatureParams
from sedkit.data.folder import FolderDataModule
from sedkit.data.labels import (
    DESED_CLASSES,
    Event,
    LabelEncoder,
    read_durations_tsv,
    read_strong_tsv,
    read_unlabeled_tsv,
    read_weak_tsv,
)

__all__ = [
    "DESED_CLASSES",
    "AugmentParams",
    "BatchCollator",
    "BatchLoader",
    "Event",
    "Example",
    "FeatureExtractor",
    "FeatureParams",
    "FixedBatches",
    "FolderDataModule",
    "LabelEncoder",
    "MultiStreamBatchSampler",
    "audio_duration",
    "augment_batch",
    "make_generator",
    "n_clip_samples",
    "pad_or_crop",
    "read_audio",
    "read_durations_tsv",
    "read_strong_tsv",
    "read_unlabeled_tsv",
    "read_weak_tsv",
    "stream_counts",
    "two_views",
]
