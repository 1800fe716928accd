"""Starting and resuming runs: the run directory, its records, and the trainer."""

from __future__ import annotations

import logging
import shutil
import sys
import time
from pathlib import Path

from sedkit import distributed as D
from sedkit.checkpoint import CheckpointWriteError
from sedkit.cli import format_metrics
from sedkit.errors import UserError
from sedkit.plugins import PluginHookError, Plugins
from sedkit.recipe import LoadedRecipe, load_recipe
from sedkit.rundir import (
    attach_log_file,
    create_run_dir,
    environment,
    read_json,
    write_json,
    write_yaml,
)
from sedkit.trainer import NonFiniteLossError, Trainer, select_device

log = logging.getLogger("sedkit")


def start_run(
    recipe_path: str | Path,
    overrides: list[str] | None,
    *,
    plugins: Plugins,
    run_dir: str | None = None,
) -> int:
    """Validate the recipe, create a new run directory and train. Returns the exit code."""
    loaded = load_recipe(recipe_path, overrides, plugins=plugins)
    D.init_from_env(select_device(loaded.recipe.trainer.device).type)  # under torchrun
    path = None
    if D.is_main():  # one run directory for all ranks, made by rank 0
        explicit = run_dir or loaded.recipe.run.dir
        path = create_run_dir(Path(loaded.recipe.run.root), loaded.name, explicit)
        write_yaml(path / "recipe.yaml", loaded.resolved())
        shutil.copyfile(loaded.path, path / "recipe_source.yaml")
        write_json(
            path / "run.json",
            {
                "status": "running",
                "recipe": str(loaded.path),
                "overrides": list(overrides or []),
                "command": sys.argv,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "resumed": [],
                "world_size": D.world_size(),
            },
        )
    return _train(loaded, plugins, D.broadcast_object(path), resume=False)


def resume_run(run_dir: Path, *, plugins: Plugins) -> int:
    """Continue an interrupted run from its last checkpoint."""
    if not (run_dir / "recipe.yaml").is_file():
        raise UserError(f"{run_dir}: not a sedkit run directory (no recipe.yaml)")
    if not (run_dir / "checkpoints" / "last.pt").is_file():
        raise UserError(
            f"{run_dir}: no checkpoint to resume from (checkpoints/last.pt); start the run again"
        )
    record = read_json(run_dir / "run.json")
    if record.get("status") == "completed":
        raise UserError(f"{run_dir}: this run already completed; nothing to resume")
    loaded = load_recipe(run_dir / "recipe.yaml", plugins=plugins)
    D.init_from_env(select_device(loaded.recipe.trainer.device).type)  # under torchrun
    if D.is_main():
        record.setdefault("resumed", []).append(time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        record["status"] = "running"
        write_json(run_dir / "run.json", record)
    D.barrier()
    return _train(loaded, plugins, run_dir, resume=True)


def _train(loaded: LoadedRecipe, plugins: Plugins, run_dir: Path, *, resume: bool) -> int:
    main = D.is_main()  # rank 0 writes the run directory; the other ranks only train
    log_name = "train.log" if main else f"train.rank{D.rank()}.log"
    handler = attach_log_file(run_dir / log_name)
    status, metrics, code = "failed", {}, 1
    try:
        log.info("run directory: %s", run_dir)
        trainer = Trainer(loaded, plugins, run_dir)
        if main:
            write_json(run_dir / "environment.json", environment(str(trainer.device)))
            write_json(run_dir / "plugins.json", plugins.as_dict())
        trainer.setup(resume=resume)
        if main:
            plugins.run_start(run_dir=run_dir, recipe=loaded.resolved(), device=str(trainer.device))
        metrics = trainer.fit()
        status, code = metrics["status"], 0
        if main:
            print(f"run finished ({status}): {run_dir}")
            print(format_metrics(metrics))
    except (NonFiniteLossError, CheckpointWriteError, PluginHookError) as exc:
        # Failures with a complete message of their own (a diverged loss, a full disk, a plugin
        # failing in sedkit_run_start or sedkit_epoch_end): the run is marked failed and the
        # last good checkpoint stays for --resume.
        log.error("%s", exc)
        log.debug("where it failed (-v)", exc_info=exc)
        print(f"sedkit: error: {exc}", file=sys.stderr)
    finally:
        try:
            if main:
                record = read_json(run_dir / "run.json")
                record["status"] = status
                record["ended"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
                write_json(run_dir / "run.json", record)
                code = _run_end(plugins, run_dir, metrics, status, code)
        finally:
            logging.getLogger("sedkit").removeHandler(handler)
            handler.close()
            D.shutdown()
    return code


def _run_end(plugins: Plugins, run_dir: Path, metrics: dict, status: str, code: int) -> int:
    """Call ``sedkit_run_end``; returns the exit code. A plugin failing there leaves the run's
    results and its recorded status as they are (the training itself did not fail); after a
    successful run it is the one error reported (exit 1), after a failed run only logged, so
    that the run's own error stays the one message."""
    try:
        plugins.run_end(run_dir=run_dir, metrics=metrics, status=status)
    except PluginHookError as exc:
        log.error("%s", exc)
        log.debug("where it failed (-v)", exc_info=exc)
        if code == 0:
            print(f"sedkit: error: {exc} (the run itself {status})", file=sys.stderr)
            return 1
    return code
