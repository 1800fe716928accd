"""The DESED-like benchmark's writer: DESED 2019's metadata files and the dataset card."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

import sedkit
from sedkit.compat import import_scaper
from sedkit.data.synthesis import (
    config_for_card,
    write_lines,
)
from sedkit_plugins.desed.config import CLASSES, GENERATOR_VERSION, LONG_CLASSES, SynthConfig
from sedkit_plugins.desed.plan import _POOLS, _SUBSETS


# --------------------------------------------------------------------------------------------
# Writer
# --------------------------------------------------------------------------------------------
def _strong_rows(clips: list[tuple[str, list[tuple[float, float, str]]]]) -> list[str]:
    """DESED strong rows; a clip without events is a row with empty onset, offset and label."""
    rows = ["filename\tonset\toffset\tevent_label"]
    for name, events in clips:
        rows += [f"{name}\t{on:.3f}\t{off:.3f}\t{label}" for on, off, label in events] or [
            f"{name}\t\t\t"
        ]
    return rows


def _write_metadata(
    root: Path, cfg: SynthConfig, clips: dict[str, list[tuple[str, list[tuple[float, float, str]]]]]
) -> None:
    def durations(name: str) -> list[str]:
        return ["filename\tduration"] + [
            f"{clip}\t{cfg.clip_duration_s:.3f}" for clip, _ in clips[name]
        ]

    meta = root / "metadata"
    write_lines(meta / "train" / "synthetic.tsv", _strong_rows(clips["synthetic"]))
    write_lines(
        meta / "train" / "weak.tsv",
        ["filename\tevent_labels"]
        + [f"{name}\t{','.join(sorted({e[2] for e in ev}))}" for name, ev in clips["weak"]],
    )
    write_lines(
        meta / "train" / "unlabel_in_domain.tsv",
        ["filename"] + [name for name, _ in clips["unlabel_in_domain"]],
    )
    write_lines(meta / "validation" / "validation.tsv", _strong_rows(clips["validation"]))
    write_lines(meta / "validation" / "validation_durations.tsv", durations("validation"))
    write_lines(meta / "eval" / "public.tsv", _strong_rows(clips["eval"]))
    write_lines(meta / "eval" / "public_durations.tsv", durations("eval"))
    write_lines(meta / "eval" / "synthetic.tsv", _strong_rows(clips["eval_synthetic"]))
    write_lines(meta / "eval" / "synthetic_durations.tsv", durations("eval_synthetic"))
    write_lines(meta / "hidden" / "weak.tsv", _strong_rows(clips["weak"]))
    write_lines(meta / "hidden" / "unlabel_in_domain.tsv", _strong_rows(clips["unlabel_in_domain"]))


_METADATA_FILES = {
    "synthetic": "metadata/train/synthetic.tsv",
    "weak": "metadata/train/weak.tsv",
    "unlabel_in_domain": "metadata/train/unlabel_in_domain.tsv",
    "validation": "metadata/validation/validation.tsv",
    "eval": "metadata/eval/public.tsv",
    "eval_synthetic": "metadata/eval/synthetic.tsv",
}
_HIDDEN_FILES = {
    "weak": "metadata/hidden/weak.tsv",
    "unlabel_in_domain": "metadata/hidden/unlabel_in_domain.tsv",
}


def _card(
    cfg: SynthConfig,
    preset: str,
    seed: int,
    clips: dict[str, list[tuple[str, list[tuple[float, float, str]]]]],
) -> dict:
    scaper = import_scaper()
    subsets = {}
    for subset in _SUBSETS:
        events = [e for _, ev in clips[subset.name] for e in ev]
        per_class = {c: [off - on for on, off, lab in events if lab == c] for c in CLASSES}
        n_samples = int(round(cfg.clip_duration_s * cfg.sample_rate))
        subsets[subset.name] = {
            "audio_dir": subset.audio_dir,
            "metadata": _METADATA_FILES[subset.name],
            "hidden_strong_labels": _HIDDEN_FILES.get(subset.name),
            "labels_visible": subset.labels,
            "domain": getattr(cfg, dict(_POOLS)[subset.pool]).name,
            "source_pool": subset.pool,
            "n_clips": len(clips[subset.name]),
            "n_clips_without_events": sum(1 for _, ev in clips[subset.name] if not ev),
            "n_events": len(events),
            "events_per_class": {c: len(d) for c, d in per_class.items()},
            "mean_event_duration_s": {
                c: round(float(np.mean(d)), 3) if d else None for c, d in per_class.items()
            },
            "total_duration_s": round(len(clips[subset.name]) * cfg.clip_duration_s, 3),
            "audio_bytes": len(clips[subset.name]) * (44 + 2 * n_samples),
        }
    return {
        "name": "sedkit DESED-like synthetic benchmark",
        "generator": "sedkit_plugins.desed.synth",  # the public module, not this part of it
        "generator_version": GENERATOR_VERSION,
        "sedkit_version": sedkit.__version__,
        "scaper_version": scaper.__version__,
        "numpy_version": np.__version__,
        "preset": preset,
        "seed": seed,
        "classes": list(CLASSES),
        "long_classes": sorted(LONG_CLASSES),
        "sample_rate": cfg.sample_rate,
        "channels": 1,
        "sample_format": "PCM_16",
        "clip_duration_s": cfg.clip_duration_s,
        "subsets": subsets,
        "domain_shift": {
            "synthetic": dataclasses.asdict(cfg.synthetic),
            "real": dataclasses.asdict(cfg.real),
        },
        "config": config_for_card(cfg),
    }


def _card_markdown(card: dict) -> str:
    lines = [
        f"# {card['name']}",
        "",
        f"Generated by `{card['generator']}` version {card['generator_version']} "
        f"(sedkit {card['sedkit_version']}, scaper {card['scaper_version']}, "
        f"numpy {card['numpy_version']}), preset `{card['preset']}`, seed {card['seed']}.",
        "The same preset and seed give byte-identical files.",
        "",
        f"{card['sample_rate']} Hz mono 16-bit WAV clips of {card['clip_duration_s']} s. "
        f"Classes ({len(card['classes'])}): {', '.join(card['classes'])}. "
        f"Long stationary classes: {', '.join(card['long_classes'])}.",
        "",
        "## Subsets",
        "",
        "| subset | domain | labels | clips | clips without events | events | hours |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in card["subsets"].items():
        lines.append(
            f"| {name} (`{s['audio_dir']}`) | {s['domain']} | {s['labels_visible']} | "
            f"{s['n_clips']} | {s['n_clips_without_events']} | {s['n_events']} | "
            f"{s['total_duration_s'] / 3600:.3f} |"
        )
    lines += [
        "",
        "Hidden true strong labels of the weak and unlabeled clips are in `metadata/hidden/`; "
        "only pseudo-label quality metrics may read them.",
        "",
        "## Events per class",
        "",
        "| class | " + " | ".join(card["subsets"]) + " |",
        "|---|" + "---|" * len(card["subsets"]),
    ]
    for c in card["classes"]:
        cells = [
            f"{s['events_per_class'][c]} ({s['mean_event_duration_s'][c]:.2f} s)"
            if s["events_per_class"][c]
            else "0"
            for s in card["subsets"].values()
        ]
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Cells: number of events (mean duration).",
        "",
        "## Domain shift",
        "",
        "The synthetic domain is clean; the real domain (weak, unlabeled, validation, eval) uses "
        "other backgrounds, shifted source parameters, room reverberation (labels cover the "
        "audible tail), device colouring, other levels, the class prior of DESED's validation set "
        "and unlabeled non-target sounds. Settings:",
        "",
        "```json",
        json.dumps(card["domain_shift"], indent=2),
        "```",
        "",
    ]
    return "\n".join(lines)
