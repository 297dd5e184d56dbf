"""Ranks and the process group: one process per device (torchrun), joined by NCCL between GPUs
or gloo on the CPU; a lost peer recognised; SIGTERM turned into a stop that every rank makes
after the same step."""

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
    """Training stopped on SIGTERM, its checkpoint saved; unwinds the process like Ctrl-C."""


class StopSignal:
    """SIGTERM (a scheduler's pre-emption or time limit, torchrun stopping its workers) asks
    training to stop after a step and save that step's checkpoint. The ranks agree on the step:
    after each step every rank sends its flag in an all-reduce on the host (gloo, its own group)
    and reads the one it sent a step earlier, so no step waits for it, and every rank stops after
    the same step even when the signal reached only some of them, or reached them at different
    steps. Without ``install`` (tests building a Trainer) no stop is ever asked for."""

    def __init__(self) -> None:
        self.received = ""  # the signal's name, once one came to this rank
        self._group: Any = None
        self._sent: tuple[Any, torch.Tensor] | None = None

    def install(self) -> Any:
        """Catch SIGTERM from now on; returns the previous handler (for ``signal.signal``)."""
        def handler(signum, frame):
            self.received = signal.Signals(signum).name
        return signal.signal(signal.SIGTERM, handler)

    def join(self, d: Dist) -> None:
        """The ranks' group for the flags (a collective: every rank calls it once)."""
        if d.world_size > 1 and self._group is None:
            self._group = dist.new_group(backend="gloo")

    def agreed(self) -> bool:
        """Called by every rank after every step: whether a rank had the signal a step ago."""
        if self._group is None:
            return bool(self.received)
        asked = self.settle()
        flag = torch.tensor([int(bool(self.received))], dtype=torch.int32)
        self._sent = (dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self._group, async_op=True), flag)
        return asked

    def settle(self) -> bool:
        """Wait for the flags in flight (before anything else closes the group); whether they ask to stop."""
        if self._sent is None:
            return False
        work, flag = self._sent
        self._sent = None
        work.wait()
        return bool(flag.item())
