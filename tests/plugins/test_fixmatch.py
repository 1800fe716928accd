"""FixMatch / FMUC: METHODS.md section 4 checks, pass modes, metrics, multi-label SED, views,
figures, and a tiny training run through the engine."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sedkit.components import Batch, DataModule, HeadContext, ModelContext, ModelOutput, Step
from sedkit.data.augment import make_generator
from sedkit_plugins.crnn.model import CRNN, CRNNParams
from sedkit_plugins.fixmatch import labeler as fixmatch_module
from sedkit_plugins.fixmatch.cnn420 import CNN420, CNN420Params
from sedkit_plugins.fixmatch.labeler import (
    FMUC,
    TABLE1_VARIANTS,
    FixMatch,
    FixMatchParams,
    FMUCParams,
    masked_mean_cross_entropy,
    plot_confusion,
    plot_quality_quantity,
    read_pseudo_label_curves,
    select_multi_label,
    select_single_label,
    tempered_softmax,
)
from sedkit_plugins.fixmatch.spec_augment import (
    SpecAugmentParams,
    augment_spectrogram,
    sharpen,
    shift_rows,
)

LOG = logging.getLogger("test")
OFF = SpecAugmentParams()  # a view without augmentation
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def head_context(task: str = "classification", n_classes: int = 2, model=None) -> HeadContext:
    return HeadContext(
        task=task, recipe_path=None, sample_rate=16000, seed=0, log=LOG,
        n_classes=n_classes, feature_dim=0, model=model, classes=[],
    )  # fmt: skip


def make_labeler(cls=FixMatch, task="classification", n_classes=2, model=None, **changes):
    params_cls = FMUCParams if cls is FMUC else FixMatchParams
    params = params_cls(**{"weak": OFF, "strong": OFF, **changes})
    return cls(params, head_context(task, n_classes, model))


def step_for(model: nn.Module, features: torch.Tensor, batch: Batch, global_step: int = 0):
    return Step(model, features, model(features), batch, 1, global_step, 0.0, "train")


class OutputInInput(nn.Module):
    """``field`` (clip_logits or clip_probs) = scale * features[:, :C, 0]: the test writes the
    model's output into the input (the scale, a parameter at 1, gives a gradient path)."""

    def __init__(self, field: str, n_classes: int):
        super().__init__()
        self.field = field
        self.n_classes = n_classes
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, features):
        return ModelOutput(**{self.field: self.scale * features[:, : self.n_classes, 0]})


def classification_batch(logits: list[list[float]], labels: list[int], truth: list[int]):
    """Features carrying ``logits`` (constant over 3 frames); label -1 marks unlabeled rows."""
    x = torch.tensor(logits, dtype=torch.float32).unsqueeze(-1).repeat(1, 1, 3)
    b = len(labels)
    batch = Batch(
        filenames=[f"c{i}" for i in range(b)],
        stream=["labeled" if y >= 0 else "unlabeled" for y in labels],
        domain=torch.ones(b),
        label=torch.tensor(labels),
        hidden={"label": torch.tensor(truth)},
    )
    return x, batch


# --------------------------------------------------------------------------------------------
# METHODS.md section 4 checks
# --------------------------------------------------------------------------------------------
def test_temperature_check():
    logits = torch.tensor([4.0, 0.0])
    assert tempered_softmax(logits, 1.0)[0].item() == pytest.approx(0.98201, abs=5e-6)
    assert tempered_softmax(logits, 2.0)[0].item() == pytest.approx(0.88080, abs=5e-6)


def test_fixmatch_mask_and_loss_check():
    probs = torch.tensor([[0.96, 0.04], [0.5, 0.5]])
    labels, kept = select_single_label(
        probs, torch.zeros_like(probs), selection="confidence", threshold=0.95
    )
    assert kept.tolist() == [True, False] and labels[0].item() == 0
    logits = torch.tensor([[2.0, -1.0], [0.3, 0.1]])
    ce_1 = -torch.log_softmax(logits[0], dim=0)[0]
    torch.testing.assert_close(masked_mean_cross_entropy(logits, labels, kept), ce_1 / 2)


def test_fixmatch_component_loss_is_ce_of_kept_over_all_unlabeled():
    """Through the whole component: max probs 0.96 and 0.5 -> L_u = CE_1 / 2."""
    model = OutputInInput("clip_logits", 2)
    high = math.log(0.96 / 0.04)
    x, batch = classification_batch([[0.0, 1.0], [high, 0.0], [0.0, 0.0]], [1, -1, -1], [1, 0, 1])
    labeler = make_labeler()
    loss = labeler.loss(step_for(model, x, batch))["fm_unlabeled_ce"]
    assert loss.item() == pytest.approx(-math.log(0.96) / 2, rel=1e-5)
    loss.backward()
    assert model.scale.grad is not None and model.scale.grad.item() != 0.0


def test_fmuc_temperature_changes_what_is_kept():
    """Logits [4, 0]: 0.982 at T = 1 passes tau 0.95; 0.881 at T = 2 fails tau 0.9."""
    model = OutputInInput("clip_logits", 2)
    x, batch = classification_batch([[0.0, 1.0], [4.0, 0.0]], [1, -1], [1, 0])
    deterministic = {"mc_passes": 1, "weak_pass": "eval"}
    t2 = make_labeler(FMUC, **deterministic)
    assert t2.loss(step_for(model, x, batch))["fm_unlabeled_ce"].item() == 0.0
    assert t2.epoch_metrics()["quantity"] == 0.0
    t1 = make_labeler(FMUC, temperature=1.0, threshold=0.95, **deterministic)
    loss = t1.loss(step_for(model, x, batch))["fm_unlabeled_ce"]
    assert loss.item() == pytest.approx(-math.log(0.98201379), rel=1e-5)
    assert t1.epoch_metrics()["quantity"] == 1.0


def test_selection_rules():
    mean = torch.tensor([[0.95, 0.05], [0.93, 0.07], [0.75, 0.25], [0.75, 0.25]])
    std = torch.tensor([[0.04, 0.04], [0.04, 0.04], [0.04, 0.04], [0.06, 0.06]])
    _, kept = select_single_label(mean, std, selection="mean_minus_std", threshold=0.9)
    assert kept.tolist() == [True, False, False, False]  # 0.91 > 0.9; 0.89 is not
    _, kept = select_single_label(mean, std, selection="two_thresholds", threshold=0.9)
    assert kept.tolist() == [True, True, True, False]  # mu >= 0.7 and sigma < 0.05
    _, kept = select_single_label(mean, std, selection="confidence", threshold=0.95)
    assert kept.tolist() == [True, False, False, False]  # >= is inclusive


def test_multi_label_check_and_mask_levels():
    p = torch.tensor([[0.8, 0.3, 0.76]])
    zero = torch.zeros_like(p)
    y, kept = select_multi_label(p, zero, selection="confidence", threshold=0.75)
    assert y.tolist() == [[1.0, 0.0, 1.0]]
    assert kept.tolist() == [[True, False, True]]  # 0.3 is not confidently absent (> 0.25)
    y, kept = select_multi_label(p, zero, selection="confidence", threshold=0.75, mask_level="clip")
    assert y.tolist() == [[1.0, 0.0, 1.0]] and kept.tolist() == [[False, False, False]]
    confident = torch.tensor([[0.8, 0.1, 0.9]])
    y, kept = select_multi_label(
        confident, zero, selection="confidence", threshold=0.75, mask_level="clip"
    )
    assert y.tolist() == [[1.0, 0.0, 1.0]] and kept.all()
    y, kept = select_multi_label(p, zero, selection="confidence", threshold=0.75,
                                 negative_threshold=0.35)  # fmt: skip
    assert kept.tolist() == [[True, True, True]]
    # FMUC rule: mu - sigma > tau present, mu + sigma < 1 - tau absent.
    std = torch.full_like(p, 0.06)
    y, kept = select_multi_label(confident, std, selection="mean_minus_std", threshold=0.75)
    assert y.tolist() == [[0.0, 0.0, 1.0]] and kept.tolist() == [[False, True, True]]


def test_multi_label_bce_from_bf16_logits_keeps_a_gradient():
    """A confident wrong strong-view output (logit 9: p rounds to 1.0 in bf16) still gets the
    gradient ~1 of BCE-with-logits in float32, not loss 100 with zero gradient."""
    from sedkit_plugins.fixmatch.labeler import masked_mean_bce

    weight = torch.full((1, 2), 9.0, requires_grad=True)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        logits = torch.ones(1, 1) @ weight  # [1, 2] in bf16
        assert logits.dtype == torch.bfloat16 and float(torch.sigmoid(logits)[0, 0]) == 1.0
        loss = masked_mean_bce(logits, torch.zeros(1, 2), torch.ones(1, 2), torch.ones(1))
    assert loss.dtype == torch.float32 and loss.item() == pytest.approx(9.0, abs=0.05)
    loss.backward()
    assert weight.grad[0].tolist() == pytest.approx([0.5, 0.5], abs=0.01)  # mean of 2 entries


def test_multi_label_component_loss_per_class_and_per_clip():
    """p = [.8, .3, .76], tau .75: per-class BCE of kept entries over all 3 entries; per clip 0;
    a clip with clip labels gets no pseudo-label."""
    model = OutputInInput("clip_probs", 3)
    probs = [[0.5, 0.5, 0.5], [0.8, 0.3, 0.76], [0.9, 0.9, 0.9]]
    x = torch.tensor(probs).unsqueeze(-1).repeat(1, 1, 2)
    batch = Batch(
        filenames=["w", "u1", "u2"],
        stream=["weak", "unlabeled", "unlabeled"],
        domain=torch.ones(3),
        weak=torch.zeros(3, 3),
        weak_mask=torch.tensor([True, False, True]),  # u2 carries clip labels: left alone
        hidden={"weak": torch.tensor([[0, 0, 0], [1, 0, 0], [1, 1, 1.0]]),
                "hidden_mask": torch.tensor([False, True, True])},
    )  # fmt: skip
    per_class = make_labeler(task="sed", n_classes=3, threshold=0.75)
    loss = per_class.loss(step_for(model, x, batch))["fm_unlabeled_clip_bce"]
    target = torch.tensor([1.0, 1.0])
    expected = F.binary_cross_entropy(torch.tensor([0.8, 0.76]), target, reduction="sum") / 3
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)
    loss.backward()
    assert model.scale.grad.item() != 0.0
    metrics = per_class.epoch_metrics()
    assert metrics["quantity"] == pytest.approx(2 / 3)
    assert metrics["quality"] == pytest.approx(1 / 2)  # class 1 right, class 3 wrong
    per_clip = make_labeler(task="sed", n_classes=3, threshold=0.75, mask_level="clip")
    loss = per_clip.loss(step_for(model, x, batch))["fm_unlabeled_clip_bce"]
    assert loss.item() == 0.0
    assert per_clip.epoch_metrics()["quantity"] == 0.0


def test_multi_label_fmuc_uses_its_temperature_and_the_biased_std(monkeypatch):
    """FMUC's defaults on one unlabeled clip, two weak passes given as logits (T = 2, sigma
    over N, tau 0.9 on mu - sigma, mu + sigma < 0.1 absent). Class 1, logits [4, 4]: 0.881 at
    T = 2, not kept (kept at T = 1: 0.982). Class 2, probabilities [.99, .91] at T = 2: mu .95,
    sigma .04 over N -> .91 kept (over N - 1, sigma .0566 -> .893 not kept). Class 3, logits
    [-8, -8]: absent either way. So 2 of 3 entries are kept, and the loss is their BCE / 3;
    without the temperature 3 would be, with the unbiased std 1."""
    model = OutputInInput("clip_probs", 3)
    student = [0.6, 0.7, 0.2]
    x = torch.tensor([student]).unsqueeze(-1).repeat(1, 1, 2)
    batch = Batch(filenames=["u"], stream=["unlabeled"], domain=torch.ones(1),
                  weak=torch.zeros(1, 3), weak_mask=torch.tensor([False]))  # fmt: skip
    at_t2 = [[4.0, 2 * math.log(0.99 / 0.01), -8.0], [4.0, 2 * math.log(0.91 / 0.09), -8.0]]
    passes = torch.tensor(at_t2).unsqueeze(1)  # [N = 2, B = 1, C = 3]
    labeler = make_labeler(FMUC, task="sed", n_classes=3)
    assert (labeler.params.temperature, labeler.params.std_estimator) == (2.0, "biased")
    monkeypatch.setattr(labeler, "weak_logits", lambda model, view: (passes,))
    loss = labeler.loss(step_for(model, x, batch))["fm_unlabeled_clip_bce"]
    assert labeler.epoch_metrics()["quantity"] == pytest.approx(2 / 3)
    kept_probs, targets = torch.tensor(student[1:]), torch.tensor([1.0, 0.0])
    expected = F.binary_cross_entropy(kept_probs, targets, reduction="sum") / 3
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)


# --------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------
def test_quality_quantity_confusion_and_reset():
    model = OutputInInput("clip_logits", 2)
    x, batch = classification_batch(
        [[0.0, 1.0], [4.0, 0.0], [0.0, 4.0], [0.0, 0.0], [4.0, 0.0]],
        [1, -1, -1, -1, -1],
        [1, 0, 0, 1, -1],  # the last unlabeled clip has no known true label
    )
    labeler = make_labeler(threshold=0.95)
    labeler.loss(step_for(model, x, batch))
    labeler.loss(step_for(model, x, batch))  # statistics add up over steps
    metrics = labeler.epoch_metrics()
    assert metrics["quantity"] == pytest.approx(3 / 4)  # rows 1, 2 and 4 kept
    assert metrics["quality"] == pytest.approx(1 / 2)  # of the known kept: row 1 right
    assert metrics["unlabeled_accuracy"] == pytest.approx(1 / 3)  # argmax of [0, 0] is 0
    assert metrics["confusion"] == [[2, 2], [0, 0]]  # rows true, columns pseudo-label
    json.dumps(metrics)  # goes into metrics.jsonl as is
    assert labeler.epoch_metrics() == {}


# --------------------------------------------------------------------------------------------
# How the weak view passes through the model
# --------------------------------------------------------------------------------------------
def tiny_cnn420(dropout: float = 0.1) -> CNN420:
    context = ModelContext(
        task="classification", recipe_path=None, sample_rate=16000, seed=0, log=LOG,
        n_classes=3, n_mels=8, n_frames=8,
    )  # fmt: skip
    return CNN420(CNN420Params(channels=[4, 8], blocks=[1, 1], dropout=dropout), context)


def recorded_calls(model: CNN420, labeler: FixMatch, n_unlabeled: int = 3):
    """(dropout active, batch norm training, batch size) of every forward in ``loss``."""
    calls = []
    pre = model.blocks[0].pre1

    def hook(module, args):
        calls.append((pre[2].training, pre[1].training, args[0].shape[0]))

    torch.manual_seed(0)
    x = torch.randn(2 + n_unlabeled, 8, 8)
    labels = [0, 1] + [-1] * n_unlabeled
    batch = Batch(
        filenames=[f"c{i}" for i in range(len(labels))],
        stream=["labeled", "labeled"] + ["unlabeled"] * n_unlabeled,
        domain=torch.ones(len(labels)),
        label=torch.tensor(labels),
    )
    model.train()
    step = step_for(model, x, batch)
    handle = model.register_forward_pre_hook(hook)
    try:
        losses = labeler.loss(step)
    finally:
        handle.remove()
    assert all(m.training for m in model.modules())  # every flag restored
    return calls, losses


@pytest.mark.parametrize(
    "cls, changes, expected",
    [
        (FMUC, {}, [(True, False, 15), (True, True, 3)]),  # 5 MC passes batched, then strong
        (FMUC, {"batched_passes": False}, [(True, False, 3)] * 5 + [(True, True, 3)]),
        (FMUC, {"mc_passes": 1, "weak_pass": "eval"}, [(False, False, 3), (True, True, 3)]),
        (FixMatch, {}, [(True, True, 3), (True, True, 3)]),
        (FixMatch, {"weak_view": "model_input"}, [(True, True, 3)]),
    ],
)
def test_pass_modes(cls, changes, expected):
    model = tiny_cnn420()
    labeler = make_labeler(cls, n_classes=3, **changes)
    calls, losses = recorded_calls(model, labeler)
    assert calls == expected
    loss = losses["fm_unlabeled_ce"]
    assert torch.isfinite(loss)
    loss.backward()


def test_mc_weak_passes_leave_batch_norm_statistics_unchanged():
    model = tiny_cnn420()
    model.train()
    before = {k: v.clone() for k, v in model.named_buffers()}
    labeler = make_labeler(FMUC, n_classes=3)
    torch.manual_seed(0)
    (samples,) = labeler.weak_logits(model, torch.randn(4, 8, 8))
    assert samples.shape == (5, 4, 3)
    assert not torch.allclose(samples[0], samples[1])  # dropout was active
    for key, value in model.named_buffers():
        assert torch.equal(before[key], value), key
    assert all(m.training for m in model.modules())


def test_views_are_reproducible_per_step():
    model = tiny_cnn420(dropout=0.0)
    model.eval()  # deterministic model: only the views can differ
    labeler = make_labeler(FixMatch, n_classes=3, threshold=0.01, weak=SpecAugmentParams(
        time_translate_max=0.25), strong=SpecAugmentParams(noise_std=0.5))  # fmt: skip
    x = torch.randn(3, 8, 8)
    batch = Batch(["a", "b", "c"], ["unlabeled"] * 3, torch.ones(3), label=torch.full((3,), -1))

    def loss_at(global_step):
        return labeler.loss(step_for(model, x, batch, global_step))["fm_unlabeled_ce"].item()

    assert loss_at(3) == loss_at(3)
    assert loss_at(3) != loss_at(4)


def test_batch_without_unlabeled_examples_gives_zero_with_gradient_path():
    model = OutputInInput("clip_logits", 2)
    x, batch = classification_batch([[0.0, 1.0], [1.0, 0.0]], [1, 0], [1, 0])
    loss = make_labeler().loss(step_for(model, x, batch))["fm_unlabeled_ce"]
    assert loss.item() == 0.0 and loss.requires_grad


# --------------------------------------------------------------------------------------------
# Multi-label SED with the CRNN
# --------------------------------------------------------------------------------------------
def test_fmuc_sed_with_crnn_clip_and_frame_level():
    torch.manual_seed(0)
    context = ModelContext(
        task="sed", recipe_path=None, sample_rate=16000, seed=0, log=LOG,
        n_classes=3, n_mels=8, n_frames=16,
    )  # fmt: skip
    crnn = CRNN(
        CRNNParams(filters=[4, 8], pooling=[[2, 2], [1, 2]], rnn_hidden=8, conv_dropout=0.2,
                   head_dropout=0.2),
        context,
    )  # fmt: skip
    crnn.train()
    x = torch.randn(4, 8, 16)
    frames = crnn.output_frames(16)
    strong = torch.zeros(4, frames, 3)
    strong[0, 2:5, 1] = 1.0
    batch = Batch(
        filenames=["s", "w", "u1", "u2"],
        stream=["synthetic", "weak", "unlabeled", "unlabeled"],
        domain=torch.tensor([0.0, 1.0, 1.0, 1.0]),
        strong=strong,
        strong_mask=torch.tensor([True, False, False, False]),
        weak=strong.amax(dim=1),
        weak_mask=torch.tensor([True, True, False, False]),
        hidden={"weak": torch.tensor([[0, 0, 0], [0, 0, 0], [1, 0, 0], [0, 0, 1.0]]),
                "strong": torch.zeros(4, frames, 3),
                "hidden_mask": torch.tensor([False, False, True, True])},
    )  # fmt: skip
    labeler = make_labeler(
        FMUC, task="sed", n_classes=3, model=crnn, threshold=0.6, frame_level=True,
        weak=SpecAugmentParams(freq_translate_max=0.1),
        strong=SpecAugmentParams(freq_translate_max=0.2, noise_std=0.2, sharpen_max=0.5),
    )  # fmt: skip
    before = {k: v.clone() for k, v in crnn.named_buffers()}
    (clip, frame) = labeler.weak_logits(crnn, x[2:])
    assert clip.shape == (5, 2, 3) and frame.shape == (5, 2, frames, 3)
    assert all(torch.equal(before[k], v) for k, v in crnn.named_buffers())
    losses = labeler.loss(step_for(crnn, x, batch))
    assert set(losses) == {"fm_unlabeled_clip_bce", "fm_unlabeled_frame_bce"}
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert crnn.frame_head.weight.grad is not None
    metrics = labeler.epoch_metrics()
    assert 0.0 <= metrics["quantity"] <= 1.0 and 0.0 <= metrics["frame_quantity"] <= 1.0
    assert "unlabeled_accuracy" in metrics and "frame_unlabeled_accuracy" in metrics


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_losses_are_float32_under_bf16_autocast(device):
    """Training runs under autocast on CUDA: pseudo-labels and losses must stay float32."""
    model = tiny_cnn420().to(device)
    model.train()
    x = torch.randn(5, 8, 8, device=device)
    batch = Batch(
        [f"c{i}" for i in range(5)], ["labeled"] * 2 + ["unlabeled"] * 3, torch.ones(5),
        label=torch.tensor([0, 1, -1, -1, -1]), hidden={"label": torch.tensor([0, 1, 2, 0, 1])},
    ).to(device)  # fmt: skip
    labeler = make_labeler(FMUC, n_classes=3, threshold=0.2, strong=FixMatchParams().strong)
    with torch.autocast(device, dtype=torch.bfloat16):
        losses = labeler.loss(step_for(model, x, batch))
    loss = losses["fm_unlabeled_ce"]
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    metrics = labeler.epoch_metrics()
    assert metrics["quantity"] > 0 and len(metrics["confusion"]) == 3


# --------------------------------------------------------------------------------------------
# Params, variants, registration
# --------------------------------------------------------------------------------------------
def test_fmuc_defaults_are_the_papers():
    p = FMUCParams()
    assert (p.threshold, p.temperature, p.mc_passes, p.selection, p.weak_pass) == (
        0.9, 2.0, 5, "mean_minus_std", "mc_dropout",
    )  # fmt: skip
    q = FixMatchParams()
    assert (q.threshold, q.temperature, q.mc_passes, q.selection) == (0.95, 1.0, 1, "confidence")
    assert q.unlabeled_weight == 1.0  # unweighted sum, as in the paper


def test_every_table1_variant_builds():
    classes = {"fixmatch": (FixMatch, FixMatchParams), "fmuc": (FMUC, FMUCParams)}
    for name, (registered, changes) in TABLE1_VARIANTS.items():
        cls, params_cls = classes[registered]
        params = params_cls(**changes)
        assert cls(params, head_context()).params == params, name
    assert len(TABLE1_VARIANTS) == 8


def test_recipe_sections_validate_and_partial_views_keep_their_defaults():
    from sedkit.config import check_dataclass

    params, problems = check_dataclass(
        FMUCParams,
        {"temperature": 4.0, "weak": {"noise_std": 0.2}, "strong": {"sharpen_max": 0.0}},
        "pseudo_labeler.params",
    )
    assert problems == []
    assert params.temperature == 4.0 and params.mc_passes == 5
    assert (params.weak.noise_std, params.weak.time_translate_max) == (0.2, 0.125)
    assert (params.strong.sharpen_max, params.strong.time_masks) == (0.0, 1)
    _, problems = check_dataclass(
        FMUCParams, {"weak": {"noise_sdt": 0.1}, "mc_passes": 3, "weak_pass": "train"}, "pl"
    )
    assert any("noise_sdt" in p for p in problems)


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"mc_passes": 5}, "mc_dropout"),
        ({"mc_passes": 0}, "mc_passes"),
        ({"temperature": 0.0}, "temperature"),
        ({"threshold": 1.0}, "threshold"),
        ({"weak_view": "model_input", "weak_pass": "eval"}, "model_input"),
        ({"frame_level": True, "weak": SpecAugmentParams(time_translate_max=0.1)}, "frame"),
        ({"unlabeled_streams": []}, "unlabeled_streams"),
    ],
)
def test_params_are_checked(changes, match):
    with pytest.raises(ValueError, match=match):
        FixMatchParams(**changes)


def test_registers_fixmatch_and_fmuc():
    registered = {}
    fixmatch_module.sedkit_register_pseudo_labelers(register=registered.__setitem__)
    assert registered == {"fixmatch": FixMatch, "fmuc": FMUC}


# --------------------------------------------------------------------------------------------
# Spectrogram views
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "fill, shift, expected",
    [
        ("roll", 2, [1, 5, 3, 1, 4]),
        ("nearest", 2, [3, 3, 3, 1, 4]),
        ("min", 2, [1, 1, 3, 1, 4]),
        ("roll", -1, [1, 4, 1, 5, 3]),
        ("nearest", -1, [1, 4, 1, 5, 5]),
        ("min", -1, [1, 4, 1, 5, 1]),
    ],
)
def test_shift_rows(fill, shift, expected):
    x = torch.tensor([[[3.0, 1.0, 4.0, 1.0, 5.0]]])  # [B=1, M=1, T=5]
    out = shift_rows(x, torch.tensor([shift]), dim=2, fill=fill)
    assert out[0, 0].tolist() == expected
    bands = shift_rows(x.transpose(1, 2), torch.tensor([shift]), dim=1, fill=fill)
    assert bands[0, :, 0].tolist() == expected


def test_sharpen_matches_an_unsharp_mask_convolution():
    x = torch.randn(2, 6, 7)
    out = sharpen(x, 2.0, make_generator("cpu", 5))
    amount = 2.0 * torch.rand(2, generator=make_generator("cpu", 5))
    padded = F.pad(x.unsqueeze(1), (1, 1, 1, 1), mode="replicate")
    for i in range(2):
        a = amount[i].item()
        kernel = torch.full((1, 1, 3, 3), -a / 9)
        kernel[0, 0, 1, 1] += 1 + a
        torch.testing.assert_close(out[i], F.conv2d(padded[i : i + 1], kernel)[0, 0])
    constant = torch.full((1, 4, 5), 2.5)
    torch.testing.assert_close(sharpen(constant, 3.0, make_generator("cpu", 1)), constant)


def test_augment_spectrogram_off_is_identity_and_on_is_reproducible():
    x = torch.randn(3, 8, 10)
    assert torch.equal(augment_spectrogram(x, OFF, make_generator("cpu", 0)), x)
    strong = FixMatchParams().strong
    a = augment_spectrogram(x, strong, make_generator("cpu", 1))
    b = augment_spectrogram(x, strong, make_generator("cpu", 1))
    c = augment_spectrogram(x, strong, make_generator("cpu", 2))
    assert torch.equal(a, b) and not torch.equal(a, c) and a.shape == x.shape
    with pytest.raises(ValueError, match="time_translate_max"):
        SpecAugmentParams(time_translate_max=1.5)


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------
def test_plots_write_pngs(tmp_path):
    runs = {}
    for name, offset in (("FM", 0.0), ("FMUC", 0.05)):
        path = tmp_path / name / "metrics.jsonl"
        path.parent.mkdir()
        prefix = "pl_" if name == "FM" else "pseudo_labeler/"  # a run written before, one today
        lines = [
            {"epoch": e, f"{prefix}quality": 0.75 + offset + 0.02 * e, f"{prefix}quantity": 0.9}
            for e in range(1, 5)
        ]
        lines.insert(2, {"epoch": 99, "accuracy": 0.5})  # a record without pseudo-label keys
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
        runs[name] = path
        curves = read_pseudo_label_curves(path)
        assert curves["epoch"] == [1, 2, 3, 4] and curves["quantity"] == [0.9] * 4
    single = plot_quality_quantity(runs["FM"], tmp_path / "fig2_single.png")
    both = plot_quality_quantity(runs, tmp_path / "fig2.png")
    conf = plot_confusion([[5, 1, 0], [2, 7, 1], [0, 0, 0]], ["a", "b", "c"], tmp_path / "c.png")
    for path in (single, both, conf):
        assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 1000
    with pytest.raises(ValueError, match="does not match"):
        plot_confusion([[1, 2]], ["a", "b"], tmp_path / "bad.png")


# --------------------------------------------------------------------------------------------
# A tiny run through the engine: recipe validation, trainer, metrics.jsonl, Fig. 2 from it
# --------------------------------------------------------------------------------------------
CLASSES = ["low", "mid", "high"]


@dataclass
class ToyScenesParams:
    n_labeled: int = 6
    n_unlabeled: int = 12
    labeled_per_batch: int = 2
    unlabeled_per_batch: int = 4


class ToyScenes(DataModule):
    """Three classes, each a loud band region in a [16, 12] patch; features supplied directly."""

    Params = ToyScenesParams

    def __init__(self, params, context):
        super().__init__(params, context)
        self.classes = list(CLASSES)
        self.clip_duration_s = 0.1

    def setup(self, run_dir, encoder, extractor):
        pass

    def _clips(self, start: int, count: int):
        g = torch.Generator().manual_seed(start)
        labels = torch.arange(count) % 3
        x = torch.randn(count, 16, 12, generator=g)
        for c in range(3):
            x[labels == c, 5 * c : 5 * c + 5] += 2.0
        return x, labels

    def _batch(self, x, label, truth, stream):
        names = [f"{stream}{i}" for i in range(len(x))]
        return Batch(names, stream, torch.ones(len(x)), features=x, label=label,
                     hidden={"label": truth})  # fmt: skip

    def train_loader(self, epoch):
        p = self.params
        xl, yl = self._clips(1, p.n_labeled)
        xu, yu = self._clips(2, p.n_unlabeled)
        batches = []
        for b in range(p.n_unlabeled // p.unlabeled_per_batch):
            li = [(b * p.labeled_per_batch + i) % p.n_labeled for i in range(p.labeled_per_batch)]
            ui = list(range(b * p.unlabeled_per_batch, (b + 1) * p.unlabeled_per_batch))
            x = torch.cat([xl[li], xu[ui]])
            label = torch.cat([yl[li], torch.full((len(ui),), -1)])
            streams = ["labeled"] * len(li) + ["unlabeled"] * len(ui)
            batches.append(self._batch(x, label, torch.cat([yl[li], yu[ui]]), streams))
        return batches

    def val_loader(self):
        x, y = self._clips(3, 6)
        return [self._batch(x, y, y, ["validation"] * 6)]

    def unlabeled_loader(self):
        return []


class ToyScenesPlugin:
    @staticmethod
    def sedkit_register_datasets(register):
        register("toy_scenes", ToyScenes)


TOY_RECIPE = """\
task: classification
seed: 1
data: {{name: toy_scenes}}
model: {{name: cnn420, params: {{channels: [4, 8], blocks: [1, 1]}}}}
pseudo_labeler:
  name: fmuc
  params: {{threshold: 0.3, weak: {{freq_translate_max: 0.05}}, strong: {{noise_std: 0.3}}}}
features: {{sample_rate: 8000, n_mels: 16, normalization: none}}
trainer:
  max_epochs: 2
  device: cpu
  progress_bar: false
  monitor: accuracy
  optimizer: {{name: adam, lr: 0.01}}
run: {{root: {root}}}
"""


def test_tiny_fmuc_run_logs_pseudo_label_metrics(tmp_path):
    from sedkit import hookimpl
    from sedkit.plugins import Plugins
    from sedkit.run import start_run

    hookimpl(ToyScenesPlugin.sedkit_register_datasets)
    plugins = Plugins.load(builtins_only=True, extra=[("toy_scenes", ToyScenesPlugin)])
    recipe = tmp_path / "toy_fmuc.yaml"
    recipe.write_text(TOY_RECIPE.format(root=tmp_path / "runs"))
    run_dir = tmp_path / "run"
    assert start_run(recipe, [], plugins=plugins, run_dir=str(run_dir)) == 0
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    for record in records:
        assert 0.0 <= record["pseudo_labeler/quantity"] <= 1.0
        assert "fm_unlabeled_ce" in " ".join(record)  # train_fm_unlabeled_ce logged
        confusion = record["pseudo_labeler/confusion"]
        assert len(confusion) == 3 and all(len(row) == 3 for row in confusion)
        kept = record["pseudo_labeler/quantity"] * 12  # every unlabeled clip once per epoch
        assert sum(map(sum, confusion)) == pytest.approx(kept)
    png = plot_quality_quantity(run_dir / "metrics.jsonl", tmp_path / "fig2.png")
    assert png.read_bytes()[:8] == PNG_MAGIC
