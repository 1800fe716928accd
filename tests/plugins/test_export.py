"""Sparse export (sedkit_plugins.pruned_asc.export): a pruned model's file is small and loads
back to the same tensors and outputs; the loader refuses pickles and foreign files with a clear
message."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from shared_support import build_context

from sedkit.components import ModelContext
from sedkit.errors import UserError
from sedkit_plugins.pruned_asc.export import export_sparse, load_sparse, load_sparse_into
from sedkit_plugins.pruned_asc.pruning import apply_masks, compute_masks, count_nonzero_parameters
from sedkit_plugins.pruned_asc.vgg import VGG, VGGParams


def vgg(seed: int = 0) -> VGG:
    torch.manual_seed(seed)
    ctx = build_context(
        ModelContext, "classification", seed=seed, n_classes=3, n_mels=48, n_frames=467
    )
    model = VGG(VGGParams(), ctx)
    with torch.no_grad():  # trained-like statistics and biases (fresh ones are 0 and 1)
        for name, t in model.state_dict().items():
            if t.is_floating_point() and not name.endswith("weight"):
                t.copy_(torch.rand(t.shape) + 0.1)
    return model


def dense_checkpoint_bytes(model: torch.nn.Module) -> int:
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell()


def test_pruned_vgg_exports_small_and_loads_back_to_the_same_outputs(tmp_path) -> None:
    model = vgg()
    apply_masks(model, compute_masks(model, 0.8))
    summary = export_sparse(model, tmp_path / "model.npz", metadata={"model": {"name": "vgg"}})
    # Every value of the state dict; the batch counters (num_batches_tracked) are still 0.
    assert summary.nonzero_values == count_nonzero_parameters(model) == 17_115
    assert summary.file_bytes == (tmp_path / "model.npz").stat().st_size
    # 17,115 non-zero float32 values are 66.9 KB; the bitmask adds 1 bit per weight.
    assert summary.file_bytes < 0.3 * dense_checkpoint_bytes(model)
    assert summary.file_bytes < 90 * 1024

    fresh = vgg(seed=1)
    metadata = load_sparse_into(fresh, tmp_path / "model.npz")
    assert metadata == {"model": {"name": "vgg"}}
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert a.dtype == b.dtype and torch.equal(a, b), name
    x = torch.randn(2, 48, 467)
    model.eval(), fresh.eval()
    with torch.no_grad():
        assert torch.equal(model(x).clip_logits, fresh(x).clip_logits)


def test_dense_and_odd_tensors_round_trip(tmp_path) -> None:
    state = {
        "dense": torch.randn(3, 4),
        "sparse": torch.tensor([[0.0, 1.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -2.0]]),
        "half": torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0], dtype=torch.float16),
        "bf16": torch.tensor([1.0, 0.0, 2.5], dtype=torch.bfloat16),
        "counter": torch.tensor(17),
        "flags": torch.tensor([True, False]),
        "empty": torch.zeros(0, 3),
    }
    summary = export_sparse(state, tmp_path / "s.npz")
    # bf16 travels as float32: 1 mask byte + 2 x 4 bytes < 3 x 4 bytes, so it is sparse too.
    assert summary.sparse_tensors == 3
    loaded, metadata = load_sparse(tmp_path / "s.npz")
    assert metadata == {} and list(loaded) == list(state)
    for name, tensor in state.items():
        assert loaded[name].dtype == tensor.dtype and torch.equal(loaded[name], tensor), name


def test_loader_refuses_pickles_and_foreign_files(tmp_path) -> None:
    with pytest.raises(UserError, match="not found"):
        load_sparse(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="junk.npz: not a sedkit sparse export"):
        load_sparse(tmp_path / "junk.npz")
    header = np.frombuffer(b'{"format": "sedkit-sparse-state-dict", "version": 1, '
                           b'"tensors": [{"name": "w", "shape": [1], "dtype": "torch.float32", '
                           b'"storage": "|O", "offset": 0, "count": 1, "encoding": "dense"}]}',
                           dtype=np.uint8)  # fmt: skip
    np.savez(tmp_path / "pickled.npz", header=header, **{"values|O": np.array([{}])})
    with pytest.raises(UserError, match="pickled.npz: not a sedkit sparse export"):
        load_sparse(tmp_path / "pickled.npz")
    export_sparse({"other.weight": torch.ones(2)}, tmp_path / "other.npz")
    with pytest.raises(UserError, match="does not fit this model"):
        load_sparse_into(vgg(), tmp_path / "other.npz")
