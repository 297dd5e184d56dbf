import numpy as np
import pytest
from scipy.stats import multivariate_normal

from spkid.eval.plda import Plda, PldaError, fit_two_covariance, lda, scatter_matrices


def random_spd(rng, d, scale=1.0):
    m = rng.normal(size=(d, d))
    return scale * (m @ m.T / d + 0.3 * np.eye(d))


def direct_llr(e, t, mu, B, W):
    """log N([e;t]; [mu;mu], [[B+W, B], [B, B+W]]) - log N(e; mu, B+W) - log N(t; mu, B+W)."""
    T = B + W
    joint = np.block([[T, B], [B, T]])
    same = multivariate_normal(np.r_[mu, mu], joint).logpdf(np.r_[e, t])
    diff = multivariate_normal(mu, T).logpdf(e) + multivariate_normal(mu, T).logpdf(t)
    return same - diff


def test_llr_equals_direct_two_gaussian_computation():
    """The diagonalised closed form equals the LLR of the two joint Gaussians, full matrices."""
    rng = np.random.default_rng(0)
    d = 4
    B, W = random_spd(rng, d, 2.0), random_spd(rng, d, 0.5)
    mu = rng.normal(size=d)
    # identity LDA and no length normalisation effect: give the model its matrices directly
    model = Plda(np.zeros(d), np.eye(d), mu, B, W)
    x = rng.normal(size=(6, d)) * 2
    scale = np.sqrt(d) / np.linalg.norm(x, axis=1, keepdims=True)
    e, t = np.array([0, 1, 2, 3, 4, 0]), np.array([1, 2, 3, 4, 5, 0])
    got = model.score(x, e, t)
    y = x * scale - mu  # what project() gives: length-normalised rows, centred
    # Kaldi's --normalize-length: each vector scaled so that y^T (B+W)^-1 y = dim
    y = y * np.sqrt(d / np.einsum("ij,jk,ik->i", y, np.linalg.inv(B + W), y))[:, None]
    want = [direct_llr(y[i], y[j], np.zeros(d), B, W) for i, j in zip(e, t)]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_em_recovers_generating_covariances():
    rng = np.random.default_rng(1)
    d, n_spk, per = 3, 3000, 8
    B, W = random_spd(rng, d, 1.5), random_spd(rng, d, 0.4)
    s = rng.multivariate_normal(np.zeros(d), B, size=n_spk)
    y = np.repeat(s, per, axis=0) + rng.multivariate_normal(np.zeros(d), W, size=n_spk * per) + 0.7
    labels = [f"spk{i:05d}" for i in np.repeat(np.arange(n_spk), per)]
    mu, B_hat, W_hat = fit_two_covariance(y, labels, iters=20)
    np.testing.assert_allclose(mu, y.mean(axis=0), atol=1e-12)
    np.testing.assert_allclose(W_hat, W, atol=0.03)
    np.testing.assert_allclose(B_hat, B, atol=0.12)


def test_em_with_unequal_counts_increases_likelihood():
    """EM never lowers the marginal likelihood of the data (counts 2..6 per speaker)."""
    rng = np.random.default_rng(2)
    d = 3
    B, W = random_spd(rng, d), random_spd(rng, d, 0.5)
    rows, labels = [], []
    for k in range(60):
        n = 2 + k % 5
        s = rng.multivariate_normal(np.zeros(d), B)
        rows.append(s + rng.multivariate_normal(np.zeros(d), W, size=n))
        labels += [f"s{k:03d}"] * n
    y = np.vstack(rows)

    def loglik(mu, B, W):
        total, start = 0.0, 0
        for r in rows:
            n = len(r)
            cov = np.kron(np.ones((n, n)), B) + np.kron(np.eye(n), W)
            total += multivariate_normal(np.tile(mu, n), cov).logpdf(r.ravel())
            start += n
        return total

    lls = [loglik(*fit_two_covariance(y, labels, iters=i)) for i in (0, 1, 3, 10)]
    assert all(b >= a - 1e-6 for a, b in zip(lls, lls[1:])), lls


def test_lda_solves_generalised_eigenproblem_and_caps_dim():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 5))
    labels = [f"s{i % 4}" for i in range(60)]
    x[:, 0] += np.array([ord(l[-1]) for l in labels]) * 2.0  # speakers differ along axis 0
    mu, proj = lda(x, labels, dim=10)
    assert proj.shape == (3, 5)  # 4 speakers: at most 3 directions
    _, Sw, Sb = scatter_matrices(x, labels)
    for v in proj:
        lam = (v @ Sb @ v) / (v @ Sw @ v)
        np.testing.assert_allclose(Sb @ v, lam * (Sw @ v), rtol=1e-4, atol=1e-5 * np.abs(Sb).max())  # the ridge
    ratios = [(v @ Sb @ v) / (v @ Sw @ v) for v in proj]
    assert ratios == sorted(ratios, reverse=True)
    assert abs(proj[0, 0]) / np.linalg.norm(proj[0]) > 0.9  # the discriminant axis first


def test_trained_plda_separates_speakers_better_than_chance(tmp_path):
    rng = np.random.default_rng(4)
    d, n_spk, per = 8, 50, 6
    centres = rng.normal(size=(n_spk, d)) * 2
    x = np.repeat(centres, per, axis=0) + rng.normal(size=(n_spk * per, d))
    labels = [f"s{i:03d}" for i in np.repeat(np.arange(n_spk), per)]
    model = Plda.train(x, labels, lda_dim=6)
    assert model.lda.shape == (6, d)
    e = np.arange(0, len(x) - 1, 2)
    t = e + 1
    same = np.repeat(np.arange(n_spk), per)[e] == np.repeat(np.arange(n_spk), per)[t]
    s = model.score(x, e, t)
    cross = model.score(x, e, (t + per) % len(x))
    assert s[same].mean() > 0 > cross.mean()
    model.save(tmp_path / "plda.npz")
    again = Plda.load(tmp_path / "plda.npz")
    np.testing.assert_array_equal(again.score(x, e, t), s)


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(PldaError, match="two training speakers"):
        Plda.train(np.ones((4, 3)), ["a"] * 4, 2)
    bad = tmp_path / "plda.npz"
    bad.write_bytes(b"junk")
    with pytest.raises(PldaError, match="plda.npz"):
        Plda.load(bad)
