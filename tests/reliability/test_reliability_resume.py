"""Resuming a run: the recipe must be the one the run started with (or the changed keys named
with ``--allow-changed``, recorded in run.json), one process at a time holds a run folder, a
damaged run record is one line, and SIGTERM or Ctrl-C leave a run marked "interrupted" that
resumes to the uninterrupted result."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import signal
from pathlib import Path

import pytest
import reliability_support as rs
import torch
import yaml

from sedkit import trainer as trainer_module
from sedkit.checkpoint import load_checkpoint
from sedkit.rundir import LOCK_FILE, run_lock


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, lean_plugins) -> Path:
    """A completed 2-epoch toy run (the reference of the interrupted ones)."""
    return rs.finished_toy_run(tmp_path_factory.mktemp("resume"), 2, lean_plugins)


@pytest.fixture
def interrupted(finished_run, tmp_path) -> Path:
    """A copy of :func:`finished_run` as a kill before its final evaluation leaves it."""
    run_dir = Path(shutil.copytree(finished_run, tmp_path / "run"))
    _set_record(run_dir, status="interrupted")
    (run_dir / "metrics.json").unlink()
    return run_dir


def _set_record(run_dir: Path, **values) -> None:
    record = json.loads((run_dir / "run.json").read_text())
    record.update(values)
    (run_dir / "run.json").write_text(json.dumps(record))


def _edit_recipe(run_dir: Path, **changes) -> None:
    """Set dotted keys of the run's recipe.yaml."""
    path = run_dir / "recipe.yaml"
    recipe = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = recipe
        for key in parents:
            node = node[key]
        node[last] = value
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))


def _folder_state(run_dir: Path) -> dict[str, str]:
    """Every file's digest (the lock file aside: its holder line changes with each try)."""
    return {
        str(p.relative_to(run_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and p.name != LOCK_FILE
    }


def _record(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


# ------------------------------------------------------------------------ an edited recipe
def test_resume_refuses_an_edited_recipe_naming_each_changed_key(interrupted, run_cli):
    _edit_recipe(interrupted, **{"trainer.optimizer.lr": 0.1, "seed": 4})
    before = _folder_state(interrupted)
    result = run_cli("run", "--resume", interrupted)
    rs.assert_one_line_error(
        result,
        f"{interrupted / 'recipe.yaml'}: changed since the run started",
        "seed: 3 -> 4",
        "trainer.optimizer.lr: 0.01 -> 0.1",
        "--allow-changed seed trainer.optimizer.lr",
    )
    assert _folder_state(interrupted) == before


def test_allow_changed_resumes_and_records_the_change_in_run_json(interrupted, run_cli):
    _edit_recipe(interrupted, **{"trainer.max_epochs": 3})
    result = run_cli("run", "--resume", interrupted, "--allow-changed", "trainer.max_epochs")
    assert result.code == 0, result.err[-3000:]
    record = _record(interrupted)
    assert record["status"] == "completed"
    (entry,) = record["history"]
    assert entry["allowed_changes"] == {"trainer.max_epochs": [2, 3]}
    assert load_checkpoint(interrupted / "checkpoints" / "last.pt")["epoch"] == 3
    assert record["recipe_resolved"]["trainer"]["max_epochs"] == 3  # the next resume's base


def test_allow_changed_naming_an_unchanged_key_is_refused(interrupted, run_cli):
    _edit_recipe(interrupted, **{"trainer.max_epochs": 3})
    before = _folder_state(interrupted)
    result = run_cli("run", "--resume", interrupted, "--allow-changed", "trainer.max_epoch")
    rs.assert_one_line_error(
        result, "--allow-changed trainer.max_epoch: not changed", "trainer.max_epochs"
    )
    assert _folder_state(interrupted) == before


def test_allow_changed_without_resume_is_refused(run_cli, tmp_path):
    result = run_cli("run", rs.write_toy_recipe(tmp_path, 1), "--allow-changed", "seed")
    rs.assert_one_line_error(result, "--allow-changed goes with --resume")
    assert not (tmp_path / "runs").exists()


def test_a_model_that_no_longer_fits_the_checkpoint_is_one_line(interrupted, run_cli):
    _edit_recipe(interrupted, **{"model.params.hidden": 24})
    result = run_cli("run", "--resume", interrupted, "--allow-changed", "model.params.hidden")
    rs.assert_one_line_error(result, "last.pt: does not fit the recipe's model", "size mismatch")


# ------------------------------------------------------------------------ a damaged record
@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("missing", "run.json: missing; the run was interrupted before it began"),
        ("empty", "run.json: not a readable run record"),
        ("truncated", "run.json: not a readable run record"),
        ("a list", "run.json: not a readable run record (not a JSON object)"),
    ],
)
def test_a_missing_or_damaged_run_json_is_one_line(interrupted, run_cli, damage, expected):
    path = interrupted / "run.json"
    text = path.read_text()
    if damage == "missing":
        path.unlink()
    else:
        path.write_text({"empty": "", "truncated": text[: len(text) // 2], "a list": "[1]"}[damage])
    before = _folder_state(interrupted)
    rs.assert_one_line_error(run_cli("run", "--resume", interrupted), expected)
    assert _folder_state(interrupted) == before


# ------------------------------------------------------------------------ one process at a time
def test_a_second_process_on_a_locked_run_folder_is_refused_naming_the_holder(interrupted, run_cli):
    before = _folder_state(interrupted)
    with run_lock(interrupted):  # another open file: flock conflicts as between processes
        result = run_cli("run", "--resume", interrupted)
    rs.assert_one_line_error(
        result, f"{interrupted}: in use by process {os.getpid()} on host {platform.node()}"
    )
    assert _folder_state(interrupted) == before
    assert run_cli("run", "--resume", interrupted).code == 0  # released: it resumes


# ------------------------------------------------------------------------ SIGTERM and Ctrl-C
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_marks_the_run_interrupted_and_it_resumes_to_the_same_result(
    finished_run, run_cli, tmp_path, signum, code
):
    """The signal arrives at training step 6 (epoch 2 of 2, 4 steps an epoch)."""
    real_step = trainer_module.Trainer.train_step

    def step_then_signal(self, *args, **kwargs):
        if self.global_step == 5:
            os.kill(os.getpid(), signum)
        return real_step(self, *args, **kwargs)

    run_dir = tmp_path / "run"
    handler_before = signal.getsignal(signal.SIGTERM)
    # Ctrl-C as a user at a terminal sends it: Python's KeyboardInterrupt handler. A test run
    # started in the background by a shell without job control inherits SIGINT ignored.
    int_before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(trainer_module.Trainer, "train_step", step_then_signal)
            result = run_cli("run", rs.write_toy_recipe(tmp_path, 2), "--run-dir", run_dir)
    finally:
        signal.signal(signal.SIGINT, int_before)
    assert result.code == code and "Traceback" not in result.err, result.err[-3000:]
    assert "sedkit: interrupted" in result.err
    assert _record(run_dir)["status"] == "interrupted"
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["epoch"] == 1
    assert signal.getsignal(signal.SIGTERM) is handler_before  # the handler is put back
    assert run_cli("run", "--resume", run_dir).code == 0
    ref = load_checkpoint(finished_run / "checkpoints" / "last.pt")["modules"]
    got = load_checkpoint(run_dir / "checkpoints" / "last.pt")["modules"]
    assert all(torch.equal(ref[k], got[k]) for k in ref)


def test_allow_changed_refuses_keys_the_checkpoint_state_overrides(interrupted, run_cli):
    """The saved optimizer holds the learning rate: a changed lr would be recorded as used
    while the old one trains on."""
    _edit_recipe(interrupted, **{"trainer.optimizer.lr": 0.1})
    before = _folder_state(interrupted)
    result = run_cli("run", "--resume", interrupted, "--allow-changed", "trainer.optimizer.lr")
    rs.assert_one_line_error(
        result, "--allow-changed trainer.optimizer.lr: cannot take effect on resume"
    )
    assert _folder_state(interrupted) == before


def test_a_lock_held_by_another_process_is_refused_and_released_when_it_dies(interrupted, run_cli):
    """Two real processes, as in the issue (two --resume of one run both ran and interleaved
    metrics.jsonl): the second is refused naming the first; once the first is killed (SIGKILL:
    no clean-up), the kernel has dropped its lock and the run resumes."""
    import subprocess
    import sys

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from sedkit.rundir import run_lock\n"
            "with run_lock(sys.argv[1]):\n"
            "    print('locked', flush=True)\n"
            "    time.sleep(120)\n",
            str(interrupted),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = _folder_state(interrupted)
        result = run_cli("run", "--resume", interrupted)
        rs.assert_one_line_error(
            result, f"in use by process {holder.pid} on host {platform.node()}"
        )
        assert _folder_state(interrupted) == before
    finally:
        holder.kill()
        holder.wait()
    assert run_cli("run", "--resume", interrupted).code == 0
    assert _record(interrupted)["status"] == "completed"
