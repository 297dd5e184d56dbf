"""Online MUSAN + RIR augmentation of training crops (paper section 3.3; voxceleb_trainer's scheme).

Each crop gets one of five treatments with equal probability: clean, reverb, music, babble,
noise. Additive kinds add MUSAN clips cut to the crop length, each scaled to a drawn SNR
(noise U[0, 15] dB, one clip; music U[5, 15] dB, one clip; babble 3-7 distinct speech clips,
each U[13, 20] dB) with gain sqrt(10^((P_clean - P_clip - snr)/10)), P = 10 log10(mean(x^2) + 1e-4).
Reverb convolves the crop with one L2-normalised simulated RIR ("full") and keeps the first
crop-length samples.

This module is the scheme and its arithmetic only; :mod:`spkid.data.augment.clips` reads the
clips and RIRs a draw names. The random choices of one crop are an :class:`AugDraw` (made by
:func:`draw_augmentation`); the audio it names is then mixed by either path:

- :func:`augment_utterance`: per utterance in numpy/scipy (``--batched-augment=false``: the
  DataLoader workers augment their own crops);
- :func:`augment_batch`: the same arithmetic for a whole batch in torch on the training device,
  reverb by one batched FFT convolution and every clip's gain and sum in one vectorised step.
  Given the same draws both give the same audio to float tolerance (tests/test_augment.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import scipy.signal
import torch

KINDS = ("clean", "reverb", "music", "babble", "noise")
CLEAN, REVERB, MUSIC, BABBLE, NOISE = range(5)
#: MUSAN category (data/musan_<category>) each additive kind draws from.
CATEGORY = {MUSIC: "music", BABBLE: "speech", NOISE: "noise"}
#: SNR range in dB (uniform) per additive kind, paper section 3.3.
SNR_DB = {NOISE: (0.0, 15.0), MUSIC: (5.0, 15.0), BABBLE: (13.0, 20.0)}
#: clips per additive kind (inclusive range).
NUM_CLIPS = {NOISE: (1, 1), MUSIC: (1, 1), BABBLE: (3, 7)}
MAX_CLIPS = max(hi for _, hi in NUM_CLIPS.values())
POWER_FLOOR = 1e-4


@dataclass
class AugDraw:
    """The random choices for one crop.

    ``rir``: index into the RIR bank (reverb only, else -1). ``windows``/``offsets``/``snrs``:
    per additive clip, the window index in the category's bank, the start sample inside that
    window (0 when the window is shorter than the crop and gets wrap-padded), and the SNR in dB."""

    kind: int
    rir: int = -1
    windows: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    snrs: list[float] = field(default_factory=list)

    @property
    def category(self) -> str | None:
        return CATEGORY.get(self.kind)


def draw_augmentation(rng: np.random.Generator, num_rirs: int, window_lengths: Mapping[str, np.ndarray],
                      frames: int) -> AugDraw:
    """Draw the treatment of one crop of ``frames`` samples (five kinds, equal odds).

    ``window_lengths[category]``: the length in samples of each MUSAN window of that category."""
    kind = int(rng.integers(len(KINDS)))
    if kind == CLEAN:
        return AugDraw(kind)
    if kind == REVERB:
        return AugDraw(kind, rir=int(rng.integers(num_rirs)))
    lengths = window_lengths[CATEGORY[kind]]
    lo, hi = NUM_CLIPS[kind]
    n = int(rng.integers(lo, hi + 1))
    windows = rng.choice(len(lengths), size=n, replace=False) if n > 1 else rng.integers(len(lengths), size=1)
    offsets = [int(rng.integers(lengths[w] - frames + 1)) if lengths[w] > frames else 0 for w in windows]
    snrs = rng.uniform(*SNR_DB[kind], size=n)
    return AugDraw(kind, windows=[int(w) for w in windows], offsets=offsets, snrs=[float(s) for s in snrs])


def power_db(x: np.ndarray) -> np.ndarray:
    """10 log10(mean(x^2) + 1e-4) over the last axis, as the paper's code measures loudness."""
    x = np.asarray(x, dtype=np.float64)
    return 10.0 * np.log10(np.mean(x * x, axis=-1) + POWER_FLOOR)


def snr_gain(clean_db, clip_db, snr_db):
    """Amplitude gain putting a clip of power ``clip_db`` at ``snr_db`` below a crop of ``clean_db``."""
    return np.sqrt(10.0 ** ((clean_db - clip_db - snr_db) / 10.0))


def augment_utterance(wave: np.ndarray, clips: np.ndarray | None = None, snrs=None,
                      rir: np.ndarray | None = None) -> np.ndarray:
    """Per-utterance reference: reverb with ``rir`` (already L2-normalised) and/or add ``clips``.

    ``clips`` (k, T) at ``snrs`` (k,) dB relative to ``wave`` (T,). Returns float32 (T,)."""
    out = np.asarray(wave, dtype=np.float32)
    frames = len(out)
    if rir is not None:
        out = scipy.signal.convolve(out, np.asarray(rir, dtype=np.float32), mode="full")[:frames]
    if clips is not None and len(clips):
        gains = snr_gain(power_db(wave), power_db(clips), np.asarray(snrs, dtype=np.float64))
        out = out + (gains[:, None] * clips).sum(axis=0)
    return out.astype(np.float32)


def fast_fft_len(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n (cheap FFT sizes)."""
    best = 1 << max(n - 1, 0).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            v = p35
            while v < n:
                v *= 2
            best = min(best, v)
            p35 *= 3
        p5 *= 5
    return best


def fft_convolve(x: torch.Tensor, h: torch.Tensor, frames: int) -> torch.Tensor:
    """Row-wise full convolution of x (N, T) with h (N, L), first ``frames`` samples, by FFT."""
    n = fast_fft_len(x.shape[-1] + h.shape[-1] - 1)
    y = torch.fft.irfft(torch.fft.rfft(x.float(), n) * torch.fft.rfft(h.float(), n), n)
    return y[..., :frames]


def _power_db_t(x: torch.Tensor) -> torch.Tensor:
    return 10.0 * torch.log10(x.float().pow(2).mean(dim=-1).double() + POWER_FLOOR)


def augment_batch(wave: torch.Tensor, clips: torch.Tensor, clip_owner: torch.Tensor, clip_snr: torch.Tensor,
                  rir: torch.Tensor, rir_owner: torch.Tensor) -> torch.Tensor:
    """Batched augmentation: the arithmetic of :func:`augment_utterance` for a whole batch.

    wave (B, T); clips (N, T) with clip_owner (N,) the row of ``wave`` each clip is added to and
    clip_snr (N,) its SNR in dB; rir (R, L) L2-normalised RIRs (zero-padded) with rir_owner (R,)
    the rows they reverberate. All on one device; returns a new (B, T) float32 tensor (fp32 even under autocast)."""
    frames = wave.shape[-1]
    with torch.autocast(wave.device.type, enabled=False):
        out = wave.float().clone()
        if rir.shape[0]:
            out[rir_owner] = fft_convolve(wave[rir_owner], rir, frames)
        if clips.shape[0]:
            gain = torch.sqrt(10.0 ** ((_power_db_t(wave)[clip_owner] - _power_db_t(clips) - clip_snr.double()) / 10.0))
            out.index_add_(0, clip_owner, clips.float() * gain.float()[:, None])
    return out
