#!/usr/bin/env python3
"""Train one system (paper section 3.4): one process per device, started by steps/train.sh.

    steps/train.sh --gpus 1 --config conf/HA4.conf --train-data data/vox2_dev --aug-data data exp/HA4

Writes exp/SYS/config.conf (the resolved system options, read back by extraction and
scoring), exp/SYS/checkpoints/epoch_NNNN.pt every epoch, exp/SYS/final.pt at the end and
exp/SYS/log/train.log. Re-running the same command resumes from the newest readable
checkpoint; a run whose options differ from the saved config.conf is refused. SIGTERM (a
scheduler's pre-emption or time limit) stops every rank after the same step, saving it as
exp/SYS/checkpoints/interrupted.pt, from which the same command resumes bit for bit; Ctrl-C
stops at once (the newest epoch checkpoint stays).
"""

from __future__ import annotations

from typing import Sequence

from spkid.cli import run_main
from spkid.config import parse_options
from spkid.options import SYSTEM_OPTIONS
from spkid.train.system import RunOptions, train_system


def main(argv: Sequence[str]) -> int:
    args = parse_options([*SYSTEM_OPTIONS, RunOptions], argv, positional=["exp_dir"], prog="steps/train.py",
                         description=__doc__)
    return train_system(*args.of(SYSTEM_OPTIONS), args[RunOptions], args.positionals["exp_dir"],
                        notes=args.replaced)


if __name__ == "__main__":
    run_main(main)
