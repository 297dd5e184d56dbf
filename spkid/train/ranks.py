"""Ranks and the process group: one process per device (torchrun), joined by NCCL between GPUs
or gloo on the CPU; a lost peer recognised; SIGTERM unwinding the process like Ctrl-C."""

from __future__ import annotations

import dataclasses
import os
import signal
from typing import Any

import torch
import torch.distributed as dist

from spkid.errors import SpkidError


@dataclasses.dataclass(frozen=True)
class Dist:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str = "auto") -> Dist:
    """Read torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK) and join the process group:
    NCCL between GPUs, gloo on CPU. ``device``: auto (CUDA when present), cuda or cpu."""
    rank = int(os.environ.get("RANK", 0))
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        if not torch.cuda.is_available():
            raise SpkidError("--device cuda was asked for but PyTorch sees no GPU; use --gpus 0 (CPU) or check the driver")
        if local_rank >= torch.cuda.device_count():
            raise SpkidError(f"local rank {local_rank} has no GPU: this node has {torch.cuda.device_count()}; "
                             f"lower --gpus")
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", device_id=dev if use_cuda else None)
    return Dist(rank, world_size, local_rank, dev)


def close_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def peer_lost(e: BaseException) -> bool:
    """Whether ``e`` is a collective failing because another rank went away (it raised, or was
    killed): NCCL's DistError, or gloo's plain RuntimeError about the closed connection."""
    return isinstance(e, dist.DistError) or any(
        text in str(e) for text in ("Connection closed by peer", "Connection reset by peer"))


def barrier(d: Dist) -> None:
    if d.world_size > 1:
        dist.barrier()


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, like Ctrl-C."""


def raise_on_sigterm() -> Any:
    """Make SIGTERM (a scheduler's pre-emption, torchrun stopping its workers) unwind the
    process like Ctrl-C, so that a checkpoint being written is removed rather than left as a
    temporary file beside the others. Returns the previous handler (for ``signal.signal``)."""
    def handler(signum, frame):
        raise Terminated(f"terminated ({signal.Signals(signum).name})")
    return signal.signal(signal.SIGTERM, handler)
