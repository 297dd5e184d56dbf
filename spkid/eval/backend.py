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

It is fitted once per system (:meth:`Backend.of_system`): the first set stage 5 scores fits it
and saves it beside the system (``backend.npz``: the mean crop and the cohort's speaker vectors;
``plda.npz``; ``qmf.json``) with ``backend.info``, what it was fitted from (the evaluation
options; the digests stage 4 recorded of the cohort's ark, scp and utt2spk; the QMF list, its set's embeddings and
durations). Every later set loads it while that record matches; a change to any of them fits it
again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spkid.config import to_conf_lines
from spkid.data import arks
from spkid.data.datadir import Trials, read_table, read_trials, read_utt2dur, write_table
from spkid.errors import SpkidError
from spkid.expdir import Record, SystemDir, file_digest
from spkid.eval import scoring
from spkid.eval.calibration import Calibration, quality_features
from spkid.eval.plda import Plda
from spkid.fileio import atomic_write
from spkid.options import EvalOptions


def needs_training_set(evaluation: EvalOptions) -> bool:
    """Whether scoring with ``evaluation`` needs the training utterances' embeddings (the cohort dir)."""
    return evaluation.as_norm or evaluation.mean_subtract or evaluation.score_type == "plda" or evaluation.qmf


def describe(evaluation: EvalOptions, cohort_speakers: int | None = None, lda_dim: int | None = None) -> str:
    """The back-end in a few words, for logs and the results table; ``lda_dim``: the LDA's fitted
    dimension where known (``--lda-dim`` is capped at the training speakers - 1)."""
    parts = [evaluation.score_type if evaluation.score_type != "plda" else f"PLDA (LDA {lda_dim or evaluation.lda_dim})"]
    if evaluation.mean_subtract:
        parts.insert(0, "mean-subtracted")
    if evaluation.as_norm:
        parts.append(f"AS-norm top-{evaluation.as_norm_top_n}"
                     + (f" of {cohort_speakers} cohort speakers" if cohort_speakers is not None else ""))
    if evaluation.qmf:
        parts.append(f"QMF on {evaluation.qmf_trials}")
    return ", ".join(parts)


def saved_files(system: SystemDir, evaluation: EvalOptions) -> list[Path]:
    """The files a fitted back-end is saved to."""
    return [system.backend_stats] + [system.plda] * (evaluation.score_type == "plda") + [system.qmf] * evaluation.qmf


def _digest_or_absent(path: Path) -> str:
    return file_digest(path) if path.is_file() else "absent"


def set_digest(emb_dir: Path) -> str:
    """An embeddings set as stage 4 recorded it (its provenance record, :mod:`spkid.expdir`): the
    sha256 of its ark, scp and utt2spk ("none" without a record: a set extracted again is
    another set)."""
    record = Record.load(emb_dir)
    if record is None:
        return "none"
    return ":".join(record.outputs.get(n, {}).get("sha256", "absent") for n in ("embeddings.ark", "embeddings.scp",
                                                                                  "utt2spk"))


def qmf_list(evaluation: EvalOptions, data_root: Path) -> tuple[str, Path]:
    """(the set, the trial list) ``--qmf-trials`` names under ``data_root``."""
    set_name, _, list_name = evaluation.qmf_trials.partition("/")
    path = data_root / set_name / "trials" / list_name
    if not list_name or not path.is_file():
        raise SpkidError(f"QMF is trained on --qmf-trials={evaluation.qmf_trials} (SET/LIST), but {path} is not "
                         f"there: prepare it (stage 2) or name another held list")
    return set_name, path


def fitted_from(system: SystemDir, evaluation: EvalOptions, cohort_dir: Path, data_root: Path) -> dict[str, str]:
    """What a system's back-end depends on: its evaluation options, the cohort's embeddings and,
    with QMF, the held list, its set's embeddings and durations. Kept in ``backend.info``: a
    back-end fitted from anything else is fitted again rather than loaded."""
    options = hashlib.sha1("\n".join(to_conf_lines(evaluation)).encode()).hexdigest()
    record = {"options-sha1": options, "cohort": set_digest(cohort_dir)}
    if evaluation.qmf:
        set_name, trials = qmf_list(evaluation, data_root)
        record |= {"qmf-trials-sha256": _digest_or_absent(trials), "qmf-set": set_digest(system.embeddings(set_name)),
                   "qmf-utt2dur-sha256": _digest_or_absent(data_root / set_name / "utt2dur")}
    return record


@dataclass
class Backend:
    """What scoring needs besides a set's own embeddings."""

    evaluation: EvalOptions
    center: np.ndarray | None = None       # subtracted from raw crops
    cohort: np.ndarray | None = None       # (S, D) unit speaker vectors: AS-norm, QMF imposter means
    cohort_means: np.ndarray | None = None  # (S, D) mean per-utterance vectors per speaker (PLDA cohort)
    plda: Plda | None = None
    calibration: Calibration | None = None  # QMF

    @classmethod
    def of_system(cls, exp_dir: Path, evaluation: EvalOptions, cohort_dir: Path, data_root: Path) -> "Backend":
        """The back-end stage 5 scores every set of a system with, fitted once: loaded from
        ``exp_dir`` when its ``backend.info`` says it was fitted from the same options, cohort and
        QMF list, else fitted (on ``cohort_dir``; QMF on ``--qmf-trials`` under ``data_root``) and saved."""
        if not needs_training_set(evaluation):
            return cls(evaluation)
        if not (cohort_dir / "embeddings.scp").is_file() or not (cohort_dir / "utt2spk").is_file():
            raise SpkidError(f"{describe(evaluation)} scoring needs the training utterances' embeddings in {cohort_dir}: "
                             f"extract them with steps/extract.sh --cohort-data data/vox2_dev EXP_DIR DATA_DIR")
        system = SystemDir(exp_dir)
        record, files = fitted_from(system, evaluation, cohort_dir, data_root), saved_files(system, evaluation)
        names = ", ".join(f.name for f in files)
        if system.backend_record.is_file() and read_table(system.backend_record) == record \
                and all(f.is_file() for f in files):
            print(f"back-end: loaded from {exp_dir} ({names}; {system.backend_record.name}: fitted from this "
                  f"cohort and these options)")
            return cls.load(system, evaluation)
        fitted = cls.fit(evaluation, cohort_dir, f"--cohort-data TRAIN_DATA {exp_dir} DATA_DIR")
        if evaluation.qmf:
            fitted.fit_calibration(exp_dir, data_root)
        fitted.save(system, record)
        print(f"back-end: fitted on {cohort_dir}, saved to {exp_dir} ({names})")
        return fitted

    @classmethod
    def fit(cls, evaluation: EvalOptions, cohort_dir: Path, redo: str = "") -> "Backend":
        """Mean, cohort and PLDA from the training utterances' embeddings (their ark read once);
        ``redo``: the arguments of the stage 4 command that extracts them again, for errors."""
        train = scoring.read_embeddings(cohort_dir / "embeddings.scp", keep_crops=evaluation.score_type == "euclidean",
                                        fix=arks.redo_fix(cohort_dir, redo, run_sh=False), subtract_mean=evaluation.mean_subtract)
        utt2spk = read_table(cohort_dir / "utt2spk")
        _, speaker_vectors = scoring.speaker_means(train, utt2spk)
        out = cls(evaluation, train.center, scoring.normalize_rows(speaker_vectors))
        if evaluation.score_type == "plda":
            out.plda = Plda.train(train.means, [utt2spk[u] for u in train.utts], evaluation.lda_dim)
            out.cohort_means = speaker_vectors
        return out

    def save(self, system: SystemDir, record: dict[str, str]) -> None:
        arrays = {"center": self.center, "cohort": self.cohort, "cohort_means": self.cohort_means}
        with atomic_write(system.backend_stats, "wb") as f:
            np.savez(f, **{k: v for k, v in arrays.items() if v is not None})
        if self.plda is not None:
            self.plda.save(system.plda)
        if self.calibration is not None:
            self.calibration.save(system.qmf)
        write_table(system.backend_record, record)  # last: the files it vouches for are complete

    @classmethod
    def load(cls, system: SystemDir, evaluation: EvalOptions) -> "Backend":
        path = system.backend_stats
        try:
            with np.load(path) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            raise SpkidError(f"{path}: not a back-end written by spkid ({e}); remove {system.backend_record} and "
                             f"score again (the back-end is fitted again)") from None
        return cls(evaluation, arrays.get("center"), arrays.get("cohort"), arrays.get("cohort_means"),
                   Plda.load(system.plda) if evaluation.score_type == "plda" else None,
                   Calibration.load(system.qmf) if evaluation.qmf else None)

    def read(self, scp: Path, utts, data_dir: Path | None = None) -> scoring.Embeddings:
        """The embeddings of ``utts`` that stage 4 extracted from ``data_dir`` (data/<set> when not
        given) into ``scp``."""
        fix = arks.redo_fix(scp.parent, f"{scp.parent.parent.parent} {data_dir}" if data_dir else "")
        return scoring.read_embeddings(scp, utts, keep_crops=self.evaluation.score_type == "euclidean", center=self.center,
                                       fix=fix)

    def scores(self, emb: scoring.Embeddings, trials: Trials, where: str) -> np.ndarray:
        """The system's scores of a list before calibration (cosine, euclidean or PLDA; AS-norm)."""
        evaluation = self.evaluation
        if evaluation.score_type != "plda":
            return scoring.score_trials(emb, trials, evaluation.score_type, self.cohort if evaluation.as_norm else None,
                                        evaluation.as_norm_top_n, where=where)
        e, t = scoring.trial_indices(trials, emb, where)
        s = self.plda.score(emb.means, e, t)
        if not evaluation.as_norm:
            return s
        rows, inv = np.unique(np.r_[e, t], return_inverse=True)
        mu, sd = scoring.top_n_stats(self.plda.cross(emb.means[rows], self.cohort_means), evaluation.as_norm_top_n)
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
                                             self.evaluation.as_norm_top_n)[0]
        return quality_features(scores, e, t, log_dur, emb.norms, imposter)

    def fit_calibration(self, exp_dir: Path, data_root: Path) -> Calibration:
        """QMF fitted on ``--qmf-trials`` (scored with this back-end)."""
        set_name, path = qmf_list(self.evaluation, data_root)
        trials = read_trials(path)
        emb_dir = SystemDir(exp_dir).embeddings(set_name)
        emb = self.read(emb_dir / "embeddings.scp", trials.utterances, data_root / set_name)
        dur_file = data_root / set_name / "utt2dur"
        if not dur_file.is_file():
            raise SpkidError(f"{dur_file} not found: QMF needs the utterance durations; re-run stage 2")
        feats = self.features(emb, trials, self.scores(emb, trials, str(emb_dir)), read_utt2dur(dur_file), str(emb_dir))
        self.calibration = Calibration.fit(feats, trials.labels, self.evaluation.p_target, trained_on=str(path))
        return self.calibration
