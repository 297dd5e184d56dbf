import math

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from spkid.eval.calibration import (Calibration, CalibrationError, fit_logistic, prior_weights,
                                    quality_features)


def synthetic_trials(n=3000, seed=0):
    """Scores whose reliability depends on a quality measure (short trials are noisier)."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.2).astype(np.int8)
    dur = rng.uniform(0.5, 8, size=n)
    noise = rng.normal(size=n) * (2.0 / np.sqrt(dur))
    scores = np.where(labels == 1, 2.0, -1.0) + noise
    extra = rng.normal(size=(n, 2))
    return np.column_stack([scores, np.log(dur), extra]), labels


@pytest.mark.parametrize("C,prior", [(1e4, 0.05), (0.5, 0.5)])
def test_fit_is_the_minimum_of_the_weighted_objective(C, prior):
    """At (w, b) the gradient of sum_i c_i log(1 + exp(-y_i (w . x_i + b))) + ||w||^2 / (2 C),
    computed here by hand, vanishes (b unpenalised)."""
    x, labels = synthetic_trials()
    c = prior_weights(labels, prior)
    w, b = fit_logistic(x, labels, c, C=C)
    y = np.where(labels == 1, 1.0, -1.0)
    p = 1.0 / (1.0 + np.exp(y * (x @ w + b)))  # sigmoid of minus the margin
    np.testing.assert_allclose(-x.T @ (c * y * p) + w / C, 0.0, atol=1e-9)
    assert abs(-(c * y * p).sum()) < 1e-9
    assert w[0] > 0  # the score separates the classes


def test_prior_weights_balance_the_classes():
    labels = np.array([1, 0, 0, 0, 1, 0])
    w = prior_weights(labels, 0.05)
    assert w[labels == 1].sum() == pytest.approx(0.05)
    assert w[labels == 0].sum() == pytest.approx(0.95)
    with pytest.raises(CalibrationError, match="target and non-target"):
        prior_weights(np.zeros(4), 0.05)


def test_calibration_gives_llrs_and_uses_quality(tmp_path):
    x, labels = synthetic_trials()
    cal = Calibration.fit(x, labels, prior=0.05, trained_on="val")
    llr = cal.apply(x)
    # standardised-feature model equals sklearn on the standardised features, shifted by -logit(prior)
    z = (x - x.mean(0)) / x.std(0)
    ref = LogisticRegression(C=1e4, tol=1e-12, max_iter=10000).fit(z, labels, sample_weight=prior_weights(labels, 0.05))
    np.testing.assert_allclose(llr, ref.decision_function(z) - math.log(0.05 / 0.95), rtol=1e-4, atol=1e-4)
    # positive on average for targets, negative for non-targets
    assert np.mean(llr[labels == 1]) > 0 > np.mean(llr[labels == 0])
    # the score-by-duration interaction is not linear, but duration must enter with some weight
    assert abs(cal.weights[1]) > 1e-3
    cal.save(tmp_path / "qmf.json")
    again = Calibration.load(tmp_path / "qmf.json")
    np.testing.assert_allclose(again.apply(x), llr)
    assert again.trained_on == "val"


def test_constant_measure_gets_finite_weight():
    x, labels = synthetic_trials(500)
    x[:, 2] = 3.0
    cal = Calibration.fit(x, labels, prior=0.05)
    assert np.all(np.isfinite(cal.apply(x)))


def test_quality_features_symmetric_in_the_two_sides():
    log_dur = np.log(np.array([1.0, 2.0, 4.0]))
    norms = np.array([10.0, 12.0, 9.0])
    imp = np.array([0.1, 0.3, 0.2])
    s = np.array([0.5, -0.2])
    f1 = quality_features(s, np.array([0, 1]), np.array([2, 0]), log_dur, norms, imp)
    f2 = quality_features(s, np.array([2, 0]), np.array([0, 1]), log_dur, norms, imp)
    np.testing.assert_array_equal(f1, f2)
    np.testing.assert_allclose(f1[0], [0.5, 0.0, np.log(4), 9.0, 10.0, 0.1, 0.2])


def test_bad_inputs(tmp_path):
    x, labels = synthetic_trials(100)
    with pytest.raises(CalibrationError, match="between 0 and 1"):
        Calibration.fit(x, labels, prior=1.0)
    (tmp_path / "q.json").write_text("{")
    with pytest.raises(CalibrationError, match="q.json"):
        Calibration.load(tmp_path / "q.json")
