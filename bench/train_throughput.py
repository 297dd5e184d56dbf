#!/usr/bin/env python3
"""End-to-end training throughput (utterances/s) of each trunk, with online augmentation.

    python bench/train_throughput.py                         # CPU: small batches, a few steps
    python bench/train_throughput.py --device=cuda --steps=30  # CUDA: batch 200, fp16 autocast
    python bench/train_throughput.py --trunks=Q_SAP --channels=8,16,32,64 --steps=2

Each trunk is timed twice in the same run on the same data: with the per-utterance numpy/scipy
augmentation in the DataLoader workers (``--batched-augment=false``, the baseline); and batched
with the packed MUSAN bank and the RIRs held on the device, the workers sending only the draws
(``--batched-augment=true``). Ratios against the baseline are printed. A step is
everything training does: next batch from the loader, copy to the device, augmentation, forward,
loss, backward, Adam; "wait" is the share of the step spent waiting for the loader.

It writes its own synthetic audio (harmonic "voices", MUSAN-shaped noise/music/speech with 5-s
windows, decaying-noise RIRs) to a temporary directory, so it runs on any machine; pass
--train-data and --aug-data to time real data dirs instead. Files are read through the page
cache, so disk reads of a real corpus are not part of the figure.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import torch

from bench.datapipe_common import SourceOptions, bench_data, setup_device, synthetic_speakers, time_training
from spkid.cli import run_main
from spkid.config import option, parse_options
from spkid.data.dataset import build_train_data
from spkid.errors import SpkidError
from spkid.options import EvalOptions, LossOptions, ModelOptions, TrainOptions, n_per_speaker
from spkid.registry import TRUNKS
from spkid.train.trainer import TrainJob


@dataclass
class BenchOptions:
    trunks: str = option(",".join(TRUNKS), "comma-separated trunks to time")
    channels: str = option("", "override the widths of every trunk (empty = the paper's)")
    loss: str = option("aam_softmax", "training loss (ap and ap_softmax use M=2 utterances per speaker)")
    batch_size: int = option(0, "utterances per batch; 0 = 200 on CUDA, 8 on CPU")
    steps: int = option(3, "timed training steps per measurement")
    warmup: int = option(2, "untimed steps first (worker start-up, cuDNN autotuning)")
    workers: int = option(0, "DataLoader workers; 0 = min(8, CPU cores)")
    amp: str = option("fp16", "autocast precision on CUDA (CPU always runs fp32)", ("fp16", "bf16", "none"))
    compile: bool = option(False, "torch.compile the model and loss (TrainOptions.compile)")
    compile_mode: str = option("default", "torch.compile mode (TrainOptions.compile_mode)", ("default", "reduce-overhead", "max-autotune"))
    placements: str = option("worker,bank", "augmentation placements to time, comma-separated: worker (per utterance in the workers, the baseline), bank (batched, bank on the device)")
    speakers: int = option(0, "synthetic speakers; 0 = enough for an epoch longer than a measurement (and two batches' worth of distinct speakers)")


def main(argv: Sequence[str]) -> int:
    args = parse_options([BenchOptions, SourceOptions], argv, prog="bench/train_throughput.py",
                         description="End-to-end training utterances/s per trunk, batched vs per-utterance augmentation.")
    opts, src = args[BenchOptions], args[SourceOptions]
    device = setup_device(src)
    if opts.steps < 1 or opts.warmup < 0:
        raise SpkidError("--steps must be positive and --warmup non-negative")
    trunks = [t.strip() for t in opts.trunks.split(",") if t.strip()]
    for t in trunks:
        if t not in TRUNKS:
            raise SpkidError(f"--trunks: unknown trunk {t}; choose from {', '.join(TRUNKS)}")
    batch = opts.batch_size or (200 if device.type == "cuda" else 8)
    workers = opts.workers or min(8, os.cpu_count() or 1)
    loss_opts = LossOptions(loss=opts.loss)
    train = TrainOptions(batch_size=batch, augment=True, num_workers=workers, seed=1, amp=opts.amp, compile=opts.compile,
                         compile_mode=opts.compile_mode)
    chosen = [p.strip() for p in opts.placements.split(",") if p.strip()]
    if not chosen or set(chosen) - {"worker", "bank"}:
        raise SpkidError(f"--placements: '{opts.placements}'; choose from worker, bank")
    m = n_per_speaker(loss_opts, train)
    precision = f"{opts.amp} autocast" if device.type == "cuda" and opts.amp != "none" else "fp32"

    with tempfile.TemporaryDirectory(prefix="spkid_bench_") as tmp:
        queue = 2 * workers  # the batches the loader holds ready: workers x the DataLoader's prefetch_factor of 2
        measured = opts.warmup + queue + opts.steps
        train_dir, aug_dir = bench_data(src, Path(tmp), opts.speakers or synthetic_speakers(batch, m, measured))
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
        print(f"device {device.type} ({name}), batch {batch} (M={m}), {workers} workers, {opts.steps} timed steps "
              f"after {opts.warmup} warm-up and {queue} more (the loader's queue), {precision}"
              f"{f', torch.compile ({opts.compile_mode})' if opts.compile else ''}")
        print(f"{'trunk':<6}  {'augmentation':<28}  {'utt/s':>8}  {'wait':>6}  ratio")
        results = []

        names = {"worker": "per utterance in workers", "bank": f"batched, bank on {device.type}"}
        settings = {"worker": dict(batched_augment="false"), "bank": dict(batched_augment="true")}
        order = [p for p in names if p in chosen]  # the baseline first, whatever order they were given in
        placements = {names[p]: settings[p] for p in order}
        baseline, bank = names[order[0]], names[order[-1]]
        for trunk in trunks:
            rates = {}
            for where, kw in placements.items():
                step_opts = replace(train, **kw)
                data = build_train_data(train_dir, aug_dir, step_opts, m, 0, 1, device)
                job = TrainJob(ModelOptions(trunk=trunk, channels=opts.channels), loss_opts, step_opts,
                               EvalOptions(), Path(tmp) / "exp", quiet=True)
                rate, wait = time_training(data, job, device, opts.steps, opts.warmup)
                rates[where] = rate
                print(f"{trunk:<6}  {where:<28}  {rate:>8.1f}  {wait:>6.1%}  {rate / rates[baseline]:.2f}x", flush=True)
                del data
            results.append((trunk, rates[bank], rates[bank] / rates[baseline]))
    summary = ", ".join(f"{t} {r:.1f} utt/s ({x:.2f}x)" for t, r, x in results)
    print(f"end-to-end training throughput on {device.type}, {bank} (vs {baseline}): {summary}")
    return 0


if __name__ == "__main__":
    run_main(main)
