"""Trial scoring from stored crop embeddings (paper section 3.5), with optional AS-norm.

Each utterance is stored as a crops x dim matrix of raw crop embeddings (``spkid.eval.extract``).
Scores never need the network:

- ``cosine`` (the paper): every crop embedding is L2-normalised and the trial score is the mean
  of the C_e x C_t cosine similarities between the enrolment and test crops. Because the
  mean of dot products is the dot product of the means,
  ``mean_ij <x_i, y_j> = <mean_i x_i, mean_j y_j>``, it is computed exactly (not approximately)
  as the dot product of the two mean normalised crop vectors: one D-dim vector per
  utterance, one dot product per trial.
- ``euclidean`` (the paper's code, voxceleb_trainer): minus the mean of the C_e x C_t
  Euclidean distances between the normalised crops; computed in batches of trials with
  ``|x - y| = sqrt(2 - 2<x, y>)`` for unit vectors.
- AS-norm (adaptive symmetric score normalisation, Matejka et al. 2017; as wespeaker's
  ``asnorm``): the cohort is one unit vector per training speaker (the normalised mean of the
  mean normalised crop vectors of some of its utterances); each side of a trial is scored
  against every cohort speaker with the same score function (a cohort speaker acting as a
  one-crop utterance), the top-N cohort scores give a mean and std per side, and
  ``s' = ((s - mu_e) / sd_e + (s - mu_t) / sd_t) / 2``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from spkid.data import arks
from spkid.data.datadir import Trials
from spkid.errors import SpkidError
from spkid.fileio import atomic_write

SCORE_TYPES = ("cosine", "euclidean")
MAX_LISTED = 10


class ScoringError(SpkidError):
    pass


def normalize_rows(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)


@dataclass
class Embeddings:
    """Normalised crop embeddings of a set of utterances.

    ``crops[i]``: (C_i, D) float32, rows L2-normalised; ``means``: (U, D), row i the mean of
    ``crops[i]`` (not renormalised, so that ``means[a] @ means[b]`` is the mean crop cosine);
    ``norms``: (U,), the mean L2 norm of the raw crops (a quality measure for calibration).

    ``center``: a vector subtracted from every raw crop before it is normalised (embedding mean
    subtraction, ``--mean-subtract``; ``spkid.eval.backend``)."""

    utts: list[str]
    crops: list[np.ndarray]
    means: np.ndarray
    norms: np.ndarray | None = None
    center: np.ndarray | None = None

    @classmethod
    def from_raw(cls, items: Iterable[tuple[str, np.ndarray]], keep_crops: bool = True,
                 center: np.ndarray | None = None,
                 check: Callable[[str, np.ndarray, np.ndarray], None] | None = None) -> "Embeddings":
        """``check(utt, raw crops, their lengths)``: a value check on the lengths computed here
        anyway (:meth:`spkid.data.arks.Table.check_lengths`)."""
        utts, crops, means, norms = [], [], [], []
        for utt, mat in items:
            mat = np.asarray(mat, dtype=np.float32)
            if mat.ndim == 1:
                mat = mat[None]
            lengths = np.sqrt(np.einsum("ij,ij->i", mat, mat))  # (as np.linalg.norm, without its overflow warning)
            if check is not None:
                check(utt, mat, lengths)
            norms.append(float(lengths.mean()))
            if center is not None:
                if center.shape != mat.shape[1:]:
                    raise ScoringError(f"utterance '{utt}': {mat.shape[1]}-dim embeddings but a "
                                       f"{center.shape[0]}-dim mean to subtract; extract both with one system")
                mat = mat - center
            x = normalize_rows(mat)
            utts.append(utt)
            means.append(x.mean(axis=0))
            # not x[:0]: a view keeps the whole matrix alive (3 GB for VoxCeleb1's ten crops)
            crops.append(x if keep_crops else np.empty((0, x.shape[1]), dtype=np.float32))
        if not utts:
            raise ScoringError("no embeddings to score")
        return cls(utts, crops, np.stack(means), np.asarray(norms), center)

    def index(self) -> dict[str, int]:
        return {u: i for i, u in enumerate(self.utts)}


def missing_error(missing: Sequence[str], where: str, fix: str) -> ScoringError:
    listed = ", ".join(missing[:MAX_LISTED])
    more = f" and {len(missing) - MAX_LISTED} more" if len(missing) > MAX_LISTED else ""
    return ScoringError(f"{len(missing)} trial utterance(s) have no embedding in {where}: {listed}{more}; {fix}")


def trial_indices(trials: Trials, emb: Embeddings, where: str = "the embeddings",
                  fix: str = "extract them first (steps/extract.sh)") -> tuple[np.ndarray, np.ndarray]:
    """Row indices of each trial's enrolment and test utterances; any missing one is an error
    listing the missing ids."""
    idx = emb.index()
    missing = sorted(trials.utterances - idx.keys())
    if missing:
        raise missing_error(missing, where, fix)
    e = np.fromiter((idx[u] for u in trials.enroll), dtype=np.int64, count=len(trials))
    t = np.fromiter((idx[u] for u in trials.test), dtype=np.int64, count=len(trials))
    return e, t


def cosine_scores(means: np.ndarray, e: np.ndarray, t: np.ndarray, chunk: int = 16384) -> np.ndarray:
    """Mean crop-by-crop cosine for trials (e[k], t[k]) = dot of the mean normalised crops."""
    out = np.empty(len(e), dtype=np.float64)
    for a in range(0, len(e), chunk):
        b = min(a + chunk, len(e))
        out[a:b] = np.einsum("ij,ij->i", means[e[a:b]], means[t[a:b]])
    return out


def mean_distance(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mean Euclidean distance between the unit rows of x (B, Cx, D) and y (B, Cy, D): (B,)."""
    dots = np.einsum("bid,bjd->bij", x, y)
    return np.sqrt(np.maximum(2.0 - 2.0 * dots, 0.0)).mean(axis=(1, 2))


def euclidean_scores(crops: list[np.ndarray], e: np.ndarray, t: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Minus the mean Euclidean distance between normalised crops (the paper's code)."""
    out = np.empty(len(e), dtype=np.float64)
    counts = np.fromiter((len(c) for c in crops), dtype=np.int64, count=len(crops))
    # trials whose two sides have the same crop counts are stacked together
    groups: dict[tuple[int, int], list[int]] = {}
    for ce in np.unique(counts[e]):
        for ct in np.unique(counts[t]):
            sel = np.flatnonzero((counts[e] == ce) & (counts[t] == ct))
            if len(sel):
                groups[(int(ce), int(ct))] = sel
    for (ce, ct), sel in groups.items():
        stack_e = {int(u): crops[u] for u in np.unique(e[sel])}
        stack_t = {int(u): crops[u] for u in np.unique(t[sel])}
        for a in range(0, len(sel), chunk):
            part = sel[a:a + chunk]
            x = np.stack([stack_e[int(u)] for u in e[part]])
            y = np.stack([stack_t[int(u)] for u in t[part]])
            out[part] = -mean_distance(x, y)
    return out


def raw_scores(emb: Embeddings, e: np.ndarray, t: np.ndarray, score_type: str) -> np.ndarray:
    if score_type == "cosine":
        return cosine_scores(emb.means, e, t)
    if score_type == "euclidean":
        if any(len(c) == 0 for c in emb.crops):
            raise ValueError("euclidean scoring needs the crops: load with keep_crops=True")
        return euclidean_scores(emb.crops, e, t)
    raise ScoringError(f"unknown score type '{score_type}'; choose one of {', '.join(SCORE_TYPES)}")


def speaker_means(emb: Embeddings, utt2spk: dict[str, str]) -> tuple[list[str], np.ndarray]:
    """The speakers of ``emb`` (sorted) and, per speaker, the mean of its utterances' mean vectors."""
    speakers: dict[str, list[int]] = {}
    for i, u in enumerate(emb.utts):
        if u not in utt2spk:
            raise ScoringError(f"cohort utterance '{u}' has no speaker in utt2spk")
        speakers.setdefault(utt2spk[u], []).append(i)
    names = sorted(speakers)
    return names, np.stack([emb.means[speakers[s]].mean(axis=0) for s in names])


def cohort_vectors(emb: Embeddings, utt2spk: dict[str, str]) -> tuple[list[str], np.ndarray]:
    """One unit vector per cohort speaker: the normalised mean of its utterances' mean vectors."""
    names, vecs = speaker_means(emb, utt2spk)
    return names, normalize_rows(vecs)


def cohort_scores(emb: Embeddings, rows: np.ndarray, cohort: np.ndarray, score_type: str,
                  chunk: int = 2048) -> np.ndarray:
    """Scores of the utterances ``rows`` against every cohort speaker: (len(rows), S)."""
    if score_type == "cosine":
        return emb.means[rows].astype(np.float64) @ cohort.T.astype(np.float64)
    out = np.empty((len(rows), len(cohort)), dtype=np.float64)
    for a in range(0, len(rows), chunk):
        for k, u in enumerate(rows[a:a + chunk]):
            dots = emb.crops[u] @ cohort.T  # (C, S)
            out[a + k] = -np.sqrt(np.maximum(2.0 - 2.0 * dots, 0.0)).mean(axis=0)
    return out


def top_n_stats(scores: np.ndarray, top_n: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of the top-N scores of each row (N capped at the cohort size)."""
    n = min(top_n, scores.shape[1])
    top = np.partition(scores, scores.shape[1] - n, axis=1)[:, -n:]
    return top.mean(axis=1), np.maximum(top.std(axis=1), 1e-12)


def as_norm(scores: np.ndarray, mu_e: np.ndarray, sd_e: np.ndarray, mu_t: np.ndarray,
            sd_t: np.ndarray) -> np.ndarray:
    """Symmetric adaptive normalisation: mean of the enrolment- and test-side z-scores."""
    return 0.5 * ((scores - mu_e) / sd_e + (scores - mu_t) / sd_t)


def score_trials(emb: Embeddings, trials: Trials, score_type: str = "cosine",
                 cohort: np.ndarray | None = None, top_n: int = 300, where: str = "the embeddings") -> np.ndarray:
    """Scores of every trial in list order; AS-norm against ``cohort`` (S, D) when given."""
    e, t = trial_indices(trials, emb, where)
    s = raw_scores(emb, e, t, score_type)
    if cohort is None:
        return s
    rows, inv = np.unique(np.r_[e, t], return_inverse=True)
    mu, sd = top_n_stats(cohort_scores(emb, rows, cohort, score_type), top_n)
    ie, it = inv[:len(e)], inv[len(e):]
    return as_norm(s, mu[ie], sd[ie], mu[it], sd[it])


def crop_mean(mats: Iterable[np.ndarray]) -> np.ndarray:
    """The mean of every raw crop (row) of the matrices (float64)."""
    total, count = None, 0
    for mat in mats:
        mat = np.asarray(mat, dtype=np.float64).reshape(-1, np.shape(mat)[-1])
        total = mat.sum(axis=0) if total is None else total + mat.sum(axis=0)
        count += len(mat)
    if not count:
        raise ScoringError("no embeddings to take the mean of")
    return total / count


def read_embeddings(scp: str | os.PathLike, utts: Iterable[str] | None = None, keep_crops: bool = True,
                    center: np.ndarray | None = None, fix: str = "", subtract_mean: bool = False) -> Embeddings:
    """Load (a subset of) an embeddings.scp through :class:`spkid.data.arks.Table` (nothing in it
    run; every record's structure and values checked; ``fix`` ends its errors), ``center``
    subtracted from each raw crop when given; ``subtract_mean``: the mean raw crop of these
    embeddings is (the result's ``center``; the ark read once, its raw crops held until the mean
    is known). Utterances asked for but absent are an error listing them."""
    table = arks.Table(scp, fix)
    want = sorted(table.records) if utts is None else sorted(set(utts))
    missing = [u for u in want if u not in table.records]
    if missing:
        raise missing_error(missing, str(scp), "re-run steps/extract.sh for that data directory")
    # each ark read front to back (in offset order); the rows put back in the order of ``want``
    items = table.read(want, check_values=False)  # checked by from_raw, which has the crops' lengths
    if subtract_mean:
        items = list(items)
        center = crop_mean(mat for _, mat in items).astype(np.float32)
    emb = Embeddings.from_raw(items, keep_crops=keep_crops, center=center, check=table.check_lengths)
    if emb.utts == want:  # the usual case: merge_arks writes utterances in ark order
        return emb
    back = np.argsort(emb.utts)
    return Embeddings([emb.utts[i] for i in back], [emb.crops[i] for i in back], emb.means[back], emb.norms[back],
                      emb.center)


def write_scores(path: str | os.PathLike, trials: Trials, scores: np.ndarray) -> None:
    """``<enroll> <test> <score>`` per trial, in list order, atomically."""
    with atomic_write(path) as f:
        f.writelines(f"{e} {t} {s:.6f}\n" for e, t, s in zip(trials.enroll, trials.test, scores))


def read_scores(path: str | os.PathLike) -> tuple[list[str], list[str], np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise ScoringError(f"score file {path} not found: run steps/score.sh first")
    enroll, test, vals = [], [], []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 3:
                raise ScoringError(f"{path}:{lineno}: expected '<enroll> <test> <score>', got '{line.strip()}'")
            try:
                vals.append(float(parts[2]))
            except ValueError:
                raise ScoringError(f"{path}:{lineno}: score '{parts[2]}' is not a number") from None
            enroll.append(parts[0]), test.append(parts[1])
    return enroll, test, np.asarray(vals, dtype=np.float64)


def scores_for_trials(path: str | os.PathLike, trials: Trials, trials_path: str = "the trial list",
                      read: tuple[list[str], list[str], np.ndarray] | None = None) -> np.ndarray:
    """The scores of ``path`` in the order of ``trials``; a trial without a score (or a score
    file in another order with missing pairs) is an error naming the pairs. ``read``: what
    :func:`read_scores` gave for ``path``, when the caller has read it already."""
    enroll, test, vals = read if read is not None else read_scores(path)
    if enroll == trials.enroll and test == trials.test:
        return vals
    table = dict(zip(zip(enroll, test), vals))
    missing = [(e, t) for e, t in zip(trials.enroll, trials.test) if (e, t) not in table]
    if missing:
        listed = ", ".join(f"{e} {t}" for e, t in missing[:MAX_LISTED])
        raise ScoringError(f"{path}: {len(missing)} trial(s) of {trials_path} have no score: {listed}"
                           f"{' ...' if len(missing) > MAX_LISTED else ''}; score that list again (steps/score.sh)")
    return np.fromiter((table[k] for k in zip(trials.enroll, trials.test)), dtype=np.float64, count=len(trials))
