"""Distributed context from torchrun's environment; a plain single process when it is absent.

`torchrun --nproc-per-node N -m s5cli pretrain ...` sets RANK, LOCAL_RANK and WORLD_SIZE (and
MASTER_ADDR/PORT); `init_distributed` reads them (nanoGPT habit), picks NCCL on CUDA and gloo on
CPU, and pins each process to its local GPU. Without those variables everything runs in one
process and every collective helper below is a no-op, so the same code path serves a laptop and
a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from s5cli.training.device import resolve_device
from s5cli.training.launch import torchrun_env


@dataclass(frozen=True)
class DistContext:
    """Where this process sits: rank, world size and the device it computes on."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None  # None: single process, no process group

    @property
    def is_main(self) -> bool:
        """True on the process that writes outputs (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when a process group is up (world size > 1 or launched by torchrun)."""
        return self.backend is not None


def init_distributed(device: str = "auto") -> DistContext:
    """Join the process group that torchrun describes, or return a single-process context."""
    launch = torchrun_env()
    if launch is None:
        return DistContext(device=resolve_device(device))
    rank, local_rank, world_size = launch.rank, launch.local_rank, launch.world_size
    dev = resolve_device(device, local_rank)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, device_id=dev if dev.type == "cuda" else None)
    return DistContext(rank=rank, local_rank=local_rank, world_size=world_size, device=dev, backend=backend)


def shutdown_distributed(ctx: DistContext) -> None:
    """Leave the process group (a no-op for a single process)."""
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    """Wait for every rank."""
    if ctx.distributed:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum a tensor over ranks in place (and return it)."""
    if ctx.distributed:
        # gloo reduces CPU tensors, NCCL CUDA ones: move to the context's device for the call.
        work = tensor.to(ctx.device)
        dist.all_reduce(work, op=dist.ReduceOp.SUM)
        tensor.copy_(work.to(tensor.device))
    return tensor


def all_gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """Gather one picklable object per rank (rank order); a single process gets [obj]."""
    if not ctx.distributed:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's object on every rank."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def wrap_ddp(model: torch.nn.Module, ctx: DistContext, find_unused_parameters: bool = False) -> torch.nn.Module:
    """SyncBatchNorm + DistributedDataParallel under torchrun; the model unchanged otherwise."""
    if not ctx.distributed:
        return model
    if ctx.device.type == "cuda":
        # BN statistics across all GPUs, as S4P does (its DDP converts to SyncBN).
        # torch's SyncBatchNorm refuses CPU tensors, so gloo/CPU runs keep per-process BN.
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=ids, find_unused_parameters=find_unused_parameters
    )


def average_buffers(model: torch.nn.Module, ctx: DistContext) -> None:
    """Average floating-point buffers (BN running statistics) over ranks, in one all-reduce.

    Under gloo there is no SyncBatchNorm, so each rank's running statistics drift apart; averaging
    them after every step keeps the eval-mode teacher, validation and saved weights identical on all
    ranks (timm's `distribute_bn(reduce=True)`, done every step).
    """
    if not ctx.distributed:
        return
    buffers = [b for b in unwrap(model).buffers() if b.dtype.is_floating_point]
    if not buffers:
        return
    flat = torch.cat([b.detach().reshape(-1).to(torch.float64) for b in buffers])
    all_reduce_sum(flat, ctx)
    flat /= ctx.world_size
    offset = 0
    for b in buffers:
        n = b.numel()
        b.copy_(flat[offset : offset + n].view_as(b).to(b.dtype))
        offset += n
