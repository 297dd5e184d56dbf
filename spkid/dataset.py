"""Training data: random crops of the training utterances, MUSAN/RIR banks, and the DataLoader.

A training crop is ``train_frames*160 + 240`` samples (200 frames = 2.015 s) starting uniformly
at random; an utterance shorter than that is wrap-padded (circular), as in the paper's code.
Crops seek to the samples they need (durations come from utt2dur), so a 2-s crop of a
20-s file decodes 2 s. MUSAN is read the same way, through the 5-s windows of
``data/musan_<category>/segments`` when present (else whole files), so random access is cheap;
the RIRs are held in memory.

:func:`build_train_data` puts it together for ``steps/train.py``: the speaker-balanced
sampler (:mod:`spkid.sampler`), the dataset and DataLoader, and the augmentation placement:

- ``--augment=false``: clean crops;
- ``--augment=true --batched-augment=false``: each worker augments its crops with the numpy/scipy
  reference path (:func:`spkid.augment.augment_utterance`);
- ``--augment=true --batched-augment=true``: each worker draws the treatment of its crops and
  reads the clips and RIRs they name; the batch carries them and ``TrainData.device_augment``
  mixes and reverberates the whole batch on the training device in one vectorised step.

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
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from spkid.audio import SAMPLE_RATE, AudioError, audio_info, crop_samples, read_audio, wrap_crop
from spkid.augment import AugDraw, BatchAugmenter, augment_utterance, draw_augmentation
from spkid.datadir import DataDir, DataDirError, read_table, read_utt2dur, read_wav_scp
from spkid.errors import SpkidError
from spkid.options import TrainOptions
from spkid.sampler import SpeakerBatchSampler

log = logging.getLogger(__name__)

#: data/<name> directories under --aug-data that augmentation reads.
AUG_DIRS = {"noise": "musan_noise", "music": "musan_music", "speech": "musan_speech"}
RIR_DIR = "rirs"


def read_crop(entry: str, frames: int, offset: int = 0, seg_start: int = 0, seg_len: int = -1,
              utt: str = "") -> np.ndarray:
    """Samples ``[offset, offset+frames)`` of the segment ``[seg_start, seg_start+seg_len)`` of a file.

    Reads only those samples when the segment is long enough; a shorter segment is read whole
    and wrap-padded. ``seg_len`` < 0: to the end of the file. Lengths from utt2dur or segments
    are rounded, so a read that comes back short falls back to the real length."""
    if seg_len >= offset + frames:
        x = read_audio(entry, seg_start + offset, frames, utt=utt)
        if len(x) == frames:
            return x
    x = read_audio(entry, seg_start, seg_len, utt=utt)
    if len(x) == 0:
        raise AudioError(f"utterance '{utt}': {entry} holds no samples"
                         + (f" from sample {seg_start}" if seg_start else "") + "; remove it from the data dir")
    return wrap_crop(x, offset % len(x), frames)


def _num_samples(entries: Mapping[str, str], utt2dur: Mapping[str, float] | None, what: str) -> dict[str, int]:
    """Length in samples of each entry: from utt2dur when present, else from the file headers."""
    if utt2dur is not None:
        return {u: int(round(utt2dur[u] * SAMPLE_RATE)) for u in entries}
    log.warning("%s has no utt2dur: reading %d file headers (write utt2dur to skip this)", what, len(entries))
    return {u: audio_info(e, utt=u).frames for u, e in tqdm(entries.items(), desc=f"lengths {what}",
                                                            disable=len(entries) < 1000)}


@dataclass
class WindowBank:
    """Random-access windows of one MUSAN category: file entry, start and length in samples."""

    names: list[str]
    entries: list[str]
    starts: np.ndarray
    lengths: np.ndarray

    @classmethod
    def load(cls, path: Path) -> "WindowBank":
        """From a data dir with wav.scp, and segments (``<win> <rec> <start-s> <end-s>``) or utt2dur."""
        wav_scp = read_wav_scp(path / "wav.scp")
        seg_path = path / "segments"
        names, entries, starts, lengths = [], [], [], []
        if seg_path.exists():
            for win, rest in read_table(seg_path, ncols=4).items():
                rec, t0, t1 = rest.split()
                if rec not in wav_scp:
                    raise DataDirError(f"{seg_path}: window '{win}' names recording '{rec}', which is not in "
                                       f"{path}/wav.scp (re-run the data preparation stage)")
                try:
                    s0, s1 = int(round(float(t0) * SAMPLE_RATE)), int(round(float(t1) * SAMPLE_RATE))
                except ValueError:
                    raise DataDirError(f"{seg_path}: window '{win}': times '{t0} {t1}' are not numbers") from None
                if s1 <= s0:
                    raise DataDirError(f"{seg_path}: window '{win}' ends ({t1}) before it starts ({t0})")
                names.append(win), entries.append(wav_scp[rec]), starts.append(s0), lengths.append(s1 - s0)
        else:
            dur_path = path / "utt2dur"
            lens = _num_samples(wav_scp, read_utt2dur(dur_path) if dur_path.exists() else None, str(path))
            for rec in sorted(wav_scp):
                names.append(rec), entries.append(wav_scp[rec]), starts.append(0), lengths.append(lens[rec])
        if not names:
            raise DataDirError(f"{path}: no audio listed (re-run the data preparation stage)")
        return cls(names, entries, np.asarray(starts, dtype=np.int64), np.asarray(lengths, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.names)

    def read(self, i: int, offset: int, frames: int) -> np.ndarray:
        return read_crop(self.entries[i], frames, offset, int(self.starts[i]), int(self.lengths[i]), self.names[i])


@dataclass
class RirBank:
    """Room impulse responses, L2-normalised, held in memory as one buffer (cheap to share with workers)."""

    names: list[str]
    data: np.ndarray
    bounds: np.ndarray  # (R+1,) start of each RIR in data

    @classmethod
    def load(cls, path: Path) -> "RirBank":
        wav_scp = read_wav_scp(path / "wav.scp")
        names, parts = [], []
        for name in tqdm(sorted(wav_scp), desc="loading RIRs", disable=len(wav_scp) < 1000):
            h = read_audio(wav_scp[name], utt=name)
            norm = float(np.sqrt(np.sum(h.astype(np.float64) ** 2)))
            if not norm > 0:
                raise AudioError(f"{path}/wav.scp: RIR '{name}' ({wav_scp[name]}) is silent; remove it")
            names.append(name), parts.append((h / norm).astype(np.float32))
        if not names:
            raise DataDirError(f"{path}/wav.scp lists no RIRs (re-run the data preparation stage)")
        bounds = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)
        return cls(names, np.concatenate(parts), bounds)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.data[self.bounds[i]:self.bounds[i + 1]]


@dataclass
class AugmentSource:
    """The MUSAN windows and RIRs augmentation draws from, and the reading of what a draw names."""

    banks: dict[str, WindowBank]
    rirs: RirBank

    @classmethod
    def load(cls, aug_dir: Path) -> "AugmentSource":
        aug_dir = Path(aug_dir)
        missing = [str(aug_dir / d) for d in (*AUG_DIRS.values(), RIR_DIR) if not (aug_dir / d / "wav.scp").is_file()]
        if missing:
            raise SpkidError(f"augmentation needs {', '.join(missing)} (wav.scp missing): run the data "
                             f"preparation stage (./run.sh --stage 2 --stop-stage 2) or train with --augment=false")
        banks = {cat: WindowBank.load(aug_dir / d) for cat, d in AUG_DIRS.items()}
        if len(banks["speech"]) < 7:
            raise SpkidError(f"{aug_dir / AUG_DIRS['speech']} has {len(banks['speech'])} windows; babble mixes up "
                             f"to 7 distinct speech clips, so it needs at least 7")
        return cls(banks, RirBank.load(aug_dir / RIR_DIR))

    @property
    def window_lengths(self) -> dict[str, np.ndarray]:
        return {cat: bank.lengths for cat, bank in self.banks.items()}

    def draw(self, rng: np.random.Generator, frames: int) -> AugDraw:
        return draw_augmentation(rng, len(self.rirs), self.window_lengths, frames)

    def clips(self, draw: AugDraw, frames: int) -> np.ndarray:
        """(k, frames) float32: the additive clips the draw names (k = 0 for clean and reverb)."""
        if draw.category is None:
            return np.zeros((0, frames), dtype=np.float32)
        bank = self.banks[draw.category]
        return np.stack([bank.read(w, o, frames) for w, o in zip(draw.windows, draw.offsets)])

    def rir(self, draw: AugDraw) -> np.ndarray | None:
        return self.rirs[draw.rir] if draw.rir >= 0 else None


AUG_OFF, AUG_WORKER, AUG_BATCHED = "off", "worker", "batched"


class TrainCropDataset(Dataset):
    """Random training crops, indexed by ``(utterance index, seed)`` items from the sampler.

    The seed fixes the crop start and then the augmentation draw. ``mode``: ``off``, ``worker``
    (augment here, per utterance) or ``batched`` (return the draw's clips and RIR for
    :class:`spkid.augment.BatchAugmenter`)."""

    def __init__(self, utts: Sequence[str], entries: Sequence[str], lengths: Sequence[int],
                 labels: Sequence[int], frames: int, augment: AugmentSource | None = None, mode: str = AUG_OFF):
        if mode not in (AUG_OFF, AUG_WORKER, AUG_BATCHED):
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

    def __len__(self) -> int:
        return len(self.utts)

    def __getitem__(self, item: tuple[int, int]) -> dict:
        index, seed = item
        rng = np.random.default_rng(seed)
        n = int(self.lengths[index])
        if n > self.frames:
            wave = read_crop(self.entries[index], self.frames, int(rng.integers(n - self.frames + 1)), 0, n,
                             self.utts[index])
        else:
            wave = read_crop(self.entries[index], self.frames, utt=self.utts[index])
        out = {"wave": wave, "label": int(self.labels[index]), "utt": self.utts[index]}
        if self.mode == AUG_OFF:
            return out
        draw = self.augment.draw(rng, self.frames)
        clips, rir = self.augment.clips(draw, self.frames), self.augment.rir(draw)
        out["aug_kind"] = draw.kind
        if self.mode == AUG_WORKER:
            out["wave"] = augment_utterance(wave, clips, draw.snrs, rir)
        else:
            out.update(clips=clips, clip_snr=np.asarray(draw.snrs, dtype=np.float32), rir=rir)
        return out


def collate(items: list[dict]) -> dict:
    """Stack items into a batch: wave (b, T), label (b,), utts; aug_kind (b,) when augmenting;
    for batched augmentation also clips (N, T) + clip_owner + clip_snr and rir (R, L) + rir_owner."""
    batch = {"wave": torch.from_numpy(np.stack([it["wave"] for it in items])),
             "label": torch.tensor([it["label"] for it in items], dtype=torch.long),
             "utts": [it["utt"] for it in items]}
    if "aug_kind" in items[0]:
        batch["aug_kind"] = torch.tensor([it["aug_kind"] for it in items], dtype=torch.long)
    if "clips" in items[0]:
        frames = batch["wave"].shape[1]
        owners = [np.full(len(it["clips"]), i, dtype=np.int64) for i, it in enumerate(items)]
        batch["clips"] = torch.from_numpy(np.concatenate([it["clips"] for it in items]).reshape(-1, frames))
        batch["clip_owner"] = torch.from_numpy(np.concatenate(owners))
        batch["clip_snr"] = torch.from_numpy(np.concatenate([it["clip_snr"] for it in items]))
        rir_rows = [i for i, it in enumerate(items) if it["rir"] is not None]
        width = max((len(items[i]["rir"]) for i in rir_rows), default=1)
        rir = np.zeros((len(rir_rows), width), dtype=np.float32)
        for r, i in enumerate(rir_rows):
            rir[r, :len(items[i]["rir"])] = items[i]["rir"]
        batch["rir"] = torch.from_numpy(rir)
        batch["rir_owner"] = torch.tensor(rir_rows, dtype=torch.long)
    return batch


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


def build_train_data(data: DataDir, aug_dir: Path | None, train: TrainOptions, m: int, rank: int,
                     world_size: int, device: torch.device) -> TrainData:
    """The training data of one rank.

    Labels index the data dir's speakers in sorted order (``spk2idx``; all of them, so the
    classifier size depends on the data dir only). ``loader`` yields this rank's slice of each
    global batch (see :mod:`spkid.sampler`) as ``collate`` dicts; call ``set_epoch`` first.
    ``device_augment(wave, batch)`` is set when ``train.augment and train.batched_augment``:
    apply it to the batch's wave after moving that to ``device``."""
    if train.augment and aug_dir is None:
        raise SpkidError("--augment=true needs the augmentation data dirs (--aug-data, e.g. data with "
                         "data/musan_{noise,music,speech} and data/rirs), or train with --augment=false")
    utts = data.utts
    missing = [u for u in utts if u not in data.utt2spk]
    if missing:
        raise DataDirError(f"{data.path}/utt2spk: utterance '{missing[0]}' of wav.scp has no speaker "
                           f"({len(missing)} in all; fix the data dir, utils/validate_data_dir.py {data.path})")
    lengths = _num_samples(data.wav_scp, data.utt2dur, str(data.path))
    spk2idx = {spk: i for i, spk in enumerate(sorted(set(data.utt2spk.values())))}
    labels = [spk2idx[data.utt2spk[u]] for u in utts]
    spk_utts: list[list[int]] = [[] for _ in spk2idx]
    for i, lab in enumerate(labels):
        spk_utts[lab].append(i)
    sampler = SpeakerBatchSampler(spk_utts, train.batch_size, m, train.max_seg_per_spk, train.seed,
                                  rank, world_size, spk_names=sorted(spk2idx))
    mode = AUG_OFF if not train.augment else AUG_BATCHED if train.batched_augment else AUG_WORKER
    source = AugmentSource.load(aug_dir) if train.augment else None
    dataset = TrainCropDataset(utts, [data.wav_scp[u] for u in utts], [lengths[u] for u in utts], labels,
                               crop_samples(train.train_frames), source, mode)
    workers = train.num_workers
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=workers, collate_fn=collate,
                        pin_memory=device.type == "cuda", persistent_workers=workers > 0,
                        generator=torch.Generator().manual_seed(train.seed))
    return TrainData(loader, sampler, dataset, spk2idx, BatchAugmenter() if mode == AUG_BATCHED else None)
