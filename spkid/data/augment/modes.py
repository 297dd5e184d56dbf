"""The placements of augmentation, one object each, and the choice between them.

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
- ``device`` (:class:`BatchedDeviceBank`): the packed banks and RIRs live on the device
  (:class:`~spkid.data.augment.device.DeviceAugmentBank`), the workers send only the draws and
  the batch is mixed there.

Each is kept for a bench figure where it wins (docs/benchmarks.md): ``worker`` trained fastest
end to end on the 16-core H200, ``device`` fed the loader fastest on the 2-core CPU machine;
``--batched-augment=auto`` picks that one for the device. In ``device`` mode a crop of a 16-bit
file stays int16 (half the bytes through the workers' shared memory and the host-device copy).
Both augmenting modes draw from the same generator after the crop, so they give the same draws
for the same item.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch.utils.data import default_collate

from spkid.data.augment.device import DeviceAugmentBank
from spkid.data.augment.scheme import augment_utterance
from spkid.data.augment.clips import AUG_DIRS, AugmentSource

log = logging.getLogger("spkid.train.data")  # into the training log (exp/SYS/log/train.log)

AUG_OFF, AUG_WORKER, AUG_DEVICE = "off", "worker", "device"
AUG_MODES = (AUG_OFF, AUG_WORKER, AUG_DEVICE)


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


class PerUtterance(_Drawn):
    """``worker``: the crop augmented in the worker, per utterance (float32)."""

    name = AUG_WORKER
    keep_pcm16 = False

    def item(self, wave, rng, frames):
        draw = self.source.draw(rng, frames)
        clips, rir = self.source.clips(draw, frames), self.source.rir(draw)
        return {"wave": augment_utterance(wave, clips, draw.snrs, rir), "aug_kind": draw.kind}


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
        batch = super().collate(items, frames)
        owners = [np.full(len(it["clip_window"]), i, dtype=np.int64) for i, it in enumerate(items)]
        batch["clip_owner"] = torch.from_numpy(np.concatenate(owners))  # the row each clip is added to
        batch["clip_snr"] = torch.from_numpy(np.concatenate([it["clip_snr"] for it in items]))
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
                f"workers augment each crop, reading the noise clips from the wav files (pack: "
                f"utils/pack_audio.py {' '.join(unpacked)})")
    gib = DeviceAugmentBank.nbytes(source) / 2**30
    if gib > max_gib:
        return (f"the packed MUSAN bank and the RIRs take {gib:.1f} GiB, over --aug-bank-max-gb {max_gib:g}, "
                f"so the DataLoader workers augment each crop (raise --aug-bank-max-gb to hold them on the device)")
    return None


def choose_augmentation(source: AugmentSource | None, placement: str, bank_max_gb: float,
                        device: torch.device) -> Augmentation:
    """The mode for ``--augment`` (a source given), ``--batched-augment`` (``placement``: auto, true,
    false) and ``--aug-bank-max-gb`` on ``device``. ``auto`` is the measured best for the device: per
    utterance in the workers on a GPU (the H200's figures), the bank on the device on a CPU. The
    bank goes to the device only when it is packed and fits; otherwise the workers augment. Says
    which in the training log."""
    if source is None:
        return Augmentation()
    if placement == "false" or (placement == "auto" and device.type != "cpu"):
        log.info("augmentation: per utterance in the DataLoader workers")
        return PerUtterance(source)
    refusal = device_bank_refusal(source, bank_budget_gib(bank_max_gb, device))
    if refusal is not None:
        (log.warning if source.unpacked else log.info)("augmentation: %s", refusal)
        return PerUtterance(source)
    log.info("augmentation: batched on %s, MUSAN bank and RIRs held there (%.2f GiB)", device,
             DeviceAugmentBank.nbytes(source) / 2**30)
    return BatchedDeviceBank(source, device)
