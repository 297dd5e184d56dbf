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

from spkid.cli import run_main
from spkid.config import parse_options
from spkid.eval.score_files import MetricsOptions, print_metrics


def main(argv: list[str]) -> int:
    return print_metrics(parse_options([MetricsOptions], argv, prog="steps/compute_metrics.py",
                                       description=__doc__)[MetricsOptions])


if __name__ == "__main__":
    run_main(main)
