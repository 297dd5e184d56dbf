"""A trivial floor for the mini corpus: cosine similarity of per-utterance MFCC statistics.

Each utterance becomes the concatenated mean and standard deviation over frames of 20
MFCCs (torchaudio, 25-ms windows, 10-ms hop, 40 mel bands); each dimension is standardised
over the utterances being scored (else c0, the log energy, dominates the cosine); a trial's
score is the cosine of the two vectors. A trained system should beat it by far; if it does not, the corpus is too
easy or the system is broken.
"""

from __future__ import annotations

import numpy as np
import torch
import torchaudio
from sklearn.metrics import roc_curve
from tqdm import tqdm

from spkid.audio import SAMPLE_RATE, read_audio


def mfcc_stats_extractor(n_mfcc: int = 20):
    mfcc = torchaudio.transforms.MFCC(
        sample_rate=SAMPLE_RATE, n_mfcc=n_mfcc,
        melkwargs={"n_fft": 512, "win_length": 400, "hop_length": 160, "n_mels": 40, "f_min": 20.0})

    def stats(wave: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            feats = mfcc(torch.from_numpy(wave)[None])[0]    # (n_mfcc, frames)
        return torch.cat([feats.mean(dim=1), feats.std(dim=1)]).numpy()

    return stats


def utterance_vectors(wav_scp: dict[str, str], utts: list[str], quiet: bool = False) -> dict[str, np.ndarray]:
    stats = mfcc_stats_extractor()
    return {u: stats(read_audio(wav_scp[u], utt=u)) for u in tqdm(utts, desc="mfcc stats", unit="utt", disable=quiet)}


def standardize(vectors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Zero mean, unit variance per dimension over the given utterances."""
    m = np.stack(list(vectors.values()))
    mu, sd = m.mean(axis=0), m.std(axis=0) + 1e-8
    return {u: (v - mu) / sd for u, v in vectors.items()}


def cosine_scores(vectors: dict[str, np.ndarray], enroll: list[str], test: list[str]) -> np.ndarray:
    a = np.stack([vectors[u] for u in enroll])
    b = np.stack([vectors[u] for u in test])
    a /= np.linalg.norm(a, axis=1, keepdims=True) + 1e-12
    b /= np.linalg.norm(b, axis=1, keepdims=True) + 1e-12
    return np.sum(a * b, axis=1)


def eer_and_min_dcf(scores: np.ndarray, labels: np.ndarray, p_target: float = 0.05) -> tuple[float, float]:
    """EER and normalised MinDCF as the paper's code computes them (REFERENCE: §3.7).

    EER: sklearn's ROC, at argmin |FNR - FPR| the larger of the two (no interpolation).
    MinDCF: C_miss = C_fa = 1, min over thresholds of P_miss·P_t + P_fa·(1 - P_t), divided by
    min(P_t, 1 - P_t). Kept here until the baseline switches to spkid.metrics."""
    fpr, tpr, _ = roc_curve(labels, scores, pos_label=1)
    fnr = 1 - tpr
    idx = int(np.nanargmin(np.abs(fnr - fpr)))
    eer = float(max(fpr[idx], fnr[idx]))
    dcf = np.min(fnr * p_target + fpr * (1 - p_target)) / min(p_target, 1 - p_target)
    return eer, float(dcf)
