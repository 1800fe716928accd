"""The classification benchmarks' configuration: cities, the three benchmarks' configs and
their presets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Bumped whenever a change alters the generated files for a given seed and preset.
GENERATOR_VERSION = "1.0"

TAU_CITIES: tuple[str, ...] = (
    "barcelona",
    "helsinki",
    "lisbon",
    "london",
    "lyon",
    "milan",
    "paris",
    "prague",
    "stockholm",
    "vienna",
)

Log = Any  # a logging.Logger, a callable taking one message, or None


# --------------------------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SceneConfig:
    """Size of a ``scenes`` build: clips per location, locations per class and split."""

    sample_rate: int = 16000
    clip_duration_s: float = 3.0
    train_locations: int = 10
    test_locations: int = 4
    clips_per_train_location: int = 10
    clips_per_test_location: int = 8
    #: Worker processes; the files are identical for any value.
    n_workers: int = 2


@dataclass(frozen=True)
class InstrumentConfig:
    """Size of an ``instruments`` build: notes per instrument, instruments per family."""

    sample_rate: int = 16000
    clip_duration_s: float = 2.0
    train_instruments: int = 10
    test_instruments: int = 4
    notes_per_train_instrument: int = 12
    notes_per_test_instrument: int = 8
    #: Worker processes; the files are identical for any value.
    n_workers: int = 2


@dataclass(frozen=True)
class Scenes3Config:
    """Size of a ``scenes3`` build: cities, locations per (scene, city) and clips per location.

    The first ``train_locations_per_city`` locations of each (scene, city) go to the fold-1
    training list, the others to the evaluation list (TAU keeps locations on one side).
    """

    sample_rate: int = 48000
    clip_duration_s: float = 10.0
    n_cities: int = 3
    locations_per_city: int = 3
    train_locations_per_city: int = 2
    clips_per_location: int = 2
    #: Worker processes; the files are identical for any value.
    n_workers: int = 2

    def __post_init__(self) -> None:
        if not 1 <= self.n_cities <= len(TAU_CITIES):
            raise ValueError(f"n_cities must be in 1..{len(TAU_CITIES)}")
        if not 1 <= self.train_locations_per_city < self.locations_per_city:
            raise ValueError("need 1 <= train_locations_per_city < locations_per_city")


SCENES_PRESETS: dict[str, SceneConfig] = {
    "tiny": SceneConfig(
        clip_duration_s=2.0,
        train_locations=2,
        test_locations=1,
        clips_per_train_location=2,
        clips_per_test_location=1,
        n_workers=1,
    ),
    "default": SceneConfig(),
}
INSTRUMENTS_PRESETS: dict[str, InstrumentConfig] = {
    "tiny": InstrumentConfig(
        clip_duration_s=1.0,
        train_instruments=2,
        test_instruments=1,
        notes_per_train_instrument=2,
        notes_per_test_instrument=1,
        n_workers=1,
    ),
    "default": InstrumentConfig(),
}
SCENES3_PRESETS: dict[str, Scenes3Config] = {
    # 2 s clips keep the tests fast; block mixing then uses shorter segments.
    "tiny": Scenes3Config(
        clip_duration_s=2.0,
        n_cities=2,
        locations_per_city=2,
        train_locations_per_city=1,
        clips_per_location=1,
        n_workers=1,
    ),
    "default": Scenes3Config(),
}
