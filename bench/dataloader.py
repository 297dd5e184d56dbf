#!/usr/bin/env python3
"""Augmented training crops per second per DataLoader worker, against a plain implementation.

    python bench/dataloader.py                        # synthetic audio, a few hundred crops
    python bench/dataloader.py --crops=2000 --workers=8 --train-steps=20 --device=cuda
    python bench/dataloader.py --train-data=data/vox2_dev --aug-data=data

Measures in one run, on the same files and the same five-way scheme:

1. ``plain``: a per-sample numpy/scipy implementation as the paper's code does it: decode the
   whole utterance and keep 2 s of it, decode whole MUSAN files, read each RIR from disk,
   scipy convolution;
2. ``per-utterance``: this project's per-utterance path (``--batched-augment=false``): seeking
   crops, MUSAN windows from the packed bank, RIRs in memory;
3. ``batched, bank on device`` (``--batched-augment=true``): the worker half (crop + its draw)
   and the device half (clips cut from the bank on the device, then
   :func:`spkid.data.augment.augment_batch`), timed per crop on ``--device``;

each as crops/s in one process (= one worker); then the DataLoader with ``--workers`` workers,
and the share of a training step spent waiting for data (Q_SAP by default; needs spkid.models).
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.signal
import soundfile as sf
import torch

from bench.datapipe_common import SourceOptions, bench_data, batches_forever, setup_device, time_training
from spkid.cli import run_main
from spkid.config import option, parse_options
from spkid.data.datadir import read_wav_scp
from spkid.data.audio import crop_samples
from spkid.data.augment import AUG_DIRS, BABBLE, CATEGORY, KINDS, NUM_CLIPS, REVERB, RIR_DIR, SNR_DB
from spkid.data.dataset import build_train_data, device_wave
from spkid.device import synchronize
from spkid.errors import SpkidError
from spkid.options import TrainOptions


@dataclass
class BenchOptions:
    crops: int = option(200, "crops timed per single-process measurement")
    batch_size: int = option(32, "utterances per batch (device half and DataLoader)")
    workers: int = option(2, "DataLoader workers for the loader measurement (0 skips it)")
    train_frames: int = option(200, "crop length in frames (200 = 2.015 s)")
    train_steps: int = option(2, "training steps for the data-loading share (0 skips it; needs spkid.models)")
    trunk: str = option("Q_SAP", "trunk of those training steps")
    speakers: int = option(64, "synthetic speakers")


class PlainAugmentedCrops:
    """The baseline: the same scheme, per sample, as straightforward numpy/scipy code.

    Whole-file decodes for the crop and every noise clip (MUSAN files, not windows), the RIR read
    from disk per use. Same equations as spkid.data.augment, written independently."""

    def __init__(self, wavs: list[str], musan: dict[str, list[str]], rirs: list[str], frames: int):
        self.wavs, self.musan, self.rirs, self.frames = wavs, musan, rirs, frames

    def load(self, path: str, rng: np.random.Generator) -> np.ndarray:
        audio, _ = sf.read(path)
        if len(audio) <= self.frames:
            audio = np.pad(audio, (0, self.frames - len(audio) + 1), "wrap")
        start = rng.integers(len(audio) - self.frames + 1)
        return audio[start:start + self.frames]

    def __call__(self, i: int, rng: np.random.Generator) -> np.ndarray:
        x = self.load(self.wavs[i % len(self.wavs)], rng)
        kind = rng.integers(len(KINDS))
        if kind == REVERB:
            rir, _ = sf.read(self.rirs[rng.integers(len(self.rirs))])
            x = scipy.signal.convolve(x, rir / np.sqrt(np.sum(rir ** 2)), mode="full")[:self.frames]
        elif kind in CATEGORY:
            files = self.musan[CATEGORY[kind]]
            lo, hi = NUM_CLIPS[kind]
            picks = rng.choice(len(files), size=rng.integers(lo, hi + 1), replace=kind != BABBLE)
            clean_db = 10 * np.log10(np.mean(x ** 2) + 1e-4)
            noise = np.zeros_like(x)
            for p in picks:
                n = self.load(files[p], rng)
                snr = rng.uniform(*SNR_DB[kind])
                noise += np.sqrt(10 ** ((clean_db - 10 * np.log10(np.mean(n ** 2) + 1e-4) - snr) / 10)) * n
            x = x + noise
        return x.astype(np.float32)


def crops_per_second(fn, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)
    return n / (time.perf_counter() - t0)


def main(argv: Sequence[str]) -> int:
    args = parse_options([BenchOptions, SourceOptions], argv, prog="bench/dataloader.py",
                         description="Augmented training crops/s per worker against a plain numpy/scipy loader.")
    opts, src = args[BenchOptions], args[SourceOptions]
    device = setup_device(src)
    if opts.crops < 1 or opts.batch_size < 1:
        raise SpkidError("--crops and --batch-size must be positive")
    frames = crop_samples(opts.train_frames)
    with tempfile.TemporaryDirectory(prefix="spkid_bench_") as tmp:
        train_dir, aug_dir = bench_data(src, Path(tmp), opts.speakers)
        train = TrainOptions(batch_size=opts.batch_size, train_frames=opts.train_frames, augment=True,
                             batched_augment="false", num_workers=0, seed=1)
        placements = {"per-utterance": dict(batched_augment="false"),
                      "batched, bank on device": dict(batched_augment="true")}
        built = {name: build_train_data(train_dir, aug_dir, replace(train, **kw), 1, 0, 1, device)
                 for name, kw in placements.items()}
        worker = built["per-utterance"]
        plan = []
        epoch = 0
        while len(plan) < opts.crops:
            worker.sampler.set_epoch(epoch)
            plan += [it for b in worker.sampler for it in b]
            epoch += 1
        plan = plan[:opts.crops]
        musan = {cat: sorted(read_wav_scp(aug_dir / d / "wav.scp").values()) for cat, d in AUG_DIRS.items()}
        plain = PlainAugmentedCrops([worker.dataset.entries[i] for i, _ in plan], musan,
                                    sorted(read_wav_scp(aug_dir / RIR_DIR / "wav.scp").values()), frames)
        rng = np.random.default_rng(0)

        print(f"{opts.crops} crops of {frames} samples, one process (= one worker)")
        rate_plain = crops_per_second(lambda i: plain(i, rng), opts.crops)
        print(f"  {'plain numpy/scipy (whole-file decodes)':<46} {rate_plain:9.1f} crops/s")
        rates = {}
        groups = [plan[k:k + opts.batch_size] for k in range(0, len(plan), opts.batch_size)]
        for name, data in built.items():
            ds = data.dataset
            rates[name] = rate = crops_per_second(lambda i: ds[plan[i]], opts.crops)
            half = "" if name == "per-utterance" else ", worker half"
            print(f"  {name + half:<46} {rate:9.1f} crops/s  ({rate / rate_plain:.2f}x plain)")
            t0 = time.perf_counter()
            host = [ds.collate([ds[it] for it in g]) for g in groups]
            per_crop = (time.perf_counter() - t0) / len(plan)
            bytes_per_crop = sum(v.numel() * v.element_size() for b in host for v in b.values()
                                 if isinstance(v, torch.Tensor)) / len(plan)
            print(f"  {'':<46} {1 / per_crop:9.1f} crops/s with collate, {bytes_per_crop / 1024:.0f} KiB per crop "
                  f"to the main process")
            if data.device_augment is not None:
                device_wave(host[0], device, data.device_augment)
                synchronize(device)
                t0 = time.perf_counter()
                for b in host:
                    device_wave(b, device, data.device_augment)
                synchronize(device)
                rate_device = len(plan) / (time.perf_counter() - t0)
                print(f"  {name + ', device half on ' + device.type:<46} {rate_device:9.1f} crops/s  "
                      f"(batch {opts.batch_size})")
        rate_worker, rate_bank = rates["per-utterance"], rates["batched, bank on device"]
        del built, worker

        if opts.workers:
            loader_opts = replace(train, num_workers=opts.workers)
            for name, kw in placements.items():
                data = build_train_data(train_dir, aug_dir, replace(loader_opts, **kw), 1, 0, 1, device)
                stream = batches_forever(data)
                next(stream)
                n, t0 = 0, time.perf_counter()
                while n < opts.crops:
                    n += len(next(stream)["utts"])
                rate = n / (time.perf_counter() - t0)
                print(f"  DataLoader, {opts.workers} workers, {name:<28} {rate:9.1f} crops/s  "
                      f"({rate / opts.workers:.1f} per worker on {os.cpu_count()} cores)")
                del stream, data

        if opts.train_steps:
            from spkid.options import EvalOptions, LossOptions, ModelOptions
            from spkid.train.trainer import TrainJob
            for name, kw in placements.items():
                step_opts = replace(train, num_workers=max(opts.workers, 1), **kw)
                data = build_train_data(train_dir, aug_dir, step_opts, 1, 0, 1, device)
                job = TrainJob(ModelOptions(trunk=opts.trunk), LossOptions(loss="softmax"), step_opts, EvalOptions(),
                               Path(tempfile.mkdtemp(prefix="spkid_bench_exp_")), quiet=True)
                rate, wait = time_training(data, job, device, opts.train_steps, 1)
                print(f"  training step ({opts.trunk}, {name}): {rate:.1f} utt/s, "
                      f"waiting for data {wait:.1%} of the step")
                del data
    print(f"augmented crops per worker: {rate_worker:.1f}/s per-utterance path vs {rate_plain:.1f}/s plain "
          f"({rate_worker / rate_plain:.2f}x); batched with the bank on the device, worker half "
          f"{rate_bank / rate_plain:.2f}x plain")
    return 0


if __name__ == "__main__":
    run_main(main)
