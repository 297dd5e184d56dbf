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
  (``spkid.eval.plda``), written to ``exp/<SYS>/backend/plda.npz``;
- ``--qmf``: a quality-aware calibration (``spkid.eval.calibration``) fitted on the held list
  ``--qmf-trials`` (scored like any list) and applied to every list, written to
  ``exp/<SYS>/backend/qmf.json``. Its imposter means are the mean top-N cosines against the cohort.

It is fitted once per system (:meth:`Backend.of_system`): the first set stage 5 scores fits it
and saves it to ``exp/<SYS>/backend/`` (``cohort_stats.npz``: the mean crop and the cohort's
speaker vectors; ``plda.npz``; ``qmf.json``) with ``provenance.json``, the record of what it
was fitted from (:class:`spkid.expdir.Record`: the evaluation options; the cohort's ark, scp and
utt2spk as stage 4 recorded them; with QMF the held list, its set's embeddings and durations)
and of the files saved. Every later set loads it while that record stands; a changed input or
option, or a saved file changed or missing, fits it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spkid.config import to_conf_values
from spkid.data import arks
from spkid.data.datadir import Trials, read_table, read_trials, read_utt2dur
from spkid.errors import SpkidError
from spkid.expdir import RECORD, Record, SystemDir
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


def qmf_list(evaluation: EvalOptions, data_root: Path) -> tuple[str, Path, Path]:
    """(the set, the trial list, the set's utt2dur) ``--qmf-trials`` names under ``data_root``."""
    set_name, _, list_name = evaluation.qmf_trials.partition("/")
    path = data_root / set_name / "trials" / list_name
    if not list_name or not path.is_file():
        raise SpkidError(f"QMF is trained on --qmf-trials={evaluation.qmf_trials} (SET/LIST), but {path} is not "
                         f"there: prepare it (stage 2) or name another held list")
    durations = data_root / set_name / "utt2dur"
    if not durations.is_file():
        raise SpkidError(f"{durations} not found: QMF needs the utterance durations; re-run stage 2")
    return set_name, path, durations


def fitting_record(system: SystemDir, evaluation: EvalOptions, cohort_dir: Path, data_root: Path) -> Record:
    """The record of a fitting of ``system``'s back-end (``backend/provenance.json``): its
    evaluation options, the cohort's embeddings and, with QMF, the held list, its set's
    embeddings and durations. An embeddings file is the entry stage 4 recorded of it (stage 5
    checked that record before: :func:`spkid.expdir.check_current`); a set without a record
    (a cohort dir made by hand) is fingerprinted here."""
    inputs, checked = {}, {}
    sets = {"cohort/": (cohort_dir, ("embeddings.ark", "embeddings.scp", "utt2spk"))}
    if evaluation.qmf:
        set_name, trials, durations = qmf_list(evaluation, data_root)
        inputs |= {"qmf/trials": trials, "qmf/utt2dur": durations}
        sets["qmf/"] = (system.embeddings(set_name), ("embeddings.ark", "embeddings.scp"))
    for prefix, (emb_dir, names) in sets.items():
        extracted = Record.load(emb_dir)
        for name in names:
            if extracted is not None and name in extracted.outputs:
                checked[prefix + name] = extracted.input_entry(name, system.backend)
            else:
                inputs[prefix + name] = emb_dir / name
    return Record.made_from(system.backend, 5, f"steps/score.sh {system.root} DATA_DIR", inputs, system.config,
                            to_conf_values(evaluation), checked)


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
        ``exp_dir/backend`` while its record says it was fitted from the same options, cohort and
        QMF list, into the files still there; else fitted (on ``cohort_dir``; QMF on
        ``--qmf-trials`` under ``data_root``) and saved."""
        if not needs_training_set(evaluation):
            return cls(evaluation)
        if not (cohort_dir / "embeddings.scp").is_file() or not (cohort_dir / "utt2spk").is_file():
            raise SpkidError(f"{describe(evaluation)} scoring needs the training utterances' embeddings in {cohort_dir}: "
                             f"extract them with steps/extract.sh --cohort-data data/vox2_dev EXP_DIR DATA_DIR")
        system = SystemDir(exp_dir)
        making, files = fitting_record(system, evaluation, cohort_dir, data_root), saved_files(system, evaluation)
        names = ", ".join(f.name for f in files)
        reasons = making.reasons_to_redo(Record.load(system.backend))
        if not reasons:
            print(f"back-end: loaded from {system.backend} ({names}; {RECORD}: fitted from this cohort and these options)")
            return cls.load(system, evaluation)
        (system.backend / RECORD).unlink(missing_ok=True)  # the folder is not done until the new record is written
        fitted = cls.fit(evaluation, cohort_dir, f"--cohort-data TRAIN_DATA {exp_dir} DATA_DIR")
        if evaluation.qmf:
            fitted.fit_calibration(exp_dir, data_root)
        fitted.save(system)
        making.write(files)  # last: it vouches for the files saved
        print(f"back-end: fitted on {cohort_dir} ({reasons[0]}), saved to {system.backend} ({names})")
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

    def save(self, system: SystemDir) -> None:
        """Write the fitted parts to ``system``'s back-end folder (and remove a part it no longer has)."""
        arrays = {"center": self.center, "cohort": self.cohort, "cohort_means": self.cohort_means}
        with atomic_write(system.backend_stats, "wb") as f:
            np.savez(f, **{k: v for k, v in arrays.items() if v is not None})
        for part, path in ((self.plda, system.plda), (self.calibration, system.qmf)):
            if part is not None:
                part.save(path)
            else:
                path.unlink(missing_ok=True)

    @classmethod
    def load(cls, system: SystemDir, evaluation: EvalOptions) -> "Backend":
        path = system.backend_stats
        try:
            with np.load(path) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            raise SpkidError(f"{path}: not a back-end written by spkid ({e}); remove {system.backend} and "
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
        set_name, path, dur_file = qmf_list(self.evaluation, data_root)
        trials = read_trials(path)
        emb_dir = SystemDir(exp_dir).embeddings(set_name)
        emb = self.read(emb_dir / "embeddings.scp", trials.utterances, data_root / set_name)
        feats = self.features(emb, trials, self.scores(emb, trials, str(emb_dir)), read_utt2dur(dur_file), str(emb_dir))
        self.calibration = Calibration.fit(feats, trials.labels, self.evaluation.p_target, trained_on=str(path))
        return self.calibration
