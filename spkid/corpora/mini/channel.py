"""Signal helpers for the mini corpus: speed factor, silence trimming, session channels.

A session (a VoxCeleb "video") is one random channel applied to all its utterances:
high-pass, low-pass (sometimes telephone band), two peaking EQs, a white or pink noise
floor and a peak level. Sessions of one speaker differ by channel only, which is what makes
a same-speaker cross-session trial harder than a same-session one.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy import signal
from scipy.fft import next_fast_len

from spkid.options import SAMPLE_RATE as SR


def resample_speed(x: np.ndarray, sr_in: int, alpha: float, sr_out: int = SR) -> np.ndarray:
    """Play ``x`` ``alpha`` times faster at ``sr_out`` (F0 and formants scale by alpha).

    The ratio is rounded to a fraction with a denominator of at most 200 so the polyphase
    filter stays short; alpha moves by under 0.5%."""
    ratio = Fraction(sr_out) / Fraction(sr_in * alpha).limit_denominator(1000)
    ratio = ratio.limit_denominator(200)
    return signal.resample_poly(x, ratio.numerator, ratio.denominator).astype(np.float32)


def trim_silence(x: np.ndarray, threshold_db: float = -40.0, frame: int = 320) -> np.ndarray:
    """Cut leading and trailing frames whose RMS is ``threshold_db`` below the loudest frame."""
    n = len(x) // frame
    if n == 0:
        return x
    rms = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    keep = np.nonzero(20 * np.log10(rms / rms.max()) > threshold_db)[0]
    return x[keep[0] * frame: (keep[-1] + 1) * frame]


def fit_length(x: np.ndarray, max_samples: int, fade: int = 800) -> np.ndarray:
    """Cut to ``max_samples`` with a raised-cosine fade-out at the cut."""
    if len(x) <= max_samples:
        return x
    y = x[:max_samples].copy()
    y[-fade:] *= 0.5 * (1 + np.cos(np.linspace(0, np.pi, fade)))
    return y


def pink_noise(rng: np.random.Generator, n: int, exponent: float = 1.0) -> np.ndarray:
    """Noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown, -1 blue), unit RMS."""
    m = next_fast_len(n)   # an FFT of a length with a large prime factor is slow
    spec = rng.standard_normal(m // 2 + 1) + 1j * rng.standard_normal(m // 2 + 1)
    f = np.arange(m // 2 + 1, dtype=np.float64)
    f[0] = 1.0
    spec *= f ** (-exponent / 2)
    spec[0] = 0
    y = np.fft.irfft(spec, m)[:n]
    return (y / (np.sqrt(np.mean(y ** 2)) + 1e-12)).astype(np.float32)


def peaking_sos(freq: float, gain_db: float, q: float, sr: int = SR) -> np.ndarray:
    """RBJ audio-EQ-cookbook peaking filter as one second-order section."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * freq / sr
    alpha = np.sin(w0) / (2 * q)
    b = np.array([1 + alpha * a, -2 * np.cos(w0), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w0), 1 - alpha / a])
    return np.concatenate([b / den[0], den / den[0]])[None, :]


@dataclass(frozen=True)
class Channel:
    highpass: float
    lowpass: float
    eq: tuple[tuple[float, float, float], ...]   # (freq, gain dB, Q)
    noise_exponent: float                         # 0 white, 1 pink
    snr_db: float
    peak_db: float

    @classmethod
    def random(cls, rng: np.random.Generator) -> "Channel":
        if rng.random() < 0.08:
            hp, lp = float(rng.uniform(250, 350)), float(rng.uniform(3300, 3600))   # telephone band
        else:
            hp, lp = float(rng.uniform(40, 300)), float(rng.uniform(4000, 7800))
        eq = tuple((float(np.exp(rng.uniform(np.log(150), np.log(5000)))), float(rng.uniform(-6, 6)),
                    float(rng.uniform(0.7, 2.5))) for _ in range(2))
        return cls(hp, lp, eq, float(rng.choice([0.0, 1.0])), float(rng.uniform(20, 50)),
                   float(rng.uniform(-6, -1)))

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        sos = [signal.butter(2, self.highpass, "highpass", fs=SR, output="sos"),
               signal.butter(4, self.lowpass, "lowpass", fs=SR, output="sos")]
        sos += [peaking_sos(f, g, q) for f, g, q in self.eq]
        y = signal.sosfilt(np.concatenate(sos), x).astype(np.float32)
        return add_noise(y, pink_noise(rng, len(y), self.noise_exponent), self.snr_db, self.peak_db)


def add_noise(x: np.ndarray, noise: np.ndarray, snr_db: float, peak_db: float | None = None) -> np.ndarray:
    """``x`` plus ``noise`` scaled to ``snr_db`` (power over the whole signal), then peak-normalised."""
    px = np.mean(x ** 2) + 1e-10
    pn = np.mean(noise ** 2) + 1e-10
    y = x + noise * np.sqrt(px / pn * 10 ** (-snr_db / 10))
    return normalize_peak(y, peak_db) if peak_db is not None else y


def normalize_peak(x: np.ndarray, peak_db: float) -> np.ndarray:
    return (x * (10 ** (peak_db / 20) / (np.max(np.abs(x)) + 1e-9))).astype(np.float32)


def to_pcm16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)
