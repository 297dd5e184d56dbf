"""EER, MinDCF and DET curves of score files against a trial list, for scores made anywhere
(``steps/compute_metrics.py``, ``steps/plot_det.py``); the figures are :mod:`spkid.eval.metrics`'s."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from spkid.config import option
from spkid.data.datadir import read_trials
from spkid.errors import SpkidError
from spkid.eval import metrics
from spkid.eval.det import DetCurve, plot_det
from spkid.eval.scoring import scores_for_trials


@dataclass
class MetricsOptions:
    trials: str = option("", "Kaldi trial list '<enroll> <test> target|nontarget'")
    scores: str = option("", "score file '<enroll> <test> <score>' (any order)")
    p_target: float = option(0.05, "MinDCF P_target (the paper's 0.05)")
    c_miss: float = option(1.0, "MinDCF cost of a miss (> 0: MinDCF is normalised by min(C_miss*P_target, C_fa*(1-P_target)))", above=0.0)
    c_fa: float = option(1.0, "MinDCF cost of a false alarm (> 0, as --c-miss)", above=0.0)
    eer_method: str = option("roc", ("roc: the paper's code (argmin |FNR-FPR| on the ROC, max of the two); kaldi: compute-eer; "
                "interp: interpolated"), metrics.EER_METHODS)
    json: bool = option(False, "print one JSON object instead of the line (bare --json works)")


def print_metrics(opts: MetricsOptions) -> int:
    """Print the EER/MinDCF line of ``opts.scores`` against ``opts.trials`` (or one JSON object)."""
    if not opts.trials or not opts.scores:
        raise metrics.MetricsError("both --trials and --scores are required (see --help)")
    trials = read_trials(opts.trials)
    scores = scores_for_trials(opts.scores, trials, opts.trials)
    m = metrics.compute_metrics(scores, trials.labels, opts.p_target, opts.c_miss, opts.c_fa, opts.eer_method,
                                opts.trials)
    if opts.json:
        print(json.dumps({**m.to_json(), "trials": opts.trials, "scores": opts.scores, "line": m.line()}))
    else:
        print(m.line())
    return 0


@dataclass
class DetOptions:
    trials: str = option("", "Kaldi trial list")
    scores: str = option("", "comma-separated score files, one per system")
    names: str = option("", "comma-separated legend names (default: the score files' parent dirs)")
    out: str = option("det.png", "output PNG")
    title: str = option("", "plot title (default: the trial list's name)")
    eer_method: str = option("roc", "EER definition of the marked points", metrics.EER_METHODS)


def plot_score_files(opts: DetOptions) -> int:
    """One PNG with the DET curve of each of ``opts.scores`` against ``opts.trials``."""
    files = [f for f in opts.scores.split(",") if f]
    if not opts.trials or not files:
        raise SpkidError("--trials and --scores are required (see --help)")
    names = [n for n in opts.names.split(",") if n] or [Path(f).parent.parent.parent.name or f for f in files]
    if len(names) != len(files):
        raise SpkidError(f"--names has {len(names)} names for {len(files)} score files")
    trials = read_trials(opts.trials)
    curves = [DetCurve.from_scores(n, scores_for_trials(f, trials, opts.trials), trials.labels, opts.eer_method)
              for n, f in zip(names, files)]
    plot_det(curves, opts.out, opts.title or Path(opts.trials).name, opts.eer_method)
    print(f"plot_det.py: {len(curves)} DET curve(s) -> {opts.out}")
    return 0
