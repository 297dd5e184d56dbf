#!/usr/bin/env python3
"""Throughput of each trunk: training (forward + backward) and inference samples/s.

    python bench/models.py                       # CPU, fp32, 2 iterations (minutes on 2 cores)
    python bench/models.py --device=cuda         # CUDA with fp16 autocast and channels-last
    python bench/models.py --trunks=ECAPA --iters=20 --amp=bf16

Input: random 2-s training crops (32,240 samples = 200 frames), batch 32, full paper widths
unless --channels is given. The front-end is part of the model and runs in fp32 throughout.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

import torch

from spkid.cli import run_main
from spkid.config import option, parse_options
from spkid.device import pick_device, synchronize
from spkid.errors import SpkidError
from spkid.models import build_model, trunk_parameters
from spkid.options import ModelOptions
from spkid.registry import TRUNKS


@dataclass
class BenchOptions:
    trunks: str = option(",".join(TRUNKS), "comma-separated trunks to time")
    channels: str = option("", "override the widths of every trunk timed (empty = the paper's)")
    batch_size: int = option(32, "utterances per batch")
    samples: int = option(32240, "samples per utterance (32,240 = the 2.015-s training crop)")
    iters: int = option(0, "timed iterations per measurement (0 = 2 on CPU, 20 on CUDA)")
    warmup: int = option(-1, "untimed iterations first (-1 = 1 on CPU, 5 on CUDA)")
    device: str = option("auto", "auto: CUDA when present, else CPU", ("auto", "cpu", "cuda"))
    amp: str = option("fp16", "autocast precision on CUDA (CPU always runs fp32)", ("fp16", "bf16", "none"))
    channels_last: bool = option(True, "channels-last memory format for the ResNets on CUDA")
    threads: int = option(0, "CPU threads (0 = PyTorch's default)")


def time_model(model: torch.nn.Module, wave: torch.Tensor, train: bool, iters: int, warmup: int,
               amp_dtype: torch.dtype | None) -> float:
    """Samples per second of ``iters`` forward(+backward) passes over ``wave``."""
    device = wave.device
    model.train(train)

    def step() -> None:
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            emb = model(wave)
        if train:
            emb.float().square().mean().backward()
            model.zero_grad(set_to_none=True)

    with torch.set_grad_enabled(train), torch.inference_mode(not train):
        for _ in range(warmup):
            step()
        synchronize(device)
        start = time.perf_counter()
        for _ in range(iters):
            step()
        synchronize(device)
        elapsed = time.perf_counter() - start
    return iters * wave.shape[0] / elapsed


def main(argv: Sequence[str]) -> int:
    opts = parse_options([BenchOptions], argv, prog="bench/models.py",
                         description="Training and inference throughput of each trunk.")[BenchOptions]
    if opts.iters < 0 or opts.batch_size < 1:
        raise SpkidError("--iters must be 0 (automatic) or more and --batch-size positive")
    device = pick_device(opts.device)
    on_cuda = device.type == "cuda"
    iters = opts.iters or (20 if on_cuda else 2)
    warmup = opts.warmup if opts.warmup >= 0 else (5 if on_cuda else 1)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    amp_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "none": None}[opts.amp] if device.type == "cuda" else None
    precision = "fp32" if amp_dtype is None else f"{opts.amp} autocast"
    if device.type == "cuda" and opts.channels_last:
        precision += ", channels-last"
        torch.backends.cudnn.benchmark = True
    trunks = [t.strip() for t in opts.trunks.split(",") if t.strip()]
    for t in trunks:
        if t not in TRUNKS:
            raise SpkidError(f"--trunks: unknown trunk {t}; choose from {', '.join(TRUNKS)}")

    torch.manual_seed(0)
    wave = (0.1 * torch.randn(opts.batch_size, opts.samples)).clamp(-1, 1).to(device)
    header = f"{'trunk':<6}  {'params':>11}  {'train samples/s':>15}  {'infer samples/s':>15}  {'device':<6}  precision"
    print(f"batch {opts.batch_size} x {opts.samples} samples, {iters} timed iterations after {warmup} warm-up")
    print(header)
    results = []
    for t in trunks:
        model = build_model(ModelOptions(trunk=t, channels=opts.channels)).to(device)
        if device.type == "cuda" and opts.channels_last:
            model = model.to(memory_format=torch.channels_last)
        train = time_model(model, wave, True, iters, warmup, amp_dtype)
        infer = time_model(model, wave, False, iters, warmup, amp_dtype)
        results.append((t, train, infer))
        print(f"{t:<6}  {trunk_parameters(model):>11,}  {train:>15.1f}  {infer:>15.1f}  {device.type:<6}  {precision}", flush=True)
    fastest = max(results, key=lambda r: r[2])
    print(f"timed {len(results)} trunks on {device.type}; fastest inference: {fastest[0]} ({fastest[2]:.1f} samples/s)")
    return 0


if __name__ == "__main__":
    run_main(main)
