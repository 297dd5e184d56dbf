"""Weighted score fusion with an exhaustive weight grid search (paper section 3.7).

The fused score of a trial is ``sum_i w_i s_i / sum_i w_i`` over the systems' scores, with
integer weights ``w_i`` in {0, ..., max_weight} (the paper: 0..3). Every weight vector is
searched except the all-zero one and proportional duplicates (a vector whose weights share a
common divisor, e.g. (2, 0, 2) = (1, 0, 1), fuses to the same scores). The objective is
EER (F1 in the paper) or MinDCF (F2), both computed exactly by :mod:`spkid.metrics`.

Exhaustive, exact and fast: 4^8 - 1 - 510 = 65,025 vectors for 8 systems would take ~20 ms
each with a full sort of 200,000 trials. Instead, branch and bound:

1. For a batch of weight vectors at once, every trial's fused score is mapped to one of B
   bins (one matrix product, then ``bincount``). Cumulative bin counts give FNR and FPR at
   the bin edges, and for any threshold inside bin j, FNR >= FNR(edge j - s) and
   FPR >= FPR(edge j + 1 + s) (s = slack bins absorbing float32 rounding at the edges).
   So ``min_j max(FNR(e_{j-s}), FPR(e_{j+1+s}))`` is a lower bound of every EER definition
   here (each is an FNR or FPR value at, or interpolated between, operating points bracketing
   the FNR = FPR crossing) and ``min_j C_miss P_t FNR(e_{j-s}) + C_fa (1-P_t) FPR(e_{j+1+s})``
   a lower bound of the detection cost.
2. The vectors are evaluated exactly in increasing order of their bound, stopping when the
   bound exceeds the best exact value found: the result is the true optimum of the full
   grid, ties broken by grid order (``itertools.product`` order of the weights).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from spkid import metrics
from spkid.errors import SpkidError

OBJECTIVES = ("eer", "mindcf")


class FusionError(SpkidError):
    pass


def _opt(default, help: str, choices=None):
    meta = {"help": help}
    if choices is not None:
        meta["choices"] = tuple(choices)
    return field(default=default, metadata=meta)


@dataclass
class FusionOptions:
    """conf/fusion.conf: how stage 6 fuses systems and writes exp/RESULTS.md."""

    max_weight: int = _opt(3, "fusion weights are the integers 0..max-weight (the paper: 3)")
    tune_set: str = _opt("voxsrc20_val", "data dir (under the data root) whose trial list tunes the weights")
    tune_list: str = _opt("voxsrc20_val", "trial list (in <tune-set>/trials/) the weights are tuned on")
    p_target: float = _opt(0.05, "MinDCF prior for F2 and the results table (the paper's 0.05)")
    c_miss: float = _opt(1.0, "MinDCF cost of a miss")
    c_fa: float = _opt(1.0, "MinDCF cost of a false alarm")
    eer_method: str = _opt("roc", "EER definition for F1 and the table: roc (the paper's code), kaldi, interp",
                           metrics.EER_METHODS)
    search_bins: int = _opt(2048, "grid search: histogram bins of the lower-bound pass (speed only; the result is exact)")


def weight_grid(n_systems: int, max_weight: int = 3) -> np.ndarray:
    """Every weight vector in {0..max_weight}^n in product order, without the all-zero vector
    and without proportional duplicates (vectors whose non-zero weights have a gcd > 1)."""
    if n_systems < 1:
        raise FusionError("fusion needs at least one system")
    if max_weight < 1:
        raise FusionError(f"max_weight must be >= 1, got {max_weight}")
    grid = np.array(list(itertools.product(range(max_weight + 1), repeat=n_systems)), dtype=np.int64)
    grid = grid[grid.sum(axis=1) > 0]
    return grid[np.gcd.reduce(grid, axis=1) == 1]


def fuse(scores: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """``sum_i w_i s_i / sum_i w_i``; ``scores`` is (systems, trials)."""
    w = np.asarray(weights, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[0] != len(w):
        raise FusionError(f"{len(w)} weights for a score matrix of shape {scores.shape}")
    if w.sum() <= 0 or np.any(w < 0):
        raise FusionError(f"fusion weights must be non-negative and not all zero, got {w.tolist()}")
    return (w @ scores) / w.sum()


def objective_value(scores: np.ndarray, labels: np.ndarray, objective: str, eer_method: str = "roc",
                    p_target: float = 0.05, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    if objective == "eer":
        return metrics.eer(scores, labels, eer_method)
    if objective == "mindcf":
        return metrics.min_dcf(scores, labels, p_target, c_miss, c_fa)
    raise FusionError(f"unknown fusion objective '{objective}'; choose one of {', '.join(OBJECTIVES)}")


@dataclass
class SearchResult:
    objective: str
    weights: np.ndarray   # int, one per system
    value: float          # exact objective of the chosen weights
    n_combinations: int   # size of the searched grid
    n_exact: int          # combinations evaluated exactly (the rest were pruned by their bound)


def _window(scores: np.ndarray, labels: np.ndarray, p_target: float, c_miss: float, c_fa: float,
            margin: float) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Per-system affine normalisation and the window of normalised scores where the EER and
    MinDCF thresholds of fused systems are expected.

    z_i = (s_i - EER threshold_i) / std(s_i). Any fusion is, up to a positive scale and an
    offset that do not change its metrics, a convex combination of the z_i, so one window and
    one set of bins serve every weight vector; a trial whose z_i are all below (above) the
    window is below (above) it for every weight vector and need not be fused at all."""
    thr_eer = np.array([metrics.eer_threshold(s, labels)[1] for s in scores])
    thr_dcf = np.array([metrics.min_dcf_threshold(s, labels, p_target, c_miss, c_fa)[1] for s in scores])
    # the +inf threshold (reject everything) sits just above the highest score
    top = scores.max(axis=1)
    thr_eer, thr_dcf = np.minimum(thr_eer, top), np.minimum(thr_dcf, top)
    std = scores.std(axis=1)
    std = np.where(std > 0, std, 1.0)
    z_dcf = (thr_dcf - thr_eer) / std
    lo, hi = min(0.0, z_dcf.min()), max(0.0, z_dcf.max())
    pad = margin * max(hi - lo, 0.05)
    return thr_eer, std, lo - pad, hi + pad


def lower_bounds(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray, bins: int = 2048,
                 slack: int = 2, p_target: float = 0.05, c_miss: float = 1.0, c_fa: float = 1.0,
                 margin: float = 1.0, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Lower bounds of the EER and of the MinDCF of every weight vector (see the module doc).

    Bins: 0 = below the window, 1..bins inside it, bins+1 = above it."""
    labels = np.asarray(labels).astype(bool)
    center, std, lo, hi = _window(scores, labels, p_target, c_miss, c_fa, margin)
    z = (scores - center[:, None]) / std[:, None]
    below = z.max(axis=0) < lo
    above = z.min(axis=0) >= hi
    mid = ~(below | above)
    nb = bins + 2
    parts = []
    for side in (labels, ~labels):
        zm = z[:, mid & side]
        # a row of ones carries each weight vector's bias and its bincount offset
        zm = np.ascontiguousarray(np.vstack([zm, np.ones((1, zm.shape[1]))]), dtype=np.float32)
        parts.append((zm, int((below & side).sum()), int((above & side).sum())))
    n_tar, n_non = int(labels.sum()), int((~labels).sum())
    j = np.arange(nb)
    lo_edge = np.maximum(j - slack, 0)
    hi_edge = np.minimum(j + 1 + slack, nb)
    a, b = c_miss * p_target, c_fa * (1.0 - p_target)
    norm = metrics.dcf_norm(p_target, c_miss, c_fa)
    per_unit = bins / (hi - lo)
    eer_lb = np.empty(len(weights))
    dcf_lb = np.empty(len(weights))
    with threadpool_limits(1):  # small (64 x 9) @ (9 x m) products: BLAS threads only contend
        for start in range(0, len(weights), batch):
            w = weights[start:start + batch] * std  # fused = sum_i (w_i std_i) z_i / sum_i w_i + const
            k = len(w)
            row0 = (np.arange(k) * nb)[:, None].astype(np.float32)
            # position = row offset + 1 + (fused z - lo) * bins / (hi - lo), clipped to the row's bins
            v = np.hstack([w / w.sum(axis=1, keepdims=True) * per_unit, row0 + 1 - lo * per_unit]).astype(np.float32)
            cum = []
            for zm, n_below, n_above in parts:
                pos = v @ zm
                np.clip(pos, row0, row0 + (nb - 1), out=pos)
                counts = np.bincount(pos.astype(np.int32).ravel(), minlength=k * nb).reshape(k, nb)
                counts[:, 0] += n_below
                counts[:, -1] += n_above
                cum.append(np.concatenate([np.zeros((k, 1), np.int64), np.cumsum(counts, axis=1)], axis=1))
            fnr_e = cum[0] / n_tar           # targets below edge j
            fpr_e = 1.0 - cum[1] / n_non     # non-targets at or above edge j
            fnr_lo, fpr_hi = fnr_e[:, lo_edge], fpr_e[:, hi_edge]
            eer_lb[start:start + k] = np.maximum(fnr_lo, fpr_hi).min(axis=1)
            dcf_lb[start:start + k] = (a * fnr_lo + b * fpr_hi).min(axis=1) / norm
    return eer_lb, dcf_lb


def grid_search(scores: np.ndarray, labels: np.ndarray, objectives: Sequence[str] = OBJECTIVES,
                max_weight: int = 3, eer_method: str = "roc", p_target: float = 0.05, c_miss: float = 1.0,
                c_fa: float = 1.0, bins: int = 2048) -> dict[str, SearchResult]:
    """The best weight vector of the whole grid for each objective (exact; see the module doc)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    for o in objectives:
        if o not in OBJECTIVES:
            raise FusionError(f"unknown fusion objective '{o}'; choose one of {', '.join(OBJECTIVES)}")
    grid = weight_grid(scores.shape[0], max_weight)
    eer_lb, dcf_lb = lower_bounds(scores, labels, grid, bins=bins, p_target=p_target, c_miss=c_miss, c_fa=c_fa)
    results = {}
    for objective in objectives:
        bound = eer_lb if objective == "eer" else dcf_lb
        order = np.argsort(bound, kind="stable")
        best_value, best_index, n_exact = np.inf, -1, 0
        for i in order:
            if bound[i] > best_value + 1e-12:
                break
            value = objective_value(fuse(scores, grid[i]), labels, objective, eer_method, p_target, c_miss, c_fa)
            n_exact += 1
            if value < best_value or (value == best_value and i < best_index):
                best_value, best_index = value, int(i)
        results[objective] = SearchResult(objective, grid[best_index], best_value, len(grid), n_exact)
    return results


def check_aligned(lists: Sequence[tuple[str, list[str], list[str]]]) -> None:
    """Scores of several systems on one list must name the same trials in the same order."""
    name0, enroll0, test0 = lists[0]
    for name, enroll, test in lists[1:]:
        if len(enroll) != len(enroll0):
            raise FusionError(f"{name} has {len(enroll)} trials but {name0} has {len(enroll0)}: "
                              f"score both systems on the same trial list")
        if enroll != enroll0 or test != test0:
            k = next(i for i, (a, b, c, d) in enumerate(zip(enroll, test, enroll0, test0)) if (a, b) != (c, d))
            raise FusionError(f"{name} line {k + 1} is '{enroll[k]} {test[k]}' but {name0} line {k + 1} is "
                              f"'{enroll0[k]} {test0[k]}': fusion needs scores of the same trials in the same order")
