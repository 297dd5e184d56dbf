"""Choosing and waiting for the compute device, for the steps and benches that take --device."""

from __future__ import annotations

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
