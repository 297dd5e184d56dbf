"""Verification metrics from score and label arrays: EER, MinDCF and DET points (paper section 3.6).

Pure numpy functions; nothing here reads files. Labels are 1 for a target trial and 0 for a
non-target one; a higher score means "more likely the same speaker". Every function is exact
with tied scores: all trials with one score are accepted or rejected together, so every
operating point is one a real threshold can reach.

Operating points (:func:`error_rates`): the threshold t accepts a trial when score >= t. For
t = +inf (first point) nothing is accepted: FNR = 1, FPR = 0; then one point per distinct
score, in decreasing order, down to the lowest score where everything is accepted: FNR = 0,
FPR = 1. This is sklearn's ``roc_curve`` with ``drop_intermediate=False``.

EER definitions (``EER_METHODS``):
- ``roc``    the paper's code (voxceleb_trainer ``tuneThresholdfromScore``): sklearn's
             ``roc_curve`` (which drops collinear intermediate points), i = argmin |FNR - FPR|
             (first one), EER = max(FPR[i], FNR[i]). This is what the recipe prints.
- ``kaldi``  Kaldi's ``compute-eer``: walks the sorted target scores and stops at the first
             one above the non-target score at the same quantile; EER = fraction of targets
             below it. No interpolation.
- ``interp`` the linear interpolation of the two operating points around the crossing of
             FNR and FPR (as wespeaker's ``compute_eer``).

MinDCF (NIST detection cost; the paper uses P_target = 0.05, C_miss = C_fa = 1):
min over thresholds of C_miss * P_miss * P_target + C_fa * P_fa * (1 - P_target), divided by
min(C_miss * P_target, C_fa * (1 - P_target)), the cost of the better trivial system.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spkid.errors import SpkidError

EER_METHODS = ("roc", "kaldi", "interp")
EER_DESCRIPTIONS = {
    "roc": "EER at the ROC point where |FNR-FPR| is least, max(FNR, FPR) (the paper's code)",
    "kaldi": "EER as Kaldi's compute-eer (no interpolation)",
    "interp": "EER by linear interpolation between the two points around FNR=FPR",
}


class MetricsError(SpkidError):
    pass


def _check(scores, labels, where: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Scores and labels as arrays; ``where`` (the trial list) prefixes any error."""
    at = f"{where}: " if where else ""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel()
    if scores.shape != labels.shape:
        raise MetricsError(f"{at}{len(scores)} scores but {len(labels)} labels")
    if not np.all(np.isfinite(scores)):
        bad = np.flatnonzero(~np.isfinite(scores))
        raise MetricsError(f"{at}scores must be finite; the trials on line(s) "
                           f"{', '.join(str(i + 1) for i in bad[:5])} ({len(bad)} in all) are not")
    labels = labels.astype(bool)
    n_tar = int(labels.sum())
    if n_tar == 0 or n_tar == len(labels):
        raise MetricsError(f"{at}need both target and non-target trials, got {n_tar} targets "
                           f"and {len(labels) - n_tar} non-targets")
    return scores, labels


@dataclass
class ErrorRates:
    """Operating points, one per threshold, thresholds decreasing (see the module doc)."""

    thresholds: np.ndarray  # thresholds[0] = +inf
    fnr: np.ndarray         # P_miss: targets with score < threshold
    fpr: np.ndarray         # P_fa: non-targets with score >= threshold
    n_target: int
    n_nontarget: int

    def tp_fp(self) -> tuple[np.ndarray, np.ndarray]:
        """Accepted targets and non-targets per point (integer counts)."""
        tp = np.rint((1.0 - self.fnr) * self.n_target).astype(np.int64)
        fp = np.rint(self.fpr * self.n_nontarget).astype(np.int64)
        return tp, fp


def _sort_trials(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores in decreasing order and their labels: the one sort every figure of a list is read from
    (order inside a run of ties does not matter: runs are closed together)."""
    order = np.argsort(-scores)
    return scores[order], labels[order]


def _rates_of_sorted(s: np.ndarray, y: np.ndarray) -> ErrorRates:
    tps = np.cumsum(y)
    fps = np.cumsum(~y)
    # the last trial of each run of equal scores closes an operating point
    last = np.r_[s[1:] != s[:-1], True]
    tps = np.r_[0, tps[last]]
    fps = np.r_[0, fps[last]]
    n_tar, n_non = int(tps[-1]), int(fps[-1])
    return ErrorRates(np.r_[np.inf, s[last]], 1.0 - tps / n_tar, fps / n_non, n_tar, n_non)


def error_rates(scores, labels) -> ErrorRates:
    """FNR and FPR at every distinct threshold (O(n log n), tie-aware)."""
    return _rates_of_sorted(*_sort_trials(*_check(scores, labels)))


def _drop_intermediate(tps: np.ndarray, fps: np.ndarray) -> np.ndarray:
    """Indices sklearn's roc_curve keeps: the +inf point, then the corners of the ROC among the
    score thresholds (the first and last always kept), decided without the +inf point."""
    if len(tps) <= 3:
        return np.arange(len(tps))
    keep = np.logical_or(np.diff(fps[1:], 2), np.diff(tps[1:], 2))
    return np.r_[0, 1 + np.flatnonzero(np.r_[True, keep, True])]


def _eer_roc(r: ErrorRates) -> tuple[float, float]:
    tps, fps = r.tp_fp()
    idx = _drop_intermediate(tps, fps)
    fnr, fpr = r.fnr[idx], r.fpr[idx]
    i = int(np.argmin(np.abs(fnr - fpr)))
    return float(max(fpr[i], fnr[i])), float(r.thresholds[idx[i]])


def _eer_interp(r: ErrorRates) -> tuple[float, float]:
    d = r.fnr - r.fpr  # non-increasing along the points (threshold decreasing)
    below = np.flatnonzero(d <= 0)[0]  # first point with FNR <= FPR
    if d[below] == 0 or below == 0:
        return float(r.fnr[below]), float(r.thresholds[below])
    above = below - 1                  # last point with FNR > FPR
    a = d[above] / (d[above] - d[below])
    eer = r.fnr[above] + a * (r.fnr[below] - r.fnr[above])
    return float(eer), float(r.thresholds[below])


def _eer_kaldi(s: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """From the scores in decreasing order (``s``) and their labels."""
    tar = s[y][::-1]
    non = s[~y][::-1]
    p_size, n_size = len(tar), len(non)
    pos = np.arange(p_size - 1)
    non_pos = np.maximum(n_size - 1 - (n_size * pos * 1.0 / p_size).astype(np.int64), 0)
    hit = np.flatnonzero(non[non_pos] < tar[pos])
    p = int(hit[0]) if len(hit) else p_size - 1
    return p / p_size, float(tar[p])


def eer(scores, labels, method: str = "roc") -> float:
    """Equal error rate as a fraction (0.0123 = 1.23 %); ``method`` in EER_METHODS."""
    return eer_threshold(scores, labels, method)[0]


def eer_threshold(scores, labels, method: str = "roc") -> tuple[float, float]:
    """(EER, the threshold where it is reached)."""
    s, y = _sort_trials(*_check(scores, labels))
    return _eer_of_sorted(s, y, _rates_of_sorted(s, y), method)


def _eer_of_sorted(s: np.ndarray, y: np.ndarray, r: ErrorRates, method: str) -> tuple[float, float]:
    if method not in EER_METHODS:
        raise MetricsError(f"unknown EER method '{method}'; choose one of {', '.join(EER_METHODS)}")
    if method == "kaldi":
        return _eer_kaldi(s, y)
    return _eer_roc(r) if method == "roc" else _eer_interp(r)


def dcf_norm(p_target: float, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    if not 0.0 < p_target < 1.0:
        raise MetricsError(f"P_target must be in (0, 1), got {p_target}")
    if not (c_miss > 0 and c_fa > 0):  # a zero cost makes the normaliser 0 and MinDCF nan
        raise MetricsError(f"the MinDCF costs must be greater than 0, got C_miss={c_miss} C_fa={c_fa}")
    return min(c_miss * p_target, c_fa * (1.0 - p_target))


def min_dcf(scores, labels, p_target: float = 0.05, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """Normalised minimum detection cost over all thresholds (paper section 3.6, P_target 0.05)."""
    return min_dcf_threshold(scores, labels, p_target, c_miss, c_fa)[0]


def min_dcf_threshold(scores, labels, p_target: float = 0.05, c_miss: float = 1.0,
                      c_fa: float = 1.0) -> tuple[float, float]:
    return _min_dcf_of_rates(error_rates(scores, labels), p_target, c_miss, c_fa)


def _min_dcf_of_rates(r: ErrorRates, p_target: float, c_miss: float, c_fa: float) -> tuple[float, float]:
    norm = dcf_norm(p_target, c_miss, c_fa)
    cost = c_miss * p_target * r.fnr + c_fa * (1.0 - p_target) * r.fpr
    i = int(np.argmin(cost))
    return float(cost[i] / norm), float(r.thresholds[i])


@dataclass
class Metrics:
    eer: float          # fraction
    eer_threshold: float
    min_dcf: float
    min_dcf_threshold: float
    p_target: float
    c_miss: float
    c_fa: float
    eer_method: str
    n_target: int
    n_nontarget: int
    rates: ErrorRates | None = field(default=None, repr=False, compare=False)  # the DET points

    def line(self) -> str:
        """The one-line summary every tool prints: ``EER 1.234% MinDCF(p=0.05) 0.1234``."""
        return f"EER {100 * self.eer:.3f}% MinDCF(p={self.p_target:g}) {self.min_dcf:.4f}"

    def to_json(self) -> dict:
        return {
            "eer_percent": round(100 * self.eer, 6),
            "eer_method": self.eer_method,
            "eer_definition": EER_DESCRIPTIONS[self.eer_method],
            "eer_threshold": self.eer_threshold,
            "min_dcf": round(self.min_dcf, 6),
            "min_dcf_threshold": self.min_dcf_threshold,
            "p_target": self.p_target,
            "c_miss": self.c_miss,
            "c_fa": self.c_fa,
            "n_target": self.n_target,
            "n_nontarget": self.n_nontarget,
        }


def compute_metrics(scores, labels, p_target: float = 0.05, c_miss: float = 1.0, c_fa: float = 1.0,
                    eer_method: str = "roc", where: str = "") -> Metrics:
    """EER and MinDCF of one trial list, and its operating points (``rates``, a DET curve's), from
    one sort of its scores; ``where`` (its path) names the list in errors."""
    s, y = _sort_trials(*_check(scores, labels, where))
    r = _rates_of_sorted(s, y)
    e, et = _eer_of_sorted(s, y, r, eer_method)
    d, dt = _min_dcf_of_rates(r, p_target, c_miss, c_fa)
    return Metrics(e, et, d, dt, p_target, c_miss, c_fa, eer_method, r.n_target, r.n_nontarget, r)
