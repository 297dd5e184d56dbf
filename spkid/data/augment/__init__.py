"""Online MUSAN + RIR augmentation of training crops (paper section 3.3): the one entry point.

Import from here; the parts, in the order a crop meets them:

- :mod:`~spkid.data.augment.scheme`: the five treatments, their draws (:func:`draw_augmentation`)
  and the arithmetic, per utterance in numpy (:func:`augment_utterance`) and batched in torch
  (:func:`augment_batch`);
- :mod:`~spkid.data.augment.clips`: the MUSAN windows and RIRs a draw names
  (:class:`AugmentSource`), read from the wav files or from a dir's packed 16-bit bank
  (:func:`pack_audio`, which stage 2 and ``utils/pack_audio.py`` call);
- :mod:`~spkid.data.augment.device`: the device half of batched augmentation
  (:class:`DeviceAugmentBank`);
- :mod:`~spkid.data.augment.modes`: one object per placement (off, per utterance in the workers,
  batched with the bank on the device) and :func:`choose_augmentation`, which picks one from the
  training options. The dataset (:mod:`spkid.data.dataset`) asks the chosen mode for each item's
  fields, the batch's tensors and the device step.

Per-utterance mixing is a training mode, not only the reference the batched path is tested
against: on the 16-core H200 it trained faster than batched augmentation (docs/benchmarks.md).
"""

from spkid.data.augment.device import DRAW_KEYS, DeviceAugmentBank
from spkid.data.augment.modes import (AUG_DEVICE, AUG_MODES, AUG_OFF, AUG_WORKER, Augmentation, BatchedDeviceBank,
                                      PerUtterance, bank_budget_gib, choose_augmentation, device_bank_refusal,
                                      stack_shared)
from spkid.data.augment.scheme import (BABBLE, CATEGORY, CLEAN, KINDS, MAX_CLIPS, MUSIC, NOISE, NUM_CLIPS, REVERB,
                                       SNR_DB, AugDraw, augment_batch, augment_utterance, draw_augmentation,
                                       fft_convolve, power_db, snr_gain)
from spkid.data.augment.clips import (AUG_DIRS, RIR_DIR, AugmentSource, PackedAudio, RirBank, WindowBank,
                                        pack_audio)

__all__ = [
    "AUG_DEVICE", "AUG_DIRS", "AUG_MODES", "AUG_OFF", "AUG_WORKER", "BABBLE", "CATEGORY", "CLEAN", "DRAW_KEYS",
    "KINDS", "MAX_CLIPS", "MUSIC", "NOISE", "NUM_CLIPS", "REVERB", "RIR_DIR", "SNR_DB",
    "AugDraw", "AugmentSource", "Augmentation", "BatchedDeviceBank", "DeviceAugmentBank", "PackedAudio",
    "PerUtterance", "RirBank", "WindowBank",
    "augment_batch", "augment_utterance", "bank_budget_gib", "choose_augmentation", "device_bank_refusal",
    "draw_augmentation", "fft_convolve", "pack_audio", "power_db", "snr_gain", "stack_shared",
]
