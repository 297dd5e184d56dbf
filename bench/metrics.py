#!/usr/bin/env python3
"""EER, MinDCF and DET points of one trial list: one sort of the scores against a sort per figure,
and the DET points from that sort against sklearn.metrics.det_curve.

    python bench/metrics.py [--trials 1000000] [--repeats 3]

Times, on the same synthetic scores (30% targets, ties from rounding to 6 decimals as score
files hold them), the best of --repeats runs of:

1. a sort per figure: EER, MinDCF, the DET points and the EER marked on the plot, each from its
   own sort (``metrics.eer_threshold``, ``min_dcf_threshold``, ``error_rates``, ``eer``);
2. ``metrics.compute_metrics``: all of it from one sort (what stage 5 and 6 run per list);
3. (2) plus ``sklearn.metrics.det_curve`` for the plot's points, checked to be a subset of ours.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import det_curve

from spkid.eval import metrics


def best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def sort_per_figure(s: np.ndarray, y: np.ndarray) -> None:
    metrics.eer_threshold(s, y)
    metrics.min_dcf_threshold(s, y)
    metrics.error_rates(s, y)
    metrics.eer(s, y)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    y = rng.random(args.trials) < 0.3
    s = np.round(rng.normal(size=args.trials) + 2.0 * y, 6)

    m = metrics.compute_metrics(s, y)
    fpr, fnr, _ = det_curve(y, s)
    n_tar, n_non = m.rates.n_target, m.rates.n_nontarget
    sk_counts = set(zip(np.rint(fpr * n_non).astype(int), np.rint(fnr * n_tar).astype(int)))
    our_counts = set(zip(np.rint(m.rates.fpr * n_non).astype(int), np.rint(m.rates.fnr * n_tar).astype(int)))
    assert sk_counts <= our_counts, "sklearn's DET points are not among ours"

    t_each = best_of(args.repeats, lambda: sort_per_figure(s, y))
    t_once = best_of(args.repeats, lambda: metrics.compute_metrics(s, y))
    t_sk = best_of(args.repeats, lambda: (metrics.compute_metrics(s, y), det_curve(y, s)))
    print(f"{args.trials} trials ({int(y.sum())} targets), best of {args.repeats}; {m.line()}")
    print(f"  a sort per figure (EER, MinDCF, DET points, EER on the plot): {t_each:7.3f} s")
    print(f"  one sort (compute_metrics, DET points included):              {t_once:7.3f} s "
          f"({t_each / t_once:.2f}x faster)")
    print(f"  one sort + sklearn det_curve for the plot's points:           {t_sk:7.3f} s "
          f"(ours {t_sk / t_once:.2f}x faster; its {len(fpr)} points are a subset of our {len(m.rates.fpr)})")


if __name__ == "__main__":
    main()
