#!/usr/bin/env python3
"""Stage 6a: F1 and F2 score fusion (paper section 3.7).

    steps/fuse.py --config conf/fusion.conf --systems "HA4 EA4 EA5 HA6" data exp

Fused score = sum_i w_i s_i / sum_i w_i with w_i in {0..max-weight}; every combination is
searched (the all-zero vector and proportional duplicates skipped) for the lowest EER (F1)
and the lowest MinDCF (F2) on <data>/<tune-set>/trials/<tune-list>, exactly (see
spkid/eval/fusion.py). The chosen weights are applied to every trial list all systems were scored
on: <exp>/fusion/F1/scores/<set>/<list>.score (+ .metrics.json), and written down in
<exp>/fusion/F1/weights and search.json (same for F2).
"""

from __future__ import annotations

from pathlib import Path

from spkid.cli import run_main
from spkid.config import parse_options
from spkid.eval.fuse_systems import fuse_systems
from spkid.eval.fusion import FusionOptions
from spkid.eval.results import ReportOptions


def main(argv: list[str]) -> int:
    args = parse_options([FusionOptions, ReportOptions], argv, ["data", "exp"], prog="steps/fuse.py",
                         description=__doc__)
    return fuse_systems(Path(args.positionals["data"]), Path(args.positionals["exp"]), args[FusionOptions],
                        args[ReportOptions])


if __name__ == "__main__":
    run_main(main)
