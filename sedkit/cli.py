"""The ``sedkit`` command line.

Built-in commands: ``run``, ``validate``, ``plugins``, ``score``, ``synth``, ``predict``.
Plugins add more through ``sedkit_register_commands``. User mistakes print one message
(``sedkit: error: ...``) and exit with code 2, without a traceback.
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: on a machine whose cores are shared with other
# work, spinning threads slowed training several times (docs/benchmarks.md). Set before torch
# is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import inspect
import json
import logging
import math
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from sedkit import __version__
from sedkit.command import Command
from sedkit.doctor import check_compiled_stack, doctor_main
from sedkit.errors import UserError

if TYPE_CHECKING:
    from sedkit.plugins import Plugins

log = logging.getLogger("sedkit")


def get_plugins() -> Plugins:
    """The installed plugins (imported here, not at start-up: plugins and the engine import
    torch, which ``sedkit score`` and ``sedkit doctor`` must not wait for)."""
    from sedkit.plugins import get_plugins as load

    return load()


class _ConsoleHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is now (it may be replaced, e.g. by test capture)."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def setup_logging(verbose: bool = False) -> None:
    logger = logging.getLogger("sedkit")
    if not any(isinstance(h, _ConsoleHandler) for h in logger.handlers):
        handler = _ConsoleHandler()
        handler.setFormatter(logging.Formatter("[sedkit %(asctime)s] %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)


# ---------------------------------------------------------------------------------- run
class RunCommand(Command):
    help = "train and evaluate a recipe (or resume a run)"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("recipe", nargs="?", help="recipe YAML file")
        parser.add_argument(
            "overrides",
            nargs="*",
            metavar="KEY=VALUE",
            help="override recipe keys, e.g. trainer.max_epochs=3",
        )
        parser.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run")
        parser.add_argument("--run-dir", metavar="DIR", help="explicit new run directory")
        parser.add_argument(
            "--allow-changed",
            nargs="+",
            metavar="KEY",
            help="with --resume: accept these recipe keys changed since the run started",
        )

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        from sedkit.run import resume_run, start_run

        if args.resume:
            if args.recipe or args.overrides:
                raise UserError("--resume takes no recipe or overrides: the run's recipe is used")
            result = resume_run(
                Path(args.resume), plugins=get_plugins(), allow_changed=args.allow_changed
            )
        else:
            if args.allow_changed:
                raise UserError("--allow-changed goes with --resume RUN_DIR")
            if not args.recipe:
                raise UserError("run: give a recipe file (or --resume RUN_DIR)")
            result = start_run(
                args.recipe, args.overrides, plugins=get_plugins(), run_dir=args.run_dir
            )
        return result


class ValidateCommand(Command):
    help = "check a recipe completely without running it"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("recipe")
        parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        from sedkit.recipe import load_recipe
        from sedkit.run import check_limits

        loaded = load_recipe(args.recipe, args.overrides, plugins=get_plugins())
        check_limits(loaded)
        parts = ", ".join(
            f"{key}={loaded.resolved()[key]['name']}"
            if not key.startswith("callbacks[")
            else f"{key}={cls_.__name__}"
            for key, cls_ in loaded.classes.items()
        )
        print(f"{args.recipe}: OK ({parts})")
        return 0


class PluginsCommand(Command):
    help = "list installed plugins, their versions and what they register"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--json", action="store_true", help="machine-readable output")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        plugins = get_plugins()
        if args.json:
            print(json.dumps(plugins.as_dict(), indent=2))
            return 0
        print(f"sedkit {__version__}")
        for p in plugins.plugins:
            print(f"{p.name}  [{p.status}]  {p.distribution} {p.version}  ({p.target})")
            for kind, names in sorted(p.components.items()):
                print(f"    {kind}: {', '.join(names)}")
            if p.error:
                print(f"    error: {p.error}")
        return 0


class SynthCommand(Command):
    help = "build an embedded benchmark dataset (e.g. `sedkit synth desed OUT_DIR`)"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("dataset", help="a registered dataset that can synthesize itself")
        parser.add_argument("out_dir")
        parser.add_argument("--preset", default="default")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--source",
            default=None,
            help="where the sounds come from, for datasets that offer a choice "
            "(e.g. `instruments --source sampled`); default: the dataset's own",
        )
        parser.add_argument(
            "--fetch",
            action="store_true",
            help="first download what --source needs (e.g. Debian packages) into a cache",
        )

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        from sedkit.outputs import check_output

        check_number("--seed", args.seed, minimum=0, maximum=2**32 - 1)
        plugins = get_plugins()
        data_cls = plugins.component("data", args.dataset, key="synth")
        synthesizable = [
            n for n in plugins.names("data") if plugins.component("data", n).synthesize is not None
        ]
        if data_cls.synthesize is None:
            raise UserError(
                f"synth: dataset {args.dataset!r} cannot synthesize itself "
                f"(these can: {', '.join(synthesizable) or 'none'})"
            )
        out = Path(args.out_dir)
        check_output(out, overwrite=True, what="folder")  # a file, or nowhere to write
        if out.exists() and any(out.iterdir()):  # a dataset is built whole or not at all
            raise UserError(f"{out}: exists and is not empty; choose another folder")
        options: dict[str, object] = {}
        if args.source is not None or args.fetch:
            accepted = inspect.signature(data_cls.synthesize).parameters
            if "source" not in accepted:
                raise UserError(f"synth: dataset {args.dataset!r} has no --source choice")
            options = {"source": args.source, "fetch": args.fetch}
        started = time.time()
        card = data_cls.synthesize(out, preset=args.preset, seed=args.seed, log=log, **options)
        log.info(
            "synthesized %s (%s, seed %d) in %.1f s: %s",
            args.dataset,
            args.preset,
            args.seed,
            time.time() - started,
            card,
        )
        return 0


class DoctorCommand(Command):
    help = "check this environment: versions, pins, lock, imports, GPU, sox, writable folders"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--data", default="data", help="data folder to check")
        parser.add_argument("--runs", default="runs", help="runs folder to check")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        return doctor_main(["--data", args.data, "--runs", args.runs])


class ScoreCommandProxy(Command):
    """``sedkit score``: defined in :mod:`sedkit.scoring.cli`."""

    help = "score detections against a reference (event/segment F1, PSDS)"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        from sedkit.scoring import ScoreCommand

        ScoreCommand.add_arguments(parser)

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        from sedkit.scoring import ScoreCommand

        return ScoreCommand.run(args)


class PredictCommand(Command):
    help = "detect events in audio files or folders with a trained run"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("run_dir")
        parser.add_argument("audio", nargs="+", help="audio files or folders")
        parser.add_argument("-o", "--output", default="-", help="output TSV (default stdout)")
        parser.add_argument("--threshold", type=float, help="decision threshold")
        parser.add_argument(
            "--thresholds",
            type=float,
            nargs="+",
            metavar="T",
            help="one detection file per threshold in the -o folder (for PSDS)",
        )
        parser.add_argument("--median-filter", type=float, metavar="SECONDS")
        parser.add_argument(
            "--scores",
            metavar="DIR",
            help="folder for the frame score tables (<clip>.tsv, read by `sedkit score "
            "--scores`; default: beside the -o output)",
        )
        parser.add_argument(
            "--mc-dropout",
            type=int,
            default=0,
            metavar="N",
            help="average N MC-dropout passes; also write uncertainties",
        )
        parser.add_argument("--checkpoint", default="best", choices=["best", "last"])
        parser.add_argument("--batch-size", type=int, default=16)
        parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
        parser.add_argument("--overwrite", action="store_true")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        from sedkit.predict import predict_command

        check_number("--batch-size", args.batch_size, minimum=1)
        check_number("--mc-dropout", args.mc_dropout, minimum=0, maximum=10_000)
        check_number("--median-filter", args.median_filter, minimum=0)
        for value in [args.threshold, *(args.thresholds or [])]:
            check_number("--threshold" if args.thresholds is None else "--thresholds", value,
                         minimum=0, maximum=1)  # fmt: skip
        return predict_command(args, plugins=get_plugins())


def check_number(
    option: str, value: float | None, *, minimum: float | None = None, maximum: float | None = None
) -> None:
    """One clear line for a numeric option that is NaN, infinite or out of range."""
    if value is None:
        return
    if not math.isfinite(value):
        raise UserError(f"{option}: {value} is not a finite number")
    if minimum is not None and value < minimum:
        raise UserError(f"{option}: {value} is below the smallest allowed value, {minimum}")
    if maximum is not None and value > maximum:
        raise UserError(f"{option}: {value} is above the largest allowed value, {maximum}")


BUILTIN_COMMANDS: dict[str, type[Command]] = {
    "run": RunCommand,
    "validate": ValidateCommand,
    "plugins": PluginsCommand,
    "score": ScoreCommandProxy,
    "synth": SynthCommand,
    "predict": PredictCommand,
    "doctor": DoctorCommand,
}


def all_commands(plugins: Plugins) -> dict[str, type[Command]]:
    commands = dict(BUILTIN_COMMANDS)
    for name, entry in plugins.registries["command"].entries.items():
        if name in commands:
            raise UserError(
                f"command {name!r} from {entry.source} clashes with the built-in "
                f"command of distribution sedkit {__version__}"
            )
        commands[name] = entry.cls
    return commands


class _Parser(argparse.ArgumentParser):
    """Command-line mistakes (a bad number, an unknown option) as one ``sedkit: error:`` line
    with exit code 2, like every other user error, instead of argparse's usage block."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{self.prog}: {message} (see {self.prog} --help)")


def build_parser(commands: dict[str, type[Command]]) -> argparse.ArgumentParser:
    parser = _Parser(prog="sedkit", description="Sound event detection toolkit.")
    parser.add_argument("--version", action="version", version=f"sedkit {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in commands.items():
        p = sub.add_parser(name, help=command.help, description=command.help)
        command.add_arguments(p)
        p.set_defaults(_command=command)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sedkit`` console script; returns the exit code."""
    argv = list(argv if argv is not None else sys.argv[1:])
    setup_logging("-v" in argv)
    positional = [a for a in argv if not a.startswith("-")]
    if positional[:1] == ["doctor"]:
        # Before any plugin is loaded: the doctor must speak in an environment that is broken.
        return doctor_main([a for a in argv if a not in ("doctor", "-v", "--verbose")])
    if positional[:1] == ["score"]:
        # Scoring reads tables: no torch, no plugins (they cost seconds and hundreds of MiB).
        from sedkit.scoring.cli import main as score_main

        rest = list(argv)
        rest.remove("score")
        return score_main([a for a in rest if a not in ("-v", "--verbose")], prog="sedkit score")
    try:
        # One clear line instead of plugins failing one by one and a traceback after them.
        check_compiled_stack()
        commands = all_commands(get_plugins())
        args = build_parser(commands).parse_args(argv)
        return int(args._command.run(args) or 0)
    except UserError as exc:
        print(f"sedkit: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM during a run (exit 143)
        print("sedkit: interrupted", file=sys.stderr)
        return getattr(exc, "exit_code", 130)


def terminal_width() -> int:
    return shutil.get_terminal_size((100, 20)).columns


if __name__ == "__main__":
    sys.exit(main())
