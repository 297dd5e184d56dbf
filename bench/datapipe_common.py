"""Shared by bench/dataloader.py and bench/train_throughput.py: synthetic data and a timed training loop."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from spkid.config import option
from spkid.data.datadir import DataDir
from spkid.device import pick_device, synchronize
from spkid.data.dataset import TrainData
from spkid.errors import SpkidError
from spkid.data.synthetic import make_aug_dirs, make_train_dir
from spkid.train.ranks import Dist
from spkid.train.trainer import Trainer, TrainJob


@dataclass
class SourceOptions:
    """Where a benchmark runs and what it reads (synthetic audio unless --train-data is given)."""

    device: str = option("auto", "auto: CUDA when present, else CPU", ("auto", "cpu", "cuda"))
    threads: int = option(0, "CPU threads of this process (0 = PyTorch's default; 1 on a loaded machine)")
    train_data: str = option("", "a training data dir to read instead of synthetic audio")
    aug_data: str = option("", "the dir holding musan_{noise,music,speech} and rirs (with --train-data)")
    files: int = option(64, "distinct synthetic audio files (listed round-robin under all utterance ids)")
    seconds: str = option("4,12", "synthetic utterance lengths: min,max seconds (VoxCeleb2 averages ~8 s)")
    musan_seconds: str = option("20,60", "synthetic MUSAN file lengths: min,max seconds (real music/speech files run minutes)")


def setup_device(src: SourceOptions) -> torch.device:
    """The device to time on (CPU threads set as asked)."""
    if src.threads:
        torch.set_num_threads(src.threads)
    return pick_device(src.device)


def bench_data(src: SourceOptions, root: Path, speakers: int) -> tuple[DataDir, Path]:
    """The training dir and the augmentation dir: the given ones, or synthetic ones written under ``root``."""
    if src.train_data:
        if not src.aug_data:
            raise SpkidError("--train-data needs --aug-data (the dir holding musan_* and rirs)")
        return DataDir.load(src.train_data), Path(src.aug_data)
    t0 = time.perf_counter()
    out = synthetic_data(root, speakers, src.files, src.seconds, src.musan_seconds)
    print(f"synthetic data: {len(out[0].utts)} utterances of {speakers} speakers ({src.files} audio files) "
          f"in {time.perf_counter() - t0:.1f} s")
    return out


def batches_forever(data: TrainData) -> Iterator[dict]:
    """The loader's batches across epochs (a short synthetic epoch must not end a measurement)."""
    for epoch in itertools.count():
        data.set_epoch(epoch)
        yield from data.loader


def loader_backlog(loader) -> int:
    """Batches a DataLoader holds ready for the step once its workers have had time to run
    ahead (num_workers x prefetch_factor; 0 without workers)."""
    workers = getattr(loader, "num_workers", 0) or 0
    return workers * (getattr(loader, "prefetch_factor", None) or 0)


def time_training(data: TrainData, job: TrainJob, device: torch.device, steps: int, warmup: int) -> tuple[float, float]:
    """(utterances/s, share of the time spent waiting for the loader) over ``steps`` steps of
    the trainer's own step (spkid.train.trainer.Trainer.step: AMP, channels-last, fused Adam, compile).

    As in training, the host does not wait for the device between steps (the step never
    synchronises), so it queues step N+1 while the device runs step N; the device is
    synchronised once before the timed steps and once after them.

    The warm-up (its first steps autotune cuDNN or compile, for seconds) lets the workers fill
    the loader's queue, :func:`loader_backlog` batches that the timed steps would then take
    without waiting even when the workers cannot keep up: so the untimed steps go on until that
    many more have been taken, and the timed ones see the loader's steady state. An epoch
    that ends inside the measurement stalls the step while the workers start the next one
    (once per ~5,000 batches on VoxCeleb2): it is noted when the data is that short."""
    trainer = Trainer(job, data.num_speakers, Dist(rank=0, world_size=1, local_rank=0, device=device))
    trainer.net.train()
    untimed = warmup + loader_backlog(data.loader)
    if data.batches_per_epoch < untimed + steps:
        print(f"note: an epoch is {data.batches_per_epoch} batches, fewer than the {untimed + steps} this measurement "
              f"takes ({untimed} untimed): the start of the next epoch, where the step waits for the workers, "
              f"is part of the figure", flush=True)
    batches = batches_forever(data)
    for _ in range(untimed):
        trainer.step(next(batches), data.device_augment)
    synchronize(device)
    wait = 0.0
    utts = 0
    start = time.perf_counter()
    for _ in range(steps):
        t0 = time.perf_counter()
        batch = next(batches)
        wait += time.perf_counter() - t0
        trainer.step(batch, data.device_augment)
        utts += len(batch["utts"])
    synchronize(device)
    total = time.perf_counter() - start
    return utts / total, wait / total


def synthetic_speakers(batch: int, m: int, batches: int) -> int:
    """Synthetic speakers (:data:`UTTS_PER_SPEAKER` utterance ids each) for epochs of at least
    ``batches`` batches of ``batch`` utterances, M = ``m`` per speaker; at least two batches'
    worth of distinct speakers."""
    per_batch, groups = batch // m, UTTS_PER_SPEAKER // m
    return max(2 * per_batch, -(-(batches + 1) * per_batch // groups))


def _pair(text: str, name: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise SpkidError(f"{name} takes min,max seconds, e.g. 4,12; got '{text}'") from None
    return lo, hi


#: utterance ids per speaker of :func:`synthetic_data`.
UTTS_PER_SPEAKER = 8


def synthetic_data(root: Path, speakers: int, files: int, seconds: str, musan_seconds: str) -> tuple[DataDir, Path]:
    """A synthetic training dir (:data:`UTTS_PER_SPEAKER` utterance ids per speaker) and augmentation dirs under ``root``."""
    train = make_train_dir(root, num_speakers=speakers, utts_per_speaker=UTTS_PER_SPEAKER, seconds=_pair(seconds, "--seconds"),
                           max_files=files)
    aug = make_aug_dirs(root, num_clips=6, clip_seconds=_pair(musan_seconds, "--musan-seconds"), num_rirs=40)
    return train, aug

