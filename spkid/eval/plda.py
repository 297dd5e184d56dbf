"""LDA and two-covariance PLDA scoring of per-utterance vectors (``--score-type=plda``).

The back-end Kaldi's x-vector recipe uses (``ivector-compute-lda``, ``ivector-compute-plda``,
``ivector-plda-scoring``), trained on the training speakers' vectors:

1. centre on the training mean and project with LDA to ``lda_dim`` dimensions: the leading
   generalised eigenvectors of the between- and within-speaker scatter, ``S_b v = l S_w v``;
2. length-normalise to ``sqrt(lda_dim)`` (Garcia-Romero and Espy-Wilson 2011, as Kaldi's
   ``ivector-normalize-length``) and centre again on the projected training mean;
3. the two-covariance model ``y = mu + s + e``, speaker ``s ~ N(0, B)``, residual ``e ~ N(0, W)``,
   fitted by EM (Sizov, Lee and Kinnunen 2014, "Unifying probabilistic linear discriminant
   analysis variants"; the model Kaldi's ``PldaEstimator`` fits);
4. the score of a trial is, after the normalisation below, the log-likelihood ratio of "same speaker" over "different speakers"
   for one enrolment and one test vector:
   ``log N([e; t]; 0, [[B+W, B], [B, B+W]]) - log N(e; 0, B+W) - log N(t; 0, B+W)``.

Scoring diagonalises ``W`` and ``B`` together (``A W A^T = I``, ``A B A^T = diag(psi)``); the
LLR is then a sum over independent dimensions, ``c + sum_k a_k (e_k^2 + t_k^2) + b_k e_k t_k``
with ``b = psi / (2 psi + 1)`` and ``a = 1 / (2 (psi + 1)) - (psi + 1) / (2 (2 psi + 1))``,
one dot product per trial.

Each scored vector is length-normalised once more inside the PLDA space, as Kaldi's
``ivector-plda-scoring`` does by default (``--normalize-length=true``): scaled so that
``y^T (B + W)^-1 y`` equals the dimension. On the mini corpus this second normalisation lowered
EA4's PLDA EER on the O/E/H-like lists (2.94/4.55/8.99 % -> 2.52/3.78/3.72 %; Spearman
correlation of the two score lists 0.95-0.96) and raised it on the shifted validation list.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.linalg

from spkid.errors import SpkidError
from spkid.fileio import atomic_write


class PldaError(SpkidError):
    pass


def _speaker_groups(labels: list[str]) -> tuple[list[str], np.ndarray]:
    names, inv = np.unique(np.asarray(labels), return_inverse=True)
    return list(names), inv


def scatter_matrices(x: np.ndarray, labels: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, within-speaker covariance, between-speaker covariance) of the rows of ``x``.

    Within: the average over utterances of ``(x - mu_spk)(x - mu_spk)^T``; between: the average
    over utterances of ``(mu_spk - mu)(mu_spk - mu)^T`` (each speaker weighted by its count, as
    Kaldi's LDA does)."""
    x = np.asarray(x, dtype=np.float64)
    _, inv = _speaker_groups(labels)
    n_spk = inv.max() + 1
    counts = np.bincount(inv, minlength=n_spk).astype(np.float64)
    mu = x.mean(axis=0)
    spk_mean = np.zeros((n_spk, x.shape[1]))
    np.add.at(spk_mean, inv, x)
    spk_mean /= counts[:, None]
    r = x - spk_mean[inv]
    within = r.T @ r / len(x)
    d = (spk_mean - mu) * np.sqrt(counts)[:, None]
    between = d.T @ d / len(x)
    return mu, within, between


def lda(x: np.ndarray, labels: list[str], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean, projection (dim, D)): the ``dim`` directions of largest between/within variance ratio.

    ``dim`` is capped at the embedding size and at the number of speakers minus one (the rank
    of the between-speaker scatter)."""
    mu, within, between = scatter_matrices(x, labels)
    n_spk = len(set(labels))
    if n_spk < 2:
        raise PldaError(f"LDA and PLDA need at least two training speakers, got {n_spk}")
    dim = min(dim, x.shape[1], n_spk - 1)
    ridge = 1e-6 * np.trace(within) / len(within)  # a singular within-scatter (D > N) stays solvable
    vals, vecs = scipy.linalg.eigh(between, within + ridge * np.eye(len(within)))
    order = np.argsort(vals)[::-1][:dim]
    return mu, vecs[:, order].T


def length_norm(y: np.ndarray) -> np.ndarray:
    """Rows scaled to length sqrt(dim) (Kaldi's ivector-normalize-length)."""
    return y * (np.sqrt(y.shape[1]) / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12))


def fit_two_covariance(y: np.ndarray, labels: list[str], iters: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mu, B, W) of the two-covariance model fitted to the rows of ``y`` by EM.

    Initialised from the scatter matrices; each iteration computes every speaker's posterior
    ``N(m_s, L_s^-1)`` of its latent vector, ``L_s = B^-1 + n_s W^-1``,
    ``m_s = L_s^-1 W^-1 sum_i (y_i - mu)``, then ``B = mean_s (m_s m_s^T + L_s^-1)`` and
    ``W = mean_i ((y_i - mu - m_s)(y_i - mu - m_s)^T + L_s^-1)``. Speakers with the same
    count share one inverse."""
    y = np.asarray(y, dtype=np.float64)
    mu, W, B = scatter_matrices(y, labels)
    _, inv = _speaker_groups(labels)
    n_spk, dim = inv.max() + 1, y.shape[1]
    counts = np.bincount(inv, minlength=n_spk)
    sums = np.zeros((n_spk, dim))
    np.add.at(sums, inv, y - mu)
    eye = np.eye(dim)
    for _ in range(iters):
        B_inv, W_inv = np.linalg.inv(B), np.linalg.inv(W)
        means = np.empty((n_spk, dim))
        cov_b = np.zeros((dim, dim))
        cov_w = np.zeros((dim, dim))
        for n in np.unique(counts):
            sel = np.flatnonzero(counts == n)
            post_cov = np.linalg.inv(B_inv + n * W_inv)
            means[sel] = sums[sel] @ (W_inv @ post_cov)  # post_cov and W_inv symmetric
            cov_b += len(sel) * post_cov
            cov_w += len(sel) * n * post_cov
        r = y - mu - means[inv]
        B = (means.T @ means + cov_b) / n_spk
        W = (r.T @ r + cov_w) / len(y)
        B, W = (B + B.T) / 2 + 1e-10 * eye, (W + W.T) / 2 + 1e-10 * eye
    return mu, B, W


def two_gaussian_llr_terms(B: np.ndarray, W: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(A, a, b, c): with ``u = A (y - mu)``, LLR(e, t) = c + sum a (u_e^2 + u_t^2) + sum b u_e u_t."""
    # W^-1/2 whitens the residual; the eigenvectors of the whitened B diagonalise both
    w_vals, w_vecs = np.linalg.eigh(W)
    whiten = (w_vecs / np.sqrt(w_vals)).T
    psi, vecs = np.linalg.eigh(whiten @ B @ whiten.T)
    psi = np.maximum(psi, 0.0)
    A = vecs.T @ whiten
    a = 0.5 / (psi + 1) - 0.5 * (psi + 1) / (2 * psi + 1)
    b = psi / (2 * psi + 1)
    c = 0.5 * float(np.sum(np.log((psi + 1) ** 2 / (2 * psi + 1))))
    return A, a, b, c


@dataclass
class Plda:
    """LDA then two-covariance PLDA; ``transform`` maps stored vectors to the scoring space."""

    lda_mean: np.ndarray      # (D,)
    lda: np.ndarray           # (d, D)
    mu: np.ndarray            # (d,) PLDA mean, after length normalisation
    between: np.ndarray       # (d, d) B
    within: np.ndarray        # (d, d) W

    @classmethod
    def train(cls, x: np.ndarray, labels: list[str], lda_dim: int, iters: int = 10) -> "Plda":
        if len(x) != len(labels):
            raise PldaError(f"{len(x)} training vectors but {len(labels)} speaker labels")
        lda_mean, proj = lda(x, labels, lda_dim)
        y = length_norm((np.asarray(x, np.float64) - lda_mean) @ proj.T)
        mu, B, W = fit_two_covariance(y, labels, iters)
        return cls(lda_mean, proj, mu, B, W)

    def project(self, x: np.ndarray) -> np.ndarray:
        """Centred, LDA-projected, length-normalised vectors: the space B and W live in."""
        return length_norm((np.asarray(x, np.float64) - self.lda_mean) @ self.lda.T) - self.mu

    def prepare(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-utterance terms: (u * sqrt(b), sum a u^2) so a trial costs one dot product.

        ``u`` is length-normalised in the PLDA space as Kaldi's ``ivector-plda-scoring
        --normalize-length=true`` (its default) does for one utterance: scaled so that
        ``u^T (B + W)^-1 u`` (in the diagonal space, ``sum u_k^2 / (psi_k + 1)``) equals the
        dimension."""
        A, a, b, _ = two_gaussian_llr_terms(self.between, self.within)
        u = self.project(x) @ A.T
        psi = b / np.maximum(1 - 2 * b, 1e-12)  # b = psi / (2 psi + 1)
        u *= np.sqrt(u.shape[1] / np.maximum((u * u / (psi + 1)).sum(axis=1, keepdims=True), 1e-12))
        return u * np.sqrt(b), (a * u * u).sum(axis=1)

    def score(self, x: np.ndarray, e: np.ndarray, t: np.ndarray, chunk: int = 16384) -> np.ndarray:
        """LLR of each trial (rows ``e[k]``, ``t[k]`` of ``x``)."""
        c = two_gaussian_llr_terms(self.between, self.within)[3]
        v, q = self.prepare(x)
        out = np.empty(len(e), dtype=np.float64)
        for lo in range(0, len(e), chunk):
            hi = min(lo + chunk, len(e))
            out[lo:hi] = c + q[e[lo:hi]] + q[t[lo:hi]] + np.einsum("ij,ij->i", v[e[lo:hi]], v[t[lo:hi]])
        return out

    def cross(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """LLR of every row of ``x`` against every row of ``y``: (len(x), len(y))."""
        c = two_gaussian_llr_terms(self.between, self.within)[3]
        (vx, qx), (vy, qy) = self.prepare(x), self.prepare(y)
        return c + qx[:, None] + qy[None, :] + vx @ vy.T

    def save(self, path: str | os.PathLike) -> None:
        with atomic_write(path, "wb") as f:
            np.savez(f, lda_mean=self.lda_mean, lda=self.lda, mu=self.mu, between=self.between, within=self.within)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Plda":
        path = Path(path)
        try:
            with np.load(path) as z:
                return cls(z["lda_mean"], z["lda"], z["mu"], z["between"], z["within"])
        except (OSError, KeyError, ValueError) as e:
            raise PldaError(f"{path}: not a PLDA model written by spkid ({e}); remove it and score again") from None
