"""The ``ensemble`` model: the paper's Model 3/4 counts (119,758 non-zero values, 467.8 KB
pruned), mean of member probabilities, member seeds, independent member training
(equal to training each member alone with Adam), member validation, loading checkpoints."""

from __future__ import annotations

import copy

import pytest
import torch
from shared_support import build_context, classification_batch

import sedkit.plugins
from sedkit.checkpoint import save_checkpoint
from sedkit.components import ModelContext
from sedkit.config import check_dataclass
from sedkit.errors import UserError
from sedkit.plugins import Plugins
from sedkit_plugins.pruned_asc.ensemble import Ensemble, EnsembleParams
from sedkit_plugins.pruned_asc.pruning import (
    apply_masks,
    compute_masks,
    count_nonzero_parameters,
    count_parameters,
)
from sedkit_plugins.pruned_asc.pruning import size_kb as kb
from sedkit_plugins.pruned_asc.vgg import VGG, VGGParams

TINY_VGG = {
    "modules_per_stage": [1, 1],
    "filters": [3, 4],
    "bottleneck_filters": 4,
    "dense_units": 5,
    "dropout": 0.0,
}


@pytest.fixture(autouse=True)
def _builtin_plugins(monkeypatch):
    """The ensemble looks members up in the process-wide plugin set: the built-ins here."""
    monkeypatch.setattr(sedkit.plugins, "_loaded", Plugins.load(builtins_only=True))


def context(n_mels: int = 48, n_frames: int = 467, seed: int = 7) -> ModelContext:
    return build_context(
        ModelContext, "classification", seed=seed, n_classes=3, n_mels=n_mels, n_frames=n_frames
    )


def params(data: dict) -> EnsembleParams:
    checked, problems = check_dataclass(EnsembleParams, data, "model.params")
    assert not problems, problems
    return checked


def tiny(n: int = 2, **extra) -> Ensemble:
    members = [{"name": "vgg", "params": TINY_VGG, "repeat": n}]
    return Ensemble(params({"members": members, **extra}), context(8, 8))


def test_paper_ensemble_counts() -> None:
    model = Ensemble(EnsembleParams(), context())  # default: 5 x V(2,2,3,3) + 1 x I(2,1,2)
    assert [type(m).__name__ for m in model.members] == ["VGG"] * 5 + ["Inception"]
    # Table 3 prints 571,768 and 2233.6 KB for the unpruned ensemble: two values more than
    # its own Model 1 and Model 2 rows add up to, and the sum of the rounded member sizes
    # (5 x 315.8 + 654.6); the members themselves give 571,766 (2233.5 KB).
    assert count_parameters(model) == 5 * 80_839 + 167_571 == 571_766
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # generic non-zero values, as after training
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_((torch.rand(t.shape, generator=gen) + 0.1) * torch.sign(t + 0.5))
    apply_masks(model, compute_masks(model, 0.8))  # per layer, inside each member
    assert count_nonzero_parameters(model) == 119_758
    assert round(kb(119_758), 1) == 467.8 and kb(119_758) < 500


def test_output_is_the_mean_of_member_probabilities() -> None:
    model = tiny(3).eval()
    x = torch.randn(4, 8, 8)
    with torch.no_grad():
        out = model(x)
        expected = torch.stack([torch.softmax(m(x).clip_logits, -1) for m in model.members])
    assert torch.allclose(torch.softmax(out.clip_logits, -1), expected.mean(0), atol=1e-6)
    assert out.h.shape == (4, 15) and model.feature_dim == 15


def test_members_get_their_own_seeds() -> None:
    state = torch.get_rng_state()
    a, b = tiny(2), tiny(2)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's generator is untouched
    w = [m.dense.weight for m in a.members]
    assert not torch.equal(w[0], w[1])
    assert torch.equal(w[0], b.members[0].dense.weight)
    torch.manual_seed(7 + 1)  # member i is initialised under seed + i
    alone = VGG(VGGParams(**TINY_VGG), context(8, 8, seed=8))
    assert torch.equal(alone.dense.weight, w[1])


def test_summed_loss_trains_members_as_if_separately() -> None:
    torch.manual_seed(0)
    ensemble = tiny(2)
    separate = [copy.deepcopy(m) for m in ensemble.members]
    opt = torch.optim.Adam(ensemble.parameters(), lr=0.01)
    opts = [torch.optim.Adam(m.parameters(), lr=0.01) for m in separate]
    for step in range(3):
        gen = torch.Generator().manual_seed(step)
        x = torch.randn(6, 8, 8, generator=gen)
        labels = [0, 1, 2, -1, 1, 0]
        terms = ensemble.supervised_loss(ensemble(x), classification_batch(labels))
        assert set(terms) == {"member0_ce", "member0_l2", "member1_ce", "member1_l2"}
        opt.zero_grad()
        sum(terms.values()).backward()
        opt.step()
        for m, o in zip(separate, opts, strict=True):
            o.zero_grad()
            sum(m.supervised_loss(m(x), classification_batch(labels)).values()).backward()
            o.step()
    for m, ref in zip(ensemble.members, separate, strict=True):
        for a, b in zip(m.state_dict().values(), ref.state_dict().values(), strict=True):
            assert torch.allclose(a, b, atol=1e-6)


def test_member_problems_are_reported_together() -> None:
    bad = {
        "members": [
            {"name": "vgg", "params": {"filtres": [4]}},
            {"name": "vgx"},
            {"name": "ensemble"},
        ]
    }
    with pytest.raises(UserError) as info:
        Ensemble(params(bad), context())
    text = str(info.value)
    assert "model.params.members[0].params.filtres: unknown key" in text
    assert "model.params.members[1].name" in text and "vgx" in text
    assert "members[2].name: an ensemble cannot contain an ensemble" in text
    assert len(info.value.problems) == 3
    _, problems = check_dataclass(
        EnsembleParams, {"members": [{"name": "vgg", "repeat": 2}], "init_from": ["a"]}, "m"
    )
    assert problems and "1 checkpoints for 2 members" in problems[0]


def test_members_load_from_checkpoints_and_run_directories(tmp_path) -> None:
    trained = [VGG(VGGParams(**TINY_VGG), context(8, 8, seed=s)) for s in (100, 200)]
    save_checkpoint(
        tmp_path / "one.pt",
        {"modules": {f"model.{k}": v for k, v in trained[0].state_dict().items()}},
    )
    run_dir = tmp_path / "run"
    save_checkpoint(
        run_dir / "checkpoints" / "best.pt",
        {"modules": {f"model.{k}": v for k, v in trained[1].state_dict().items()}},
    )
    model = tiny(2, init_from=[str(tmp_path / "one.pt"), str(run_dir)])
    for member, source in zip(model.members, trained, strict=True):
        for a, b in zip(member.state_dict().values(), source.state_dict().values(), strict=True):
            assert torch.equal(a, b)
    save_checkpoint(tmp_path / "other.pt", {"modules": {"model.x.weight": torch.zeros(1)}})
    with pytest.raises(UserError, match=r"init_from\[1\].*does not hold"):
        tiny(2, init_from=[str(tmp_path / "one.pt"), str(tmp_path / "other.pt")])
    with pytest.raises(UserError, match="not found"):
        tiny(1, init_from=[str(tmp_path / "missing.pt")])


def test_registered_through_the_hook() -> None:
    from sedkit_plugins.pruned_asc import ensemble

    registered = {}
    ensemble.sedkit_register_models(lambda name, cls: registered.setdefault(name, cls))
    assert registered == {"ensemble": Ensemble}
