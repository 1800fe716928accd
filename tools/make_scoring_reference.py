"""Build the stored reference figures of score-based evaluation with sed_scores_eval 0.0.4.

sed_scores_eval (Ebbers et al., ICASSP 2022; the PSDS of the DCASE task 4 baselines since 2023)
is sedkit's reference for scores computed from frame score tables. Its Cython code does not
build against numpy 2, so it lives in its own venv (see ../shared/ENVIRONMENT.md):

    python3 -m venv /tmp/sse_ref
    /tmp/sse_ref/bin/pip install "numpy<2" "pandas<2.3" "setuptools<81" Cython wheel scipy \\
        sed_eval lazy_dataset einops
    /tmp/sse_ref/bin/pip install --no-build-isolation --no-deps sed-scores-eval==0.0.4

(``--build`` runs exactly these commands when the venv is missing.) Then, from the repository
root, with sedkit's own venv:

    .venv/bin/python tools/make_scoring_reference.py --venv /tmp/sse_ref [--build]

writes one folder per case into ``tests/scoring/reference_scores/``: ``scores/<clip>.tsv``,
``gt.tsv``, ``durations.tsv`` (generated here with a fixed seed) and ``expected.json`` (the
figures of sed_scores_eval, computed by this same file run under the reference venv with
``--compute CASE_DIR``). ``tests/scoring/test_score_based_reference.py`` compares sedkit with
them to 1e-6. Extra cases from score tables written elsewhere (e.g. a sedkit run's
``scores/`` folder) are added with ``--from-run SCORES_DIR GT.tsv DURATIONS.tsv NAME``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests/scoring/reference_scores"

#: PSDS scenarios stored (name, dtc, gtc, cttc or None, alpha_ct, alpha_st, max_efpr).
SCENARIOS = [
    ("psds1", 0.7, 0.7, None, 0.0, 1.0, 100.0),
    ("psds2", 0.1, 0.1, 0.3, 0.5, 1.0, 100.0),
    ("psds_custom", 0.5, 0.4, 0.2, 1.0, 0.5, 50.0),
]
THRESHOLD = 0.5
COLLARS = dict(onset_collar=0.2, offset_collar=0.2, offset_collar_rate=0.2)
SEGMENT_LENGTH = 1.0
INTERSECTION_F1 = dict(dtc_threshold=0.5, gtc_threshold=0.5)


# ----------------------------------------------------------------------------------------------
# Case generation (sedkit's venv or any numpy)
# ----------------------------------------------------------------------------------------------
def _write_case(
    folder: Path,
    classes: list[str],
    clips: dict[str, tuple[float, np.ndarray]],
    events: list[tuple[str, float, float, str]],
    empty_clips: list[str],
    hop: float,
) -> None:
    """Write score tables (clip -> (duration, scores (frames, classes))), ground truth and
    durations. Scores are written with 4 decimals, which also creates ties."""
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "scores").mkdir(parents=True)
    for clip, (_, scores) in clips.items():
        edges = np.round(np.arange(len(scores) + 1) * hop, 6)
        lines = ["\t".join(["onset", "offset", *classes])]
        for i, row in enumerate(scores):
            lines.append(
                "\t".join([f"{edges[i]:.6f}", f"{edges[i + 1]:.6f}"] + [f"{v:.4f}" for v in row])
            )
        (folder / "scores" / f"{clip}.tsv").write_text("\n".join(lines) + "\n")
    gt = ["filename\tonset\toffset\tevent_label"]
    gt += [f"{c}.wav\t{on:.6f}\t{off:.6f}\t{label}" for c, on, off, label in events]
    gt += [f"{c}.wav\t\t\t" for c in empty_clips]
    (folder / "gt.tsv").write_text("\n".join(gt) + "\n")
    dur = ["filename\tduration"] + [f"{c}.wav\t{d:.6f}" for c, (d, _) in clips.items()]
    (folder / "durations.tsv").write_text("\n".join(dur) + "\n")


def _smooth_scores(rng: np.random.Generator, n_frames: int, n_classes: int) -> np.ndarray:
    raw = rng.random((n_frames + 4, n_classes))
    kernel = np.ones(5) / 5
    return np.stack([np.convolve(raw[:, c], kernel, "valid") for c in range(n_classes)], 1)


def _random_events(
    rng: np.random.Generator, clip: str, duration: float, classes: list[str], hop: float
) -> list[tuple[str, float, float, str]]:
    events = []
    for label in classes:
        t = 0.0
        for _ in range(int(rng.integers(0, 3))):
            on = t + float(rng.uniform(0.0, duration / 3))
            off = on + float(rng.uniform(hop, duration / 3))
            if off > duration:
                break
            events.append((clip, round(on, 3), round(off, 3), label))
            t = off + 0.01
    return events


def _events_to_scores(
    rng: np.random.Generator,
    events: list[tuple[str, float, float, str]],
    clip: str,
    classes: list[str],
    n_frames: int,
    hop: float,
) -> np.ndarray:
    """Noisy scores that follow the clip's events, so that detections are partly right."""
    scores = 0.6 * _smooth_scores(rng, n_frames, len(classes))
    centres = (np.arange(n_frames) + 0.5) * hop
    for c, on, off, label in events:
        if c != clip:
            continue
        k = classes.index(label)
        shift = float(rng.normal(0.0, 0.15))
        inside = (centres >= on + shift) & (centres < off + shift)
        scores[inside, k] += float(rng.uniform(0.15, 0.5))
    return np.clip(scores, 0.0, 1.0)


def make_random(folder: Path, seed: int = 0) -> None:
    """Random scores that loosely follow random events: 30 clips, 4 classes."""
    rng = np.random.default_rng(seed)
    classes = ["Alarm", "Dog", "Speech", "Water"]
    hop, clips, events, empty = 0.128, {}, [], []
    for i in range(30):
        clip = f"clip_{i:02d}"
        duration = float(rng.choice([5.0, 7.04, 10.0]))
        n_frames = int(np.ceil(duration / hop))
        ev = _random_events(rng, clip, duration, classes, hop)
        events += ev
        if not ev:
            empty.append(clip)
        clips[clip] = (duration, _events_to_scores(rng, ev, clip, classes, n_frames, hop))
    for label in classes:  # every class needs a reference event
        if not any(e[3] == label for e in events):
            events.append(("clip_00", 0.5, 1.5, label))
            empty = [c for c in empty if c != "clip_00"]
    _write_case(folder, classes, clips, events, empty, hop)


def make_edge_cases(folder: Path, seed: int = 1) -> None:
    """Empty clips, events touching the clip ends, a class never present in the ground truth,
    ties in scores (scores on a 0.1 grid), one-frame events and one-frame detections."""
    rng = np.random.default_rng(seed)
    classes = ["Bell", "Cat", "Never", "Tap"]  # "Never" has no reference event
    hop, n_frames, duration = 0.25, 40, 10.0
    clips, events = {}, []
    # Clips without any event: one silent (all scores 0), one with false alarms.
    clips["empty_silent"] = (duration, np.zeros((n_frames, 4)))
    noisy = np.zeros((n_frames, 4))
    noisy[10:14, 0] = 0.9
    noisy[30, 3] = 0.6
    clips["empty_noisy"] = (duration, noisy)
    # Events touching the clip start and end, detected right up to the ends.
    events += [("ends", 0.0, 2.0, "Bell"), ("ends", 8.5, 10.0, "Bell"), ("ends", 0.0, 10.0, "Tap")]
    s = np.zeros((n_frames, 4))
    s[:8, 0], s[34:, 0], s[:, 3] = 0.8, 0.7, 0.55
    clips["ends"] = (duration, s)
    # One-frame events and one-frame detections (a peak of one frame).
    events += [
        ("single", 2.5, 2.75, "Cat"),
        ("single", 6.0, 6.25, "Cat"),
        ("single", 7.0, 9.0, "Tap"),
    ]
    s = np.zeros((n_frames, 4))
    s[10, 1], s[24, 1], s[25, 1] = 0.9, 0.5, 0.5
    s[28:36, 3] = [0.2, 0.6, 0.6, 0.3, 0.6, 0.6, 0.6, 0.2]
    s[5, 2] = 0.95  # a detection of the class that is never present
    clips["single"] = (duration, s)
    # Ties: scores on a 0.1 grid, so many frames share one score.
    for i in range(6):
        clip = f"ties_{i}"
        ev = _random_events(rng, clip, duration, ["Bell", "Cat", "Tap"], hop)
        events += ev
        scores = _events_to_scores(rng, ev, clip, classes, n_frames, hop)
        clips[clip] = (duration, np.round(scores, 1))
    # Merging and splitting runs near events (collars and cross-triggers).
    events += [("merge", 1.0, 3.0, "Bell"), ("merge", 2.0, 4.0, "Cat"), ("merge", 3.2, 3.4, "Bell")]
    s = np.zeros((n_frames, 4))
    s[4:16, 0] = [0.9, 0.8, 0.4, 0.7, 0.9, 0.3, 0.2, 0.2, 0.6, 0.9, 0.6, 0.1]
    s[8:16, 1] = [0.3, 0.5, 0.9, 0.5, 0.3, 0.8, 0.8, 0.3]
    clips["merge"] = (duration, s)
    _write_case(folder, classes, clips, events, ["empty_silent", "empty_noisy"], hop)


def make_short_events(folder: Path, seed: int = 2) -> None:
    """Many short events close together and spiky scores: one detection within the collars
    of two events, two detections within the collars of one (the matching decides)."""
    rng = np.random.default_rng(seed)
    classes = ["Click", "Knock"]
    hop, n_frames, duration = 0.05, 100, 5.0
    clips, events = {}, []
    for i in range(12):
        clip = f"short_{i:02d}"
        t = float(rng.uniform(0.0, 0.3))
        while t < duration - 0.3:
            label = classes[int(rng.integers(0, 2))]
            length = float(rng.choice([0.05, 0.1, 0.15]))
            events.append((clip, round(t, 2), round(t + length, 2), label))
            t += length + float(rng.choice([0.05, 0.1, 0.2, 0.6]))
        s = 0.3 * rng.random((n_frames, 2))
        centres = (np.arange(n_frames) + 0.5) * hop
        for c, on, off, label in events:
            if c == clip:
                near = (centres >= on - 0.1) & (centres < off + 0.1)
                s[near, classes.index(label)] += rng.uniform(0.2, 0.7, near.sum())
        clips[clip] = (duration, np.clip(s, 0, 1))
    _write_case(folder, classes, clips, events, [], hop)


# ----------------------------------------------------------------------------------------------
# Reference figures (run under the sed_scores_eval venv)
# ----------------------------------------------------------------------------------------------
def compute(case: Path) -> dict:
    """sed_scores_eval's figures for one case folder."""
    import pandas as pd
    from sed_scores_eval import collar_based, intersection_based, segment_based
    from sed_scores_eval.base_modules.io import (
        read_audio_durations,
        read_ground_truth_events,
        read_sed_scores,
    )

    scores = read_sed_scores(case / "scores")
    gt = read_ground_truth_events(case / "gt.tsv")
    durations = read_audio_durations(case / "durations.tsv")
    for clip in scores:  # clips without events are in the ground truth as empty rows
        gt.setdefault(clip, [])
    present = sorted({e[2] for events in gt.values() for e in events})
    first = next(iter(scores.values()))
    classes = [c for c in first.columns[2:] if c in present]
    if len(classes) < len(first.columns) - 2:
        # sed_scores_eval refuses classes without a reference event: score without them.
        scores = {k: v[["onset", "offset", *classes]] for k, v in scores.items()}

    def plain(d: dict) -> dict:
        return {k: float(v) for k, v in d.items()}

    out: dict = {"classes": classes, "psds": {}}
    for name, dtc, gtc, cttc, alpha_ct, alpha_st, max_efpr in SCENARIOS:
        value, per_class, _, _ = intersection_based.psds(
            scores=scores,
            ground_truth=gt,
            audio_durations=durations,
            dtc_threshold=dtc,
            gtc_threshold=gtc,
            cttc_threshold=cttc,
            alpha_ct=alpha_ct,
            alpha_st=alpha_st,
            max_efpr=max_efpr,
        )
        out["psds"][name] = {"value": float(value), "classwise": plain(per_class)}
    f, p, r, _ = collar_based.fscore(scores, gt, THRESHOLD, **COLLARS)
    bf, bp, br, bt, _ = collar_based.best_fscore(scores, gt, **COLLARS)
    out["collar"] = {"f1": plain(f), "precision": plain(p), "recall": plain(r)}
    out["collar"].update({"best_f1": plain(bf), "best_threshold": plain(bt)})
    f, p, r, _ = segment_based.fscore(
        scores, gt, durations, THRESHOLD, segment_length=SEGMENT_LENGTH
    )
    bf, bp, br, bt, _ = segment_based.best_fscore(
        scores, gt, durations, segment_length=SEGMENT_LENGTH
    )
    out["segment"] = {"f1": plain(f), "precision": plain(p), "recall": plain(r)}
    out["segment"].update({"best_f1": plain(bf), "best_threshold": plain(bt)})
    f, p, r, _ = intersection_based.fscore(scores, gt, THRESHOLD, **INTERSECTION_F1)
    bf, bp, br, bt, _ = intersection_based.best_fscore(scores, gt, **INTERSECTION_F1)
    out["intersection"] = {"f1": plain(f), "precision": plain(p), "recall": plain(r)}
    out["intersection"].update({"best_f1": plain(bf), "best_threshold": plain(bt)})
    out["settings"] = {
        "scenarios": SCENARIOS,
        "threshold": THRESHOLD,
        "collars": COLLARS,
        "segment_length": SEGMENT_LENGTH,
        "intersection_f1": INTERSECTION_F1,
        "sed_scores_eval": _version("sed_scores_eval"),
        "numpy": np.__version__,
        "pandas": pd.__version__,
    }
    return out


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name.replace("_", "-"))


def build_venv(venv: Path) -> None:
    """Create the reference venv with the commands of the module docstring."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin/pip"), "install", "-q"]
    subprocess.run(
        pip
        + ["numpy<2", "pandas<2.3", "setuptools<81", "Cython", "wheel", "scipy", "sed_eval"]
        + ["lazy_dataset", "einops"],
        check=True,
    )
    subprocess.run(
        pip + ["--no-build-isolation", "--no-deps", "sed-scores-eval==0.0.4"], check=True
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=Path("/tmp/sse_ref"))
    parser.add_argument("--build", action="store_true", help="create the venv if missing")
    parser.add_argument("--compute", type=Path, metavar="CASE_DIR", help=argparse.SUPPRESS)
    parser.add_argument(
        "--from-run",
        nargs=4,
        metavar=("SCORES_DIR", "GT", "DURATIONS", "NAME"),
        help="add a case from existing score tables",
    )
    args = parser.parse_args()
    if args.compute:
        print(json.dumps(compute(args.compute), indent=1, sort_keys=True))
        return 0
    python = args.venv / "bin/python"
    if not python.exists():
        if not args.build:
            parser.error(f"{python} not found: pass --build to create the reference venv")
        build_venv(args.venv)
    cases = []
    if args.from_run:
        scores_dir, gt, durations, name = args.from_run
        folder = OUT / name
        if folder.exists():
            shutil.rmtree(folder)
        shutil.copytree(scores_dir, folder / "scores")
        shutil.copy(gt, folder / "gt.tsv")
        shutil.copy(durations, folder / "durations.tsv")
        cases.append(folder)
    else:
        for name, make in (
            ("random", make_random),
            ("edge_cases", make_edge_cases),
            ("short_events", make_short_events),
        ):
            make(OUT / name)
            cases.append(OUT / name)
    for folder in cases:
        result = subprocess.run(
            [str(python), __file__, "--compute", str(folder)],
            check=True,
            capture_output=True,
            text=True,
        )
        (folder / "expected.json").write_text(result.stdout)
        print(f"{folder.relative_to(ROOT)}: {len(list((folder / 'scores').iterdir()))} clips")
    return 0


if __name__ == "__main__":
    sys.exit(main())
