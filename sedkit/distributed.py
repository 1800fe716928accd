"""Data-parallel training on PyTorch's own engine: torchrun + DistributedDataParallel.

``torchrun --nproc_per_node=N -m sedkit.cli run RECIPE`` starts N processes with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous address in their environment; each joins the
process group (NCCL on GPUs, gloo on CPUs) and trains a replica of the model on its share of
every batch, and DDP averages the gradients, so all replicas take the same optimizer step.

Sharding: every rank iterates the *same* global batches (the data module's loader is seeded by
epoch, so they agree) and keeps the examples ``rank::world_size`` of each. Data modules need no
change; the price is that every rank reads every batch (small with cached features). With
equal shares and a loss that is a mean over examples, the averaged gradient equals the one of
the whole batch in one process. Masked losses (only some examples strongly labeled) are
averaged per rank first, which weighs examples slightly differently when a batch divides its
labeled examples unevenly between ranks; batch norm statistics are per rank.

Rank 0 logs, validates, writes metrics and checkpoints; the others wait for its results.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import torch
import torch.distributed as dist

from sedkit.values import Batch

__all__ = [
    "all_mean",
    "barrier",
    "broadcast_object",
    "init_from_env",
    "is_main",
    "rank",
    "shard_batch",
    "shutdown",
    "world_size",
]


def world_size() -> int:
    """Processes in the job: 1 outside torchrun."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """True in the process that logs, validates and writes (rank 0, or the only one)."""
    return rank() == 0


def init_from_env(device_type: str) -> bool:
    """Join the process group described by torchrun's environment variables.

    Returns True when training is distributed (``WORLD_SIZE`` > 1). NCCL for CUDA, gloo
    otherwise. Idempotent: a group already initialised (by a test, or by the caller) is kept.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return dist.get_world_size() > 1


def local_device(device: torch.device) -> torch.device:
    """This process's GPU (``LOCAL_RANK``) when training on CUDA; the CPU otherwise."""
    if device.type != "cuda":
        return device
    index = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def shard_batch(batch: Batch, rank_: int, world: int) -> Batch:
    """The examples ``rank_::world`` of ``batch``: every per-example tensor and list is cut,
    so any data module's batches can be shared out without changing the data module."""
    if world == 1:
        return batch
    n = len(batch)
    index = torch.arange(rank_, n, world)

    def cut(value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == n:
            return value.index_select(0, index.to(value.device))
        if isinstance(value, list) and len(value) == n:
            return value[rank_::world]
        if isinstance(value, dict):
            return {k: cut(v) for k, v in value.items()}
        return value

    return dataclasses.replace(
        batch, **{f.name: cut(getattr(batch, f.name)) for f in dataclasses.fields(batch)}
    )


def all_mean(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each scalar averaged over the ranks (one collective for the whole dict)."""
    if world_size() == 1 or not values:
        return values
    keys = sorted(values)
    stacked = torch.stack([torch.as_tensor(values[k], dtype=torch.float64) for k in keys])
    if dist.get_backend() == "nccl":
        stacked = stacked.cuda()
    dist.all_reduce(stacked)
    stacked = stacked.cpu() / world_size()
    return {k: stacked[i] for i, k in enumerate(keys)}


def all_true(flag: torch.Tensor) -> bool:
    """Whether ``flag`` (a bool scalar) holds on every rank: one host sync, one collective."""
    if world_size() == 1:
        return bool(flag)
    value = flag.to(torch.int32).reshape(1)
    if dist.get_backend() != "nccl":
        value = value.cpu()
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (e.g. validation metrics, a run directory path)."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    """Wait for every rank (e.g. until rank 0 has written a checkpoint the others will read)."""
    if world_size() > 1:
        dist.barrier()


def shutdown() -> None:
    """Leave the process group (end of a distributed run)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
