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
from tqdm import tqdm

from spkid.data.audio import SAMPLE_RATE, read_audio


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
