"""Runs that meet faults: a non-finite loss, gradient spikes, a full disk while checkpointing, a
kill during validation, unsafe or damaged checkpoints and caches, output files that exist, and
plugins that fail at the end of a run. Nothing is lost or overwritten, and every failure says
what happened in one message.

(The SIGKILL-during-a-step and SIGKILL-during-a-checkpoint-write cases are in
tests/engine/test_run.py.)
"""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import reliability_support as rs
import torch

import sedkit
from sedkit import checkpoint as checkpoint_module
from sedkit.checkpoint import CheckpointWriteError, load_checkpoint
from sedkit.data.cache import CachedFeatures
from sedkit.errors import UserError
from sedkit.plugins import Plugins
from sedkit.run import resume_run, start_run
from sedkit.rundir import create_run_dir

HERE = Path(__file__).resolve().parent


def _toy_recipe(tmp: Path, *, epochs: int, model: str = rs.TOY_MODEL_16, name: str = "toy") -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(rs.TOY_RECIPE.format(model=model, epochs=epochs, runs=tmp / "runs"))
    return path


def _toy_run(tmp: Path, epochs: int, plugins) -> Path:
    """A toy run of ``epochs`` in this process, under ``tmp/run``."""
    run_dir = tmp / "run"
    recipe = _toy_recipe(tmp, epochs=epochs)
    assert start_run(recipe, [], plugins=plugins, run_dir=str(run_dir)) == 0
    return run_dir


def _modules(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")["modules"]


def _assert_same_parameters(a: Path, b: Path) -> None:
    pa, pb = _modules(a), _modules(b)
    assert set(pa) == set(pb)
    for key in pa:
        assert torch.equal(pa[key], pb[key]), key


def _epochs_logged(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _status(run_dir: Path) -> str:
    return json.loads((run_dir / "run.json").read_text())["status"]


# ------------------------------------------------------------------------ numerical faults
def test_non_finite_loss_stops_naming_step_and_term_keeping_last_good_checkpoint(run_cli, tmp_path):
    """NaN frame logits from training step 6 (epoch 2 of 3, 4 steps an epoch)."""
    model = "{name: faulty_toy_model, params: {hidden: 16, nan_at_step: 6}}"
    run_dir = tmp_path / "run"
    result = run_cli("run", _toy_recipe(tmp_path, epochs=3, model=model), "--run-dir", run_dir)
    assert result.code == 1, result.err[-3000:]
    assert "Traceback" not in result.err
    (line,) = result.error_lines
    last = run_dir / "checkpoints" / "last.pt"
    assert line == (
        "sedkit: error: non-finite loss at epoch 2, step 6: term(s) frame_bce; training "
        f"stopped, the last good checkpoint ({last}, epoch 1) is kept"
    )
    state = load_checkpoint(last)
    assert (state["epoch"], state["global_step"]) == (1, 4)
    assert all(torch.isfinite(v).all() for v in state["modules"].values() if v.is_floating_point())
    assert [e["epoch"] for e in _epochs_logged(run_dir)] == [1]
    assert _status(run_dir) == "failed"
    assert not (run_dir / "metrics.json").exists()


def test_gradient_norm_spikes_are_logged_per_epoch(lean_plugins, tmp_path):
    model = "{name: faulty_toy_model, params: {hidden: 16, spike_at_step: 6}}"
    recipe = _toy_recipe(tmp_path, epochs=2, model=model)
    run_dir = tmp_path / "run"
    code = start_run(
        recipe, ["trainer.grad_clip_norm=5.0"], plugins=lean_plugins, run_dir=str(run_dir)
    )
    assert code == 0
    calm, spiked = _epochs_logged(run_dir)
    assert 0 < calm["grad_norm_mean"] <= calm["grad_norm_max"] < 5.0
    assert spiked["grad_norm_max"] > 100 * calm["grad_norm_max"]  # the spike is visible
    assert calm["grad_clipped_share"] == 0.0
    assert spiked["grad_clipped_share"] == pytest.approx(0.25)  # one step of four clipped
    assert np.isfinite(spiked["train_loss"])


# ------------------------------------------------------------------------ a full disk
class _DiskFull:
    """``torch.save`` that, on the ``fail_at``-th write of ``last.pt``, puts part of the bytes
    on disk and then fails with ENOSPC, as a full disk would."""

    def __init__(self, fail_at: int):
        self.fail_at, self.last_writes = fail_at, 0
        self.real_save = torch.save

    def __call__(self, obj, f, *args, **kwargs):
        # atomic_write hands over a file object made from a descriptor: find its path.
        target = os.readlink(f"/proc/self/fd/{f.fileno()}")
        if ".last.pt." in os.path.basename(target):
            self.last_writes += 1
            if self.last_writes == self.fail_at:
                self.real_save(obj, f, *args, **kwargs)
                f.truncate(f.tell() // 3)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.real_save(obj, f, *args, **kwargs)


@pytest.fixture(scope="module")
def reference_3_epochs(tmp_path_factory, lean_plugins) -> Path:
    """An uninterrupted 3-epoch toy run (in this process, like the runs compared with it)."""
    return _toy_run(tmp_path_factory.mktemp("reference"), 3, lean_plugins)


def test_full_disk_during_checkpoint_keeps_previous_and_resume_matches(
    reference_3_epochs, lean_plugins, monkeypatch, capsys, tmp_path
):
    run_dir = tmp_path / "run"
    last = run_dir / "checkpoints" / "last.pt"
    monkeypatch.setattr(checkpoint_module.torch, "save", _DiskFull(fail_at=2))
    recipe = _toy_recipe(tmp_path, epochs=3)
    capsys.readouterr()
    assert start_run(recipe, [], plugins=lean_plugins, run_dir=str(run_dir)) == 1
    errors = [e for e in capsys.readouterr().err.splitlines() if e.startswith("sedkit: error:")]
    assert errors == [
        f"sedkit: error: could not write {last}: No space left on device; the previous file is "
        "intact"
    ]
    monkeypatch.undo()
    state = load_checkpoint(last)  # the epoch-1 checkpoint, whole
    assert (state["epoch"], state["global_step"]) == (1, 4)
    assert sorted(p.name for p in last.parent.iterdir()) == ["best.pt", "last.pt"]  # no temp
    assert _status(run_dir) == "failed"
    # Space is back: the run resumes from epoch 1 and ends exactly as the uninterrupted one.
    assert resume_run(run_dir, plugins=lean_plugins) == 0
    _assert_same_parameters(run_dir, reference_3_epochs)
    assert [e["epoch"] for e in _epochs_logged(run_dir)] == [1, 2, 3]
    ref = json.loads((reference_3_epochs / "metrics.json").read_text())["validation"]
    got = json.loads((run_dir / "metrics.json").read_text())["validation"]
    assert got["event_f1_macro"] == ref["event_f1_macro"] and got["psds1"] == ref["psds1"]


def test_full_disk_through_the_cli_is_one_message(run_cli, monkeypatch, tmp_path):
    run_dir = tmp_path / "run"
    monkeypatch.setattr(checkpoint_module.torch, "save", _DiskFull(fail_at=1))
    try:
        result = run_cli("run", _toy_recipe(tmp_path, epochs=1), "--run-dir", run_dir)
    except CheckpointWriteError as exc:
        pytest.fail(f"raised instead of reporting: {exc}")
    assert result.code == 1 and "Traceback" not in result.err
    assert result.error_lines == [
        f"sedkit: error: could not write {run_dir / 'checkpoints' / 'last.pt'}: No space left "
        "on device; the previous file is intact"
    ]
    assert _status(run_dir) == "failed"


# ------------------------------------------------------------------------ SIGKILL in validation
def _run_subprocess(recipe: Path, run_dir: Path, *extra: str, env: dict | None = None):
    return subprocess.run(
        [
            sys.executable,
            str(HERE / "run_kill_in_validation.py"),
            str(recipe),
            str(run_dir),
            *extra,
        ],
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def subprocess_reference(tmp_path_factory) -> tuple[Path, Path]:
    """A 2-epoch toy run in its own process, never killed."""
    tmp = tmp_path_factory.mktemp("subprocess_reference")
    recipe = _toy_recipe(tmp, epochs=2)
    result = _run_subprocess(recipe, tmp / "run")
    assert result.returncode == 0, result.stderr
    return recipe, tmp / "run"


def test_sigkill_during_validation_then_resume_equals_uninterrupted(subprocess_reference, tmp_path):
    """Killed in the middle of epoch 2's validation (its 3rd evaluation batch: 2 a
    validation), after epoch 2 trained and before it was checkpointed."""
    recipe, ref_dir = subprocess_reference
    run_dir = tmp_path / "run"
    killed = _run_subprocess(recipe, run_dir, env={"KILL_AT_EVAL_FORWARD": "3"})
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["epoch"] == 1
    assert not (run_dir / "metrics.json").exists()
    resumed = _run_subprocess(recipe, run_dir, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_same_parameters(run_dir, ref_dir)
    ref = json.loads((ref_dir / "metrics.json").read_text())
    got = json.loads((run_dir / "metrics.json").read_text())
    for key in ("event_f1_macro", "segment_f1_macro", "psds1", "psds2"):
        assert got["validation"][key] == ref["validation"][key], key
    assert (got["best_epoch"], got["status"]) == (ref["best_epoch"], "completed")
    assert [e["epoch"] for e in _epochs_logged(run_dir)] == [1, 2]


# ------------------------------------------------------------------------ nothing overwritten
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, lean_plugins) -> Path:
    return _toy_run(tmp_path_factory.mktemp("trained"), 1, lean_plugins)


@pytest.fixture
def clip(tmp_path) -> Path:
    return rs.write_wav(tmp_path / "audio" / "clip.wav", rs.tone(0.5, freq=1000.0), rs.SR)


def test_predict_refuses_to_overwrite_unless_asked(trained_run, clip, run_cli, tmp_path):
    out = tmp_path / "detections.tsv"
    out.write_text("precious\n")
    result = run_cli("predict", trained_run, clip, "-o", out)
    rs.assert_one_line_error(result, f"sedkit: error: {out}: exists; use --overwrite")
    assert out.read_text() == "precious\n"
    result = run_cli("predict", trained_run, clip, "-o", out, "--overwrite")
    assert result.code == 0, result.err[-3000:]
    assert out.read_text().splitlines()[0] == "filename\tonset\toffset\tevent_label"


def test_predict_refuses_an_existing_thresholds_folder(trained_run, clip, run_cli, tmp_path):
    out = tmp_path / "psds"
    out.mkdir()
    (out / "0.500000.tsv").write_text("precious\n")
    result = run_cli("predict", trained_run, clip, "-o", out, "--thresholds", "0.25", "0.5")
    rs.assert_one_line_error(result, f"{out}: exists; use --overwrite")
    assert (out / "0.500000.tsv").read_text() == "precious\n"


def test_predict_on_bad_audio_names_it_and_writes_nothing(trained_run, clip, run_cli, tmp_path):
    bad = clip.parent / "broken.wav"
    bad.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00")
    out = tmp_path / "detections.tsv"
    result = run_cli("predict", trained_run, clip.parent, "-o", out)
    rs.assert_one_line_error(result, f"sedkit: error: {bad}: cannot read audio")
    assert not out.exists()


def test_predict_on_a_folder_writes_detections_that_score_accepts(
    trained_run, clip, run_cli, tmp_path
):
    rs.write_wav(clip.parent / "nested" / "second.wav", rs.tone(0.5, freq=300.0), rs.SR)
    out = tmp_path / "detections.tsv"
    # Threshold 0: every class is "detected" on every clip, so the file is never empty.
    result = run_cli("predict", trained_run, clip.parent, "-o", out, "--threshold", "0")
    assert result.code == 0, result.err[-3000:]
    rows = [line.split("\t") for line in out.read_text().splitlines()[1:]]
    assert {row[0] for row in rows} == {"clip.wav", "second.wav"}
    ref = rs.write_tsv(
        tmp_path / "gt.tsv",
        rs.STRONG_HEADER,
        [
            ["clip.wav", 0.0, 0.5, "Beep"],
            ["second.wav", 0.0, 0.5, "Hum"],
            ["second.wav", 0.1, 0.3, "Tick"],
        ],
    )
    scored = run_cli("score", "--ref", ref, "--est", out, "--json", "--no-dcase-psds")
    assert scored.code == 0, scored.err[-3000:]
    metrics = json.loads(scored.out)
    assert metrics["segment_f1_micro"] > 0  # the true events are among the detections
    # Frame score tables beside the detections, one per clip, that `score --scores` reads.
    tables = tmp_path / "detections_scores"
    assert sorted(p.name for p in tables.iterdir()) == ["clip.tsv", "second.tsv"]
    scored = run_cli("score", "--ref", ref, "--scores", tables, "--json", "--threshold", "0")
    assert scored.code == 0, scored.err[-3000:]
    assert json.loads(scored.out)["segment_f1_micro"] == metrics["segment_f1_micro"]


def test_predict_refuses_two_clips_of_one_name_naming_both(trained_run, clip, run_cli, tmp_path):
    """Detections name clips by file name: two clip.wav from different folders would be one
    clip in the output (their events merged), so they are refused; one file given twice is
    predicted once."""
    other = rs.write_wav(clip.parent / "nested" / "clip.wav", rs.tone(0.5, freq=300.0), rs.SR)
    out = tmp_path / "detections.tsv"
    result = run_cli("predict", trained_run, clip.parent, "-o", out)
    rs.assert_one_line_error(result, f"{clip} and {other}: two clips named clip.wav")
    assert not out.exists()
    once = run_cli("predict", trained_run, clip, "--threshold", "0")
    twice = run_cli("predict", trained_run, clip, clip, "--threshold", "0")
    assert twice.code == once.code == 0
    assert twice.out == once.out and once.out.count("clip.wav") >= 1


def test_new_runs_never_share_a_directory(tmp_path):
    first = create_run_dir(tmp_path, "recipe")
    (first / "keep.txt").write_text("precious")
    others = [create_run_dir(tmp_path, "recipe") for _ in range(3)]
    assert len({first, *others}) == 4
    assert all(not any(p.iterdir()) for p in others)
    assert (first / "keep.txt").read_text() == "precious"


def test_score_refuses_to_overwrite_plots_unless_asked(run_cli, tmp_path):
    ref = rs.write_tsv(
        tmp_path / "gt.tsv",
        rs.STRONG_HEADER,
        [["a.wav", 1.0, 3.0, "Dog"], ["b.wav", 2.0, 6.0, "Cat"]],
    )
    meta = rs.write_tsv(
        tmp_path / "durations.tsv", ["filename", "duration"], [["a.wav", 10], ["b.wav", 10]]
    )
    est = tmp_path / "detections"
    for threshold in (0.25, 0.5, 0.75):
        rs.write_tsv(est / f"{threshold:.6f}.tsv", rs.STRONG_HEADER, [["a.wav", 1.1, 3.0, "Dog"]])
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "psds1_roc.png").write_bytes(b"precious")
    argv = ["score", "--ref", ref, "--est", est, "--meta", meta, "--plot-dir", plots]
    result = run_cli(*argv)
    rs.assert_one_line_error(result, "psds1_roc.png", "--overwrite")
    assert (plots / "psds1_roc.png").read_bytes() == b"precious"
    assert run_cli(*argv, "--overwrite").code == 0
    assert (plots / "psds1_roc.png").read_bytes().startswith(b"\x89PNG")


# ------------------------------------------------------------------------ safe loading
class _Trap:
    """Unpickling this creates ``marker``: proof that arbitrary code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _trapped_checkpoint(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": 1, "modules": {}, "payload": _Trap(marker)}, path)
    assert not marker.exists()
    return path


def test_checkpoint_with_pickled_objects_is_refused_without_running_them(tmp_path):
    marker = tmp_path / "pwned"
    path = _trapped_checkpoint(tmp_path / "evil.pt", marker)
    with pytest.raises(UserError, match=f"^{path}: not a loadable sedkit checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()


def _copy_run(run_dir: Path, to: Path) -> Path:
    import shutil

    copy = Path(shutil.copytree(run_dir, to))
    record = json.loads((copy / "run.json").read_text())
    record["status"] = "failed"  # so that --resume accepts it
    (copy / "run.json").write_text(json.dumps(record))
    return copy


def test_predict_and_resume_refuse_trapped_or_damaged_checkpoints(
    trained_run, clip, run_cli, tmp_path
):
    marker = tmp_path / "pwned"
    run_dir = _copy_run(trained_run, tmp_path / "copy")
    best, last = run_dir / "checkpoints" / "best.pt", run_dir / "checkpoints" / "last.pt"
    _trapped_checkpoint(best, marker)
    result = run_cli("predict", run_dir, clip, "-o", tmp_path / "out.tsv")
    rs.assert_one_line_error(result, f"sedkit: error: {best}: not a loadable sedkit checkpoint")
    last.write_bytes(last.read_bytes()[:1000])  # a damaged file
    result = run_cli("run", "--resume", run_dir)
    rs.assert_one_line_error(result, f"sedkit: error: {last}: not a loadable sedkit checkpoint")
    trap = _trapped_checkpoint(tmp_path / "pretrained.pt", marker)
    recipe = _toy_recipe(tmp_path, epochs=1)
    override = f"trainer.transfer.init_from={trap}"
    result = run_cli("run", recipe, override, "--run-dir", tmp_path / "transfer")
    rs.assert_one_line_error(result, f"{trap}: not a loadable sedkit checkpoint")
    assert not marker.exists()


def test_feature_cache_never_unpickles(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "cache.npy"
    trap = np.empty(2, dtype=object)
    trap[:] = [_Trap(marker), _Trap(marker)]
    np.save(path, trap, allow_pickle=True)
    assert not marker.exists()
    with pytest.raises(ValueError):  # numpy refuses object arrays, never unpickling them
        CachedFeatures(path)[0]
    assert not marker.exists()


# ------------------------------------------------------------------------ plugins at the end
def _broken_reporter() -> types.ModuleType:
    module = types.ModuleType("broken_reporter")

    @sedkit.hookimpl
    def sedkit_run_end(run_dir, metrics, status):
        raise RuntimeError("report template missing")

    sedkit_run_end.__module__ = module.__name__
    module.sedkit_run_end = sedkit_run_end  # type: ignore[attr-defined]
    return module


def test_plugin_failing_at_run_end_keeps_results_and_is_one_message(monkeypatch, capsys, tmp_path):
    from sedkit import cli
    from sedkit import plugins as plugins_module

    plugins = Plugins.load(
        builtins_only=True,
        disabled={"reporting"},
        extra=[("toy", rs.toy_plugin), ("broken_reporter", _broken_reporter())],
    )
    monkeypatch.setattr(plugins_module, "_loaded", plugins)
    run_dir = tmp_path / "run"
    try:
        code = cli.main(["run", str(_toy_recipe(tmp_path, epochs=1)), "--run-dir", str(run_dir)])
    except Exception as exc:
        pytest.fail(f"raised instead of reporting: {type(exc).__name__}: {exc}")
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("sedkit: error:")]
    assert len(lines) == 1 and "broken_reporter" in lines[0] and "sedkit_run_end" in lines[0]
    assert _status(run_dir) == "completed"
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "completed"


def _plugin_failing_in(hook: str) -> types.ModuleType:
    module = types.ModuleType("broken_logger")

    def fail(**kwargs):
        raise OSError("log server unreachable")

    impl = sedkit.hookimpl(specname=hook)(fail)
    impl.__module__ = module.__name__
    setattr(module, f"failing_{hook}", impl)
    return module


@pytest.mark.parametrize("hook", ["sedkit_run_start", "sedkit_epoch_end"])
def test_plugin_failing_during_a_run_is_one_message_and_marks_it_failed(
    hook, monkeypatch, capsys, tmp_path
):
    """A lifecycle hook failing before the run completed: the run is marked failed (so that
    ``--resume`` accepts it), one line names the plugin and the hook, exit 1."""
    from sedkit import cli
    from sedkit import plugins as plugins_module

    plugins = Plugins.load(
        builtins_only=True,
        disabled={"reporting"},
        extra=[("toy", rs.toy_plugin), ("broken_logger", _plugin_failing_in(hook))],
    )
    monkeypatch.setattr(plugins_module, "_loaded", plugins)
    run_dir = tmp_path / "run"
    code = cli.main(["run", str(_toy_recipe(tmp_path, epochs=2)), "--run-dir", str(run_dir)])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err, err[-3000:]
    lines = [line for line in err.splitlines() if line.startswith("sedkit: error:")]
    assert lines == [
        f"sedkit: error: plugin 'broken_logger' failed in {hook}: OSError: log server unreachable"
    ]
    assert _status(run_dir) == "failed"
    if hook == "sedkit_epoch_end":  # epoch 1 was checkpointed before the hook ran
        assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["epoch"] == 1


def test_run_with_classes_absent_from_validation_completes(
    desed_tree, desed_recipe, run_cli_all_plugins, tmp_path
):
    """Validation clips that hold only some classes: scoring and the reports cope."""
    rs.write_tsv(
        desed_tree / "metadata/validation/validation.tsv",
        rs.STRONG_HEADER,
        [["val0.wav", 0.0, 0.25, "Dog"], ["val1.wav", 0.2, 0.5, "Speech"]],
    )
    run_dir = tmp_path / "run"
    result = run_cli_all_plugins("run", desed_recipe(desed_tree), "--run-dir", run_dir)
    assert result.code == 0 and "Traceback" not in result.err, result.err[-3000:]
    assert _status(run_dir) == "completed"


@pytest.mark.parametrize("damage", ["truncated", "empty", "not an array"])
def test_a_damaged_feature_cache_is_one_clear_error_naming_it(tmp_path, damage):
    from sedkit.data.cache import fill_cache

    path = fill_cache(tmp_path / "cache.npy", (4, 3, 5), [(range(4), torch.ones(4, 3, 5))])
    data = path.read_bytes()
    path.write_bytes(
        {"truncated": data[: len(data) // 2], "empty": b"", "not an array": b"x" * 200}[damage]
    )
    with pytest.raises(UserError, match=f"^{path}: damaged feature cache .*; delete it to rebuild"):
        CachedFeatures(path)


# ------------------------------------------------------------------------ plugin switches
def test_plugin_switches_say_what_they_do(monkeypatch, capsys, caplog):
    """A misspelt SEDKIT_DISABLE_PLUGINS name is named; a component of a plugin not loaded
    says so; SEDKIT_TRACE_HOOKS=1 prints one line per hook implementation called."""
    monkeypatch.setenv("SEDKIT_DISABLE_PLUGINS", "reportng,crnn")
    monkeypatch.setenv("SEDKIT_TRACE_HOOKS", "1")
    with caplog.at_level("WARNING", logger="sedkit"):
        plugins = Plugins.load(builtins_only=True)
    assert "SEDKIT_DISABLE_PLUGINS: no installed plugin named reportng" in caplog.text
    assert "[sedkit hooks] sedkit_register_models -> vgg" in capsys.readouterr().err
    with pytest.raises(UserError, match="unknown model 'crnn'.*; not loaded: crnn"):
        plugins.component("model", "crnn", key="model.name")


# ------------------------------------------------------------------------ sedkit compare
def _finished_run(root: Path, folder: str, *, seed: int, epochs: int, f1: float, status: str):
    import yaml

    run_dir = root / folder
    run_dir.mkdir(parents=True)
    recipe = {
        "description": "ablation",
        "seed": seed,
        "data": {"name": "desed", "params": {"root": "data/desed"}},
        "trainer": {"max_epochs": epochs},
        "run": {"name": "crnn", "root": str(root)},
    }
    (run_dir / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    (run_dir / "run.json").write_text(json.dumps({"status": status}))
    (run_dir / "metrics.json").write_text(json.dumps({"validation": {"event_f1_macro": f1}}))
    return run_dir


def test_compare_never_mixes_recipes_nor_counts_unfinished_runs(run_cli_all_plugins, tmp_path):
    """The issue's case: runs of one name that differ in epochs were averaged as if they were
    seeds, and a failed run was counted."""
    root = tmp_path / "runs"
    _finished_run(root, "a", seed=1, epochs=15, f1=0.30, status="completed")
    _finished_run(root, "b", seed=2, epochs=15, f1=0.40, status="completed")
    _finished_run(root, "c", seed=1, epochs=30, f1=0.50, status="stopped")
    failed = _finished_run(root, "d", seed=3, epochs=15, f1=0.0, status="failed")
    result = run_cli_all_plugins("compare", root, "--metrics", "event_f1_macro")
    assert result.code == 0, result.err
    cells = [re.split(r"\s{2,}", line.strip()) for line in result.out.splitlines()[2:]]
    rows = {name: rest for name, *rest in cells}
    assert rows == {
        "crnn [trainer.max_epochs=15]": ["2", "0.3500 ± 0.0707"],
        "crnn [trainer.max_epochs=30]": ["1", "0.5000"],
    }
    assert f"left out {failed} (status failed)" in result.err
    only_failed = run_cli_all_plugins("compare", failed)
    rs.assert_one_line_error(only_failed, "no run that completed")
