"""Training data: random crops of the training utterances, and the DataLoader.

A training crop is ``train_frames*160 + 240`` samples (200 frames = 2.015 s) starting uniformly
at random; an utterance shorter than that is wrap-padded (circular), as in the paper's code.
Crops seek to the samples they need (durations come from utt2dur), so a 2-s crop of a
20-s file decodes 2 s (:func:`spkid.data.audio.read_crop`).

:func:`build_train_data` puts it together for ``steps/train.py``: the speaker-balanced
sampler (:mod:`spkid.data.sampler`), the dataset and DataLoader, and the augmentation mode
(:func:`spkid.data.augment.choose_augmentation`: off, per utterance in the workers, or batched on
the training device with the MUSAN bank held there). The
dataset asks the mode what each item carries and how a batch of them is collated;
``TrainData.device_augment`` is the mode's step on the training device.

Every item carries its own seed (from the sampler), from which its crop start and its
augmentation draw follow; so a fixed seed gives the same batches for any number of workers,
and every augmentation placement sees the same draws.
"""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from spkid.data.audio import (MIN_SECONDS, SAMPLE_RATE, AudioError, crop_samples, duration_problem, pcm16_to_float,
                              read_crop)
from spkid.data.augment import AugmentSource, Augmentation, choose_augmentation, stack_shared
from spkid.data.datadir import DataDir, DataDirError, num_samples
from spkid.errors import SpkidError
from spkid.options import TrainOptions
from spkid.data.sampler import SpeakerBatchSampler


class TrainCropDataset(Dataset):
    """Random training crops, indexed by ``(utterance index, seed)`` items from the sampler.

    The seed fixes the crop start and then the augmentation draw; ``augmentation`` (one mode of
    :mod:`spkid.data.augment`; clean crops by default) says what an item carries besides the
    crop, and :meth:`collate` stacks a batch of items. A crop of a 16-bit file stays int16
    unless the mode augments it in the worker; ``pcm16_to_float`` on the device makes it
    exactly the float32 read."""

    def __init__(self, utts: Sequence[str], entries: Sequence[str], lengths: Sequence[int],
                 labels: Sequence[int], frames: int, augmentation: Augmentation | None = None):
        self.utts = list(utts)
        self.entries = list(entries)
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.frames = frames
        self.augmentation = augmentation if augmentation is not None else Augmentation()

    @property
    def mode(self) -> str:
        return self.augmentation.name

    def __len__(self) -> int:
        return len(self.utts)

    def __getitem__(self, item: tuple[int, int]) -> dict:
        index, seed = item
        rng = np.random.default_rng(seed)
        n = int(self.lengths[index])
        pcm16 = self.augmentation.keep_pcm16
        try:
            if n > self.frames:
                wave = read_crop(self.entries[index], self.frames, int(rng.integers(n - self.frames + 1)), 0, n,
                                 self.utts[index], keep_pcm16=pcm16)
            else:
                wave = read_crop(self.entries[index], self.frames, utt=self.utts[index], keep_pcm16=pcm16)
        except AudioError as e:
            raise AudioError(f"{e}; re-convert the file, or remove the utterance from the training data dir "
                             f"(wav.scp, utt2spk, spk2utt, utt2dur); utils/validate_data_dir.py checks them all") from None
        out = self.augmentation.item(wave, rng, self.frames)
        out.update(label=int(self.labels[index]), utt=self.utts[index])
        return out

    def collate(self, items: list[dict]) -> dict:
        """Stack items into a batch: wave (b, T) (int16 when every crop is, else float32; int16
        crops converted exactly), label (b,), utts, and the augmentation mode's tensors."""
        waves = [it["wave"] for it in items]
        if any(w.dtype != np.int16 for w in waves):
            waves = [pcm16_to_float(w) for w in waves]
        batch = {"wave": stack_shared(waves),
                 "label": torch.tensor([it["label"] for it in items], dtype=torch.long),
                 "utts": [it["utt"] for it in items]}
        batch.update(self.augmentation.collate(items, self.frames))
        return batch


def device_wave(batch: Mapping, device: torch.device, device_augment=None) -> torch.Tensor:
    """The batch's crops on ``device`` as float32 (int16 ones converted there), augmented there
    when ``device_augment`` (``TrainData.device_augment``) is given."""
    wave = pcm16_to_float(batch["wave"].to(device, non_blocking=True))
    return device_augment(wave, batch) if device_augment is not None else wave


@dataclass
class TrainData:
    """What training iterates: see :func:`build_train_data`."""

    loader: DataLoader
    sampler: SpeakerBatchSampler
    dataset: TrainCropDataset
    spk2idx: dict[str, int]
    device_augment: Callable[[torch.Tensor, Mapping], torch.Tensor] | None

    @property
    def num_speakers(self) -> int:
        return len(self.spk2idx)

    @property
    def batches_per_epoch(self) -> int:
        """Batches in the current epoch (the same on every rank)."""
        return len(self.sampler)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.sampler.set_epoch(epoch, start)


def leave_sigterm_to_the_rank(worker_id: int) -> None:
    """A DataLoader worker ends on its rank's SIGTERM only (the DataLoader stopping it). Slurm
    signals every process of a job step, and a worker that died of that SIGTERM would stop its
    rank with "DataLoader worker exited unexpectedly" before it could save its checkpoint
    (spkid.train.ranks.StopSignal). A Python handler cannot see who sent a signal, so the signal
    is blocked and a thread takes each one with its sender."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})

    def take_sigterm() -> None:
        while True:
            if signal.sigwaitinfo({signal.SIGTERM}).si_pid == os.getppid():
                os._exit(0)

    threading.Thread(target=take_sigterm, name="sigterm", daemon=True).start()


def build_train_data(data: DataDir, aug_dir: Path | None, train: TrainOptions, m: int, rank: int,
                     world_size: int, device: torch.device) -> TrainData:
    """The training data of one rank.

    Labels index the data dir's speakers in sorted order (``spk2idx``; all of them, so the
    classifier size depends on the data dir only). ``loader`` yields this rank's slice of each
    global batch (see :mod:`spkid.data.sampler`) as :meth:`TrainCropDataset.collate` dicts;
    call ``set_epoch`` first.
    ``device_augment(wave, batch)`` is set when the augmentation runs on the device (``device`` mode);
    :func:`device_wave` moves a batch's crops to ``device`` and applies it."""
    if train.augment and aug_dir is None:
        raise SpkidError("--augment=true needs the augmentation data dirs (--aug-data, e.g. data with "
                         "data/musan_{noise,music,speech} and data/rirs), or train with --augment=false")
    utts = data.utts
    missing = [u for u in utts if u not in data.utt2spk]
    if missing:
        raise DataDirError(f"{data.path}/utt2spk: utterance '{missing[0]}' of wav.scp has no speaker "
                           f"({len(missing)} in all; fix the data dir, utils/validate_data_dir.py {data.path})")
    lengths = num_samples(data.wav_scp, data.utt2dur, str(data.path))
    short = [u for u in utts if duration_problem(lengths[u] / SAMPLE_RATE)]
    if short:  # (they trained silently, each crop the clip repeated over and over)
        raise DataDirError(f"{data.path}: {len(short)} training utterance(s) are shorter than the {MIN_SECONDS:g} s "
                           f"stage 4 embeds, e.g. '{short[0]}': {duration_problem(lengths[short[0]] / SAMPLE_RATE)}; "
                           f"remove them from the data dir (utils/validate_data_dir.py {data.path} lists them)")
    spk2idx = {spk: i for i, spk in enumerate(sorted(set(data.utt2spk.values())))}
    labels = [spk2idx[data.utt2spk[u]] for u in utts]
    spk_utts: list[list[int]] = [[] for _ in spk2idx]
    for i, lab in enumerate(labels):
        spk_utts[lab].append(i)
    sampler = SpeakerBatchSampler(spk_utts, train.batch_size, m, train.max_seg_per_spk, train.seed,
                                  rank, world_size, spk_names=sorted(spk2idx))
    source = AugmentSource.load(aug_dir) if train.augment else None
    augmentation = choose_augmentation(source, train.batched_augment, train.aug_bank_max_gb, device)
    dataset = TrainCropDataset(utts, [data.wav_scp[u] for u in utts], [lengths[u] for u in utts], labels,
                               crop_samples(train.train_frames), augmentation)
    workers = train.num_workers
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=workers, collate_fn=dataset.collate,
                        pin_memory=device.type == "cuda", persistent_workers=workers > 0,
                        generator=torch.Generator().manual_seed(train.seed), worker_init_fn=leave_sigterm_to_the_rank)
    return TrainData(loader, sampler, dataset, spk2idx, augmentation.device_augment)
