"""A trivial floor for the mini corpus: cosine similarity of per-utterance MFCC statistics.

Each utterance becomes the concatenated mean and standard deviation over frames of 20
MFCCs (torchaudio, 25-ms windows, 10-ms hop, 40 mel bands); each dimension is standardised
over the utterances being scored (else c0, the log energy, dominates the cosine); a trial's
score is the cosine of the two vectors. A trained system should beat it by far; if it does not, the corpus is too
easy or the system is broken.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchaudio

from spkid.console import progress
from spkid.data.audio import SAMPLE_RATE, read_audio

from spkid.config import option
from spkid.data.datadir import DataDir, read_trials
from spkid.errors import SpkidError
from spkid.expdir import RECORD, Record, SystemDir
from spkid.eval.metrics import compute_metrics
from spkid.eval.scoring import Embeddings, score_trials, write_scores
from spkid.fileio import atomic_write


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
    return {u: stats(read_audio(wav_scp[u], utt=u)) for u in progress(utts, desc="mfcc stats", unit="utt", quiet=quiet)}


def standardize(vectors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Zero mean, unit variance per dimension over the given utterances."""
    m = np.stack(list(vectors.values()))
    mu, sd = m.mean(axis=0), m.std(axis=0) + 1e-8
    return {u: (v - mu) / sd for u, v in vectors.items()}


DESCRIPTION = "MFCC mean+std baseline"


@dataclass
class BaselineOptions:
    data: str = option("data", "directory of data dirs (stage 2 output)")
    p_target: float = option(0.05, "MinDCF target prior (the paper's 0.05)")
    quiet: bool = option(False, "no progress bars")
    scores_dir: str = option("", "also write each list's scores to <dir>/scores/<set>/<list>.score and the row's "
                             "name to <dir>/description, for the results table's floor row "
                             "(steps/make_results_table.py --floor <dir>; run.sh does both on the mini corpus)")


def run_baseline(opts: BaselineOptions) -> int:
    """Score every ``<opts.data>/<set>/trials/<list>`` with the MFCC floor, print EER and MinDCF per
    list and, with ``opts.scores_dir``, write the score files and the row's name."""
    torch.set_num_threads(1)
    sets = sorted(p.parent for p in Path(opts.data).glob("*/trials") if p.is_dir())
    if not sets:
        raise SpkidError(f"no data/<set>/trials/ under {opts.data}: run stage 2 first (./run.sh --stage 2 --stop-stage 2)")
    print(f"{'set':<14}{'list':<16}{'trials':>8}{'EER%':>8}  MinDCF(p={opts.p_target:g})")
    floor = SystemDir(opts.scores_dir) if opts.scores_dir else None
    if floor is not None:  # not done until its record is back
        (floor.root / RECORD).unlink(missing_ok=True)
    inputs, written = {}, []
    for set_dir in sets:
        d = DataDir.load(set_dir)
        lists = {name: read_trials(p) for name, p in d.trial_lists().items()}
        utts = sorted(set().union(*(t.utterances for t in lists.values())))
        vectors = standardize(utterance_vectors(d.wav_scp, utts, quiet=opts.quiet))
        emb = Embeddings.from_raw(vectors.items(), keep_crops=False)
        for name, t in lists.items():
            s = score_trials(emb, t)
            if floor is not None:
                write_scores(floor.score_file(set_dir.name, name), t, s)
                written.append(floor.score_file(set_dir.name, name))
                inputs[f"{set_dir.name}/trials/{name}"] = set_dir / "trials" / name
            m = compute_metrics(s, t.labels, opts.p_target)
            print(f"{set_dir.name:<14}{name:<16}{len(t):>8}{100 * m.eer:>8.2f}  {m.min_dcf:.3f}")
    if floor is not None:
        with atomic_write(floor.root / "description") as f:
            f.write(f"{DESCRIPTION}\n")
        inputs.update({f"{d.name}/wav.scp": d / "wav.scp" for d in sets})
        Record.made_from(floor.root, 6, f"local/mfcc_baseline.py --data {opts.data} --scores-dir {floor.root}",
                         inputs).write([*written, floor.root / "description"])
    return 0
