"""Weighted score fusion with an exhaustive weight grid search (paper section 3.7).

The fused score of a trial is ``sum_i w_i s_i / sum_i w_i`` over the systems' scores, with
integer weights ``w_i`` in {0, ..., max_weight} (the paper: 0..3). Every weight vector is
searched except the all-zero one and proportional duplicates (a vector whose weights share a
common divisor, e.g. (2, 0, 2) = (1, 0, 1), fuses to the same scores). The objective is
EER (F1 in the paper) or MinDCF (F2), both computed exactly by :mod:`spkid.eval.metrics`.

Exhaustive, exact and fast: 4^8 - 1 - 510 = 65,025 vectors for 8 systems would take ~20 ms
each with a full sort of 200,000 trials. Instead, branch and bound:

0. Each system's scores are normalised, z_i = (s_i - its threshold) / std(s_i), so that every
   fusion is (up to a scale and offset that change no metric) a convex combination of the z_i
   and the fused thresholds fall in one narrow window; trials whose z_i are all below (or
   all above) it are only counted, never fused.
1. For a batch of weight vectors at once, every remaining trial's fused score is mapped to one
   of B bins of the window (one matrix product, then ``bincount``), in parallel processes. Cumulative bin counts give FNR and FPR at
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
import multiprocessing as mp
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from spkid.eval import metrics
from spkid.config import option
from spkid.errors import SpkidError

OBJECTIVES = ("eer", "mindcf")


class FusionError(SpkidError):
    pass


@dataclass
class FusionOptions:
    """conf/fusion.conf: how stage 6 fuses systems and writes exp/RESULTS.md."""

    max_weight: int = option(3, "fusion weights are the integers 0..max-weight (the paper: 3)")
    tune_set: str = option("voxsrc20_val", "data dir (under the data root) whose trial list tunes the weights")
    tune_list: str = option("voxsrc20_val", "trial list (in <tune-set>/trials/) the weights are tuned on")
    p_target: float = option(0.05, "MinDCF prior for F2 and the results table (the paper's 0.05)")
    c_miss: float = option(1.0, "MinDCF cost of a miss")
    c_fa: float = option(1.0, "MinDCF cost of a false alarm")
    eer_method: str = option("roc", "EER definition for F1 and the table: roc (the paper's code), kaldi, interp",
                           metrics.EER_METHODS)
    search_bins: int = option(2048, "grid search: histogram bins of the lower-bound pass (speed only; the result is exact)")
    search_jobs: int = option(0, "grid search: processes for the lower-bound pass (0 = the CPU cores, at most 8)")


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


def _threshold(scores: np.ndarray, labels: np.ndarray, objective: str, p_target: float, c_miss: float,
               c_fa: float) -> float:
    """Where the objective is reached (the +inf 'reject all' threshold read as the top score)."""
    if objective == "eer":
        t = metrics.eer_threshold(scores, labels, "roc")[1]
    else:
        t = metrics.min_dcf_threshold(scores, labels, p_target, c_miss, c_fa)[1]
    return float(min(t, scores.max()))


def _normalise(scores: np.ndarray, labels: np.ndarray, grid: np.ndarray, objective: str, p_target: float,
               c_miss: float, c_fa: float, probes: int = 32,
               reach: float = 1.5) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Per-system affine normalisation and the window where the bounds need resolution.

    z_i = (s_i - threshold_i) / std(s_i). Any fusion is, up to a positive scale and an offset
    that change none of its metrics, the convex combination sum_i v_i z_i with
    v = w * std / sum(w * std), so one window and one set of bins serve every weight vector.
    The window must reach far enough that no threshold outside it can look better than the
    optimum: up to where the miss rate alone, and down to where the false-alarm rate alone,
    costs ``reach`` times the best objective of some probe fusions (the single systems and a
    few random weight vectors). A weight vector for which that fails still gets a valid bound,
    only a looser one, and is then evaluated exactly."""
    thr = np.array([_threshold(s, labels, objective, p_target, c_miss, c_fa) for s in scores])
    std = scores.std(axis=1)
    std = np.where(std > 0, std, 1.0)
    z = (scores - thr[:, None]) / std[:, None]
    rng = np.random.default_rng(0)
    chosen = np.r_[np.flatnonzero(grid.sum(axis=1) == grid.max(axis=1))[:len(scores)],
                   rng.choice(len(grid), min(probes, len(grid)), replace=False)]
    fused = []
    for w in grid[np.unique(chosen)]:
        g = (w * std / np.sum(w * std)) @ z
        fused.append((np.sort(g[labels]), np.sort(g[~labels]), objective_value(g, labels, objective, "roc",
                                                                              p_target, c_miss, c_fa)))
    best = min(v for _, _, v in fused)
    if objective == "eer":
        need_miss = need_fa = reach * best
    else:
        norm = metrics.dcf_norm(p_target, c_miss, c_fa)
        need_miss, need_fa = reach * best * norm / (c_miss * p_target), reach * best * norm / (c_fa * (1 - p_target))
    lo, hi = 0.0, 0.0
    for tar, non, _ in fused:
        k_miss = min(int(np.ceil(need_miss * len(tar))), len(tar) - 1)
        k_fa = min(int(np.ceil(need_fa * len(non))), len(non) - 1)
        hi = max(hi, tar[k_miss])                  # P_miss(hi) >= need_miss
        lo = min(lo, non[len(non) - 1 - k_fa])     # P_fa(lo) >= need_fa
    pad = 0.05 * (hi - lo) + 1e-6
    return z, std, lo - pad, hi + pad


_SHARED: dict = {}  # the lower-bound pass's read-only arrays, inherited by forked workers


def _bound_batch(weights: np.ndarray) -> np.ndarray:
    """Lower bounds for one batch of weight vectors (see lower_bounds)."""
    sh = _SHARED
    nb = sh["nb"]
    w = weights * sh["std"]  # fused = sum_i (w_i std_i) z_i / sum_i w_i + const
    k = len(w)
    row0 = (np.arange(k) * nb)[:, None].astype(np.float32)
    # position = row offset + 1 + (fused z - lo) * bins / (hi - lo), clipped to the row's bins
    v = np.hstack([w / w.sum(axis=1, keepdims=True) * sh["per_unit"], row0 + 1 - sh["lo"] * sh["per_unit"]])
    v = v.astype(np.float32)
    cum = []
    with threadpool_limits(1):  # small (k x 9) @ (9 x m) products: BLAS threads only contend
        for zm, n_below, n_above in sh["parts"]:
            pos = v @ zm
            np.clip(pos, row0, row0 + (nb - 1), out=pos)
            counts = np.bincount(pos.astype(np.int32).ravel(), minlength=k * nb).reshape(k, nb)
            counts[:, 0] += n_below
            counts[:, -1] += n_above
            cum.append(np.concatenate([np.zeros((k, 1), np.int64), np.cumsum(counts, axis=1)], axis=1))
    fnr_e = cum[0] / sh["n_tar"]          # targets below edge j
    fpr_e = 1.0 - cum[1] / sh["n_non"]    # non-targets at or above edge j
    inner = _cost(sh, fnr_e[:, sh["lo_edge"]], fpr_e[:, sh["hi_edge"]])[:, 1:-1].min(axis=1)
    s = sh["slack"]
    # thresholds above the window: P_miss >= max(targets below hi, targets whose max z_i < t),
    # P_fa >= non-targets whose min z_i >= t (g lies between a trial's min and max z_i)
    above = _cost(sh, np.maximum(fnr_e[:, nb - 1 - s, None], sh["up_miss"]), sh["up_fa"]).min(axis=1)
    below = _cost(sh, sh["down_miss"], np.maximum(fpr_e[:, 1 + s, None], sh["down_fa"])).min(axis=1)
    return np.minimum(inner, np.minimum(above, below))


def _cost(sh: dict, fnr: np.ndarray, fpr: np.ndarray) -> np.ndarray:
    if sh["objective"] == "eer":
        return np.maximum(fnr, fpr)
    a, b, norm = sh["dcf"]
    return (a * fnr + b * fpr) / norm


def _outer_bounds(z: np.ndarray, labels: np.ndarray, lo: float, hi: float, steps: int = 512):
    """For thresholds outside the window, on a grid of intervals [t_q, t_q+1): lower bounds of
    P_miss (targets whose largest z_i is below t_q) and P_fa (non-targets whose smallest z_i is
    at or above t_q+1), valid for every weight vector."""
    tar_max = np.sort(z[:, labels].max(axis=0))
    non_min = np.sort(z[:, ~labels].min(axis=0))
    n_tar, n_non = len(tar_max), len(non_min)
    top, bottom = z.max() + 1.0, z.min() - 1.0

    def grid(a, b):
        t = np.linspace(a, b, steps + 1)
        miss = np.searchsorted(tar_max, t[:-1], "left") / n_tar
        fa = (n_non - np.searchsorted(non_min, t[1:], "left")) / n_non
        return miss[None], fa[None]

    up_miss, up_fa = grid(hi, max(top, hi))
    down_miss, down_fa = grid(min(bottom, lo), lo)
    return up_miss, up_fa, down_miss, down_fa


def lower_bounds(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray, objective: str = "eer",
                 bins: int = 2048, slack: int = 2, p_target: float = 0.05, c_miss: float = 1.0,
                 c_fa: float = 1.0, batch: int = 64, jobs: int = 1) -> np.ndarray:
    """A lower bound of the objective (EER, any definition here, or MinDCF) of every weight
    vector (see the module doc), computed in ``jobs`` processes.

    Bins: 0 = below the window, 1..bins inside it, bins+1 = above it; a trial whose z_i all
    lie below (above) the window lies there for every weight vector and is only counted."""
    labels = np.asarray(labels).astype(bool)
    z, std, lo, hi = _normalise(scores, labels, weights, objective, p_target, c_miss, c_fa)
    below = z.max(axis=0) < lo
    above = z.min(axis=0) >= hi
    mid = ~(below | above)
    parts = []
    for side in (labels, ~labels):
        zm = z[:, mid & side]
        # a row of ones carries each weight vector's bias and its bincount offset
        zm = np.ascontiguousarray(np.vstack([zm, np.ones((1, zm.shape[1]))]), dtype=np.float32)
        parts.append((zm, int((below & side).sum()), int((above & side).sum())))
    nb = bins + 2
    j = np.arange(nb)
    _SHARED.clear()
    up_miss, up_fa, down_miss, down_fa = _outer_bounds(z, labels, lo, hi)
    _SHARED.update(parts=parts, std=std, slack=slack, up_miss=up_miss, up_fa=up_fa, down_miss=down_miss,
                   down_fa=down_fa, lo=lo, per_unit=bins / (hi - lo), nb=nb, objective=objective,
                   n_tar=int(labels.sum()), n_non=int((~labels).sum()),
                   lo_edge=np.maximum(j - slack, 0), hi_edge=np.minimum(j + 1 + slack, nb),
                   dcf=(c_miss * p_target, c_fa * (1.0 - p_target), metrics.dcf_norm(p_target, c_miss, c_fa)))
    batches = [weights[i:i + batch] for i in range(0, len(weights), batch)]
    try:
        if jobs > 1 and len(batches) > 1 and "fork" in mp.get_all_start_methods():
            with mp.get_context("fork").Pool(jobs) as pool:
                out = pool.map(_bound_batch, batches, chunksize=max(1, len(batches) // (8 * jobs)))
        else:
            out = [_bound_batch(b) for b in batches]
    finally:
        _SHARED.clear()
    return np.concatenate(out)


def grid_search(scores: np.ndarray, labels: np.ndarray, objectives: Sequence[str] = OBJECTIVES,
                max_weight: int = 3, eer_method: str = "roc", p_target: float = 0.05, c_miss: float = 1.0,
                c_fa: float = 1.0, bins: int = 2048, jobs: int = 0) -> dict[str, SearchResult]:
    """The best weight vector of the whole grid for each objective (exact; see the module doc).
    ``jobs``: processes for the bound pass (0 = the CPU cores, at most 8)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    for o in objectives:
        if o not in OBJECTIVES:
            raise FusionError(f"unknown fusion objective '{o}'; choose one of {', '.join(OBJECTIVES)}")
    jobs = jobs or min(os.cpu_count() or 1, 8)
    grid = weight_grid(scores.shape[0], max_weight)
    results = {}
    for objective in objectives:
        bound = lower_bounds(scores, labels, grid, objective, bins=bins, p_target=p_target, c_miss=c_miss,
                             c_fa=c_fa, jobs=jobs)
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
