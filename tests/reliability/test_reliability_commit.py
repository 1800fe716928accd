"""The checkpoint protocol under faults: a run stopped at every write boundary resumes to the
uninterrupted result, and a best checkpoint that is not the recorded one is refused.

Fault injection: :func:`sedkit.checkpoint.write_boundary` is called before and after each step
of every durable write (temporary file written, renamed, line appended). The test replaces it
to copy the run folder at each call: each copy is exactly what a SIGKILL at that moment leaves
on disk (plus, after each appended metrics line, a copy with that line cut in half, as a kill in
the middle of the append leaves it). Each copy is then resumed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import reliability_support as rs

from sedkit import checkpoint as checkpoint_module
from sedkit.checkpoint import BEST, LAST, PENDING_BEST, CheckpointMismatchError
from sedkit.errors import UserError
from sedkit.run import resume_run, start_run


class _Snapshots:
    """A ``write_boundary`` replacement that copies the run folder at every call."""

    def __init__(self, run_dir: Path, into: Path):
        self.run_dir, self.into = run_dir, into
        self.taken: list[tuple[str, Path]] = []

    def __call__(self, step: str, path: Path) -> None:
        label = f"{len(self.taken):03d}-{step}-{Path(path).name}"
        copy = Path(shutil.copytree(self.run_dir, self.into / label))
        self.taken.append((label, copy))
        if step == "appended":  # a kill in the middle of the append: half a line
            torn = Path(shutil.copytree(copy, self.into / f"{label}-torn"))
            target = torn / Path(path).relative_to(self.run_dir)
            text = target.read_text()
            target.write_text(text[: len(text) - len(text.splitlines()[-1]) // 2 - 1])
            self.taken.append((f"{label}-torn", torn))


@pytest.fixture(scope="module")
def interrupted_everywhere(tmp_path_factory, lean_plugins):
    """An uninterrupted 3-epoch toy run (best at epochs 1 and 3, not 2) and a copy of its
    folder at every write boundary."""
    tmp = tmp_path_factory.mktemp("commit")
    run_dir = tmp / "run"
    snapshots = _Snapshots(run_dir, tmp / "copies")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(checkpoint_module, "write_boundary", snapshots)
        assert (
            start_run(rs.write_toy_recipe(tmp, 3), [], plugins=lean_plugins, run_dir=str(run_dir))
            == 0
        )
    return run_dir, snapshots.taken


def test_every_write_boundary_is_seen(interrupted_everywhere):
    """The injector reaches both checkpoints, the pending best, both metrics files and the
    run records: none of them is written outside the protocol."""
    _, taken = interrupted_everywhere
    names = {label.split("-", 2)[2].removesuffix("-torn") for label, _ in taken}
    for name in (LAST, PENDING_BEST, BEST, "metrics.jsonl", "metrics.json", "run.json"):
        assert name in names, name
    steps = [label.split("-")[1] for label, _ in taken]
    assert {"begin", "written", "replaced", "appended"} <= set(steps)
    assert len(taken) > 40


def test_resume_from_every_write_boundary_equals_the_uninterrupted_run(
    interrupted_everywhere, lean_plugins, tmp_path
):
    reference, taken = interrupted_everywhere
    ref_final, ref_epochs, ref_state = rs.run_results(reference)
    assert ref_final["best_epoch"] == 3 and [e["best_epoch"] for e in ref_epochs] == [1, 1, 3]
    outcomes: dict[str, str] = {}
    for label, snapshot in taken:
        copy = Path(shutil.copytree(snapshot, tmp_path / label))  # the snapshots stay as taken
        try:
            resume_run(copy, plugins=lean_plugins)
        except UserError as exc:
            message = str(exc)
            if "(no recipe.yaml)" in message or "interrupted before it began" in message:
                outcomes[label] = "refused before the run began"  # nothing to resume yet
                continue
            if "already completed" not in message:
                outcomes[label] = f"error: {message}"
                continue
        final, epochs, state = rs.run_results(copy)
        differences = rs.state_differences(state, ref_state)
        if final != ref_final or epochs != ref_epochs:
            differences.append("metrics")
        outcomes[label] = f"DIFFERENT: {differences}" if differences else "equal"
        leftovers = [p.name for p in copy.glob(".*.tmp")] + [
            p.name for p in (copy / "checkpoints").iterdir() if p.name not in (LAST, BEST)
        ]
        if leftovers:
            outcomes[label] = f"left {leftovers}"
    bad = {k: v for k, v in outcomes.items() if v not in ("equal", "refused before the run began")}
    assert not bad, bad
    refused = [k for k, v in outcomes.items() if v != "equal"]
    # Exactly the boundaries before run.json first exists are refused (nothing to resume).
    first_record = next(
        i for i, (label, _) in enumerate(taken) if label.endswith("replaced-run.json")
    )
    assert refused == [label for label, _ in taken[:first_record]], refused


def test_final_evaluation_refuses_a_best_checkpoint_that_is_not_the_recorded_one(
    interrupted_everywhere, lean_plugins, tmp_path
):
    """The issue's case: best.pt of another epoch in place (here: epoch 1's, the run's best
    is epoch 3) must not be evaluated as the best."""
    reference, taken = interrupted_everywhere
    label, early = next((lbl, c) for lbl, c in taken if lbl.endswith(f"replaced-{BEST}"))
    run_dir = Path(shutil.copytree(reference, tmp_path / "run"))
    shutil.copyfile(early / "checkpoints" / BEST, run_dir / "checkpoints" / BEST)
    record = json.loads((run_dir / "run.json").read_text())
    record["status"] = "interrupted"
    (run_dir / "run.json").write_text(json.dumps(record))
    (run_dir / "metrics.json").unlink()
    with pytest.raises(CheckpointMismatchError, match="not the best checkpoint last.pt records"):
        resume_run(run_dir, plugins=lean_plugins)
    assert not (run_dir / "metrics.json").exists()
    (run_dir / "checkpoints" / BEST).unlink()  # a best.pt lost to a full disk
    with pytest.raises(CheckpointMismatchError, match="best.pt"):
        resume_run(run_dir, plugins=lean_plugins)
    assert not (run_dir / "metrics.json").exists()


def test_predict_refuses_a_best_checkpoint_that_is_not_the_recorded_one(
    interrupted_everywhere, run_cli, tmp_path
):
    reference, taken = interrupted_everywhere
    early = next(copy for label, copy in taken if label.endswith(f"replaced-{BEST}"))
    run_dir = Path(shutil.copytree(reference, tmp_path / "run"))
    best = run_dir / "checkpoints" / BEST
    shutil.copyfile(early / "checkpoints" / BEST, best)  # epoch 1's, loadable
    clip = rs.write_wav(tmp_path / "clip.wav", rs.tone(0.5), rs.SR)
    out = tmp_path / "out.tsv"
    result = run_cli("predict", run_dir, clip, "-o", out)
    rs.assert_one_line_error(result, f"{best}: not the checkpoint the run recorded")
    assert not out.exists()
    best.unlink()  # lost: predict must not fall back to last.pt as if it were the best
    result = run_cli("predict", run_dir, clip, "-o", out)
    rs.assert_one_line_error(result, f"{best}: the run recorded this checkpoint; it is gone")
    assert run_cli("predict", run_dir, clip, "-o", out, "--checkpoint", "last").code == 0
