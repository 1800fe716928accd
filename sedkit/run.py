"""Starting and resuming runs: the run directory, its records, and the trainer."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sedkit import distributed as D
from sedkit.build import select_device
from sedkit.checkpoint import LAST, CheckpointWriteError, reconcile, remove_temporaries
from sedkit.data.audio import n_clip_samples
from sedkit.errors import UserError
from sedkit.formatting import format_metrics
from sedkit.plugins import PluginHookError, Plugins
from sedkit.recipe import LoadedRecipe, load_recipe
from sedkit.rundir import (
    MetricsLog,
    attach_log_file,
    create_run_dir,
    environment,
    read_json,
    run_lock,
    to_jsonable,
    write_json,
    write_yaml,
)
from sedkit.trainer import NonFiniteLossError, Trainer

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
    check_limits(loaded)
    D.init_from_env(select_device(loaded.recipe.trainer.device).type)  # under torchrun
    path = None
    with contextlib.ExitStack() as hold:
        if D.is_main():  # one run directory for all ranks, made and locked by rank 0
            explicit = run_dir or loaded.recipe.run.dir
            path = create_run_dir(Path(loaded.recipe.run.root), loaded.name, explicit)
            hold.enter_context(run_lock(path))
            _write_run_records(path, loaded, overrides)
        return _train(loaded, plugins, D.broadcast_object(path), resume=False)


def _write_run_records(path: Path, loaded: LoadedRecipe, overrides: list[str] | None) -> None:
    """recipe.yaml (resolved), recipe_source.yaml and run.json of a new run."""
    resolved = loaded.resolved()
    write_yaml(path / "recipe.yaml", resolved)
    shutil.copyfile(loaded.path, path / "recipe_source.yaml")
    write_json(
        path / "run.json",
        {
            "status": "running",
            "recipe": str(loaded.path),
            "overrides": list(overrides or []),
            # What --resume compares recipe.yaml with (see check_recipe_unchanged).
            "recipe_sha256": recipe_digest(resolved),
            "recipe_resolved": to_jsonable(resolved),
            "command": sys.argv,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "resumed": [],
            "world_size": D.world_size(),
        },
    )


def resume_run(run_dir: Path, *, plugins: Plugins, allow_changed: list[str] | None = None) -> int:
    """Continue an interrupted run from its last checkpoint. ``recipe.yaml`` must be the
    recipe the run started with, but for the keys named in ``allow_changed``."""
    if not (run_dir / "recipe.yaml").is_file():
        raise UserError(f"{run_dir}: not a sedkit run directory (no recipe.yaml)")
    # Locked before anything is read or written; under torchrun by rank 0 only (RANK is
    # torchrun's; the process group does not exist yet).
    main = int(os.environ.get("RANK", "0")) == 0
    with run_lock(run_dir) if main else contextlib.nullcontext():
        return _resume(run_dir, plugins, allow_changed)


def _resume(run_dir: Path, plugins: Plugins, allow_changed: list[str] | None) -> int:
    record = read_run_record(run_dir)
    if record.get("status") == "completed":
        raise UserError(f"{run_dir}: this run already completed; nothing to resume")
    loaded = load_recipe(run_dir / "recipe.yaml", plugins=plugins)
    resolved = to_jsonable(loaded.resolved())
    allowed = check_recipe_unchanged(run_dir / "recipe.yaml", record, resolved, allow_changed)
    D.init_from_env(select_device(loaded.recipe.trainer.device).type)  # under torchrun
    checkpoints = run_dir / "checkpoints"
    # Interrupted before its first checkpoint: the run starts over in its own folder (the
    # same seed gives the same run).
    from_checkpoint = (checkpoints / LAST).is_file()
    if D.is_main():
        remove_temporaries(run_dir)
        if not from_checkpoint:
            if checkpoints.is_dir():
                reconcile(checkpoints, None)
            MetricsLog(run_dir / "metrics.jsonl", keep_until_epoch=0)
            log.info("no checkpoint yet: the run starts again from epoch 0")
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        record.setdefault("resumed", []).append(now)
        if allowed:
            record.setdefault("history", []).append(
                {"resumed": now, "allowed_changes": {k: list(v) for k, v in allowed.items()}}
            )
            record["recipe_sha256"], record["recipe_resolved"] = recipe_digest(resolved), resolved
        record["status"] = "running"
        write_json(run_dir / "run.json", record)
    D.barrier()
    return _train(loaded, plugins, run_dir, resume=from_checkpoint)


def available_memory() -> int | None:
    """Bytes of memory this machine can still give (MemAvailable), None when unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def check_limits(loaded: LoadedRecipe, available: int | None = None) -> None:
    """Refuse, before anything is written, a clip shorter than one FFT window and a batch or
    model that cannot fit in memory, with the estimate that shows why.

    The estimate is a lower bound, for data whose parameters name ``batch_size`` and
    ``clip_duration_s``: per clip, the waveform, linear and mel spectrograms in float32 and
    the outputs of the model's layers on one clip (what training keeps for the backward
    pass), times the batch; plus the model's parameters with their gradients and two
    optimizer moments (16 bytes a parameter). The model is measured on PyTorch's meta device
    (shapes only, nothing allocated); a model that cannot be built there counts as none."""
    params = loaded.params.get("data")
    batch = getattr(params, "batch_size", None)
    seconds = getattr(params, "clip_duration_s", None)
    if not isinstance(seconds, int | float):
        return
    f = loaded.recipe.features
    samples = n_clip_samples(seconds, f.sample_rate)
    if samples < f.n_fft:
        raise UserError(
            f"data.params.clip_duration_s: {seconds:g} s at {f.sample_rate} Hz is {samples} "
            f"samples, shorter than one FFT window (features.n_fft: {f.n_fft}); no spectrogram "
            f"frame fits in a clip"
        )
    if not isinstance(batch, int):
        return
    frames = samples // f.hop_length + 1
    features = 4 * (samples + frames * (f.n_fft // 2 + 1) + frames * f.n_mels)
    model_bytes, activations = model_footprint(loaded, float(seconds))
    per_clip = features + activations
    need = per_clip * batch + model_bytes
    available = available_memory() if available is None else available
    if available is None or need <= available:
        return
    model = loaded.resolved()["model"]["name"]
    if model_bytes > available:
        raise UserError(
            f"model ({model}): {model_bytes // 16:,} parameters need at least "
            f"{_size(model_bytes)} with their gradients and optimizer state (16 bytes each); "
            f"this machine has {_size(available)} available"
        )
    per_clip_text = (
        f"{_size(features)} of waveform and spectrograms, {_size(activations)} of model activations"
    )
    if per_clip + model_bytes > available:
        raise UserError(
            f"data.params.clip_duration_s: one clip of {seconds:g} s needs at least "
            f"{_size(per_clip)} ({per_clip_text}); this machine has {_size(available)} "
            f"available"
        )
    raise UserError(
        f"data.params.batch_size: {batch} clips of {seconds:g} s need at least {_size(need)} "
        f"for one batch ({_size(per_clip)} a clip: {per_clip_text}; plus "
        f"{_size(model_bytes)} of parameters, gradients and optimizer state); this machine has "
        f"{_size(available)} available"
    )


def model_footprint(loaded: LoadedRecipe, clip_duration_s: float) -> tuple[int, int]:
    """(bytes of the model's parameters with their gradients and two optimizer moments, bytes
    of its layers' outputs on one clip in training mode), measured on the meta device: (0, 0)
    for a model that cannot be built there (one that loads files), and only the layers before
    an operation that cannot run there (autocast on meta, ``.item()``)."""
    import torch

    from sedkit.build import build_model
    from sedkit.components import BuildContext

    r = loaded.recipe
    quiet = logging.getLogger("sedkit.limits")
    quiet.disabled = True  # the model is built twice; its log lines come from the real one
    try:
        context = BuildContext(
            task=r.task, recipe_path=loaded.path, sample_rate=r.features.sample_rate,
            seed=r.seed, log=quiet,
        )  # fmt: skip
        classes = list(
            getattr(loaded.classes["data"](loaded.params["data"], context), "classes", [])
        )
        extractor, model, _ = build_model(
            loaded, classes or ["class"], clip_duration_s, quiet, model_device="meta"
        )
    except Exception:  # noqa: BLE001 - an estimate; the run itself will say what is wrong
        return 0, 0
    parameters = 16 * sum(p.numel() for p in model.parameters())
    outputs: list[int] = []

    def count(module: Any, args: Any, out: Any) -> None:
        outputs.append(sum(t.numel() * t.element_size() for t in _tensors(out)))

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    hooks = [m.register_forward_hook(count) for m in leaves]
    for rnn in (m for m in leaves if isinstance(m, torch.nn.RNNBase)):
        # On meta an RNN's time loop is run op by op (seconds); only its shapes are needed.
        rnn.forward = functools.partial(_recurrent_shapes, rnn)
    n_frames = extractor.n_frames(n_clip_samples(clip_duration_s, r.features.sample_rate))
    try:
        model.train()
        model(torch.empty(1, r.features.n_mels, n_frames, device="meta"))
    except Exception:  # noqa: BLE001 - an operation meta cannot run: the layers before it
        pass
    finally:
        for hook in hooks:
            hook.remove()
    return parameters, sum(outputs)


def _recurrent_shapes(rnn: Any, x: Any, hx: Any = None) -> tuple[Any, Any]:
    """Meta tensors shaped as the output and final state of ``rnn`` (an ``nn.RNNBase``) on a
    batched input ``x``."""
    import torch

    d = 2 if rnn.bidirectional else 1
    batch, steps = (x.shape[0], x.shape[1]) if rnn.batch_first else (x.shape[1], x.shape[0])
    size = rnn.proj_size or rnn.hidden_size
    out = torch.empty(
        (batch, steps, d * size) if rnn.batch_first else (steps, batch, d * size), device="meta"
    )
    state = torch.empty(rnn.num_layers * d, batch, size, device="meta")
    if isinstance(rnn, torch.nn.LSTM):
        cell = torch.empty(rnn.num_layers * d, batch, rnn.hidden_size, device="meta")
        return out, (state, cell)
    return out, state


def _tensors(value: Any) -> list[Any]:
    """The tensors in a module's output (a tensor, a tuple or list of them, a dataclass)."""
    import dataclasses

    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, tuple | list):
        return [t for v in value for t in _tensors(v)]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [t for fld in dataclasses.fields(value) for t in _tensors(getattr(value, fld.name))]
    return []


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TB"


def recipe_digest(resolved: dict[str, Any]) -> str:
    """SHA-256 of a resolved recipe (canonical JSON: sorted keys)."""
    text = json.dumps(to_jsonable(resolved), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys to leaf values (``trainer.optimizer.lr``; list items as ``callbacks[0]``)."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list) and value:
        out = {}
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


#: Recipe keys whose values a checkpoint carries in its optimizer and scheduler state: changed
#: on resume, they would be recorded but not used, so --allow-changed cannot accept them.
CHECKPOINTED_KEYS = ("trainer.optimizer.", "trainer.scheduler.")


def check_recipe_unchanged(
    path: Path, record: dict, resolved: dict[str, Any], allow_changed: list[str] | None
) -> dict[str, tuple[Any, Any]]:
    """Compare the resolved ``recipe.yaml`` with the one the run started with (``run.json``).
    A changed key not covered by ``allow_changed`` (a key covers the keys under it) is
    refused with the list of changes; returns the allowed changes (key -> (old, new))."""
    allow = list(allow_changed or [])
    if "recipe_resolved" not in record:
        if allow:
            raise UserError(f"--allow-changed: {path.parent / 'run.json'} records no recipe")
        log.warning("%s: run.json records no recipe (older sedkit); not compared", path)
        return {}
    if recipe_digest(resolved) == record.get("recipe_sha256"):
        changes: dict[str, tuple[Any, Any]] = {}
    else:
        old, new = flatten(record["recipe_resolved"]), flatten(resolved)
        missing = object()
        changes = {
            k: (old.get(k), new.get(k))
            for k in sorted(set(old) | set(new))
            if old.get(k, missing) != new.get(k, missing)
        }

    def covered(key: str, by: str) -> bool:
        return key == by or key.startswith((by + ".", by + "["))

    unused = [a for a in allow if not any(covered(k, a) for k in changes)]
    if unused:
        raise UserError(
            f"--allow-changed {' '.join(unused)}: not changed in {path} "
            f"(changed: {', '.join(changes) or 'nothing'})"
        )
    frozen = [
        k for k in changes if k.startswith(CHECKPOINTED_KEYS) and any(covered(k, a) for a in allow)
    ]
    if frozen:
        raise UserError(
            f"--allow-changed {' '.join(frozen)}: cannot take effect on resume (the optimizer "
            f"and schedule state in checkpoints/{LAST} hold these values); restore them in "
            f"{path}, or start a new run"
        )
    refused = {k: v for k, v in changes.items() if not any(covered(k, a) for a in allow)}
    if refused:
        shown = ", ".join(f"{k}: {_short(a)} -> {_short(b)}" for k, (a, b) in refused.items())
        raise UserError(
            f"{path}: changed since the run started ({shown}); resuming would mix two "
            f"recipes. Restore it, or resume with --allow-changed {' '.join(refused)} "
            "(recorded in run.json)"
        )
    return changes


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def read_run_record(run_dir: Path) -> dict:
    """``run.json`` of a run to resume, or one clear error when it is missing or damaged."""
    path = run_dir / "run.json"
    if not path.is_file():
        raise UserError(
            f"{path}: missing; the run was interrupted before it began (start it again)"
        )
    try:
        record = read_json(path)
    except (ValueError, OSError) as exc:
        raise UserError(f"{path}: not a readable run record ({exc})") from None
    if not isinstance(record, dict):
        raise UserError(f"{path}: not a readable run record (not a JSON object)")
    return record


def _train(loaded: LoadedRecipe, plugins: Plugins, run_dir: Path, *, resume: bool) -> int:
    main = D.is_main()  # rank 0 writes the run directory; the other ranks only train
    log_name = "train.log" if main else f"train.rank{D.rank()}.log"
    handler = attach_log_file(run_dir / log_name)
    status, metrics, code = "failed", {}, 1
    stack = contextlib.ExitStack()
    try:
        stack.enter_context(_sigterm_interrupts())
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
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: resumable, and marked so
        status = "interrupted"
        log.warning("interrupted (%s); resume with: sedkit run --resume %s", exc, run_dir)
        raise
    finally:
        stack.close()
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


class RunInterrupted(KeyboardInterrupt):
    """SIGTERM ends a run as Ctrl-C (SIGINT) does; exit code 128 + the signal number."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + signum


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """While a run trains, SIGTERM raises :class:`RunInterrupted` (signal handlers can only
    be set in the main thread; elsewhere SIGTERM keeps its default)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise RunInterrupted(signum)

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
