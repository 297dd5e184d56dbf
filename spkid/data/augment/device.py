"""The device half of batched augmentation (``device`` mode, :mod:`spkid.data.augment.modes`):
``(wave on the device, batch) -> augmented wave``, with the packed MUSAN banks and the RIRs held
on the device and the batch carrying only the draws (:data:`DRAW_KEYS`); it ends in
:func:`spkid.data.augment.scheme.augment_batch`.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch

from spkid.data.augment.scheme import augment_batch
from spkid.data.augment.clips import AUG_DIRS, AugmentSource

#: batch keys of the draws that :class:`DeviceAugmentBank` turns into audio.
DRAW_KEYS = ("clip_window", "clip_offset", "clip_owner", "clip_snr", "rir_index", "rir_owner")


class DeviceAugmentBank:
    """The audio already on the device.

    Holds every category's packed MUSAN samples (int16, one tensor; windows numbered as
    :attr:`AugmentSource.window_base` says) and the RIRs (float32) on ``device``. A batch
    carries the draws only (:data:`DRAW_KEYS`); the clips are gathered out of the bank (with
    the circular padding of :meth:`spkid.data.augment.clips.WindowBank.read`), the RIRs
    padded to the longest in the bank (a fixed FFT size for every batch), and
    :func:`augment_batch` mixes them. No host-device synchronisation."""

    COPY_CHUNK = 1 << 26  # samples per host-to-device copy while loading (128 MB of int16)

    def __init__(self, source: AugmentSource, device: torch.device):
        total = sum(len(b.packed) for b in source.banks.values())
        self.audio = torch.empty(total, dtype=torch.int16, device=device)
        starts, lengths, base = [], [], 0
        for cat in AUG_DIRS:
            bank = source.banks[cat]
            for a in range(0, len(bank.packed), self.COPY_CHUNK):
                piece = np.array(bank.packed[a:a + self.COPY_CHUNK])
                self.audio[base + a:base + a + len(piece)].copy_(torch.from_numpy(piece))
            starts.append(bank.pack_starts + base)
            lengths.append(bank.lengths)
            base += len(bank.packed)
        self.win_start = torch.from_numpy(np.concatenate(starts)).to(device)
        self.win_len = torch.from_numpy(np.concatenate(lengths)).to(device)
        rirs = source.rirs
        self.rir_data = torch.from_numpy(rirs.data).to(device)
        self.rir_start = torch.from_numpy(rirs.bounds[:-1].copy()).to(device)
        self.rir_len = torch.from_numpy(np.diff(rirs.bounds)).to(device)
        self.rir_width = int(np.diff(rirs.bounds).max())
        self.device = device

    @staticmethod
    def nbytes(source: AugmentSource) -> int:
        return 2 * sum(len(b.packed) for b in source.banks.values()) + source.rirs.data.nbytes

    def clips(self, window: torch.Tensor, offset: torch.Tensor, frames: int) -> torch.Tensor:
        """(N, frames) float32: ``frames`` samples of each window from its offset, wrapping circularly."""
        pos = torch.arange(frames, device=self.device)
        idx = self.win_start[window, None] + (offset[:, None] + pos) % self.win_len[window, None]
        return self.audio[idx].float().mul_(1.0 / 32768.0)

    def rirs(self, index: torch.Tensor) -> torch.Tensor:
        """(R, longest RIR) float32: the RIRs ``index`` names, zero-padded."""
        pos = torch.arange(self.rir_width, device=self.device)
        idx = (self.rir_start[index, None] + pos).clamp_(max=self.rir_data.numel() - 1)
        return self.rir_data[idx] * (pos < self.rir_len[index, None])

    def __call__(self, wave: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        t = {k: batch[k].to(self.device, non_blocking=True) for k in DRAW_KEYS}
        clips = self.clips(t["clip_window"], t["clip_offset"], wave.shape[-1])
        return augment_batch(wave, clips, t["clip_owner"], t["clip_snr"], self.rirs(t["rir_index"]), t["rir_owner"])
