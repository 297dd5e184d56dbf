"""The scoring back-end of a system: what stage 5 learns from the training set before scoring.

Everything here is off by default (the paper scores plain cosines) and switched on by the
system's evaluation options (``spkid.options.EvalOptions``); all of it is trained on the
training utterances stage 4 extracts to ``exp/<SYS>/embeddings/cohort`` (``--cohort-data``,
``--cohort-utts-per-spk`` per speaker):

- ``--mean-subtract``: the mean raw crop embedding of those utterances is subtracted from every
  crop before length normalisation (as Kaldi's ``ivector-subtract-global-mean`` and several
  toolkits do with VoxCeleb2's mean);
- ``--as-norm``: their per-speaker vectors are the AS-norm cohort (``spkid.eval.scoring``);
- ``--score-type=plda``: LDA + two-covariance PLDA trained on their per-utterance vectors
  (``spkid.eval.plda``), written to ``exp/<SYS>/plda.npz``;
- ``--qmf``: a quality-aware calibration (``spkid.eval.calibration``) fitted on the held list
  ``--qmf-trials`` (scored like any list) and applied to every list, written to
  ``exp/<SYS>/qmf.json``. Its imposter means are the mean top-N cosines against the cohort.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spkid.data import arks
from spkid.data.datadir import Trials, read_table, read_trials, read_utt2dur
from spkid.errors import SpkidError
from spkid.expdir import SystemDir
from spkid.eval import scoring
from spkid.eval.calibration import Calibration, quality_features
from spkid.eval.plda import Plda
from spkid.options import EvalOptions


def needs_training_set(ev: EvalOptions) -> bool:
    """Whether scoring with ``ev`` needs the training utterances' embeddings (the cohort dir)."""
    return ev.as_norm or ev.mean_subtract or ev.score_type == "plda" or ev.qmf


def describe(ev: EvalOptions, cohort_speakers: int | None = None, lda_dim: int | None = None) -> str:
    """The back-end in a few words, for logs and the results table; ``lda_dim``: the LDA's fitted
    dimension where known (``--lda-dim`` is capped at the training speakers - 1)."""
    parts = [ev.score_type if ev.score_type != "plda" else f"PLDA (LDA {lda_dim or ev.lda_dim})"]
    if ev.mean_subtract:
        parts.insert(0, "mean-subtracted")
    if ev.as_norm:
        parts.append(f"AS-norm top-{ev.as_norm_top_n}"
                     + (f" of {cohort_speakers} cohort speakers" if cohort_speakers is not None else ""))
    if ev.qmf:
        parts.append(f"QMF on {ev.qmf_trials}")
    return ", ".join(parts)


def crop_mean(scp: str | os.PathLike, fix: str = "") -> np.ndarray:
    """The mean of every raw crop embedding in an embeddings.scp (float64), read through
    :class:`spkid.data.arks.Table` (``fix`` ends its errors)."""
    total, count = None, 0
    for utt, mat in arks.Table(scp, fix).read():
        mat = np.asarray(mat, dtype=np.float64).reshape(-1, np.shape(mat)[-1])
        total = mat.sum(axis=0) if total is None else total + mat.sum(axis=0)
        count += len(mat)
    if not count:
        raise SpkidError(f"{scp} holds no embeddings to take the mean of; re-run stage 4")
    return total / count


@dataclass
class Backend:
    """What scoring needs besides a set's own embeddings."""

    ev: EvalOptions
    center: np.ndarray | None = None       # subtracted from raw crops
    cohort: np.ndarray | None = None       # (S, D) unit speaker vectors: AS-norm, QMF imposter means
    cohort_means: np.ndarray | None = None  # (S, D) mean per-utterance vectors per speaker (PLDA cohort)
    plda: Plda | None = None

    @classmethod
    def load(cls, exp_dir: Path, ev: EvalOptions, cohort_dir: Path) -> "Backend":
        if not needs_training_set(ev):
            return cls(ev)
        scp = cohort_dir / "embeddings.scp"
        if not scp.is_file() or not (cohort_dir / "utt2spk").is_file():
            raise SpkidError(f"{describe(ev)} scoring needs the training utterances' embeddings in {cohort_dir}: "
                             f"extract them with steps/extract.sh --cohort-data data/vox2_dev EXP_DIR DATA_DIR")
        fix = arks.redo_fix(cohort_dir, f"--cohort-data TRAIN_DATA {exp_dir} DATA_DIR")
        center = crop_mean(scp, fix).astype(np.float32) if ev.mean_subtract else None
        train = scoring.read_embeddings(scp, keep_crops=ev.score_type == "euclidean", center=center, fix=fix)
        utt2spk = read_table(cohort_dir / "utt2spk")
        _, speaker_vectors = scoring.speaker_means(train, utt2spk)
        out = cls(ev, center, scoring.normalize_rows(speaker_vectors))
        if ev.score_type == "plda":
            out.plda = Plda.train(train.means, [utt2spk[u] for u in train.utts], ev.lda_dim)
            out.plda.save(exp_dir / "plda.npz")
            out.cohort_means = speaker_vectors
        return out

    def read(self, scp: Path, utts, data_dir: Path | None = None) -> scoring.Embeddings:
        """The embeddings of ``utts`` that stage 4 extracted from ``data_dir`` (data/<set> when not
        given) into ``scp``."""
        fix = arks.redo_fix(scp.parent, f"{scp.parent.parent.parent} {data_dir}" if data_dir else "")
        return scoring.read_embeddings(scp, utts, keep_crops=self.ev.score_type == "euclidean", center=self.center,
                                       fix=fix)

    def scores(self, emb: scoring.Embeddings, trials: Trials, where: str) -> np.ndarray:
        """The system's scores of a list before calibration (cosine, euclidean or PLDA; AS-norm)."""
        ev = self.ev
        if ev.score_type != "plda":
            return scoring.score_trials(emb, trials, ev.score_type, self.cohort if ev.as_norm else None,
                                        ev.as_norm_top_n, where=where)
        e, t = scoring.trial_indices(trials, emb, where)
        s = self.plda.score(emb.means, e, t)
        if not ev.as_norm:
            return s
        rows, inv = np.unique(np.r_[e, t], return_inverse=True)
        mu, sd = scoring.top_n_stats(self.plda.cross(emb.means[rows], self.cohort_means), ev.as_norm_top_n)
        ie, it = inv[:len(e)], inv[len(e):]
        return scoring.as_norm(s, mu[ie], sd[ie], mu[it], sd[it])

    def features(self, emb: scoring.Embeddings, trials: Trials, scores: np.ndarray, utt2dur: dict[str, float],
                 where: str) -> np.ndarray:
        """QMF's features of each trial: score, log durations, embedding norms, imposter means."""
        e, t = scoring.trial_indices(trials, emb, where)
        missing = [u for u in emb.utts if u not in utt2dur]
        if missing:
            raise SpkidError(f"{where}: {len(missing)} utterance(s) have no duration in utt2dur (e.g. {missing[0]}); "
                             f"QMF needs it: re-run stage 2 (local/prepare_data.py)")
        log_dur = np.log(np.maximum([utt2dur[u] for u in emb.utts], 1e-3))
        imposter = np.zeros(len(emb.utts))
        rows = np.unique(np.r_[e, t])
        imposter[rows] = scoring.top_n_stats(scoring.cohort_scores(emb, rows, self.cohort, "cosine"),
                                             self.ev.as_norm_top_n)[0]
        return quality_features(scores, e, t, log_dur, emb.norms, imposter)

    def fit_calibration(self, exp_dir: Path, data_root: Path) -> Calibration:
        """QMF fitted on ``--qmf-trials`` (scored with this back-end), saved to exp_dir/qmf.json."""
        set_name, _, list_name = self.ev.qmf_trials.partition("/")
        path = data_root / set_name / "trials" / list_name
        if not list_name or not path.is_file():
            raise SpkidError(f"QMF is trained on --qmf-trials={self.ev.qmf_trials} (SET/LIST), but {path} is not "
                             f"there: prepare it (stage 2) or name another held list")
        trials = read_trials(path)
        emb_dir = SystemDir(exp_dir).embeddings(set_name)
        emb = self.read(emb_dir / "embeddings.scp", trials.utterances, data_root / set_name)
        dur_file = data_root / set_name / "utt2dur"
        if not dur_file.is_file():
            raise SpkidError(f"{dur_file} not found: QMF needs the utterance durations; re-run stage 2")
        feats = self.features(emb, trials, self.scores(emb, trials, str(emb_dir)), read_utt2dur(dur_file), str(emb_dir))
        cal = Calibration.fit(feats, trials.labels, self.ev.p_target, trained_on=str(path))
        cal.save(exp_dir / "qmf.json")
        return cal

