"""Pieces of training state that earlier tests could not see go wrong: the pseudo-labels of
tri-training are computed with dropout off (evaluation mode), and the mean teacher's batch-norm
statistics follow the student's by the EMA (a test where both stay at their initial values
cannot fail, so the student's statistics are moved first)."""

from __future__ import annotations

import logging

import reliability_support as rs
import torch
from torch import nn

from sedkit.components import HeadContext, ModelContext, Step
from sedkit.recipe import load_recipe
from sedkit.trainer import Trainer
from sedkit_plugins.crnn.model import CRNN, CRNNParams
from sedkit_plugins.mean_teacher.labeler import MeanTeacher, MeanTeacherParams

LOG = logging.getLogger("test")


def test_tri_training_pseudo_labels_are_computed_with_dropout_off(lean_plugins, tmp_path):
    recipe = rs.write_toy_recipe(
        tmp_path, 2, model="{name: toy_model, params: {hidden: 16, dropout: 0.5}}"
    )
    # hidden 8: the labelers' two first layers can be orthogonal only for 2 x hidden <= D (16).
    overrides = [
        "pseudo_labeler={name: tri_training, params: {stage1_epochs: 1, dropout: 0.5, hidden: 8}}"
    ]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    trainer = Trainer(load_recipe(recipe, overrides, plugins=lean_plugins), lean_plugins, run_dir)
    trainer.setup(resume=False)
    dropouts = [m for m in trainer.modules.modules() if isinstance(m, nn.Dropout)]
    assert len(dropouts) >= 2  # the model's and the labelers'
    seen: list[bool] = []
    labeling = {"now": False}
    for module in dropouts:
        module.register_forward_hook(
            lambda m, args, out: seen.append(m.training) if labeling["now"] else None
        )
    real = trainer.labeler.compute_pseudo_labels

    def observed(outputs):
        labeling["now"] = True
        try:
            return real(outputs)
        finally:
            labeling["now"] = False

    trainer.labeler.compute_pseudo_labels = observed
    trainer.fit()
    assert seen, "no dropout layer ran while pseudo-labeling"
    assert not any(seen), f"{sum(seen)} of {len(seen)} dropout calls in training mode"


def _crnn() -> CRNN:
    params = CRNNParams(
        filters=[4, 8], pooling=[[2, 2], [1, 2]], rnn_hidden=8, conv_dropout=0.0, head_dropout=0.0
    )
    context = ModelContext(
        task="sed", recipe_path=None, sample_rate=16000, seed=0, log=LOG,
        n_classes=3, n_mels=8, n_frames=16,
    )  # fmt: skip
    return CRNN(params, context)


def test_mean_teacher_batch_norm_statistics_follow_the_student_by_ema():
    torch.manual_seed(0)
    model = _crnn()
    context = HeadContext(
        task="sed", recipe_path=None, sample_rate=16000, seed=0, log=LOG,
        n_classes=3, feature_dim=model.feature_dim, model=model,
    )  # fmt: skip
    teacher = MeanTeacher(MeanTeacherParams(ema_decay=0.9, ema_warmup=False), context)
    step = Step(model, None, None, None, 1, 0, 0.0, "train")

    def student_stats() -> list[torch.Tensor]:
        return [b.clone() for b in model.buffers() if b.is_floating_point()]

    def teacher_stats() -> list[torch.Tensor]:
        return [b for b in teacher.teacher.buffers() if b.is_floating_point()]

    model.train()
    with torch.no_grad():
        model(3.0 + 2.0 * torch.randn(4, 8, 16))  # moves running mean and variance
    teacher.after_optimizer_step(step)  # the first update copies the student
    first = student_stats()
    assert any(not torch.allclose(b, torch.zeros_like(b)) for b in first)
    assert any(not torch.allclose(b, torch.ones_like(b)) for b in first)
    for t, s in zip(teacher_stats(), first, strict=True):
        assert torch.equal(t, s)
    with torch.no_grad():
        model(-1.0 + 0.5 * torch.randn(4, 8, 16))
    second = student_stats()
    teacher.after_optimizer_step(step)
    for t, old, new in zip(teacher_stats(), first, second, strict=True):
        assert torch.allclose(t, 0.9 * old + 0.1 * new, atol=1e-6)


def test_training_validation_scores_with_the_documented_collars(tmp_path):
    """The validation of a run (``sedkit.evaluation.evaluate_sed``, as the trainer calls it)
    scores events with the DCASE collars, 200 ms on onsets and max(200 ms, 20 % of the
    reference event) on offsets. Four clips, one class each, decoded at 50 ms frames: an onset
    150 ms off matches and one 250 ms off does not; an offset 350 ms off a 2 s event matches
    (collar 400 ms) and one 450 ms off does not. Any other collar changes a class's F1."""
    from types import SimpleNamespace

    import numpy as np

    from sedkit.components import ScoringReference
    from sedkit.data.labels import LabelEncoder
    from sedkit.evaluation import evaluate_sed
    from sedkit.recipe import DecodingParams

    classes = ["A", "B", "C", "D"]
    hop, n_frames = 0.05, 200  # 10 s clips
    detected = {"A": (2.0, 4.0), "B": (2.0, 4.0), "C": (2.0, 4.35), "D": (2.0, 4.45)}
    truth = {"A": (2.15, 4.0), "B": (2.25, 4.0), "C": (2.0, 4.0), "D": (2.0, 4.0)}
    probs = torch.zeros(4, n_frames, 4)
    for k, label in enumerate(classes):
        onset, offset = detected[label]
        probs[k, round(onset / hop) : round(offset / hop), k] = 1.0
    names = [f"clip_{c}.wav" for c in classes]
    gt = rs.write_tsv(
        tmp_path / "gt.tsv",
        rs.STRONG_HEADER,
        [[f"clip_{c}.wav", *truth[c], c] for c in classes],
    )
    durations = rs.write_tsv(
        tmp_path / "dur.tsv", ["filename", "duration"], [[n, 10.0] for n in names]
    )
    batch = SimpleNamespace(filenames=names)
    predictor = SimpleNamespace(
        predict=lambda loader: [(batch, SimpleNamespace(frame_probs=probs))]
    )
    encoder = LabelEncoder(classes, frame_hop_s=hop, n_frames=n_frames, clip_duration_s=10.0)
    decoded = encoder.decode_batch(names, probs, threshold=0.5, median_filter_s=0.0)
    edges = sorted(zip(decoded["onset"], decoded["offset"], strict=True))
    assert np.allclose(edges, sorted(detected.values()))
    metrics = evaluate_sed(
        predictor,
        [None],
        encoder,
        DecodingParams(threshold=0.5, median_filter_s=0.0),
        ScoringReference(gt, durations),
        with_psds=False,
    )
    f1 = {c: metrics["classwise"][c]["event_f1"] for c in classes}
    assert f1 == {"A": 1.0, "B": 0.0, "C": 1.0, "D": 0.0}, f1
    assert np.isclose(metrics["event_f1_macro"], 0.5)
