"""Many processes, one run: torchrun / torch.distributed setup, DDP, rank-0 I/O.

``torchrun --nproc-per-node N -m rnnkit <task> train ...`` starts N processes with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and a rendezvous address in their environment. The trainer then
joins the process group (gloo on CPU, nccl on CUDA, with a timeout so that a dead peer makes
the others fail instead of hang), wraps the model in DistributedDataParallel, and lets only
rank 0 write files. Without those variables everything here is a no-op on one process.
"""

from __future__ import annotations

import atexit
import datetime
import os
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from rnnkit.errors import ConfigError


def rank() -> int:
    """This process's rank (0 without torchrun)."""
    return dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", 0))


def world_size() -> int:
    """Number of processes (1 without torchrun)."""
    return dist.get_world_size() if dist.is_initialized() else int(os.environ.get("WORLD_SIZE", 1))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main() -> bool:
    """True on the process that writes files (rank 0)."""
    return rank() == 0


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; with several processes, GPU ``LOCAL_RANK``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device: 'cuda' requested but torch sees no CUDA device (use --device cpu)")
        return torch.device("cuda", local_rank() if world_size() > 1 else torch.cuda.current_device())
    return torch.device("cpu")


def init_distributed(device: torch.device, timeout_seconds: float) -> bool:
    """Join the process group when started by torchrun (``WORLD_SIZE`` > 1). Returns whether it did.

    gloo on CPU, nccl on CUDA. ``timeout_seconds`` bounds every collective: when a peer dies the
    others raise instead of waiting forever.
    """
    if world_size() <= 1 or dist.is_initialized():
        return dist.is_initialized()
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_seconds))
    atexit.register(shutdown)
    return True


def setup(config) -> torch.device:
    """The device ``config`` (a :class:`~rnnkit.train.config.TrainConfig`) asks for, after joining
    the process group when started by torchrun. Safe to call more than once; the Trainer calls it.
    A task calls it first when it does rank-dependent work before building the Trainer (e.g.
    creating the run folder with :func:`rnnkit.train.run.new_run_dir`, writing data files on rank 0).
    """
    device = resolve_device(config.device)
    init_distributed(device, config.dist_timeout)
    return device


def wrap_model(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in DistributedDataParallel when running distributed, else ``model`` itself."""
    if not dist.is_initialized():
        return model
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def mean_across(value: float, device: torch.device) -> float:
    """The mean of ``value`` over all processes (``value`` itself on one process)."""
    if not dist.is_initialized():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t) / dist.get_world_size()


def any_across(flags: list[bool], device: torch.device) -> list[bool]:
    """For each flag: True when it is true on any process (one collective for all of them)."""
    if not dist.is_initialized():
        return list(flags)
    t = torch.tensor([int(f) for f in flags], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every process (any picklable object; used for small control data)."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(obj: Any) -> list[Any]:
    """Every process's ``obj``, in rank order, on every process (``[obj]`` on one process)."""
    if not dist.is_initialized():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def shutdown() -> None:
    """Leave the process group (at the end of a run)."""
    if dist.is_initialized():
        dist.destroy_process_group()
