"""Front-ends: waveform batch -> features, inside the model, batched on its device.

Paper section 3.2 and the paper's code: 16 kHz audio, pre-emphasis 0.97, STFT with a 512-point
FFT over 25-ms Hamming windows every 10 ms, mel filterbank, ``log(mel + 1e-6)``.

* ResNets (Q/SAP, H/ASP): 64 log-mel bins with per-utterance instance normalisation over time
  (mean and variance per bin, no affine). Output ``(B, n_mels, frames)``.
* ECAPA-TDNN: 80 MFCCs (orthonormal DCT-II of 80 log-mel bins) with the mean over time removed.
  Output ``(B, n_mfcc, frames)``.
* ``fbank`` (wespeaker's, for imported wespeaker models): Kaldi's 80 log mel filterbank energies
  (``torchaudio.compliance.kaldi.fbank`` with a Hamming window, no dither, no energy), the mean
  over time removed. Output ``(B, n_mels, frames)`` with Kaldi's frame count.

Pre-emphasis is the paper's code's (``y[t] = x[t] - a x[t-1]`` after reflect-padding one sample on
the left, so ``y[0] = x[0] - a x[1]``), or none with ``preemphasis=0`` (its ResNetSE34L). Every
front-end first multiplies the waveform by ``input_scale``: 1 for floats in [-1, 1]; 32768 for
networks trained on int16-scale waveforms (the paper's code's released V2 models; wespeaker).

Features are always computed in float32, also under ``torch.autocast``: the log of a mel energy
and the normalisation statistics lose too much in half precision. The front-ends hold no
parameters (the window, filterbank and DCT matrix are buffers), so they add nothing to a trunk's
parameter count.
"""

from __future__ import annotations

import torch
import torchaudio
from torch import nn

from spkid.options import SAMPLE_RATE
from spkid.registry import FRONTENDS, Frontend

N_FFT = 512
WIN_LENGTH = 400
HOP_LENGTH = 160
PREEMPHASIS = 0.97
LOG_FLOOR = 1e-6
NORM_EPS = 1e-5


def num_frames(samples: int) -> int:
    """Frames the front-ends give for ``samples`` samples (centred STFT: one per hop, plus one)."""
    return 1 + samples // HOP_LENGTH


def preemphasise(x: torch.Tensor, coef: float) -> torch.Tensor:
    """``y[t] = x[t] - coef * x[t-1]`` over the last axis, ``x[-1]`` taken as ``x[1]`` (reflect
    padding, as the paper's code's ``PreEmphasis``)."""
    return torch.cat([x[..., :1] - coef * x[..., 1:2], x[..., 1:] - coef * x[..., :-1]], dim=-1)


class LogMel(nn.Module):
    """Pre-emphasis, power mel spectrogram and ``log(mel + 1e-6)``, in float32.

    The window and filterbank are torchaudio's ``MelSpectrogram`` buffers (so checkpoints keep
    their keys), but the arithmetic is torchaudio's, written out in plain torch ops: torchaudio's
    ``spectrogram`` calls ``torch.jit.isinstance``, which ``torch.compile`` cannot trace, and
    each such call split a compiled training step into several graphs."""

    def __init__(self, n_mels: int, preemphasis: float = PREEMPHASIS):
        super().__init__()
        self.n_mels = n_mels
        self.log_floor = LOG_FLOOR
        self.preemphasis = preemphasis
        self.n_fft, self.hop_length, self.win_length = N_FFT, HOP_LENGTH, WIN_LENGTH
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE, n_fft=N_FFT, win_length=WIN_LENGTH, hop_length=HOP_LENGTH,
            window_fn=torch.hamming_window, n_mels=n_mels)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        x = wave.float()
        if self.preemphasis:
            x = preemphasise(x, self.preemphasis)
        spec = torch.stft(x, self.n_fft, self.hop_length, self.win_length, self.mel.spectrogram.window, center=True,
                          pad_mode="reflect", normalized=False, onesided=True, return_complex=True)
        power = spec.abs().pow(2.0)
        mel = torch.matmul(power.transpose(-1, -2), self.mel.mel_scale.fb).transpose(-1, -2)
        return torch.log(mel + self.log_floor)


class FrontEnd(nn.Module):
    """Base of the front-ends: ``features`` runs in float32 with autocast switched off, on the
    waveform times ``input_scale`` (each front-end sets it)."""

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        # The STFT, the filterbank matmul and the normalisation would otherwise run in half
        # precision under autocast. TorchScript needs the autocast device as a constant.
        wave = wave.float()
        if self.input_scale != 1.0:
            wave = wave * self.input_scale
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

    def __init__(self, n_mels: int = 64, preemphasis: float = PREEMPHASIS, input_scale: float = 1.0):
        super().__init__()
        self.n_mels = n_mels
        self.out_dim = n_mels
        self.eps = NORM_EPS
        self.input_scale = input_scale
        self.logmel = LogMel(n_mels, preemphasis)

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        x = self.logmel(wave)
        return torch.nn.functional.instance_norm(x, eps=self.eps)


class MeanNormMFCC(FrontEnd):
    """ECAPA-TDNN front-end: MFCCs (as many as mel bins) with the per-utterance mean removed."""

    def __init__(self, n_mfcc: int = 80, preemphasis: float = PREEMPHASIS, input_scale: float = 1.0, n_mels: int = 0):
        super().__init__()
        n_mels = n_mels or n_mfcc
        self.n_mels = n_mels
        self.out_dim = n_mfcc
        self.input_scale = input_scale
        self.logmel = LogMel(n_mels, preemphasis)
        self.register_buffer("dct", torchaudio.functional.create_dct(n_mfcc, n_mels, "ortho"))

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        x = self.logmel(wave)
        x = torch.matmul(x.transpose(1, 2), self.dct).transpose(1, 2)
        return x - x.mean(dim=-1, keepdim=True)


class KaldiFbank(FrontEnd):
    """wespeaker's front-end: Kaldi fbank (``torchaudio.compliance.kaldi.fbank`` with
    ``window_type='hamming'``, ``dither=0``, ``use_energy=False``, other options Kaldi's defaults),
    batched, then the mean over time removed.

    Per 25-ms frame every 10 ms (Kaldi's ``snip_edges``: ``1 + (samples - 400) // 160`` frames): DC
    offset removed, pre-emphasis inside the frame (its first sample against itself), a symmetric
    Hamming window, zero-padded to 512 points, power spectrum, Kaldi's triangular mel banks on
    the mel scale ``1127 ln(1 + f/700)`` from 20 Hz to Nyquist, ``log(max(energy, float32 eps))``."""

    def __init__(self, n_mels: int = 80, preemphasis: float = PREEMPHASIS, input_scale: float = 32768.0):
        super().__init__()
        from torchaudio.compliance.kaldi import get_mel_banks

        self.n_mels = n_mels
        self.out_dim = n_mels
        self.input_scale = input_scale
        self.preemphasis = preemphasis
        self.win_length, self.hop_length, self.n_fft = WIN_LENGTH, HOP_LENGTH, N_FFT
        self.floor = float(torch.finfo(torch.float32).eps)
        banks, _ = get_mel_banks(n_mels, N_FFT, float(SAMPLE_RATE), 20.0, 0.0, 100.0, -500.0, 1.0)
        # Kaldi's banks cover the bins below Nyquist; the Nyquist bin gets weight 0
        banks = torch.nn.functional.pad(banks.float(), (0, 1))
        self.register_buffer("window", torch.hamming_window(WIN_LENGTH, periodic=False))
        self.register_buffer("banks", banks.t().contiguous())  # (n_fft // 2 + 1, n_mels)

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        frames = wave.unfold(-1, self.win_length, self.hop_length)  # (B, T, 400)
        frames = frames - frames.mean(dim=-1, keepdim=True)
        if self.preemphasis:
            previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
            frames = frames - self.preemphasis * previous
        spec = torch.fft.rfft(frames * self.window, n=self.n_fft)
        power = spec.real.pow(2) + spec.imag.pow(2)
        x = torch.log(torch.clamp(torch.matmul(power, self.banks), min=self.floor))  # (B, T, n_mels)
        x = x - x.mean(dim=1, keepdim=True)
        return x.transpose(1, 2)


FRONTENDS.register(Frontend("logmel", InstanceNormLogMel, "log mel + instance norm (the paper's code; Q_SAP, H_ASP)"))
FRONTENDS.register(Frontend("mfcc", MeanNormMFCC, "MFCCs + mean norm (ECAPA)"))
FRONTENDS.register(Frontend("fbank", KaldiFbank, "Kaldi fbank + mean norm (wespeaker; give it --input-scale=32768)"))
