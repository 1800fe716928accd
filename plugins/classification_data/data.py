"""Classification datasets: ``scenes`` (TUT2017-like), ``instruments`` (NSynth-like) and
``scenes3`` (TAU Urban Acoustic Scenes 2020 3Class).

All three are :class:`.datasets.ClassificationData` with their own defaults; each can build
its embedded benchmark (``sedkit synth scenes|instruments|scenes3 OUT_DIR``).

``scenes3`` reads the TAU 2020 3Class layout: ``evaluation_setup/fold1_train.csv`` and
``fold1_evaluate.csv`` (tab-separated, header ``filename scene_label``), filenames like
``audio/airport-barcelona-0-0-a.wav``; labels may be the fine scenes or the coarse classes.
Fine scenes map to indoor / outdoor / transportation through ``label_map``. The fine scene and
the city of a clip (for block mixing) come from ``meta.csv`` (``filename scene_label
identifier source_label``, identifier ``<city>-<location>``) when it lists the clip, else from
the file name (``<scene>-<city>-...``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sedkit import hookimpl
from sedkit.errors import InputFileError, UserError
from sedkit_plugins.classification_data.classes import (
    INSTRUMENT_FAMILIES,
    SCENE_CLASSES,
    SCENES3_CLASSES,
    TAU_SCENE_TO_CLASS,
)
from sedkit_plugins.classification_data.datasets import (
    ClassificationData,
    ClassificationParams,
    LabeledClip,
    read_clip_list,
)

__all__ = [
    "InstrumentsData",
    "InstrumentsParams",
    "Scenes3Data",
    "Scenes3Params",
    "ScenesData",
    "ScenesParams",
]


def _synthesizer(name: str):
    """``synthesize(out_dir, *, preset, seed, log)`` for one embedded benchmark, importing the
    generator only when called."""

    def synthesize(
        out_dir: str | Path,
        *,
        preset: str = "default",
        seed: int = 0,
        log: Any = None,
        source: str | None = None,
        fetch: bool = False,
    ) -> Path:
        sources = ("procedural", "sampled") if name == "instruments" else ("procedural",)
        if source not in (None, *sources):
            raise UserError(
                f"synth {name}: unknown --source {source!r}; choose from {', '.join(sources)}"
            )
        if source == "sampled":
            from sedkit_plugins.classification_data import sampled_instruments

            return sampled_instruments.synthesize(
                out_dir, preset=preset, seed=seed, fetch=fetch, log=log
            )
        if fetch:
            raise UserError(f"synth {name}: --fetch needs a --source that downloads sounds")
        from sedkit_plugins.classification_data import synth as classification_synth

        return classification_synth.synthesize(name, out_dir, preset=preset, seed=seed, log=log)

    synthesize.__doc__ = f"Build the embedded {name} benchmark in ``out_dir``; returns its card."
    return synthesize


@dataclass
class ScenesParams(ClassificationParams):
    """The ``scenes`` dataset (TUT Acoustic Scenes 2017 layout, or the embedded benchmark).

    Defaults read the embedded benchmark (``evaluation_setup/train.tsv`` / ``test.tsv`` with a
    header). For TUT2017: ``classes`` the 15 scenes, ``train_list:
    evaluation_setup/fold1_train.txt``, ``test_list: evaluation_setup/fold1_evaluate.txt`` (or
    the evaluation set's list), ``list_columns: [filename, label]``, ``clip_duration_s: 10``.
    """

    root: str = "data/scenes"
    classes: list[str] = field(default_factory=lambda: list(SCENE_CLASSES))
    clip_duration_s: float = 3.0


class ScenesData(ClassificationData):
    """Acoustic scene classification (TUT2017-like lists)."""

    Params = ScenesParams
    benchmark_name = "scenes"
    synthesize = staticmethod(_synthesizer("scenes"))


@dataclass
class InstrumentsParams(ClassificationParams):
    """The ``instruments`` dataset (NSynth-like instrument families; clip lists as ``scenes``).

    For NSynth, write lists ``filename instrument_family_str`` from its JSON metadata and set
    ``classes`` to its 11 families and ``clip_duration_s: 4``.
    """

    root: str = "data/instruments"
    classes: list[str] = field(default_factory=lambda: list(INSTRUMENT_FAMILIES))
    clip_duration_s: float = 2.0


class InstrumentsData(ClassificationData):
    """Instrument family classification of single notes."""

    Params = InstrumentsParams
    benchmark_name = "instruments"
    synthesize = staticmethod(_synthesizer("instruments"))


@dataclass
class Scenes3Params(ClassificationParams):
    """The ``scenes3`` dataset: TAU Urban Acoustic Scenes 2020 3Class (DCASE 2020 task 1B).

    ``meta_csv`` (null: none) supplies fine scenes and cities; ``block_mixing_by: label``
    mixes clips of one coarse class (the paper's choice), ``fine`` of one fine scene.
    """

    root: str = "data/scenes3"
    train_list: str = "evaluation_setup/fold1_train.csv"
    test_list: str | None = "evaluation_setup/fold1_evaluate.csv"
    list_columns: list[str] = field(default_factory=lambda: ["filename", "label"])
    classes: list[str] = field(default_factory=lambda: list(SCENES3_CLASSES))
    label_map: dict[str, str] = field(default_factory=lambda: dict(TAU_SCENE_TO_CLASS))
    meta_csv: str | None = "meta.csv"
    clip_duration_s: float = 10.0


class Scenes3Data(ClassificationData):
    """Three-class urban scenes (indoor, outdoor, transportation) with block mixing by city."""

    Params = Scenes3Params
    benchmark_name = "scenes3"
    synthesize = staticmethod(_synthesizer("scenes3"))

    def annotate(self, clips: list[LabeledClip]) -> None:
        """Fine scene and city of each clip: from the list, ``meta.csv`` or the file name."""
        p = self.params
        meta: dict[str, tuple[str | None, str | None]] = {}
        if p.meta_csv is not None and self.path(p.meta_csv).is_file():
            path = self.path(p.meta_csv)
            for row in read_clip_list(path, columns=["filename", "label", "location"]):
                known = row.label in p.label_map or row.label in self.classes
                if row.label is not None and not known:
                    raise InputFileError(
                        path,
                        f"scene {row.label!r} is neither a fine scene of label_map nor a "
                        f"class {self.classes}",
                        line=row.line,
                    )
                meta[row.filename] = (row.label, row.location)
        for clip in clips:
            parts = Path(clip.filename).stem.split("-")
            listed_scene, identifier = meta.get(clip.filename, (None, None))
            if clip.raw_label in p.label_map:
                clip.fine = clip.raw_label
            elif listed_scene in p.label_map:
                clip.fine = listed_scene
            elif parts[0] in p.label_map:
                clip.fine = parts[0]
            if not clip.location:
                if identifier:
                    clip.location = identifier.split("-")[0]
                elif len(parts) > 1:
                    clip.location = parts[1]


@hookimpl
def sedkit_register_datasets(register) -> None:
    register("scenes", ScenesData)
    register("instruments", InstrumentsData)
    register("scenes3", Scenes3Data)
