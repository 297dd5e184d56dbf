"""Front-ends: waveform batch -> features, inside the model, batched on its device.

Paper section 3.2 and the paper's code: 16 kHz audio, pre-emphasis 0.97, STFT with a 512-point
FFT over 25-ms Hamming windows every 10 ms, mel filterbank, ``log(mel + 1e-6)``.

* ResNets (Q/SAP, H/ASP): 64 log-mel bins with per-utterance instance normalisation over time
  (mean and variance per bin, no affine). Output ``(B, n_mels, frames)``.
* ECAPA-TDNN: 80 MFCCs (orthonormal DCT-II of 80 log-mel bins) with the mean over time removed.
  Output ``(B, n_mfcc, frames)``.

Features are always computed in float32, also under ``torch.autocast``: the log of a mel energy
and the normalisation statistics lose too much in half precision. The front-ends hold no
parameters (the window, filterbank and DCT matrix are buffers), so they add nothing to a trunk's
parameter count.
"""

from __future__ import annotations

import torch
import torchaudio
from torch import nn

SAMPLE_RATE = 16000
N_FFT = 512
WIN_LENGTH = 400
HOP_LENGTH = 160
PREEMPHASIS = 0.97
LOG_FLOOR = 1e-6
NORM_EPS = 1e-5


def num_frames(samples: int) -> int:
    """Frames the front-ends give for ``samples`` samples (centred STFT: one per hop, plus one)."""
    return 1 + samples // HOP_LENGTH


class LogMel(nn.Module):
    """Pre-emphasis, power mel spectrogram and ``log(mel + 1e-6)``, in float32.

    The window and filterbank are torchaudio's ``MelSpectrogram`` buffers (so checkpoints keep
    their keys), but the arithmetic is torchaudio's, written out in plain torch ops: torchaudio's
    ``spectrogram`` calls ``torch.jit.isinstance``, which ``torch.compile`` cannot trace, and
    each such call split a compiled training step into several graphs."""

    def __init__(self, n_mels: int):
        super().__init__()
        self.n_mels = n_mels
        self.log_floor = LOG_FLOOR
        self.preemphasis = PREEMPHASIS
        self.n_fft, self.hop_length, self.win_length = N_FFT, HOP_LENGTH, WIN_LENGTH
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE, n_fft=N_FFT, win_length=WIN_LENGTH, hop_length=HOP_LENGTH,
            window_fn=torch.hamming_window, n_mels=n_mels)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        x = wave.float()
        x = torch.cat([x[:, :1], x[:, 1:] - self.preemphasis * x[:, :-1]], dim=1)
        spec = torch.stft(x, self.n_fft, self.hop_length, self.win_length, self.mel.spectrogram.window, center=True,
                          pad_mode="reflect", normalized=False, onesided=True, return_complex=True)
        power = spec.abs().pow(2.0)
        mel = torch.matmul(power.transpose(-1, -2), self.mel.mel_scale.fb).transpose(-1, -2)
        return torch.log(mel + self.log_floor)


class FrontEnd(nn.Module):
    """Base of the front-ends: ``features`` runs in float32 with autocast switched off."""

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        # The STFT, the filterbank matmul and the normalisation would otherwise run in half
        # precision under autocast. TorchScript needs the autocast device as a constant.
        if wave.is_cuda:
            with torch.autocast("cuda", enabled=False):
                x = self.features(wave)
        else:
            with torch.autocast("cpu", enabled=False):
                x = self.features(wave)
        return x

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class InstanceNormLogMel(FrontEnd):
    """ResNet front-end: log-mel, each bin normalised to zero mean and unit variance over time."""

    def __init__(self, n_mels: int = 64):
        super().__init__()
        self.n_mels = n_mels
        self.out_dim = n_mels
        self.eps = NORM_EPS
        self.logmel = LogMel(n_mels)

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        x = self.logmel(wave)
        return torch.nn.functional.instance_norm(x, eps=self.eps)


class MeanNormMFCC(FrontEnd):
    """ECAPA-TDNN front-end: MFCCs (as many as mel bins) with the per-utterance mean removed."""

    def __init__(self, n_mfcc: int = 80, n_mels: int = 0):
        super().__init__()
        n_mels = n_mels or n_mfcc
        self.n_mels = n_mels
        self.out_dim = n_mfcc
        self.logmel = LogMel(n_mels)
        self.register_buffer("dct", torchaudio.functional.create_dct(n_mfcc, n_mels, "ortho"))

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        x = self.logmel(wave)
        x = torch.matmul(x.transpose(1, 2), self.dct).transpose(1, 2)
        return x - x.mean(dim=-1, keepdim=True)
