"""Mixed-stream batches and on-device augmentation."""

from __future__ import annotations

import torch

from sedkit.components import Batch
from sedkit.data.augment import (
    AugmentParams,
    augment_batch,
    frequency_mask,
    gaussian_noise,
    make_generator,
    mixup,
    time_mask,
    time_shift,
    two_views,
)
from sedkit.data.batching import BatchCollator, Example, MultiStreamBatchSampler, stream_counts


def test_stream_counts_follow_the_dcase2019_shares():
    assert stream_counts({"synthetic": 0.25, "weak": 0.25, "unlabeled": 0.5}, 24) == {
        "synthetic": 6,
        "weak": 6,
        "unlabeled": 12,
    }
    for size in range(1, 40):
        counts = stream_counts({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, size)
        assert sum(counts.values()) == size and max(counts.values()) - min(counts.values()) <= 1
    assert stream_counts({"a": 1.0, "b": 0.0}, 5) == {"a": 5, "b": 0}


def test_sampler_is_deterministic_per_epoch_and_covers_the_largest_stream():
    sizes, counts = (
        {"synthetic": 10, "weak": 7, "unlabeled": 30},
        {"synthetic": 2, "weak": 2, "unlabeled": 4},
    )
    epoch1 = list(MultiStreamBatchSampler(sizes, counts, seed=3, epoch=1))
    assert epoch1 == list(MultiStreamBatchSampler(sizes, counts, seed=3, epoch=1))
    assert epoch1 != list(MultiStreamBatchSampler(sizes, counts, seed=3, epoch=2))
    assert epoch1 != list(MultiStreamBatchSampler(sizes, counts, seed=4, epoch=1))
    assert len(epoch1) == 8  # ceil(30 / 4) batches: one pass over the unlabeled stream
    for batch in epoch1:
        assert [s for s, _ in batch] == ["synthetic"] * 2 + ["weak"] * 2 + ["unlabeled"] * 4
    seen = {s: [i for b in epoch1 for t, i in b if t == s] for s in sizes}
    assert set(seen["unlabeled"]) == set(range(30))
    assert set(seen["synthetic"]) == set(range(10)) and set(seen["weak"]) == set(range(7))
    # a small stream restarts with a fresh permutation: no index twice within one pass
    assert len(set(seen["weak"][:7])) == 7
    assert len(MultiStreamBatchSampler(sizes, counts, seed=3, epoch=1, n_batches=3)) == 3


def test_collator_zero_fills_and_masks():
    collate = BatchCollator(n_frames=4, n_classes=2)
    strong = torch.ones(4, 2)
    batch = collate(
        [
            Example(
                "s.wav", "synthetic", 0.0, audio=torch.zeros(8), strong=strong, weak=torch.ones(2)
            ),
            Example(
                "w.wav",
                "weak",
                1.0,
                audio=torch.zeros(8),
                weak=torch.tensor([1.0, 0.0]),
                hidden_strong=strong,
                hidden_weak=torch.ones(2),
            ),
            Example("u.wav", "unlabeled", 1.0, audio=torch.zeros(8)),
        ]
    )
    assert batch.filenames == ["s.wav", "w.wav", "u.wav"]
    assert batch.domain.tolist() == [0.0, 1.0, 1.0]
    assert batch.strong_mask.tolist() == [True, False, False]
    assert batch.weak_mask.tolist() == [True, True, False]
    assert batch.strong.shape == (3, 4, 2) and batch.strong[1:].sum() == 0
    assert batch.hidden["hidden_mask"].tolist() == [False, True, False]
    assert batch.hidden["strong"][1].sum() == 8 and batch.audio.shape == (3, 8)


def _pooled(features: torch.Tensor, pooling: int) -> torch.Tensor:
    return torch.nn.functional.max_pool1d(features, pooling)


def test_time_shift_moves_frame_targets_with_the_features():
    pooling, out_frames = 4, 12
    torch.manual_seed(0)
    targets = (torch.rand(5, out_frames, 1) > 0.5).float()  # [B, T', C]
    features = targets[:, :, 0].repeat_interleave(pooling, dim=1).unsqueeze(1)  # [B, 1, T]
    shifted, (shifted_targets,) = time_shift(
        features, 5, make_generator("cpu", 1), pooling=pooling, frame_targets=(targets,)
    )
    assert not torch.equal(shifted, features)
    assert torch.equal(_pooled(shifted, pooling)[:, 0], shifted_targets[:, :, 0])


def test_masks_and_noise():
    gen = make_generator("cpu", 2)
    features = torch.arange(2 * 8 * 50, dtype=torch.float32).view(2, 8, 50)
    masked = time_mask(features, 2, 10, gen)
    changed_frames = (masked != features).any(dim=1)  # [B, T]
    assert 0 < changed_frames.sum(dim=1).max() <= 20
    masked = frequency_mask(features, 1, 3, gen)
    changed_bands = (masked != features).any(dim=2)
    assert changed_bands.sum(dim=1).max() <= 3
    noisy = gaussian_noise(torch.zeros(4, 32, 500), 0.5, gen)
    assert abs(noisy.std().item() - 0.5) < 0.01


def test_mixup_mixes_within_a_stream_and_mixes_targets_alike():
    streams = ["synthetic"] * 4 + ["weak"] * 4 + ["unlabeled"] * 2
    eye = torch.eye(10)
    features = eye.view(10, 10, 1)  # each clip's features name the clip
    mixed, (targets,) = mixup(
        features,
        [eye.clone()],
        streams,
        0.4,
        make_generator("cpu", 5),
        mix_groups=["synthetic", "weak"],
    )
    torch.testing.assert_close(mixed[:, :, 0], targets)  # targets mixed with the same weights
    for i, stream in enumerate(streams):
        partners = [j for j in range(10) if mixed[i, j, 0] > 0]
        assert all(streams[j] == stream for j in partners)
    assert torch.equal(mixed[8:], features[8:])  # unlabeled untouched


def test_augment_batch_is_reproducible_and_keeps_targets_consistent():
    params = AugmentParams(
        time_shift_max_s=0.5, time_masks=1, freq_masks=1, noise_std=0.1, mixup_prob=1.0
    )
    torch.manual_seed(0)
    targets = (torch.rand(6, 10, 3) > 0.5).float()
    batch = Batch(
        filenames=list("abcdef"),
        stream=["synthetic"] * 3 + ["weak"] * 3,
        domain=torch.tensor([0.0] * 3 + [1.0] * 3),
        strong=targets,
        strong_mask=torch.ones(6, dtype=torch.bool),
        weak=targets.amax(1),
        weak_mask=torch.ones(6, dtype=torch.bool),
    )
    features = torch.randn(6, 16, 40)
    kwargs = dict(frame_hop_s=0.2, input_hop_s=0.05)
    x1, b1 = augment_batch(features, batch, params, make_generator("cpu", 9), **kwargs)
    x2, b2 = augment_batch(features, batch, params, make_generator("cpu", 9), **kwargs)
    assert torch.equal(x1, x2) and torch.equal(b1.strong, b2.strong)
    assert not torch.equal(x1, features) and b1.strong.shape == targets.shape
    assert b1.filenames == batch.filenames
    off, same = augment_batch(features, batch, AugmentParams(), make_generator("cpu", 9), **kwargs)
    assert off is features and same is batch


def test_two_views_differ_in_strength():
    features = torch.randn(4, 16, 40)
    weak, strong = two_views(
        features,
        AugmentParams(noise_std=0.01),
        AugmentParams(noise_std=1.0, freq_masks=2),
        make_generator("cpu", 0),
        frame_hop_s=0.2,
        input_hop_s=0.05,
    )
    assert (weak - features).abs().mean() < (strong - features).abs().mean()
