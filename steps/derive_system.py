#!/usr/bin/env python3
"""A system that differs from a trained one only in its back-end, as a system of its own.

    steps/derive_system.py --config conf/backend/plda.conf exp/EA4 exp/EA4_plda
    steps/derive_system.py --average-last=3 exp/EA4 exp/EA4_avg

Writes OUT_DIR/config.conf (BASE_DIR's options with the given ones changed) and OUT_DIR/final.pt,
so that stages 4-6, fusion and the results table take OUT_DIR like any trained system, and its
row in exp/RESULTS.md differs from BASE_DIR's in that one option:

- evaluation options (--mean-subtract, --score-type=plda, --qmf, --as-norm, ...): final.pt is a
  hard link of BASE_DIR's, and OUT_DIR/derived_from names BASE_DIR, so that stage 4 hard-links
  each set BASE_DIR has extracted (the training utterances too) instead of extracting it again;
- --average-last N: final.pt is the mean of BASE_DIR's last N epoch checkpoints (training keeps
  the newest 3 by default, --average-last N at training keeps N), so stage 4 extracts anew.

Options that change the network itself (trunk, loss, training) are refused: train a new system.
"""

from __future__ import annotations

from pathlib import Path

from spkid.cli import run_main
from spkid.config import parse_options
from spkid.console import step_log
from spkid.expdir import SystemDir
from spkid.options import SYSTEM_OPTIONS
from spkid.train.derive import BASE_CONF, derive_system


def main(argv: list[str]) -> int:
    # the base system's options first, then this command line
    args = parse_options(SYSTEM_OPTIONS, argv, ["base_dir", "out_dir"], prog="steps/derive_system.py",
                         description=__doc__, saved=BASE_CONF)
    out_dir = Path(args.positionals["out_dir"])
    with step_log(SystemDir(out_dir).step_log("derive_system"), argv):
        return derive_system(Path(args.positionals["base_dir"]), out_dir, args.of(SYSTEM_OPTIONS))


if __name__ == "__main__":
    run_main(main)
