"""Training data: random crops of the training utterances, MUSAN/RIR banks, and the DataLoader.

A training crop is ``train_frames*160 + 240`` samples (200 frames = 2.015 s) starting uniformly
at random; an utterance shorter than that is wrap-padded (circular), as in the paper's code.
Crops seek to the samples they need (durations come from utt2dur), so a 2-s crop of a
20-s file decodes 2 s. The MUSAN windows and RIRs come from :mod:`spkid.data.banks`.

:func:`build_train_data` puts it together for ``steps/train.py``: the speaker-balanced
sampler (:mod:`spkid.data.sampler`), the dataset and DataLoader, and the augmentation placement:

- ``--augment=false``: clean crops;
- ``--augment=true --batched-augment=false``: each worker augments its crops with the numpy/scipy
  reference path (:func:`spkid.data.augment.augment_utterance`);
- ``--augment=true --batched-augment=true``: each worker draws the treatment of its crops;
  ``TrainData.device_augment`` mixes and reverberates the whole batch on the training device in
  one vectorised step. When the packed MUSAN banks and the RIRs fit ``--aug-bank-max-gb`` they
  live on the device (:class:`spkid.data.banks.DeviceAugmentBank`) and the batch carries only the
  draws; otherwise the workers read the clips and RIRs the draws name and the batch carries them.

Every item carries its own seed (from the sampler), from which its crop start and its
augmentation draw follow; so a fixed seed gives the same batches for any number of workers,
and both augmentation placements see the same draws.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from spkid.data.audio import AudioError, crop_samples, pcm16_to_float
from spkid.data.augment import BatchAugmenter, augment_utterance
from spkid.data.banks import AugmentSource, DeviceAugmentBank, num_samples, read_crop
from spkid.data.datadir import DataDir, DataDirError
from spkid.errors import SpkidError
from spkid.options import TrainOptions
from spkid.data.sampler import SpeakerBatchSampler

log = logging.getLogger("spkid.train.data")  # into the training log (exp/SYS/log/train.log)

AUG_OFF, AUG_WORKER, AUG_BATCHED, AUG_DEVICE = "off", "worker", "batched", "device"
AUG_MODES = (AUG_OFF, AUG_WORKER, AUG_BATCHED, AUG_DEVICE)


class TrainCropDataset(Dataset):
    """Random training crops, indexed by ``(utterance index, seed)`` items from the sampler.

    The seed fixes the crop start and then the augmentation draw. ``mode``:

    - ``off``: the crop;
    - ``worker``: the crop augmented here, per utterance (float32);
    - ``batched``: the crop with the clips and RIR its draw names, for
      :class:`spkid.data.augment.BatchAugmenter`;
    - ``device``: the crop with its draw only (global window numbers, offsets, SNRs, RIR index),
      for :class:`spkid.data.banks.DeviceAugmentBank`.

    Except in ``worker`` mode a crop of a 16-bit file stays int16 (half the bytes through the
    workers' shared memory and the host-device copy); ``pcm16_to_float`` on the device makes
    it exactly the float32 read."""

    def __init__(self, utts: Sequence[str], entries: Sequence[str], lengths: Sequence[int],
                 labels: Sequence[int], frames: int, augment: AugmentSource | None = None, mode: str = AUG_OFF):
        if mode not in AUG_MODES:
            raise ValueError(f"unknown augmentation mode {mode}")
        if mode != AUG_OFF and augment is None:
            raise ValueError(f"augmentation mode {mode} needs an AugmentSource")
        self.utts = list(utts)
        self.entries = list(entries)
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.frames = frames
        self.augment = augment
        self.mode = mode
        self.window_base = augment.window_base if augment is not None else {}

    def __len__(self) -> int:
        return len(self.utts)

    def __getitem__(self, item: tuple[int, int]) -> dict:
        index, seed = item
        rng = np.random.default_rng(seed)
        n = int(self.lengths[index])
        pcm16 = self.mode != AUG_WORKER
        try:
            if n > self.frames:
                wave = read_crop(self.entries[index], self.frames, int(rng.integers(n - self.frames + 1)), 0, n,
                                 self.utts[index], keep_pcm16=pcm16)
            else:
                wave = read_crop(self.entries[index], self.frames, utt=self.utts[index], keep_pcm16=pcm16)
        except AudioError as e:
            raise AudioError(f"{e}; re-convert the file, or remove the utterance from the training data dir "
                             f"(wav.scp, utt2spk, spk2utt, utt2dur); utils/validate_data_dir.py checks them all") from None
        out = {"wave": wave, "label": int(self.labels[index]), "utt": self.utts[index]}
        if self.mode == AUG_OFF:
            return out
        draw = self.augment.draw(rng, self.frames)
        out["aug_kind"] = draw.kind
        if self.mode == AUG_DEVICE:
            base = self.window_base.get(draw.category, 0)
            out.update(clip_window=np.asarray(draw.windows, dtype=np.int64) + base,
                       clip_offset=np.asarray(draw.offsets, dtype=np.int64),
                       clip_snr=np.asarray(draw.snrs, dtype=np.float32), rir_index=draw.rir)
            return out
        clips, rir = self.augment.clips(draw, self.frames), self.augment.rir(draw)
        if self.mode == AUG_WORKER:
            out["wave"] = augment_utterance(wave, clips, draw.snrs, rir)
        else:
            out.update(clips=clips, clip_snr=np.asarray(draw.snrs, dtype=np.float32), rir=rir)
        return out


def _stack(arrays: list[np.ndarray]) -> torch.Tensor:
    """Stack along a new first axis; in a DataLoader worker, straight into shared memory (as
    ``default_collate`` does), so the batch reaches the main process without another copy."""
    return default_collate([torch.from_numpy(np.ascontiguousarray(a)) for a in arrays])


def _stack_waves(items: list[dict]) -> torch.Tensor:
    """(b, T): int16 when every crop is, else float32 (int16 crops converted exactly)."""
    waves = [it["wave"] for it in items]
    if any(w.dtype != np.int16 for w in waves):
        waves = [pcm16_to_float(w) for w in waves]
    return _stack(waves)


def collate(items: list[dict]) -> dict:
    """Stack items into a batch: wave (b, T) (int16 or float32), label (b,), utts; aug_kind (b,)
    when augmenting. Batched augmentation adds clips (N, T) + clip_owner + clip_snr and rir
    (R, L) + rir_owner; device augmentation adds the draws (:data:`spkid.data.banks.DRAW_KEYS`)."""
    batch = {"wave": _stack_waves(items),
             "label": torch.tensor([it["label"] for it in items], dtype=torch.long),
             "utts": [it["utt"] for it in items]}
    if "aug_kind" in items[0]:
        batch["aug_kind"] = torch.tensor([it["aug_kind"] for it in items], dtype=torch.long)
    if "clip_snr" in items[0]:
        key = "clip_window" if "clip_window" in items[0] else "clips"
        owners = [np.full(len(it[key]), i, dtype=np.int64) for i, it in enumerate(items)]
        batch["clip_owner"] = torch.from_numpy(np.concatenate(owners))
        batch["clip_snr"] = torch.from_numpy(np.concatenate([it["clip_snr"] for it in items]))
    if "clip_window" in items[0]:
        batch["clip_window"] = torch.from_numpy(np.concatenate([it["clip_window"] for it in items]))
        batch["clip_offset"] = torch.from_numpy(np.concatenate([it["clip_offset"] for it in items]))
        rir_rows = [i for i, it in enumerate(items) if it["rir_index"] >= 0]
        batch["rir_index"] = torch.tensor([items[i]["rir_index"] for i in rir_rows], dtype=torch.long)
        batch["rir_owner"] = torch.tensor(rir_rows, dtype=torch.long)
    if "clips" in items[0]:
        frames = batch["wave"].shape[1]
        clips = [clip for it in items for clip in it["clips"]]
        batch["clips"] = _stack(clips) if clips else torch.zeros((0, frames), dtype=torch.float32)
        rir_rows = [i for i, it in enumerate(items) if it["rir"] is not None]
        width = max((len(items[i]["rir"]) for i in rir_rows), default=1)
        rir = np.zeros((len(rir_rows), width), dtype=np.float32)
        for r, i in enumerate(rir_rows):
            rir[r, :len(items[i]["rir"])] = items[i]["rir"]
        batch["rir"] = torch.from_numpy(rir)
        batch["rir_owner"] = torch.tensor(rir_rows, dtype=torch.long)
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

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)


def bank_budget_gib(max_gb: float, device: torch.device) -> float:
    """``--aug-bank-max-gb`` resolved: -1 is a quarter of the device's memory (16 GiB on a CPU)."""
    if max_gb >= 0:
        return max_gb
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory / 4 / 2**30
    return 16.0


def build_train_data(data: DataDir, aug_dir: Path | None, train: TrainOptions, m: int, rank: int,
                     world_size: int, device: torch.device) -> TrainData:
    """The training data of one rank.

    Labels index the data dir's speakers in sorted order (``spk2idx``; all of them, so the
    classifier size depends on the data dir only). ``loader`` yields this rank's slice of each
    global batch (see :mod:`spkid.data.sampler`) as ``collate`` dicts; call ``set_epoch`` first.
    ``device_augment(wave, batch)`` is set when ``train.augment and train.batched_augment``;
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
    spk2idx = {spk: i for i, spk in enumerate(sorted(set(data.utt2spk.values())))}
    labels = [spk2idx[data.utt2spk[u]] for u in utts]
    spk_utts: list[list[int]] = [[] for _ in spk2idx]
    for i, lab in enumerate(labels):
        spk_utts[lab].append(i)
    sampler = SpeakerBatchSampler(spk_utts, train.batch_size, m, train.max_seg_per_spk, train.seed,
                                  rank, world_size, spk_names=sorted(spk2idx))
    source = AugmentSource.load(aug_dir) if train.augment else None
    mode, device_augment = AUG_OFF, None
    if train.augment and not train.batched_augment:
        mode = AUG_WORKER
        log.info("augmentation: per utterance in the DataLoader workers")
    elif train.augment:
        refusal = source.device_bank_refusal(bank_budget_gib(train.aug_bank_max_gb, device))
        if refusal is None:
            mode, device_augment = AUG_DEVICE, DeviceAugmentBank(source, device)
            log.info("augmentation: batched on %s, MUSAN bank and RIRs held there (%.2f GiB)", device,
                     DeviceAugmentBank.nbytes(source) / 2**30)
        else:
            mode, device_augment = AUG_BATCHED, BatchAugmenter()
            (log.warning if source.unpacked else log.info)("augmentation: batched on %s; %s", device, refusal)
    dataset = TrainCropDataset(utts, [data.wav_scp[u] for u in utts], [lengths[u] for u in utts], labels,
                               crop_samples(train.train_frames), source, mode)
    workers = train.num_workers
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=workers, collate_fn=collate,
                        pin_memory=device.type == "cuda", persistent_workers=workers > 0,
                        generator=torch.Generator().manual_seed(train.seed))
    return TrainData(loader, sampler, dataset, spk2idx, device_augment)
