#!/usr/bin/env python3
"""DET curves of one or many systems on one trial list, in one PNG (like the paper's Figure 2).

    steps/plot_det.py --trials data/vox1/trials/vox1_O --out det.png \
        --scores exp/HA4/scores/vox1/vox1_O.score,exp/EA4/scores/vox1/vox1_O.score --names HA4,EA4

Normal-deviate axes; each system's EER point (definition: --eer-method) is marked with a dot.
"""

from __future__ import annotations

from spkid.cli import run_main
from spkid.config import parse_options
from spkid.eval.score_files import DetOptions, plot_score_files


def main(argv: list[str]) -> int:
    return plot_score_files(parse_options([DetOptions], argv, prog="steps/plot_det.py", description=__doc__)[DetOptions])


if __name__ == "__main__":
    run_main(main)
