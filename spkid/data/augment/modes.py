"""The four placements of augmentation, one object each, and the choice between them.

A mode answers the three questions the training data asks of it:

- :meth:`Augmentation.item`: in a DataLoader worker, after the crop is read with an item's
  random generator, what the item carries (the crop, augmented or not, and what the mode adds);
- :meth:`Augmentation.collate`: how the mode's fields of a batch's items become tensors;
- :attr:`Augmentation.device_augment`: what the training process then does to the crops on its
  device (``(wave, batch) -> wave``), or None.

The modes (``TrainOptions``: ``--augment``, ``--batched-augment``, ``--aug-bank-max-gb``):

- ``off`` (:class:`Augmentation`): clean crops;
- ``worker`` (:class:`PerUtterance`): each worker augments its own crops with
  :func:`~spkid.data.augment.scheme.augment_utterance` (float32 crops);
- ``batched`` (:class:`BatchedReadClips`): the workers draw and read the clips and RIR each draw
  names; :class:`~spkid.data.augment.device.BatchAugmenter` mixes the batch on the device;
- ``device`` (:class:`BatchedDeviceBank`): the packed banks and RIRs live on the device
  (:class:`~spkid.data.augment.device.DeviceAugmentBank`) and the workers send only the draws.

Except in ``worker`` mode a crop of a 16-bit file stays int16 (half the bytes through the
workers' shared memory and the host-device copy). Every mode draws from the same generator
after the crop, so the augmenting modes give the same draws for the same item.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch.utils.data import default_collate

from spkid.data.augment.device import BatchAugmenter, DeviceAugmentBank
from spkid.data.augment.scheme import augment_utterance
from spkid.data.augment.sources import AUG_DIRS, AugmentSource

log = logging.getLogger("spkid.train.data")  # into the training log (exp/SYS/log/train.log)

AUG_OFF, AUG_WORKER, AUG_BATCHED, AUG_DEVICE = "off", "worker", "batched", "device"
AUG_MODES = (AUG_OFF, AUG_WORKER, AUG_BATCHED, AUG_DEVICE)


def stack_shared(arrays: list[np.ndarray]) -> torch.Tensor:
    """Stack along a new first axis; in a DataLoader worker, straight into shared memory (as
    ``default_collate`` does), so the batch reaches the main process without another copy."""
    return default_collate([torch.from_numpy(np.ascontiguousarray(a)) for a in arrays])


class Augmentation:
    """``off``: clean crops, and the interface of every mode."""

    name = AUG_OFF
    keep_pcm16 = True
    device_augment = None

    def item(self, wave: np.ndarray, rng: np.random.Generator, frames: int) -> dict:
        """The fields of one item: ``wave`` (the crop, as the mode passes it on) and the mode's own."""
        return {"wave": wave}

    def collate(self, items: list[dict], frames: int) -> dict:
        """The batch tensors of the mode's fields (the caller stacks wave, label and utts)."""
        return {}


class _Drawn(Augmentation):
    """The augmenting modes: every item draws its treatment and the batch says which (``aug_kind``)."""

    def __init__(self, source: AugmentSource):
        self.source = source

    def collate(self, items: list[dict], frames: int) -> dict:
        return {"aug_kind": torch.tensor([it["aug_kind"] for it in items], dtype=torch.long)}


def _clip_owners(items: list[dict], key: str) -> dict:
    """clip_owner (the row each clip is added to) and clip_snr, over the items' clips named by ``key``."""
    owners = [np.full(len(it[key]), i, dtype=np.int64) for i, it in enumerate(items)]
    return {"clip_owner": torch.from_numpy(np.concatenate(owners)),
            "clip_snr": torch.from_numpy(np.concatenate([it["clip_snr"] for it in items]))}


class PerUtterance(_Drawn):
    """``worker``: the crop augmented in the worker, per utterance (float32)."""

    name = AUG_WORKER
    keep_pcm16 = False

    def item(self, wave, rng, frames):
        draw = self.source.draw(rng, frames)
        clips, rir = self.source.clips(draw, frames), self.source.rir(draw)
        return {"wave": augment_utterance(wave, clips, draw.snrs, rir), "aug_kind": draw.kind}


class BatchedReadClips(_Drawn):
    """``batched``: the crop with the clips (N, T) and the RIR its draw names, mixed on the device."""

    name = AUG_BATCHED
    device_augment = BatchAugmenter()

    def item(self, wave, rng, frames):
        draw = self.source.draw(rng, frames)
        return {"wave": wave, "aug_kind": draw.kind, "clips": self.source.clips(draw, frames),
                "clip_snr": np.asarray(draw.snrs, dtype=np.float32), "rir": self.source.rir(draw)}

    def collate(self, items, frames):
        batch = super().collate(items, frames) | _clip_owners(items, "clips")
        clips = [clip for it in items for clip in it["clips"]]
        batch["clips"] = stack_shared(clips) if clips else torch.zeros((0, frames), dtype=torch.float32)
        rir_rows = [i for i, it in enumerate(items) if it["rir"] is not None]
        width = max((len(items[i]["rir"]) for i in rir_rows), default=1)
        rir = np.zeros((len(rir_rows), width), dtype=np.float32)
        for r, i in enumerate(rir_rows):
            rir[r, :len(items[i]["rir"])] = items[i]["rir"]
        batch["rir"] = torch.from_numpy(rir)
        batch["rir_owner"] = torch.tensor(rir_rows, dtype=torch.long)
        return batch


class BatchedDeviceBank(_Drawn):
    """``device``: the crop with its draw only (global window numbers, offsets, SNRs, RIR index);
    the clips are cut out of the bank on the device."""

    name = AUG_DEVICE

    def __init__(self, source: AugmentSource, device: torch.device):
        super().__init__(source)
        self.window_base = source.window_base
        self.device_augment = DeviceAugmentBank(source, device)

    def __getstate__(self) -> dict:
        # the workers only draw: the bank stays with the training process
        return {**self.__dict__, "device_augment": None}

    def item(self, wave, rng, frames):
        draw = self.source.draw(rng, frames)
        base = self.window_base.get(draw.category, 0)
        return {"wave": wave, "aug_kind": draw.kind,
                "clip_window": np.asarray(draw.windows, dtype=np.int64) + base,
                "clip_offset": np.asarray(draw.offsets, dtype=np.int64),
                "clip_snr": np.asarray(draw.snrs, dtype=np.float32), "rir_index": draw.rir}

    def collate(self, items, frames):
        batch = super().collate(items, frames) | _clip_owners(items, "clip_window")
        batch["clip_window"] = torch.from_numpy(np.concatenate([it["clip_window"] for it in items]))
        batch["clip_offset"] = torch.from_numpy(np.concatenate([it["clip_offset"] for it in items]))
        rir_rows = [i for i, it in enumerate(items) if it["rir_index"] >= 0]
        batch["rir_index"] = torch.tensor([items[i]["rir_index"] for i in rir_rows], dtype=torch.long)
        batch["rir_owner"] = torch.tensor(rir_rows, dtype=torch.long)
        return batch


def bank_budget_gib(max_gb: float, device: torch.device) -> float:
    """``--aug-bank-max-gb`` resolved: -1 is a quarter of the device's memory (16 GiB on a CPU)."""
    if max_gb >= 0:
        return max_gb
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory / 4 / 2**30
    return 16.0


def device_bank_refusal(source: AugmentSource, max_gib: float) -> str | None:
    """Why the banks cannot go to the training device under a ``max_gib`` budget (None: they can)."""
    unpacked = [str(source.path / AUG_DIRS[c]) for c in source.unpacked]
    if unpacked:
        return (f"{', '.join(unpacked)} {'is' if len(unpacked) == 1 else 'are'} not packed, so the DataLoader "
                f"workers read the noise clips from the wav files (pack: utils/pack_audio.py "
                f"{' '.join(unpacked)})")
    gib = DeviceAugmentBank.nbytes(source) / 2**30
    if gib > max_gib:
        return (f"the packed MUSAN bank and the RIRs take {gib:.1f} GiB, over --aug-bank-max-gb {max_gib:g}, "
                f"so the DataLoader workers read the noise clips (raise --aug-bank-max-gb to hold them on "
                f"the device)")
    return None


def choose_augmentation(source: AugmentSource | None, batched: bool, bank_max_gb: float,
                        device: torch.device) -> Augmentation:
    """The mode for ``--augment`` (a source given), ``--batched-augment`` and ``--aug-bank-max-gb``
    on ``device``: the bank goes to the device when it is packed and fits, else the workers read
    the clips. Says which in the training log."""
    if source is None:
        return Augmentation()
    if not batched:
        log.info("augmentation: per utterance in the DataLoader workers")
        return PerUtterance(source)
    refusal = device_bank_refusal(source, bank_budget_gib(bank_max_gb, device))
    if refusal is None:
        mode = BatchedDeviceBank(source, device)
        log.info("augmentation: batched on %s, MUSAN bank and RIRs held there (%.2f GiB)", device,
                 DeviceAugmentBank.nbytes(source) / 2**30)
        return mode
    (log.warning if source.unpacked else log.info)("augmentation: batched on %s; %s", device, refusal)
    return BatchedReadClips(source)
