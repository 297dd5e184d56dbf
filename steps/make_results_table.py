#!/usr/bin/env python3
"""Stage 6b: exp/RESULTS.md, shaped like the paper's Table 2, and a DET plot per trial list.

    steps/make_results_table.py --config conf/fusion.conf --systems "HA4 EA4" data exp

Rows: each system (Config, #Params from the model its config.conf builds, Loss, Aug., BN),
then the fusions F1 and F2 written by steps/fuse.py (when present). Columns: EER % and MinDCF
per trial list found under <data>/*/trials/, in Table 2's order; all figures recomputed from
the score files with one EER definition and P_target (conf/fusion.conf). DET plots:
<exp>/results_det/<list>.png.
"""

from __future__ import annotations

from pathlib import Path

from spkid.cli import run_main
from spkid.config import parse_options
from spkid.eval.fusion import FusionOptions
from spkid.eval.results import ReportOptions, write_results_table


def main(argv: list[str]) -> int:
    args = parse_options([FusionOptions, ReportOptions], argv, ["data", "exp"], prog="steps/make_results_table.py",
                         description=__doc__)
    return write_results_table(Path(args.positionals["data"]), Path(args.positionals["exp"]), args[FusionOptions],
                               args[ReportOptions])


if __name__ == "__main__":
    run_main(main)
