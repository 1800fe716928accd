"""``sedkit score``: score detections or frame scores against a ground truth, as a table or JSON.

    sedkit score --ref GT.tsv --scores DIR [--meta DURATIONS.tsv] [--threshold 0.5]
    sedkit score --ref GT.tsv --est PRED.tsv [--meta DURATIONS.tsv]
    sedkit score --ref GT.tsv --est DIR --meta DURATIONS.tsv [--threshold 0.5] [--plot-dir DIR]
                 [--overwrite]

``--scores``: a folder of frame score tables (one ``<clip>.tsv`` per clip, as ``sedkit run``
and ``sedkit predict`` write them and sed_scores_eval reads them). PSDS is exact, over all
thresholds (:mod:`sedkit.scoring.score_based`); collar-based (event), segment-based and
intersection-based F1 are given at ``--threshold`` and at each class's best threshold.

``--est``: thresholded detections (sed_eval, psds_eval). With a folder, every
``*.tsv``/``*.csv`` inside is one operating point whose decision threshold is read from its
name (``baseline_0.5.csv``); PSDS uses them all, the event- and segment-based scores use the
one at ``--threshold`` or, when there is none, the nearest (saying so). PSD-ROC images already
in ``--plot-dir`` are kept unless ``--overwrite`` is given.

Neither path imports torch or the plugins.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sedkit.command import Command
from sedkit.errors import InputFileError, UserError
from sedkit.scoring.io import CLASSES_FILE
from sedkit.scoring.sed import (
    PSDS1,
    PSDS2,
    PSDSParams,
    ScoringWarning,
    detection_files_by_threshold,
    metrics_to_json,
    score_sed,
)

_CUSTOM_PSDS_OPTIONS = {
    "dtc_threshold": "--psds-dtc",
    "gtc_threshold": "--psds-gtc",
    "cttc_threshold": "--psds-cttc",
    "alpha_ct": "--psds-alpha-ct",
    "alpha_st": "--psds-alpha-st",
    "max_efpr": "--psds-max-efpr",
}


def _num(value: Any) -> str:
    return "     -" if value is None or not math.isfinite(value) else f"{value:6.4f}"


def _classwise_table(classwise: dict[str, dict[str, float]], columns, width_each: int) -> list:
    """A blank line, a header and one row per class of the ``(key, heading)`` columns."""
    width = max(12, *(len(c) for c in classwise)) + 2
    lines = ["", f"{'class':<{width}}" + "".join(f"{h:>{width_each}}" for _, h in columns)]
    for label, values in classwise.items():
        cells = (f"{_num(values.get(k, math.nan)):>{width_each}}" for k, _ in columns)
        lines.append(f"{label:<{width}}" + "".join(cells))
    return lines


def format_metrics(metrics: dict[str, Any], scenarios: Sequence[PSDSParams] = ()) -> str:
    """A readable report of :func:`~sedkit.scoring.score_sed` results."""
    num = _num

    lines = [
        f"{'':24}{'F1 macro':>10}{'F1 micro':>10}{'ER micro':>10}",
        f"{'event-based (sed_eval)':24}{num(metrics['event_f1_macro']):>10}"
        f"{num(metrics['event_f1_micro']):>10}{num(metrics['event_er_micro']):>10}",
        f"{'segment-based, 1 s':24}{num(metrics['segment_f1_macro']):>10}"
        f"{num(metrics['segment_f1_micro']):>10}{num(metrics['segment_er_micro']):>10}",
    ]
    if "intersection_f1_macro" in metrics:
        lines.append(f"{'intersection (psds_eval)':24}{num(metrics['intersection_f1_macro']):>10}")
    for params in scenarios:
        if params.name in metrics:
            lines.append(
                f"{params.name.upper():24}{num(metrics[params.name]):>10}  (dtc "
                f"{params.dtc_threshold:g}, gtc {params.gtc_threshold:g}, cttc "
                f"{params.cttc_threshold:g}, alpha_ct {params.alpha_ct:g}, alpha_st "
                f"{params.alpha_st:g}, max_efpr {params.max_efpr:g})"
            )
    by_threshold = metrics.get("intersection_f1_macro_by_threshold")
    if by_threshold:
        lines.append("")
        lines.append(
            "intersection F1 macro by threshold: "
            + ", ".join(f"{k}: {num(v).strip()}" for k, v in by_threshold.items())
        )
    columns = [
        ("event_f1", "ev F1"),
        ("event_precision", "ev P"),
        ("event_recall", "ev R"),
        ("event_er", "ev ER"),
        ("segment_f1", "seg F1"),
        ("segment_precision", "seg P"),
        ("segment_recall", "seg R"),
        ("segment_er", "seg ER"),
        ("intersection_f1", "int F1"),
    ]
    classwise = metrics["classwise"]
    present = [(k, h) for k, h in columns if any(k in v for v in classwise.values())]
    lines += _classwise_table(classwise, present, 8)
    return "\n".join(lines)


def _float_in(lo: float, hi: float | None = None):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value < lo or (hi is not None and value > hi):
            bound = f"[{lo:g}, {hi:g}]" if hi is not None else f">= {lo:g}"
            raise argparse.ArgumentTypeError(f"{text} is not in {bound}")
        return value

    return parse


class ScoreCommand(Command):
    """``sedkit score``: event/segment F1 (sed_eval), PSDS and intersection F1 (psds_eval)."""

    help = "score SED frame scores or detections against a ground truth (PSDS, F1)"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--ref",
            required=True,
            type=Path,
            metavar="GT.tsv",
            help="ground truth: filename onset offset event_label (any order)",
        )
        parser.add_argument(
            "--est",
            type=Path,
            metavar="PRED.tsv|DIR",
            help="detections, or a folder of one detection file per decision "
            "threshold (threshold read from the file name) for PSDS",
        )
        parser.add_argument(
            "--scores",
            type=Path,
            metavar="DIR",
            help="a folder of frame score tables (<clip>.tsv: onset offset <class>...): "
            "exact PSDS over all thresholds, F1 at --threshold and at the best threshold",
        )
        parser.add_argument(
            "--meta",
            type=Path,
            metavar="DURATIONS.tsv",
            help="clip durations (filename duration); needed for PSDS and the "
            "intersection-based F1",
        )
        parser.add_argument(
            "--threshold",
            type=_float_in(0.0, 1.0),
            default=0.5,
            help="with --est DIR: the threshold whose file gets the event- and "
            "segment-based scores (or the nearest one); with --scores: the decision threshold "
            "of the F1 scores (default 0.5)",
        )
        parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
        parser.add_argument(
            "--plot-dir", type=Path, metavar="DIR", help="write PSD-ROC plots (PNG) there"
        )
        parser.add_argument(
            "--overwrite",
            action="store_true",
            help="replace PSD-ROC plots already in --plot-dir (refused otherwise)",
        )
        parser.add_argument(
            "--t-collar",
            type=_float_in(1e-9),
            default=0.2,
            help="event-based onset/offset collar in seconds (default 0.2)",
        )
        parser.add_argument(
            "--percentage-of-length",
            type=_float_in(0.0, 1.0),
            default=0.2,
            help="event-based offset collar as a share of the event length (default 0.2)",
        )
        parser.add_argument(
            "--time-resolution",
            type=_float_in(1e-9),
            default=1.0,
            help="segment length in seconds for segment-based scores (default 1)",
        )
        group = parser.add_argument_group(
            "custom PSDS",
            "any of these adds a scenario 'psds_custom' (psds_eval defaults "
            "for the others: dtc 0.5, gtc 0.5, cttc 0.3, alpha_ct 0, alpha_st 0, max_efpr 100)",
        )
        for key, option in _CUSTOM_PSDS_OPTIONS.items():
            bounded = key in ("dtc_threshold", "gtc_threshold", "cttc_threshold", "alpha_ct")
            group.add_argument(
                option,
                dest=f"psds_{key}",
                metavar="X",
                type=_float_in(0.0, 1.0) if bounded else _float_in(0.0),
            )
        group.add_argument(
            "--no-dcase-psds", action="store_true", help="skip the DCASE scenarios PSDS1 and PSDS2"
        )
        parser.add_argument(
            "--classes",
            metavar="A,B,...|FILE",
            help="the system's classes (comma-separated, or a file with one per line), so that "
            "detections of classes without reference events count as false positives; default: "
            f"the `{CLASSES_FILE}` that `sedkit run` writes beside its predictions, if present, "
            "else the ground truth's classes",
        )
        parser.add_argument(
            "--allow-unknown-labels",
            action="store_true",
            help="drop detections whose label is not in the ground truth, with "
            "a warning, instead of failing",
        )
        parser.add_argument(
            "--allow-unknown-clips",
            action="store_true",
            help="drop detections of clips not in the ground truth, with a "
            "warning, instead of failing",
        )
        parser.add_argument(
            "--jobs",
            type=int,
            default=None,
            help="processes: with --scores, for the classes (default 2); with --est, for the "
            "independent evaluations (default 1: each takes well under a second)",
        )

    @classmethod
    def scenarios(cls, args: argparse.Namespace) -> list[PSDSParams]:
        """The PSDS scenarios the command line asks for."""
        scenarios = [] if args.no_dcase_psds else [PSDS1, PSDS2]
        custom = {k: getattr(args, f"psds_{k}") for k in _CUSTOM_PSDS_OPTIONS}
        custom = {k: v for k, v in custom.items() if v is not None}
        if custom:
            try:
                scenarios.append(PSDSParams("psds_custom", **custom))
            except ValueError as e:
                raise UserError(str(e)) from None
        return scenarios

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        if (args.est is None) == (args.scores is None):
            raise UserError("give either --est (detections) or --scores (frame score tables)")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ScoringWarning)
            try:
                if args.scores is not None:
                    metrics, source, scenarios = cls._score_tables(args)
                else:
                    metrics, source, scenarios = cls._score(args)
            finally:
                for warning in caught:
                    if issubclass(warning.category, ScoringWarning):
                        print(f"sedkit: warning: {warning.message}", file=sys.stderr)
                    else:
                        warnings.warn_explicit(
                            warning.message, warning.category, warning.filename, warning.lineno
                        )
        if args.json:
            print(metrics_to_json(metrics))
        elif args.scores is not None:
            print(f"ground truth {args.ref}\nscores       {source} ({metrics['n_clips']} clips)\n")
            print(format_score_metrics(metrics, scenarios, args.threshold))
        else:
            print(f"ground truth {args.ref}\ndetections   {source}\n")
            print(format_metrics(metrics, scenarios))
        return 0

    @classmethod
    def _score_tables(cls, args: argparse.Namespace) -> tuple[dict[str, Any], Path, list]:
        from sedkit.scoring.score_based import CollarParams, score_folder

        n_jobs = _jobs(args, default=min(2, os.cpu_count() or 1))
        scenarios = cls.scenarios(args)
        if scenarios and args.meta is None:
            if any(p.name == "psds_custom" for p in scenarios) or args.plot_dir is not None:
                raise UserError("PSDS needs clip durations: pass --meta DURATIONS.tsv")
            print(
                "sedkit: note: no --meta DURATIONS.tsv: F1 only (PSDS needs clip durations)",
                file=sys.stderr,
            )
            scenarios = []
        if args.plot_dir is not None and scenarios and not args.overwrite:
            _refuse_existing_plots(args.plot_dir, scenarios)
        try:
            metrics = score_folder(
                args.scores,
                args.ref,
                args.meta,
                psds_scenarios=scenarios,
                threshold=args.threshold,
                collar=CollarParams(args.t_collar, args.t_collar, args.percentage_of_length),
                segment_length=args.time_resolution,
                allow_unknown_clips=args.allow_unknown_clips,
                with_curves=args.plot_dir is not None,
                n_jobs=n_jobs,
            )
        except ValueError as e:  # criteria the score-based scorer cannot take (e.g. dtc 0)
            raise UserError(str(e)) from None
        curves = metrics.pop("curves", None)
        if args.plot_dir is not None and curves:
            from sedkit.scoring.plots import plot_score_psd_rocs

            plot_score_psd_rocs(curves, list(metrics["classwise"]), args.plot_dir)
        return metrics, args.scores, scenarios

    @classmethod
    def _score(cls, args: argparse.Namespace) -> tuple[dict[str, Any], Path, list[PSDSParams]]:
        n_jobs = _jobs(args, default=1)
        scenarios = cls.scenarios(args)
        est: Path = args.est
        psds_detections = None
        used_threshold = None
        if est.is_dir():
            files = detection_files_by_threshold(est, exclude=(args.ref, args.meta))
            # The nearest threshold (the lower one of two as near).
            used_threshold = min(files, key=lambda t: (round(abs(t - args.threshold), 9), t))
            detections = files[used_threshold]
            if not math.isclose(used_threshold, args.threshold):
                # Most psds_eval-style folders have no file at exactly 0.5: use the nearest.
                print(
                    f"sedkit: note: {est} has no detection file for --threshold "
                    f"{args.threshold:g}; event- and segment-based scores use the nearest "
                    f"threshold, {used_threshold:g} ({detections.name})",
                    file=sys.stderr,
                )
            psds_detections = files if scenarios else None
            if scenarios and args.meta is None:
                raise UserError("PSDS needs clip durations: pass --meta DURATIONS.tsv")
        elif est.exists():
            detections = est
            if args.plot_dir is not None:
                raise UserError(
                    "--plot-dir draws PSD-ROC curves, which need --est DIR (one detection file "
                    "per threshold) and --meta"
                )
        else:
            raise InputFileError(est, "file or folder not found")
        if args.plot_dir is not None and psds_detections:
            from sedkit.outputs import check_output  # (imports torch: only when plotting)

            # A file in its place or a folder that cannot be written: refused before scoring.
            check_output(args.plot_dir, overwrite=True, what="folder")
            if not args.overwrite:
                _refuse_existing_plots(args.plot_dir, scenarios)
        classes = system_classes(args.classes, est)
        metrics = score_sed(
            ground_truth=args.ref,
            detections=detections,
            classes=classes,
            durations=args.meta,
            psds_detections=psds_detections,
            psds_scenarios=scenarios,
            n_jobs=n_jobs,
            t_collar=args.t_collar,
            percentage_of_length=args.percentage_of_length,
            time_resolution=args.time_resolution,
            allow_unknown_labels=args.allow_unknown_labels,
            allow_unknown_clips=args.allow_unknown_clips,
            plot_dir=args.plot_dir,
        )
        if used_threshold is not None:
            metrics["threshold"] = used_threshold
        return metrics, detections, scenarios


def _jobs(args: argparse.Namespace, *, default: int) -> int:
    """``--jobs``, or ``default`` when it is not given; below 1 is refused."""
    if args.jobs is None:
        return default
    if args.jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {args.jobs}")
    return args.jobs


def system_classes(option: str | None, est: Path) -> list[str] | None:
    """The class list of ``--classes`` (names, or a file of one name per line), else the
    ``classes.txt`` a run writes into its ``predictions/`` folder when ``est`` lies there (the
    detection file's folder or a ``psds/`` folder inside it), announced on stderr; else None (the
    ground truth's classes)."""
    if option is not None:
        path = Path(option)
        if path.is_file():
            names = path.read_text(encoding="utf-8").split()
        else:
            names = [c.strip() for c in option.split(",") if c.strip()]
        if not names or len(set(names)) != len(names):
            raise UserError(f"--classes: a list of distinct class names, got {option!r}")
        return names
    folder = est if est.is_dir() else est.parent
    for candidate in (folder / CLASSES_FILE, folder.parent / CLASSES_FILE):
        if candidate.is_file():
            print(f"sedkit: note: classes from {candidate}", file=sys.stderr)
            return candidate.read_text(encoding="utf-8").split()
    return None


def format_score_metrics(
    metrics: dict[str, Any], scenarios: Sequence[PSDSParams] = (), threshold: float = 0.5
) -> str:
    """A readable report of :func:`sedkit.scoring.score_based.score_folder` results."""
    num = _num

    lines = []
    for params in scenarios:
        if params.name in metrics:
            lines.append(
                f"{params.name.upper():24}{num(metrics[params.name]):>10}  (all thresholds; dtc "
                f"{params.dtc_threshold:g}, gtc {params.gtc_threshold:g}, cttc "
                f"{params.cttc_threshold:g}, alpha_ct {params.alpha_ct:g}, alpha_st "
                f"{params.alpha_st:g}, max_efpr {params.max_efpr:g})"
            )
    parts = [
        ("collar", "collar-based (event)"),
        ("segment", "segment-based"),
        ("intersection", "intersection-based"),
    ]
    parts = [(k, label) for k, label in parts if f"{k}_f1_macro" in metrics]
    if parts:
        if lines:
            lines.append("")
        lines.append(
            f"{'':24}{'F1 macro':>10}{'F1 micro':>10}{'best F1':>10}"
            f"   (F1 at threshold {threshold:g}; best F1: each class at its best threshold)"
        )
        for key, label in parts:
            lines.append(
                f"{label:24}{num(metrics[f'{key}_f1_macro']):>10}"
                f"{num(metrics[f'{key}_f1_micro']):>10}{num(metrics[f'{key}_best_f1_macro']):>10}"
            )
    columns = [(f"{p.name}", p.name.upper()) for p in scenarios]
    columns += [(f"{k}_f1", f"{k[:3]} F1") for k, _ in parts]
    columns += [(f"{k}_best_f1", f"{k[:3]} best") for k, _ in parts[:1]]
    columns += [(f"{k}_best_threshold", "at thr") for k, _ in parts[:1]]
    lines += _classwise_table(metrics["classwise"], columns, 9)
    return "\n".join(lines)


def _refuse_existing_plots(plot_dir: Path, scenarios: Sequence[PSDSParams]) -> None:
    """Refuse, before any scoring, to replace the PSD-ROC images of these scenarios
    (``{scenario}_roc.png``, ``{scenario}_roc_per_class.png``) already in ``plot_dir``: they may
    be the figures of another system or run."""
    if not plot_dir.is_dir():
        return
    existing = sorted({p for s in scenarios for p in plot_dir.glob(f"{s.name}_roc*.png")})
    if existing:
        names = ", ".join(str(p) for p in existing)
        raise UserError(f"{names}: exists; use --overwrite to replace the PSD-ROC plots")


def main(argv: list[str] | None = None, prog: str = "python -m sedkit.scoring") -> int:
    """Run ``sedkit score`` standalone: user errors print ``sedkit: error: ...``, exit code 2."""
    parser = argparse.ArgumentParser(prog=prog, description=ScoreCommand.help)
    ScoreCommand.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return ScoreCommand.run(args)
    except UserError as e:
        for line in str(e).splitlines():
            print(f"sedkit: error: {line}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main())
