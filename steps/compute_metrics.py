#!/usr/bin/env python3
"""EER and MinDCF of a score file against its trial list.

    steps/compute_metrics.py --trials data/vox1/trials/vox1_O --scores exp/HA4/scores/vox1/vox1_O.score
    EER 0.880% MinDCF(p=0.05) 0.0790          (the paper's HA4 on Vox1-O, Table 2)

EER is the paper's definition unless --eer-method says otherwise: on the ROC, the point where
|FNR - FPR| is least, and the larger of the two there (voxceleb_trainer's tuneThresholdfromScore).
kaldi = Kaldi's compute-eer (no interpolation); interp = linear interpolation at FNR = FPR.
MinDCF = min over thresholds of C_miss*P_miss*P_target + C_fa*P_fa*(1-P_target), divided by
min(C_miss*P_target, C_fa*(1-P_target)). --json prints the same as one JSON object.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from spkid.eval import metrics
from spkid.cli import run_main
from spkid.config import option, parse_options
from spkid.data.datadir import read_trials
from spkid.eval.scoring import scores_for_trials


@dataclass
class MetricsOptions:
    trials: str = option("", "Kaldi trial list '<enroll> <test> target|nontarget'")
    scores: str = option("", "score file '<enroll> <test> <score>' (any order)")
    p_target: float = option(0.05, "MinDCF P_target (the paper's 0.05)")
    c_miss: float = option(1.0, "MinDCF cost of a miss")
    c_fa: float = option(1.0, "MinDCF cost of a false alarm")
    eer_method: str = option("roc", ("roc: the paper's code (argmin |FNR-FPR| on the ROC, max of the two); kaldi: compute-eer; "
                "interp: interpolated"), metrics.EER_METHODS)
    json: bool = option(False, "print one JSON object instead of the line (bare --json works)")


def main(argv: list[str]) -> int:
    argv = ["--json=true" if a == "--json" else a for a in argv]
    opts, _ = parse_options([MetricsOptions], argv, prog="compute_metrics.py", description=__doc__)
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


if __name__ == "__main__":
    run_main(main)
