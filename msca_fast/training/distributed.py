"""Single-process or ``torchrun`` multi-process training: who am I, on which device."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """rank / world_size of this process (0 / 1 when not launched by torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def pick_device(preference: str, local_rank: int = 0) -> torch.device:
    """"auto" -> this process's GPU when CUDA is available, else the CPU."""
    if preference == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {preference!r} asked for, but torch sees no CUDA device")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def init_distributed(device_preference: str) -> tuple[DistInfo, torch.device]:
    """Join the process group when launched by torchrun (RANK/WORLD_SIZE set): NCCL on GPUs, gloo on CPU."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return DistInfo(), pick_device(device_preference)
    info = DistInfo(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    device = pick_device(device_preference, info.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return info, device


def broadcast_from_main(modules: Iterable[torch.nn.Module], info: DistInfo) -> None:
    """Copy the main process's parameters and buffers of ``modules`` to every process.

    Each process seeds its global RNG with seed + rank (run.py), so freshly built models
    differ between processes; DistributedDataParallel would copy rank 0's weights only when the
    adversarial stage wraps G and D, after pretraining has already run on different weights.
    """
    if not info.distributed:
        return
    for module in modules:
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


def average_gradients(parameters: Iterable[torch.nn.Parameter], info: DistInfo) -> None:
    """All-reduce (mean) the gradients of ``parameters`` across processes: DDP by hand, for the
    pretraining stage, which runs only part of the generator."""
    if not info.distributed:
        return
    for p in parameters:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= info.world_size


def all_mean(value: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The mean of a scalar tensor over processes (for logging)."""
    if not info.distributed:
        return value
    value = value.detach().clone()
    dist.all_reduce(value)
    return value / info.world_size


def any_process(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every process when ``flag`` is True on any of them, so that all processes stop
    at the same iteration (a process that stops alone leaves the others waiting in a collective)."""
    if not info.distributed:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def cleanup(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()
