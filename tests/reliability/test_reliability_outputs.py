"""Outputs and options of the command line, by family: every output path x {an existing
file, a file in place of a folder, a folder in place of a file, a folder that cannot be made},
a run name leaving its root, every numeric option x {0, negative, NaN, infinite, huge}, and a
batch that cannot fit in memory. Each case: one ``sedkit: error:`` line naming the path or
option, exit code 2, and nothing changed on disk."""

from __future__ import annotations

import errno
import hashlib
from pathlib import Path

import pytest
import reliability_support as rs


def _tree_state(root: Path) -> dict[str, str]:
    """Every file and folder under ``root`` with its content digest ("dir" for folders)."""
    return {
        str(p.relative_to(root)): "dir"
        if p.is_dir()
        else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, lean_plugins) -> Path:
    return rs.finished_toy_run(tmp_path_factory.mktemp("outputs"), 1, lean_plugins)


@pytest.fixture
def work(tmp_path) -> Path:
    """A folder with a clip, a precious file and a file standing where a folder could be."""
    rs.write_wav(tmp_path / "clip.wav", rs.tone(0.5, freq=1000.0), rs.SR)
    (tmp_path / "precious.tsv").write_text("precious\n")
    (tmp_path / "plain_file").write_text("not a folder\n")
    return tmp_path


def _refused(result, work: Path, before: dict[str, str], *fragments: str) -> None:
    rs.assert_one_line_error(result, *fragments)
    assert _tree_state(work) == before


# ------------------------------------------------------------------------ output paths
#: (case id, argv after RUN_DIR CLIP, what the line says); paths relative to ``work``
PREDICT_CASES = [
    ("file exists", ["-o", "precious.tsv"], "precious.tsv: exists; use --overwrite"),
    ("folder given as file", ["-o", "."], "is a folder; give a file name"),
    ("file in place of folder", ["-o", "plain_file/out.tsv"], "plain_file is a file"),
    (
        "file given as thresholds folder",
        ["-o", "precious.tsv", "--thresholds", "0.5", "--overwrite"],
        "precious.tsv: is a file; give a folder",
    ),
    (
        "thresholds folder below a file",
        ["-o", "plain_file/psds", "--thresholds", "0.5"],
        "plain_file is a file",
    ),
    (
        "uncertainty file exists",
        ["-o", "new.tsv", "--mc-dropout", "2"],
        "new.uncertainty.tsv: exists; use --overwrite",
    ),
]


@pytest.mark.parametrize(
    ("case", "argv", "message"), PREDICT_CASES, ids=[c[0] for c in PREDICT_CASES]
)
def test_predict_output_paths(trained_run, work, run_cli, monkeypatch, case, argv, message):
    monkeypatch.chdir(work)
    if case == "uncertainty file exists":
        (work / "new.uncertainty.tsv").write_text("precious\n")
    before = _tree_state(work)
    _refused(run_cli("predict", trained_run, work / "clip.wav", *argv), work, before, message)


def test_predict_mc_dropout_writes_both_files_with_overwrite(trained_run, work, run_cli):
    out = work / "new.tsv"
    (work / "new.uncertainty.tsv").write_text("precious\n")
    argv = ["predict", trained_run, work / "clip.wav", "-o", out, "--mc-dropout", "2"]
    assert run_cli(*argv, "--overwrite").code == 0
    assert (work / "new.uncertainty.tsv").read_text().startswith("filename\t")


SHOW_CASES = [
    ("file exists", "existing.png", "existing.png: exists; use --overwrite"),
    ("file in place of folder", "plain_file/view.png", "plain_file is a file"),
    ("folder given as file", "folder.png", "folder.png: is a folder"),
]


@pytest.mark.parametrize(("case", "output", "message"), SHOW_CASES, ids=[c[0] for c in SHOW_CASES])
def test_show_output_paths(trained_run, work, run_cli_all_plugins, case, output, message):
    (work / "existing.png").write_bytes(b"precious")
    (work / "folder.png").mkdir()
    before = _tree_state(work)
    result = run_cli_all_plugins("show", trained_run, work / "clip.wav", "-o", work / output)
    _refused(result, work, before, message)


def test_run_dir_and_root_paths(work, run_cli):
    recipe = rs.write_toy_recipe(work, 1)
    before = _tree_state(work)
    cases = [
        (["--run-dir", work / "plain_file"], "run.dir: ", "is a file, not a folder"),
        (["--run-dir", work / "plain_file" / "run"], "run.dir: cannot create", "plain_file"),
        ([f"run.root={work / 'plain_file'}"], "run.root: cannot create", "plain_file"),
        (["run.name=../../escaped"], "run.name: '../../escaped' would put the run outside"),
    ]
    for argv, *fragments in cases:
        _refused(run_cli("run", recipe, *argv), work, before, *fragments)
    assert not (work.parent / "escaped").exists()


def test_a_run_root_that_cannot_be_made_is_one_line(work, run_cli, monkeypatch):
    """A read-only file system (the tests run as root, whom permissions do not stop)."""
    real_mkdir = Path.mkdir

    def read_only(self, *args, **kwargs):
        if "runs" in self.parts:
            raise OSError(errno.EROFS, "Read-only file system")
        return real_mkdir(self, *args, **kwargs)

    recipe = rs.write_toy_recipe(work, 1)
    monkeypatch.setattr(Path, "mkdir", read_only)
    before = _tree_state(work)
    result = run_cli("run", recipe)
    _refused(result, work, before, "run.root: cannot create", "Read-only file system")


def _score_argv(work: Path) -> list[object]:
    """``sedkit score`` with PSDS (three thresholds) on a ground truth of two clips."""
    gt = rs.write_tsv(work / "gt.tsv", rs.STRONG_HEADER, [["a.wav", 1.0, 3.0, "Dog"]])
    meta = rs.write_tsv(work / "dur.tsv", ["filename", "duration"], [["a.wav", 10]])
    for threshold in (0.25, 0.5, 0.75):
        rs.write_tsv(
            work / "est" / f"{threshold:.6f}.tsv", rs.STRONG_HEADER, [["a.wav", 1.1, 3.0, "Dog"]]
        )
    return ["score", "--ref", gt, "--est", work / "est", "--meta", meta]


@pytest.mark.parametrize(
    ("plot_dir", "message"),
    [
        ("plain_file", "plain_file: is a file; give a folder"),
        ("plain_file/plots", "cannot be written: "),
        ("read_only/plots", "read_only is not writable"),
    ],
    ids=["file in place of folder", "below a file", "read-only folder"],
)
def test_score_plot_dir_that_cannot_be_written_is_one_line(
    work, run_cli, monkeypatch, plot_dir, message
):
    """Refused before scoring. The tests run as root, whom permissions do not stop: the
    read-only case answers as ``access(2)`` does on a read-only file system."""
    import sedkit.outputs

    argv = _score_argv(work)
    (work / "read_only").mkdir()
    real_access = sedkit.outputs.os.access
    monkeypatch.setattr(
        sedkit.outputs.os,
        "access",
        lambda path, mode: Path(path).name != "read_only" and real_access(path, mode),
    )
    before = _tree_state(work)
    _refused(run_cli(*argv, "--plot-dir", work / plot_dir), work, before, message)
    assert run_cli(*argv, "--plot-dir", work / "plots").code == 0  # a writable folder is made


@pytest.mark.parametrize(
    ("out", "message"),
    [("plain_file", "plain_file: is a file; give a folder"), ("plain_file/new", "is a file")],
)
def test_synth_into_a_file_is_one_line(work, run_cli, out, message):
    before = _tree_state(work)
    _refused(run_cli("synth", "desed", work / out), work, before, message)


# ------------------------------------------------------------------------ numeric options
NUMERIC_CASES = [
    (["--batch-size", "0"], "--batch-size: 0 is below the smallest allowed value, 1"),
    (["--batch-size", "-4"], "--batch-size: -4 is below"),
    (["--batch-size", "nan"], "argument --batch-size: invalid int value: 'nan'"),
    (["--mc-dropout", "-1"], "--mc-dropout: -1 is below"),
    (["--mc-dropout", "1000000"], "--mc-dropout: 1000000 is above the largest allowed value"),
    (["--threshold", "-0.1"], "--threshold: -0.1 is below"),
    (["--threshold", "1.5"], "--threshold: 1.5 is above"),
    (["--threshold", "nan"], "--threshold: nan is not a finite number"),
    (["--threshold", "inf"], "--threshold: inf is not a finite number"),
    (["--thresholds", "0.5", "nan"], "--thresholds: nan is not a finite number"),
    (["--thresholds", "0.5", "2"], "--thresholds: 2.0 is above"),
    (["--median-filter", "-1"], "--median-filter: -1.0 is below"),
    (["--median-filter", "nan"], "--median-filter: nan is not a finite number"),
]


@pytest.mark.parametrize(
    ("argv", "message"), NUMERIC_CASES, ids=[" ".join(c[0]) for c in NUMERIC_CASES]
)
def test_predict_numeric_options(trained_run, work, run_cli, argv, message):
    before = _tree_state(work)
    out = work / "out"
    result = run_cli("predict", trained_run, work / "clip.wav", "-o", out, *argv)
    _refused(result, work, before, message)


@pytest.mark.parametrize("seed", ["-1", "99999999999", "nan"])
def test_synth_seed(work, run_cli, seed):
    before = _tree_state(work)
    _refused(run_cli("synth", "desed", work / "new", "--seed", seed), work, before, "--seed")


# ------------------------------------------------------------------------ limits up front
#: (case id, override, fragments of the one error line); each refused by validate and by run
LIMIT_CASES = [
    (
        "batch",
        "data.params.batch_size=100000000",
        ["data.params.batch_size: 100000000 clips of 0.5 s need at least", " TB for one batch"],
    ),
    (
        "shorter than a window",
        "data.params.clip_duration_s=0.01",
        ["data.params.clip_duration_s: 0.01 s at 8000 Hz is 80 samples", "(features.n_fft: 256)"],
    ),
    # The model is measured on the meta device: 5.3e11 parameters cost nothing to count.
    ("model", "model.params.hidden=10000000000", ["model (toy_model): 530,000,000,004 param"]),
    ("clip length", "data.params.clip_duration_s=1000000", ["clip_duration_s: one clip of 1e+06"]),
]


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize(
    ("case", "override", "fragments"), LIMIT_CASES, ids=[c[0] for c in LIMIT_CASES]
)
def test_limits_are_refused_up_front_with_the_estimate(
    desed_tree, desed_recipe, run_cli, tmp_path, command, case, override, fragments
):
    recipe = desed_recipe(desed_tree)
    before = _tree_state(tmp_path)
    result = run_cli(command, recipe, override)
    rs.assert_one_line_error(result, *fragments)
    assert _tree_state(tmp_path) == before  # no run folder


def test_limits_use_the_memory_given(tmp_path, lean_plugins):
    """The estimate against a small machine: a clip of 0.5 s at 8 kHz is 4000 samples and
    63 frames of 129 + 16 bins, 52 540 bytes in float32; the toy model's layers give 4 496
    bytes of outputs a clip (conv 8 x 63, pooled 8 x 31, dropout, head 4 x 31, float32), its
    428 parameters 6 848 bytes with gradients and Adam's moments: a batch of 4, 229.5 KB."""
    from sedkit.errors import UserError
    from sedkit.recipe import load_recipe
    from sedkit.run import check_limits, model_footprint

    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        rs.DESED_RECIPE.format(root=tmp_path, runs=tmp_path, model=rs.TOY_MODEL, epochs=1)
    )
    loaded = load_recipe(recipe, plugins=lean_plugins)
    assert model_footprint(loaded, 0.5) == (16 * 428, 4 * (8 * 63 + 2 * 8 * 31 + 4 * 31))
    check_limits(loaded, available=10**6)
    expected = (
        r"4 clips of 0.5 s need at least 229.5 KB for one batch \(55.7 KB a clip: 51.3 KB of "
        r"waveform and spectrograms, 4.4 KB of model activations; plus 6.7 KB of parameters"
    )
    with pytest.raises(UserError, match=expected):
        check_limits(loaded, available=10**5)
    with pytest.raises(UserError, match=r"one clip of 0.5 s needs at least 55.7 KB"):
        check_limits(loaded, available=6 * 10**4)
    with pytest.raises(UserError, match=r"model \(toy_model\): 428 parameters need at least"):
        check_limits(loaded, available=6 * 10**3)
