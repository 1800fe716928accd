"""The reporting plugin on a tiny real run: every plot, the report (numbers equal
metrics.json), TensorBoard scalars, ``sedkit show`` and ``sedkit compare``."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile

import sedkit.plugins
from sedkit import hookimpl
from sedkit.errors import UserError
from sedkit.plugins import Plugins
from sedkit.run import start_run
from sedkit_plugins import reporting
from sedkit_plugins.reporting import plots, rundata, tensorboard
from sedkit_plugins.reporting.commands import show_clip
from sedkit_plugins.reporting.detection import DURATIONS, GROUND_TRUTH, reference_events
from sedkit_plugins.reporting.report import format_number, write_run_report

ENGINE_TESTS = Path(__file__).resolve().parent.parent / "engine"
sys.path.insert(0, str(ENGINE_TESTS))
import toy_plugin  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ToyFileData(toy_plugin.ToyData):
    """The engine's toy data, plus what a real data module leaves in the run directory: the
    validation audio as files, clips_used.tsv and the DESED-style ground truth and durations."""

    def setup(self, run_dir, encoder, extractor):
        super().setup(run_dir, encoder, extractor)
        if self.run_dir is None:
            return
        audio_dir = self.run_dir / "audio"
        audio_dir.mkdir(exist_ok=True)
        rows = [["subset", "filename", "path"]]
        for name, audio, _ in self.val:
            path = audio_dir / name
            soundfile.write(path, audio.numpy(), self.context.sample_rate, subtype="FLOAT")
            rows.append(["validation", name, str(path)])
        rows += [["synthetic", f"toy_{i:05d}.wav", ""] for i in range(self.params.n_train)]
        with (self.run_dir / "clips_used.tsv").open("w", newline="") as handle:
            csv.writer(handle, delimiter="\t", lineterminator="\n").writerows(rows)
        shutil.copyfile(self.run_dir / "toy_gt.tsv", self.run_dir / GROUND_TRUTH)
        shutil.copyfile(self.run_dir / "toy_durations.tsv", self.run_dir / DURATIONS)


@hookimpl
def sedkit_register_datasets(register):
    register("toy_file_data", ToyFileData)


RECIPE = """\
description: toy run with audio files on disk
seed: 3
data: {{name: toy_file_data, params: {{n_train: 16, n_val: 6, batch_size: 4}}}}
model: {{name: toy_model, params: {{hidden: 16}}}}
features: {{sample_rate: 8000, n_fft: 256, hop_length: 64, n_mels: 16}}
trainer:
  max_epochs: 2
  device: cpu
  progress_bar: false
  optimizer: {{name: adam, lr: 0.01}}
decoding: {{median_filter_s: 0.0, psds_thresholds: 4}}
run: {{root: {root}, name: toy_report}}
"""


@pytest.fixture(scope="module")
def toy_plugins():
    files = types.ModuleType("toy_files_plugin")
    files.sedkit_register_datasets = sedkit_register_datasets
    return Plugins.load(builtins_only=True, extra=[("toy", toy_plugin), ("toy_files", files)])


@pytest.fixture(scope="module")
def finished_run(toy_plugins, tmp_path_factory):
    """One tiny run; the report is written by the plugin's sedkit_run_end hook."""
    tmp = tmp_path_factory.mktemp("report")
    recipe = tmp / "toy_report.yaml"
    recipe.write_text(RECIPE.format(root=tmp / "runs"))
    run_dir = tmp / "run"
    with pytest.MonkeyPatch.context() as mp:
        # Commands and the detection view load recipes through the process-wide plugin set.
        mp.setattr(sedkit.plugins, "_loaded", toy_plugins)
        mp.delenv("SEDKIT_REPORT_CLIPS", raising=False)
        assert start_run(recipe, [], plugins=toy_plugins, run_dir=str(run_dir)) == 0
    return run_dir


def _assert_png(path: Path) -> np.ndarray:
    from matplotlib.image import imread

    assert path.is_file(), path
    assert path.read_bytes()[:8] == PNG_SIGNATURE, path
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image[..., :3].std() > 0.01, f"{path} is blank"
    return image


# ------------------------------------------------------------------------------------------
# A finished run: plots and report
# ------------------------------------------------------------------------------------------
def test_tiny_run_produces_every_plot(finished_run):
    names = {p.relative_to(finished_run / "plots").as_posix() for p in finished_run.rglob("*.png")}
    expected = {
        "training_curves.png",
        "classwise.png",
        "psds1_roc.png",
        "psds1_roc_per_class.png",
        "psds2_roc.png",
        "psds2_roc_per_class.png",
    }
    assert expected <= names
    detection = sorted(n for n in names if n.startswith("detection/"))
    # The three validation clips with the most reference events, as the default promises.
    events = reference_events(finished_run)
    ranked = sorted(events, key=lambda n: (-len(events[n]), n))[:3]
    assert detection == [f"detection/{Path(n).stem}.png" for n in ranked]
    for name in names:
        _assert_png(finished_run / "plots" / name)


def _markdown_tables(text: str) -> dict[str, str]:
    """First two cells of every Markdown table row (key -> value)."""
    cells = {}
    for line in text.splitlines():
        parts = [p.strip() for p in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(parts) >= 2 and parts[0] not in cells:
            cells[parts[0]] = parts[1]
    return cells


def test_report_numbers_equal_metrics_json(finished_run):
    report = (finished_run / "report.md").read_text()
    metrics = json.loads((finished_run / "metrics.json").read_text())
    validation = metrics["validation"]
    assert report.startswith("# Run report: toy_report\n")
    for heading in ("## Recipe", "## Data", "## Final metrics", "## Plots", "## Time and hardware"):
        assert f"\n{heading}\n" in report
    cells = _markdown_tables(report)
    scalar = {k: v for k, v in validation.items() if isinstance(v, float)}
    assert {"event_f1_macro", "segment_f1_macro", "psds1", "psds2"} <= set(scalar)
    for key, value in scalar.items():
        assert float(cells[key]) == pytest.approx(value, abs=5e-5), key
        assert cells[key] == f"{value:.4f}"
    # Class-wise rows: class | event_f1 | segment_f1 | intersection_f1.
    for label, values in validation["classwise"].items():
        row = re.search(rf"^\| {label} \| (.+) \|$", report, re.M).group(1).split(" | ")
        expected = [values["event_f1"], values["segment_f1"], values["intersection_f1"]]
        assert [float(c) for c in row] == pytest.approx(expected, abs=5e-5)
    # Data summary from clips_used.tsv; time and hardware from metrics.json / environment.json.
    assert cells["validation"] == "6" and cells["synthetic"] == "16"
    environment = json.loads((finished_run / "environment.json").read_text())
    assert cells["device"] == environment["device"] == "cpu"
    assert f"({metrics['train_time_s']:.1f} s)" in cells["training time"]
    assert cells["epochs"] == str(metrics["epochs"]) == "2"
    # Every image the report shows exists.
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert links and all((finished_run / link).is_file() for link in links)
    assert "plots/psds1_roc.png" in links and "plots/training_curves.png" in links


def test_html_report_says_the_same(finished_run):
    page = (finished_run / "report.html").read_text()
    validation = json.loads((finished_run / "metrics.json").read_text())["validation"]
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert f'<td class="num">{validation["psds1"]:.4f}</td>' in page
    assert '<img src="plots/classwise.png"' in page


def test_psd_roc_comes_from_the_runs_own_operating_points(finished_run, tmp_path):
    """Re-scoring the saved operating points gives back the run's PSDS, so the curves drawn
    are those of the reported numbers."""
    from sedkit.scoring import detection_files_by_threshold

    validation = json.loads((finished_run / "metrics.json").read_text())["validation"]
    _, scores = plots.plot_psd_roc_curves(
        ground_truth=finished_run / GROUND_TRUTH,
        durations=finished_run / DURATIONS,
        detections=finished_run / "predictions" / "validation_detections.tsv",
        psds_detections=detection_files_by_threshold(finished_run / "predictions" / "psds"),
        classes=list(validation["classwise"]),
        out_dir=tmp_path,
    )
    assert scores["psds1"] == pytest.approx(validation["psds1"], abs=1e-9)
    assert scores["psds2"] == pytest.approx(validation["psds2"], abs=1e-9)


def test_show_renders_a_clip_and_names_unknown_ones(finished_run, toy_plugins, tmp_path):
    clip = next(iter(reference_events(finished_run)))
    out = show_clip(finished_run, clip, tmp_path / "view.png", plugins=toy_plugins)
    _assert_png(out)
    audio = finished_run / "audio" / clip  # an audio path works too
    _assert_png(show_clip(finished_run, str(audio), tmp_path / "v2.png", plugins=toy_plugins))
    with pytest.raises(UserError, match="neither an audio file nor a clip listed"):
        show_clip(finished_run, "nope.wav", tmp_path / "x.png", plugins=toy_plugins)
    with pytest.raises(UserError, match="not a sedkit run directory"):
        show_clip(tmp_path, clip, None, plugins=toy_plugins)


# ------------------------------------------------------------------------------------------
# The detection view draws events at the right times
# ------------------------------------------------------------------------------------------
def test_detection_view_bars_at_event_times(tmp_path):
    """Known synthetic events: the first and last pixel column of each drawn bar map back to
    its onset and offset within one output frame."""
    from matplotlib.image import imread

    classes = ["Speech", "Dog", "Alarm_bell_ringing"]
    duration, frame_hop = 10.0, 0.064
    n_frames = int(duration / frame_hop)
    probs = np.full((n_frames, 3), 0.1)
    predicted_frames = {
        "Speech": [(20, 45)],
        "Dog": [(100, 130)],
        "Alarm_bell_ringing": [(140, 156)],
    }
    predicted = []
    for k, c in enumerate(classes):
        for first, stop in predicted_frames[c]:
            probs[first:stop, k] = 0.9
            predicted.append((first * frame_hop, stop * frame_hop, c))
    reference = [(1.0, 2.5, "Speech"), (6.2, 8.4, "Dog"), (0.3, 0.9, "Alarm_bell_ringing")]
    reference.append((9.1, 10.0, "Alarm_bell_ringing"))
    rng = np.random.default_rng(0)
    view = plots.DetectionView(
        clip="synthetic.wav",
        log_mel=rng.normal(size=(64, 626)),
        feature_hop_s=0.016,
        frame_probs=probs,
        frame_hop_s=frame_hop,
        classes=classes,
        reference=reference,
        predicted=predicted,
        duration_s=duration,
        threshold=0.5,
    )
    drawn = plots.draw_detection_view(view)
    png = tmp_path / "view.png"
    drawn.figure.savefig(png, dpi=drawn.figure.dpi)
    image = imread(png)[..., :3]
    height = image.shape[0]
    box = drawn.events.get_window_extent()  # display pixels, origin bottom left
    px_per_s = box.width / duration
    colours = plots.class_colours(len(classes))
    for kind, events in (("reference", reference), ("predicted", predicted)):
        for onset, offset, label in events:
            y = drawn.events.transData.transform((0, drawn.row_y(label, kind)))[1]
            row = image[int(round(height - y))]
            k = classes.index(label)
            match = np.all(np.abs(row - np.array(colours[k])) < 0.02, axis=1)
            # Columns of this bar: the matching run nearest the expected onset.
            expected = (box.x0 + onset * px_per_s, box.x0 + offset * px_per_s)
            columns = np.flatnonzero(match)
            near = columns[(columns >= expected[0] - 2) & (columns <= expected[1] + 2)]
            assert near.size, (kind, label, onset)
            first_s = (near.min() - box.x0) / px_per_s
            last_s = (near.max() + 1 - box.x0) / px_per_s
            assert abs(first_s - onset) <= frame_hop, (kind, label, first_s, onset)
            assert abs(last_s - offset) <= frame_hop, (kind, label, last_s, offset)
            # And the bar is solid between them (no other event of this class there).
            assert match[near.min() : near.max() + 1].all()
    # No stray bar: a class's rows match its colour only inside its events.
    y = drawn.events.transData.transform((0, drawn.row_y("Dog", "reference")))[1]
    row = image[int(round(height - y))]
    match = np.all(np.abs(row - np.array(colours[1])) < 0.02, axis=1)
    times = (np.flatnonzero(match) + 0.5 - box.x0) / px_per_s
    assert ((times > 6.2 - frame_hop) & (times < 8.4 + frame_hop)).all()


# ------------------------------------------------------------------------------------------
# Other runs: classification, pseudo-labels, a failed run (run directories written by hand)
# ------------------------------------------------------------------------------------------
def _fake_run(root: Path, name: str, *, task="sed", seed=1, metrics=None, epochs=(), status=None):
    run_dir = root / f"{name}-{seed}"
    run_dir.mkdir(parents=True)
    recipe = {
        "description": f"{name} description",
        "task": task,
        "seed": seed,
        "data": {"name": "desed", "params": {}},
        "model": {"name": "crnn", "params": {}},
        "run": {"name": name},
    }
    import yaml

    (run_dir / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    (run_dir / "run.json").write_text(json.dumps({"status": status or "completed"}))
    if metrics is not None:
        (run_dir / "metrics.json").write_text(json.dumps(metrics))
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in epochs))
    return run_dir


def test_classification_report_confusion_and_pseudo_labels(tmp_path):
    classes = ["airport", "bus", "park"]
    confusion = [[5, 1, 0], [2, 3, 1], [0, 0, 6]]
    # Written before metrics were named by recipe section (pl_*): drawn all the same.
    epochs = [
        {"epoch": e, "train_loss": 1.0 / e, "lr": 1e-3, "accuracy": 0.5 + 0.1 * e,
         "pl_quality": 0.6 + 0.05 * e, "pl_quantity": 0.2 * e,
         "pl_confusion": [[e, 0, 0], [0, e, 1], [0, 0, e]]}
        for e in (1, 2, 3)
    ]  # fmt: skip
    validation = {
        "accuracy": 14 / 18,
        "accuracy_macro": (5 / 6 + 3 / 6 + 1) / 3,
        "log_loss": 0.61,
        "classwise_accuracy": {"airport": 5 / 6, "bus": 0.5, "park": 1.0},
        "confusion_matrix": confusion,
    }
    metrics = {"validation": validation, "best_epoch": 3, "status": "completed", "epochs": 3}
    run_dir = _fake_run(tmp_path, "fmuc", task="classification", metrics=metrics, epochs=epochs)
    files = write_run_report(run_dir, "completed")
    made = {p.path.name for p in files.plots}
    assert {"confusion_matrix.png", "pseudo_label_confusion.png", "pseudo_labels.png"} <= made
    assert {"training_curves.png", "classwise.png"} <= made
    for plot in files.plots:
        _assert_png(plot.path)
    cells = _markdown_tables(files.markdown.read_text())
    assert cells["accuracy"] == "0.7778" and cells["log_loss"] == "0.6100"
    assert [cells[c] for c in classes] == ["0.8333", "0.5000", "1.0000"]


def test_failed_run_reports_what_exists(tmp_path):
    epochs = [{"epoch": 1, "train_loss": 0.9, "lr": 0.001, "event_f1_macro": 0.25}]
    run_dir = _fake_run(tmp_path, "broken", epochs=epochs, status="failed")
    files = write_run_report(run_dir, "failed")
    text = files.markdown.read_text()
    assert "status 'failed' before its final evaluation" in text
    assert _markdown_tables(text)["event_f1_macro"] == "0.2500"
    assert [p.path.name for p in files.plots] == ["training_curves.png"]
    # Nothing at all yet: still a report, no plots.
    empty = _fake_run(tmp_path, "empty", status="failed")
    assert "no epoch finished" in write_run_report(empty, "failed").markdown.read_text()


def test_format_number():
    assert format_number(0.123456) == "0.1235"
    assert format_number("nan") == "nan"
    assert format_number(3) == "3"


# ------------------------------------------------------------------------------------------
# TensorBoard
# ------------------------------------------------------------------------------------------
class FakeWriter:
    instances: list[FakeWriter] = []

    def __init__(self, log_dir, purge_step=None):
        self.log_dir, self.purge_step = log_dir, purge_step
        self.scalars, self.texts, self.closed = [], [], False
        FakeWriter.instances.append(self)

    def add_scalar(self, tag, value, global_step):
        self.scalars.append((tag, value, global_step))

    def add_text(self, tag, text, global_step):
        self.texts.append(tag)

    def flush(self):
        pass

    def close(self):
        self.closed = True


def test_tensorboard_scalars_per_epoch(tmp_path, monkeypatch):
    monkeypatch.setattr(tensorboard, "summary_writer_class", lambda: FakeWriter)
    logger = tensorboard.TensorBoardLogger()
    logger.run_start(tmp_path, {"seed": 1})
    metrics = {
        "stage": "stage1",
        "lr": 0.001,
        "train_loss": 0.5,
        "train_frame_bce": 0.3,
        "event_f1_macro": 0.4,
        "event_precision_macro": 0.45,
        "pseudo_labeler/clip_kept": 0.2,
        "domain_adapter/accuracy": 0.6,
        "callbacks/sparsity": 0.5,
        "pseudo_labeler/confusion": [[1]],
        "best_epoch": 3,
    }
    logger.epoch_end(tmp_path, 3, metrics)  # a resumed run: first logged epoch is 3
    logger.epoch_end(tmp_path, 4, {"train_loss": 0.4})
    (writer,) = FakeWriter.instances
    assert writer.log_dir == str(tmp_path / "tensorboard") and writer.purge_step == 3
    assert writer.texts == ["recipe"]
    assert set(writer.scalars) == {
        ("lr", 0.001, 3),
        ("loss/loss", 0.5, 3),
        ("loss/frame_bce", 0.3, 3),
        ("validation/event_f1_macro", 0.4, 3),
        ("validation_details/event_precision_macro", 0.45, 3),
        ("pseudo_labeler/clip_kept", 0.2, 3),
        ("domain_adapter/accuracy", 0.6, 3),
        ("callbacks/sparsity", 0.5, 3),
        ("loss/loss", 0.4, 4),
    }
    logger.run_end(tmp_path)
    assert writer.closed and not logger.writers


def test_tensorboard_real_event_files_read_back(tmp_path):
    """With the tensorboard extra installed (CI installs it), real event files are written and
    TensorBoard's own reader finds every scalar, including after a resume that purges steps."""
    if not os.environ.get("CI"):  # CI installs the lock, tensorboard included: never skip there
        pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = tensorboard.TensorBoardLogger()
    logger.run_start(tmp_path, {"seed": 7})
    for epoch, loss in ((1, 0.9), (2, 0.7), (3, 0.6)):
        logger.epoch_end(tmp_path, epoch, {"train_loss": loss, "event_f1_macro": loss / 3})
    logger.run_end(tmp_path)
    # A resume from the epoch-2 checkpoint logs epoch 3 again: the first copy is purged.
    logger.epoch_end(tmp_path, 3, {"train_loss": 0.55, "event_f1_macro": 0.2})
    logger.run_end(tmp_path)
    files = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert files, "no event file written"
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert {"loss/loss", "validation/event_f1_macro"} <= set(events.Tags()["scalars"])
    losses = [(e.step, round(e.value, 6)) for e in events.Scalars("loss/loss")]
    assert losses == [(1, 0.9), (2, 0.7), (3, 0.55)]


def test_without_tensorboard_one_info_line(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(tensorboard, "summary_writer_class", lambda: None)
    logger = tensorboard.TensorBoardLogger()
    with caplog.at_level("INFO", logger="sedkit"):
        for epoch in (1, 2):
            logger.epoch_end(tmp_path, epoch, {"train_loss": 1.0})
    lines = [r for r in caplog.records if "TensorBoard is not installed" in r.getMessage()]
    assert len(lines) == 1
    assert not (tmp_path / "tensorboard").exists()


def test_plugin_declares_its_hooks_and_commands():
    loaded = Plugins.load(builtins_only=True)
    info = {p.name: p for p in loaded.plugins}["reporting"]
    assert info.status == "loaded", info.error
    assert info.components == {"command": ["compare", "show", "report"]}
    assert {"sedkit_epoch_end", "sedkit_run_end", "sedkit_run_start"} <= set(info.hooks)
    assert reporting.TENSORBOARD is not None


# ------------------------------------------------------------------------------------------
# sedkit compare
# ------------------------------------------------------------------------------------------
TABLE1 = {  # name -> per-seed (event F1, segment F1): METHODS.md Table 1 values, two seeds
    "dcase2019_task4-baseline": [(0.2415, 0.5770), (0.2515, 0.5670)],
    "dcase2019_task4-adv_whole": [(0.3065, 0.5906)],
    "dcase2019_task4-adv_time": [(0.3133, 0.5926)],
    "dcase2019_task4-tri": [(0.3023, 0.6286)],
    "dcase2019_task4-adv_whole_tri": [(0.3264, 0.6048)],
    "dcase2019_task4-adv_time_tri": [(0.3510, 0.6067), (0.3410, 0.6167), (0.3610, 0.5967)],
}


@pytest.fixture
def table1_runs(tmp_path):
    root = tmp_path / "runs"
    for name, seeds in TABLE1.items():
        for seed, (event_f1, segment_f1) in enumerate(seeds):
            validation = {
                "event_f1_macro": event_f1,
                "segment_f1_macro": segment_f1,
                "psds1": event_f1 / 2,
                "psds2": "nan",
            }
            _fake_run(root, name, seed=seed, metrics={"validation": validation})
    return root


def _cli(args, capsys):
    from sedkit.cli import main

    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_compare_prints_the_table1_ablation(table1_runs, capsys):
    code, out, _ = _cli(["compare", str(table1_runs)], capsys)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["run", "n", "event_f1_macro", "segment_f1_macro", "psds1", "psds2"]
    rows = {line.split()[0]: line for line in lines[2:]}
    assert set(rows) == set(TABLE1)
    event = [e for e, _ in TABLE1["dcase2019_task4-adv_time_tri"]]
    mean, std = np.mean(event), np.std(event, ddof=1)
    assert f"{mean:.4f} ± {std:.4f}" in rows["dcase2019_task4-adv_time_tri"]
    assert rows["dcase2019_task4-adv_time_tri"].split()[1] == "3"
    assert "0.3065" in rows["dcase2019_task4-adv_whole"].split()
    assert rows["dcase2019_task4-tri"].split()[-1] == "n/a"  # psds2 NaN in every run


def test_compare_markdown_and_csv(table1_runs, capsys):
    code, out, _ = _cli(
        ["compare", str(table1_runs), "--format", "markdown", "--percent", "--describe"], capsys
    )
    assert code == 0
    assert out.splitlines()[0].startswith("| run | description | n | event_f1_macro |")
    assert (
        "| dcase2019_task4-adv_whole | dcase2019_task4-adv_whole description | 1 | 30.65 |" in out
    )
    code, out, _ = _cli(
        ["compare", str(table1_runs), "--format", "csv", "--metrics", "segment_f1_macro"], capsys
    )
    rows = list(csv.DictReader(out.splitlines()))
    by_name = {r["name"]: r for r in rows}
    segment = [s for _, s in TABLE1["dcase2019_task4-baseline"]]
    baseline = by_name["dcase2019_task4-baseline"]
    assert float(baseline["segment_f1_macro"]) == pytest.approx(np.mean(segment))
    assert float(baseline["segment_f1_macro_std"]) == pytest.approx(np.std(segment, ddof=1))
    assert baseline["runs"] == "2" and by_name["dcase2019_task4-tri"]["segment_f1_macro_std"] == ""


def test_compare_per_run_and_user_errors(table1_runs, tmp_path, capsys):
    runs = sorted(table1_runs.glob("dcase2019_task4-baseline-*"))
    code, out, _ = _cli(["compare", *map(str, runs), "--per-run"], capsys)
    assert code == 0 and len(out.splitlines()) == 2 + len(runs)
    code, _, err = _cli(["compare", str(tmp_path / "missing")], capsys)
    assert code == 2 and "no such run directory" in err and "Traceback" not in err
    code, _, err = _cli(["compare", str(runs[0]), "--metrics", "typo_f1"], capsys)
    assert code == 2 and "typo_f1" in err


def test_old_runs_metrics_read_under_section_names(tmp_path):
    """Runs written before metrics were named by recipe section read with today's names; a
    record of today is left as it is, and curve panels follow the section."""
    old = {"epoch": 1, "train_tri_orthogonality": 0.1, "tri_omega": 0.2, "pl_frame_quality": 0.3,
           "mt_consistency": 0.4, "adv_domain_loss": 0.5, "domain_balanced_accuracy": 0.6,
           "pruning_target_sparsity": 0.7, "sparsity": 0.8, "event_f1_macro": 0.9}  # fmt: skip
    assert rundata.section_names(old) == {
        "epoch": 1, "train_tri_orthogonality": 0.1, "pseudo_labeler/omega": 0.2,
        "pseudo_labeler/frame_quality": 0.3, "pseudo_labeler/consistency": 0.4,
        "domain_adapter/domain_loss": 0.5, "domain_adapter/balanced_accuracy": 0.6,
        "callbacks/target_sparsity": 0.7, "callbacks/sparsity": 0.8, "event_f1_macro": 0.9,
    }  # fmt: skip
    new = {"epoch": 1, "pseudo_labeler/omega": 0.2, "sparsity": 0.8}  # a callback's own name
    assert rundata.section_names(new) == new
    run_dir = _fake_run(tmp_path, "old", epochs=[old])
    assert rundata.read_run(run_dir).metric("pseudo_labeler/omega") == 0.2
    groups = {k: rundata.curve_group(k) for k in rundata.section_names(old)}
    assert groups["pseudo_labeler/omega"] == "pseudo-labels"
    assert groups["domain_adapter/domain_loss"] == "domain adaptation"
    assert groups["callbacks/sparsity"] == "callbacks"
    assert groups["train_tri_orthogonality"] == "training losses"
