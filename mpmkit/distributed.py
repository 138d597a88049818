"""Data-parallel training under ``torchrun``: process group, sharding, reductions.

``torchrun --nproc_per_node N -m mpmkit fit ...`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``
and the ``env://`` rendezvous; :func:`setup` joins the group (NCCL on CUDA, Gloo on CPU).
Without those variables everything here is a no-op for a single process.

How the global batch is split: each epoch's minibatch of dataset indices (a function of
``(seed, epoch)`` only) is dealt round-robin to the ranks, so the *global* batch is
``batch_size`` whatever the world size. Every rank scales its loss by
``world · n_local / n_global`` (observations), so DDP's gradient average equals the
gradient of the single-process per-observation loss.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    """Where this process sits: ``rank`` of ``world`` (``world == 1``: not distributed)."""

    rank: int = 0
    world: int = 1

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def sync_batchnorm(model: torch.nn.Module, device: torch.device, ctx: DistContext) -> torch.nn.Module:
    """BatchNorm layers share their batch statistics across ranks (SyncBatchNorm) on CUDA.

    Without it each rank normalises by its own share of the batch, so N processes do not train
    as one process with the global batch. (One exception remains: in a short last batch a rank
    without datasets runs a weight-zero stand-in, whose statistics SyncBatchNorm still gathers.) PyTorch's SyncBatchNorm runs on GPUs only; on CPU
    (Gloo) the layers stay per-process and a warning says so. Parameters and buffers are reused,
    so an optimiser built on ``model`` keeps working.
    """
    from torch.nn.modules.batchnorm import _BatchNorm

    if not ctx.enabled or not any(isinstance(m, _BatchNorm) for m in model.modules()):
        return model
    if device.type == "cuda":
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    import warnings

    warnings.warn("BatchNorm statistics stay per process under CPU (Gloo) data parallelism, since "
                  "SyncBatchNorm needs GPUs: training then differs from one process with the global batch. "
                  "Use LayerNorm (e.g. the image family's arch=fast) for exact multi-process CPU runs.",
                  stacklevel=2)
    return model


def env_world_size() -> int:
    """``WORLD_SIZE`` set by torchrun (1 when absent)."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def setup(device: torch.device) -> DistContext:
    """Join the torchrun process group once (if launched by torchrun); return this process's context."""
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size())
    if env_world_size() <= 1:
        return DistContext()
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, init_method="env://")
    return DistContext(dist.get_rank(), dist.get_world_size())


def teardown() -> None:
    """Leave the process group (end of ``mpmkit fit``)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def current() -> DistContext:
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size())
    return DistContext()


def shard(indices: Sequence[int], ctx: DistContext) -> tuple[list[int], bool]:
    """This rank's share of a global minibatch (round-robin) and whether it is real.

    A rank left without datasets (a short last batch) gets the batch's first dataset as a
    stand-in with weight zero, so every rank still runs forward and backward.
    """
    own = list(indices[ctx.rank:: ctx.world])
    return (own, True) if own else ([indices[0]], False)


def all_sum(values: list[float], ctx: DistContext, device: torch.device) -> list[float]:
    """Sum a few floats over ranks (float64, so sums of counts stay exact)."""
    if not ctx.enabled:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """Every rank's ``obj`` (used for per-rank RNG states; between our own processes only)."""
    if not ctx.enabled:
        return [obj]
    out: list[Any] = [None] * ctx.world
    dist.all_gather_object(out, obj)
    return out


def broadcast_error(message: str | None, ctx: DistContext) -> str | None:
    """Share rank 0's error message (or None) with every rank, so all of them stop together."""
    if not ctx.enabled:
        return message
    box = [message]
    dist.broadcast_object_list(box, src=0)
    return box[0]
