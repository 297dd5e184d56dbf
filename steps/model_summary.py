#!/usr/bin/env python3
"""Print a model's layers with their output shapes for a short input, then its size.

    steps/model_summary.py --config conf/HA4.conf [--config conf/mini.conf] [--channels=...]

The last line is ``trunk parameters: N`` (the embedding network without the loss head and the
embedding BN, as paper section 2.1 counts them).
"""

from __future__ import annotations

from typing import Sequence

from spkid.cli import run_main
from spkid.config import parse_options
from spkid.models.summary import SummaryOptions, print_summary
from spkid.options import SYSTEM_OPTIONS, ModelOptions


def main(argv: Sequence[str]) -> int:
    # a system conf (--config conf/HA4.conf) sets more than the network: all of it is accepted
    args = parse_options([*SYSTEM_OPTIONS, SummaryOptions], argv, prog="steps/model_summary.py", description=__doc__)
    return print_summary(args[ModelOptions], args[SummaryOptions])


if __name__ == "__main__":
    run_main(main)
