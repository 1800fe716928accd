"""Tri-training: METHODS.md section 3 checks, stages, pseudo-labels, checkpoints, a tiny fit."""

from __future__ import annotations

import io
import math

import pytest
import torch
import torch.nn.functional as F
from shared_support import build_context
from torch import nn

from sedkit.components import Batch, HeadContext, ModelContext, ModelOutput, Step
from sedkit.errors import UserError
from sedkit_plugins.crnn.model import CRNN, CRNNParams
from sedkit_plugins.tri_training.labeler import (
    MASKED,
    TriTraining,
    TriTrainingParams,
    agreement_labels,
    orthogonality,
    weak_consistent,
)

C, MELS, FRAMES = 3, 8, 16


def tiny_model() -> CRNN:
    params = CRNNParams(
        filters=[4, 8], pooling=[[2, 2], [1, 2]], rnn_hidden=8, conv_dropout=0.0, head_dropout=0.0
    )
    context = build_context(ModelContext, n_classes=C, n_mels=MELS, n_frames=FRAMES)
    return CRNN(params, context)


def labeler_for(model: CRNN, **changes) -> TriTraining:
    changes.setdefault("hidden", model.feature_dim // 2)  # the widest that can be orthogonal
    context = build_context(
        HeadContext,
        n_classes=C,
        feature_dim=model.feature_dim,
        model=model,
        classes=["a", "b", "c"],
    )
    return TriTraining(TriTrainingParams(**changes), context)


def mixed_batch(frames: int) -> Batch:
    """Clip 0 strong synthetic, clip 1 weak real, clips 2 and 3 unlabeled real."""
    gen = torch.Generator().manual_seed(3)
    strong = (torch.rand(4, frames, C, generator=gen) > 0.6).float()
    strong[1:] = 0.0
    weak = strong.amax(dim=1)
    weak[1] = torch.tensor([1.0, 0.0, 1.0])
    return Batch(
        filenames=["syn.wav", "weak.wav", "unl_a.wav", "unl_b.wav"],
        stream=["synthetic", "weak", "unlabeled", "unlabeled"],
        domain=torch.tensor([0.0, 1.0, 1.0, 1.0]),
        strong=strong,
        strong_mask=torch.tensor([True, False, False, False]),
        weak=weak,
        weak_mask=torch.tensor([True, True, False, False]),
    )


def step_for(model: CRNN, features: torch.Tensor, batch: Batch, epoch: int, stage: str) -> Step:
    return Step(model, features, model(features), batch, epoch, 0, 0.0, stage)


# --------------------------------------------------------------------------------------------
# METHODS.md checks
# --------------------------------------------------------------------------------------------
def test_orthogonality_values() -> None:
    d = 4
    eye = torch.eye(d)
    # METHODS.md's checks are for the sum over unit pairs of |cosines| divided by the units.
    assert float(orthogonality(eye, eye, "unit", "sum_per_unit")) == pytest.approx(1.0)
    assert float(orthogonality(eye, eye, "unit", "sum")) == pytest.approx(d)
    assert float(orthogonality(eye, eye)) == pytest.approx(1.0 / d)  # default: unit, mean
    # Paper notation W [D, hidden]: W1 = [I; 0] and W2 = [0; I] read disjoint inputs.
    w1 = torch.cat([eye, torch.zeros(d, d)])  # [2d, d]
    w2 = torch.cat([torch.zeros(d, d), eye])
    # nn.Linear stores weight = W^T, [hidden, D].
    for normalization in ("unit", "matrix"):
        for reduction in ("mean", "sum", "sum_per_unit"):
            assert float(orthogonality(w1.T, w2.T, normalization, reduction)) == pytest.approx(0.0)
    # Normalised per hidden unit: scaling the weights does not change Omega.
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 7, generator=gen), torch.randn(5, 7, generator=gen)
    assert torch.allclose(orthogonality(a, b), orthogonality(3.0 * a, 0.2 * b))
    cosines = F.normalize(a, dim=1) @ F.normalize(b, dim=1).T
    assert torch.allclose(orthogonality(a, b), cosines.abs().mean())
    assert torch.allclose(orthogonality(a, b, "unit", "sum_per_unit"), cosines.abs().sum() / 5)
    # Matrix normalisation: each matrix over its Frobenius norm.
    gram = (a / a.norm()) @ (b / b.norm()).T
    assert torch.allclose(orthogonality(a, b, "matrix", "sum"), gram.abs().sum())
    with pytest.raises(ValueError, match="reduction"):
        orthogonality(a, b, "unit", "max")


def test_omega_scale_at_initialisation_is_width_free() -> None:
    """The default Omega (mean |cosine|) of two freshly initialised labelers is ~sqrt(2/(pi D))
    at any width, below the BCE it sits next to; the old sum-per-unit form grows with the width
    (about 9 at 128 units on D = 256)."""
    torch.manual_seed(0)
    for hidden, dim in ((32, 64), (128, 256)):
        w1, w2 = nn.Linear(dim, hidden).weight, nn.Linear(dim, hidden).weight
        mean_form = float(orthogonality(w1, w2))
        assert mean_form == pytest.approx(math.sqrt(2 / (math.pi * dim)), rel=0.15)
        assert float(orthogonality(w1, w2, "unit", "sum_per_unit")) == pytest.approx(
            hidden * mean_form, rel=1e-5
        )


def test_labelers_bce_under_bf16_keeps_a_gradient_for_confident_wrong_outputs() -> None:
    torch.manual_seed(0)
    model = tiny_model()
    tri = labeler_for(model, dropout=0.0)
    for labeler in tri.labelers:
        with torch.no_grad():
            labeler.frame_head.weight.zero_()
            labeler.frame_head.bias.fill_(12.0)  # p rounds to 1.0 in bf16; every label is 0
    frames = model.output_frames(FRAMES)
    batch = mixed_batch(frames)
    batch.strong.zero_()
    batch.weak.zero_()
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        step = step_for(model, torch.randn(4, MELS, FRAMES), batch, 1, "stage1")
        losses = tri.loss(step)
    frame = losses["tri_labeler_frame_bce"]
    assert frame.dtype == torch.float32 and 2 * 11.0 < float(frame.detach()) < 2 * 13.0
    frame.backward()
    for labeler in tri.labelers:
        assert (labeler.frame_head.bias.grad > 0.3).all()  # 1/3 per class: mean over 3


def test_labelers_wider_than_half_of_h_are_refused() -> None:
    model = tiny_model()  # D = 16
    with pytest.raises(UserError, match=r"pseudo_labeler.params.hidden: 2 x 9 > 16"):
        labeler_for(model, hidden=9)
    assert labeler_for(model, hidden=8).labelers[0].first.out_features == 8


def test_orthogonality_sends_no_gradient_to_the_model() -> None:
    torch.manual_seed(0)
    model = tiny_model()
    tri = labeler_for(model)
    frames = model.output_frames(FRAMES)
    features = torch.randn(4, MELS, FRAMES)
    losses = tri.loss(step_for(model, features, mixed_batch(frames), 1, "stage1"))
    losses["tri_orthogonality"].backward()
    assert all(p.grad is None for p in model.parameters())  # neither F nor Ft
    for labeler in tri.labelers:
        assert labeler.first.weight.grad.abs().sum() > 0
        assert labeler.frame_head.weight.grad is None


@pytest.mark.parametrize("update", [True, False])
def test_labelers_update_features_decides_whether_their_bce_reaches_f(update) -> None:
    torch.manual_seed(0)
    model = tiny_model()
    tri = labeler_for(model, labelers_update_features=update)
    features = torch.randn(4, MELS, FRAMES)
    losses = tri.loss(step_for(model, features, mixed_batch(model.output_frames(FRAMES)), 1, ""))
    (losses["tri_labeler_frame_bce"] + losses["tri_labeler_clip_bce"]).backward()
    f_grads = [p.grad for name, p in model.named_parameters() if name.startswith("cnn")]
    assert f_grads
    reached = any(g is not None and g.abs().sum() > 0 for g in f_grads)
    assert reached == update
    for labeler in tri.labelers:  # the labelers learn either way
        assert labeler.first.weight.grad.abs().sum() > 0


def test_agreement_example() -> None:
    labels, kept = agreement_labels(torch.tensor([0.6, 0.4, 0.7]), torch.tensor([0.8, 0.3, 0.4]))
    assert kept.tolist() == [True, True, False]
    assert labels[kept].tolist() == [1, 0]
    # A margin asks for confidence: 0.6 and 0.4 are within 0.15 of the threshold.
    _, kept = agreement_labels(
        torch.tensor([0.6, 0.4, 0.9]), torch.tensor([0.8, 0.3, 0.8]), margin=0.15
    )
    assert kept.tolist() == [False, False, True]


# --------------------------------------------------------------------------------------------
# Stages and losses
# --------------------------------------------------------------------------------------------
def test_stages_follow_the_params() -> None:
    tri = labeler_for(tiny_model(), stage1_epochs=3)
    assert [tri.stage(e) for e in (1, 2, 3, 4, 9)] == ["stage1"] * 3 + ["stage2"] * 2


def test_stage1_loss_terms() -> None:
    torch.manual_seed(0)
    model = tiny_model()
    tri = labeler_for(model, orthogonality_weight=0.5, dropout=0.0)
    frames = model.output_frames(FRAMES)
    batch = mixed_batch(frames)
    step = step_for(model, torch.randn(4, MELS, FRAMES), batch, 1, "stage1")
    losses = tri.loss(step)
    assert set(losses) == {"tri_labeler_frame_bce", "tri_labeler_clip_bce", "tri_orthogonality"}
    frame_ref = clip_ref = 0.0
    for labeler in tri.labelers:
        frame_logits, clip_logits = labeler(step.out.h)
        frame_ref += F.binary_cross_entropy_with_logits(frame_logits[:1], batch.strong[:1])
        clip_ref += F.binary_cross_entropy_with_logits(clip_logits[:2], batch.weak[:2])
    assert torch.allclose(losses["tri_labeler_frame_bce"], frame_ref, atol=1e-6)
    assert torch.allclose(losses["tri_labeler_clip_bce"], clip_ref, atol=1e-6)
    omega = orthogonality(tri.labelers[0].first.weight, tri.labelers[1].first.weight)
    assert torch.allclose(losses["tri_orthogonality"], 0.5 * omega)
    assert tri.epoch_metrics()["omega"] == pytest.approx(float(omega.detach()))


class FixedLabeler(nn.Module):
    """Stands in for a labeler: fixed frame and clip probabilities per clip (as logits)."""

    def __init__(self, frame: torch.Tensor, clip: torch.Tensor):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.frame, self.clip = frame, clip

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        rows = h[:, 0, 0].long()  # the test puts the clip's row index in h
        return torch.logit(self.frame[rows]) * self.scale, torch.logit(self.clip[rows]) * self.scale


def fixed_tri(frames: int) -> tuple[TriTraining, list[tuple[Batch, ModelOutput]]]:
    """A labeler whose F1, F2 give known probabilities for the clips of one weak+unlabeled batch."""
    tri = labeler_for(tiny_model())
    clip1 = torch.tensor([[0.6, 0.4, 0.7], [0.9, 0.1, 0.8], [0.2, 0.3, 0.9]])
    clip2 = torch.tensor([[0.8, 0.3, 0.4], [0.7, 0.2, 0.6], [0.1, 0.6, 0.8]])
    frame1 = torch.full((3, frames, C), 0.9)
    frame2 = torch.full((3, frames, C), 0.8)
    frame2[:, :2] = 0.2  # disagreement on the first two frames
    tri.labelers = nn.ModuleList([FixedLabeler(frame1, clip1), FixedLabeler(frame2, clip2)])
    h = torch.arange(3.0)[:, None, None].expand(3, frames, 2).clone()
    batch = Batch(
        filenames=["weak.wav", "unl_a.wav", "unl_b.wav"],
        stream=["weak", "unlabeled", "unlabeled"],
        domain=torch.ones(3),
        strong_mask=torch.tensor([False, False, False]),
        weak=torch.tensor([[1.0, 0.0, 1.0], [0, 0, 0], [0, 0, 0]]),
        weak_mask=torch.tensor([True, False, False]),
        hidden={
            "weak": torch.tensor([[1.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]),
            "strong": torch.ones(3, frames, C),
            "hidden_mask": torch.tensor([True, True, True]),
        },
    )
    return tri, [(batch, ModelOutput(h=h))]


def test_pseudo_labels_and_their_statistics() -> None:
    frames = 6
    tri, outputs = fixed_tri(frames)
    tri.labelers.train()
    stats = tri.compute_pseudo_labels(outputs)
    assert all(labeler.training for labeler in tri.labelers)  # mode restored
    clip, frame = tri.lookup(["weak.wav", "unl_a.wav", "unl_b.wav", "other.wav"], frames)
    assert clip[0].tolist() == [1, 0, MASKED]  # the METHODS.md example
    assert clip[1].tolist() == [1, 0, 1]
    assert clip[2].tolist() == [0, MASKED, 1]
    assert (clip[3] == MASKED).all() and (frame[3] == MASKED).all()
    assert (frame[:3, :2] == MASKED).all() and (frame[:3, 2:] == 1).all()
    assert stats["pseudo_clips"] == 3
    # Clip statistics over the two unlabeled clips (6 entries, 5 kept and in agreement).
    assert stats["clip_kept"] == pytest.approx(5 / 6)
    assert stats["clip_agreement"] == pytest.approx(5 / 6)
    # Kept positives: unl_a a, c; unl_b c. True: unl_a a, b; unl_b c.
    assert stats["clip_precision"] == pytest.approx(2 / 3)
    assert stats["clip_recall"] == pytest.approx(2 / 3)
    assert stats["frame_kept"] == pytest.approx(4 / 6)
    assert stats["frame_precision"] == pytest.approx(1.0)
    assert stats["frame_recall"] == pytest.approx(4 / 6)
    # Frames are cropped or padded with MASKED to the requested length.
    _, longer = tri.lookup(["unl_a.wav"], frames + 2)
    assert (longer[0, frames:] == MASKED).all() and (longer[0, 2:frames] == 1).all()


def test_weak_consistent_frame_labels() -> None:
    # Clip 0 has clip labels [1, 0, 1]: class a has an agreed positive frame, class b is absent
    # (forced to 0 even where the labelers said 1 or disagreed), class c has no agreed positive
    # (masked everywhere). Clip 1 has no clip labels and is left as it was.
    frame_y = torch.tensor([[[1, 1, 0], [0, 0, 0]], [[1, 1, 0], [0, 0, 0]]], dtype=torch.int8)
    kept = torch.tensor([[[True, True, True], [True, False, True]]] * 2)
    truth = torch.tensor([[True, False, True], [False, False, False]])
    y, k = weak_consistent(frame_y, kept, truth, torch.tensor([True, False]))
    assert y[0].tolist() == [[1, 0, 0], [0, 0, 0]]
    assert k[0].tolist() == [[True, True, False], [True, True, False]]
    assert torch.equal(y[1], frame_y[1]) and torch.equal(k[1], kept[1])


def test_weak_label_consistency_param_applies_to_weak_clips_only() -> None:
    frames = 6
    tri, outputs = fixed_tri(frames)
    tri.params.weak_label_consistency = True
    tri.compute_pseudo_labels(outputs)
    _, frame = tri.lookup(["weak.wav", "unl_a.wav"], frames)
    # weak.wav has clip labels [1, 0, 1]: class b is 0 in every frame, the disagreeing first
    # two frames of a and c stay masked, the agreed positives stay.
    assert (frame[0, :, 1] == 0).all()
    assert (frame[0, :2, [0, 2]] == MASKED).all() and (frame[0, 2:, [0, 2]] == 1).all()
    assert (frame[1, :2] == MASKED).all() and (frame[1, 2:] == 1).all()


def test_stage2_loss_uses_pseudo_labels_only_where_true_labels_are_missing() -> None:
    frames = 6
    tri, outputs = fixed_tri(frames)
    tri.compute_pseudo_labels(outputs)
    gen = torch.Generator().manual_seed(0)
    frame_logits = torch.randn(4, frames, C, generator=gen, requires_grad=True)
    clip_logits = torch.randn(4, C, generator=gen, requires_grad=True)
    batch = Batch(
        filenames=["syn.wav", "weak.wav", "unl_a.wav", "unl_b.wav"],
        stream=["synthetic", "weak", "unlabeled", "unlabeled"],
        domain=torch.tensor([0.0, 1.0, 1.0, 1.0]),
        strong_mask=torch.tensor([True, False, False, False]),
        weak_mask=torch.tensor([True, True, False, False]),
    )
    out = ModelOutput(frame_logits=frame_logits, clip_logits=clip_logits)
    losses = tri.loss(Step(None, torch.zeros(4), out, batch, 11, 0, 0.5, "stage2"))
    assert set(losses) == {"tri_pseudo_frame_bce", "tri_pseudo_clip_bce"}
    # Frame labels: frames 2.. of weak, unl_a, unl_b (all 1); syn.wav has none stored.
    bce = F.binary_cross_entropy_with_logits
    frame_ref = bce(frame_logits[1:, 2:], torch.ones(3, frames - 2, C))
    assert torch.allclose(losses["tri_pseudo_frame_bce"], frame_ref, atol=1e-6)
    # Clip labels of the unlabeled clips only: unl_a [1, 0, 1], unl_b [0, -, 1].
    x, y = clip_logits[2:], torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    kept = torch.tensor([[1.0, 1, 1], [1, 0, 1]])
    per_entry = bce(x, y, reduction="none")
    assert torch.allclose(losses["tri_pseudo_clip_bce"], (per_entry * kept).sum() / 5, atol=1e-6)
    sum(losses.values()).backward()
    assert clip_logits.grad[:2].abs().sum() == 0 and frame_logits.grad[0].abs().sum() == 0
    metrics = tri.epoch_metrics()
    assert metrics["batch_clip_kept"] == pytest.approx(5 / 6)  # of the 2 unlabeled clips
    assert metrics["batch_frame_kept"] == pytest.approx(4 / frames)  # of 3 clips' frames


class FakePredictor:
    def __init__(self, outputs):
        self.outputs, self.calls = outputs, 0

    def predict(self, loader):
        self.calls += 1
        yield from self.outputs


class FakeData:
    def unlabeled_loader(self):
        return []


@pytest.mark.parametrize(
    ("recompute_every", "expected_calls"),
    [(None, [0, 0, 1, 1, 1, 1, 1]), (2, [0, 0, 1, 1, 2, 2, 3])],
)
def test_pseudo_labels_recomputed_when_stage2_starts(recompute_every, expected_calls) -> None:
    tri, outputs = fixed_tri(6)
    tri.params = TriTrainingParams(stage1_epochs=2, recompute_every=recompute_every)
    predictor = FakePredictor(outputs)
    calls = []
    for epoch in range(1, 8):
        before = predictor.calls
        stats = tri.on_epoch_start(epoch, predictor, FakeData())
        calls.append(predictor.calls)
        assert bool(stats) == (predictor.calls > before)  # statistics only when labeling
    assert calls == expected_calls


def test_pseudo_labels_survive_a_checkpoint_round_trip() -> None:
    frames = 6
    tri, outputs = fixed_tri(frames)
    tri.params = TriTrainingParams(stage1_epochs=2)
    tri.on_epoch_start(3, FakePredictor(outputs), FakeData())
    buffer = io.BytesIO()
    torch.save(tri.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)

    fresh, _ = fixed_tri(frames)
    fresh.params = TriTrainingParams(stage1_epochs=2)
    fresh.load_state_dict(state)
    names = ["weak.wav", "unl_a.wav", "unl_b.wav"]
    for got, want in zip(fresh.lookup(names, frames), tri.lookup(names, frames), strict=True):
        assert torch.equal(got, want)
    predictor = FakePredictor(outputs)
    assert fresh.on_epoch_start(4, predictor, FakeData()) == {}  # resumed: no recomputation
    assert predictor.calls == 0


def test_tiny_fit_stage1_then_stage2() -> None:
    """Stage 1 lowers the labelers' loss and Omega; stage 2 fits the model to pseudo-labels."""
    torch.manual_seed(0)
    model = tiny_model()
    tri = labeler_for(model, stage1_epochs=1, dropout=0.0)
    frames = model.output_frames(FRAMES)
    batch = mixed_batch(frames)
    features = torch.randn(4, MELS, FRAMES)
    optimizer = torch.optim.Adam([*model.parameters(), *tri.parameters()], lr=1e-2)

    def train(epoch: int, steps: int) -> list[float]:
        history = []
        for _ in range(steps):
            step = step_for(model, features, batch, epoch, tri.stage(epoch))
            losses = model.supervised_loss(step.out, batch) | tri.loss(step)
            optimizer.zero_grad()
            sum(losses.values()).backward()
            optimizer.step()
            history.append({k: float(v.detach()) for k, v in losses.items()})
        return history

    stage1 = train(1, 25)
    for key in ("tri_labeler_frame_bce", "tri_labeler_clip_bce", "tri_orthogonality"):
        assert stage1[-1][key] < stage1[0][key]

    class ModelPredictor:
        def predict(self, loader):
            model.eval()
            with torch.no_grad():
                yield batch, model(features)
            model.train()

    stats = tri.on_epoch_start(2, ModelPredictor(), FakeData())
    assert stats["pseudo_clips"] == 4
    stage2 = train(2, 15)
    assert "tri_pseudo_frame_bce" in stage2[0]
    assert stage2[-1]["tri_pseudo_frame_bce"] < stage2[0]["tri_pseudo_frame_bce"]


def test_registered_through_the_hook() -> None:
    from sedkit_plugins.tri_training import labeler as tri_training

    registered = {}
    tri_training.sedkit_register_pseudo_labelers(lambda n, cls: registered.setdefault(n, cls))
    assert registered == {"tri_training": TriTraining}


def test_tri_training_statistics_are_drawn(tmp_path):
    """Moved from test_reporting.py with the figure (``sedkit_report_figures``)."""
    from sedkit_plugins.tri_training import figures

    epochs = [
        {"epoch": e, "train_loss": 1.0, "pseudo_labeler/clip_kept": 0.3 * e,
         "pseudo_labeler/clip_precision": 0.8, "pseudo_labeler/frame_kept": 0.2 * e,
         "domain_adapter/accuracy": 0.7, "callbacks/sparsity": 0.1 * e}
        for e in (1, 2)
    ]  # fmt: skip
    path = figures.plot_pseudo_labels(epochs, tmp_path / "pl.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert figures.plot_pseudo_labels([{"epoch": 1}], tmp_path / "x.png") is None
