"""Choosing and waiting for the compute device, for the steps and benches that take --device."""

from __future__ import annotations

import os

import torch

from spkid.errors import SpkidError


def pick_device(name: str) -> torch.device:
    """``auto`` = CUDA when present, else CPU; ``cpu``, ``cuda`` or ``cuda:N`` as given, but a
    CUDA device when PyTorch sees none is an error, not a silent fall-back."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SpkidError(f"--device={name} but no CUDA device is visible; use --device=cpu")
    return device


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (timing); a no-op on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def available_memory(device: torch.device) -> tuple[int, str]:
    """Bytes a new allocation on ``device`` can still take, and where that limit comes from: a
    GPU's free memory, or on the CPU the kernel's MemAvailable, lowered to what is left under
    this process's cgroup limit (a container's or a Slurm job's) when there is one."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0], f"{device} (free memory)"
    limits = []
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
        limits.append((int(fields["MemAvailable"].split()[0]) * 1024, "this machine (MemAvailable)"))
    except (OSError, KeyError, ValueError):
        limits.append((os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "this machine (free pages)"))
    try:
        with open("/sys/fs/cgroup/memory.max") as f, open("/sys/fs/cgroup/memory.current") as g:
            cap = f.read().strip()
            if cap != "max":
                limits.append((int(cap) - int(g.read().strip()), "this cgroup (memory.max - memory.current)"))
    except (OSError, ValueError):
        pass
    return min(limits)
