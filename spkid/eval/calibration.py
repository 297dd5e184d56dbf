"""Quality-aware score calibration (QMF, ``--qmf=true``): logistic regression over the score
and quality measures of the two sides of a trial.

The calibrated score is a log-likelihood ratio, ``w . f + b - logit(prior)``, where ``f``
holds the trial's score and its quality measures (standardised with the training list's mean
and deviation) and ``(w, b)`` minimise the prior-weighted cross-entropy (Brummer's linear
calibration, as the BOSARIS toolkit and wespeaker's QMF fit it):

    sum_i c_i log(1 + exp(-y_i (w . f_i + b))) + ||w||^2 / (2 C),

with ``y = +1`` for targets and ``-1`` for non-targets, target weights ``prior / N_target`` and
non-target weights ``(1 - prior) / N_nontarget``, and no penalty on ``b``: sklearn's
``LogisticRegression(C=C)`` with these sample weights, by Newton's method (a handful of steps on a
few features).

Quality measures (Thienpondt et al. 2021; wespeaker's ``score_calibration``), each as the
smaller and the larger of the trial's two sides, so that the model is symmetric in them:
log duration, embedding norm (the mean raw crop norm before length normalisation) and the
AS-norm imposter mean (the mean of the top-N cohort scores).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spkid.errors import SpkidError
from spkid.fileio import atomic_write

FEATURES = ("score", "min_log_dur", "max_log_dur", "min_norm", "max_norm", "min_imposter", "max_imposter")


class CalibrationError(SpkidError):
    pass


def quality_features(scores: np.ndarray, e: np.ndarray, t: np.ndarray, log_dur: np.ndarray,
                     norms: np.ndarray, imposter: np.ndarray) -> np.ndarray:
    """(trials, len(FEATURES)): the score, then min and max over the two sides of each measure
    (per-utterance arrays indexed by ``e`` and ``t``)."""
    cols = [np.asarray(scores, np.float64)]
    for per_utt in (log_dur, norms, imposter):
        a, b = per_utt[e], per_utt[t]
        cols += [np.minimum(a, b), np.maximum(a, b)]
    return np.stack(cols, axis=1)


def prior_weights(labels: np.ndarray, prior: float) -> np.ndarray:
    labels = np.asarray(labels)
    n_tar, n_non = int((labels == 1).sum()), int((labels == 0).sum())
    if n_tar == 0 or n_non == 0:
        raise CalibrationError(f"calibration needs target and non-target trials, got {n_tar} and {n_non}")
    return np.where(labels == 1, prior / n_tar, (1 - prior) / n_non)


def fit_logistic(x: np.ndarray, labels: np.ndarray, weights: np.ndarray, C: float = 1e4) -> tuple[np.ndarray, float]:
    """(w, b) minimising sum_i c_i log(1 + exp(-y_i (w . x_i + b))) + ||w||^2 / (2 C): sklearn's
    LogisticRegression (C * the weighted loss + ||w||^2 / 2 has the same minimum) by Newton steps."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=C, solver="newton-cholesky", tol=1e-10, max_iter=100)
    model.fit(np.asarray(x, np.float64), np.asarray(labels) == 1, sample_weight=np.asarray(weights, np.float64))
    return model.coef_[0].copy(), float(model.intercept_[0])


@dataclass
class Calibration:
    """A fitted QMF model: ``llr = w . (f - mean) / std + b - logit(prior)``."""

    features: list[str]
    mean: np.ndarray
    std: np.ndarray
    weights: np.ndarray
    bias: float
    prior: float
    trained_on: str = ""

    @classmethod
    def fit(cls, feats: np.ndarray, labels: np.ndarray, prior: float, trained_on: str = "",
            C: float = 1e4) -> "Calibration":
        if not 0.0 < prior < 1.0:
            raise CalibrationError(f"the calibration prior must lie strictly between 0 and 1, got {prior}")
        feats = np.asarray(feats, np.float64)
        mean, std = feats.mean(axis=0), feats.std(axis=0)
        std = np.where(std > 1e-12, std, 1.0)  # a constant measure (one duration) gets weight 0, not NaN
        w, b = fit_logistic((feats - mean) / std, labels, prior_weights(labels, prior), C)
        return cls(list(FEATURES[:feats.shape[1]]), mean, std, w, b, prior, trained_on)

    def apply(self, feats: np.ndarray) -> np.ndarray:
        feats = np.asarray(feats, np.float64)
        if feats.shape[1] != len(self.weights):
            raise CalibrationError(f"calibration of {len(self.weights)} features applied to {feats.shape[1]}")
        return (feats - self.mean) / self.std @ self.weights + self.bias - math.log(self.prior / (1 - self.prior))

    def save(self, path: str | os.PathLike) -> None:
        with atomic_write(path) as f:
            json.dump({"features": self.features, "mean": self.mean.tolist(), "std": self.std.tolist(),
                       "weights": self.weights.tolist(), "bias": self.bias, "prior": self.prior,
                       "trained_on": self.trained_on}, f, indent=1)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Calibration":
        path = Path(path)
        try:
            d = json.loads(path.read_text())
            return cls(d["features"], np.asarray(d["mean"]), np.asarray(d["std"]), np.asarray(d["weights"]),
                       float(d["bias"]), float(d["prior"]), d.get("trained_on", ""))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CalibrationError(f"{path}: not a calibration written by spkid ({e}); remove it and score again") from None
