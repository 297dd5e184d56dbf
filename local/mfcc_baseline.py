#!/usr/bin/env python3
"""A floor for the mini corpus: scores every data/<set>/trials/<list> with the cosine of
per-utterance MFCC mean and std, and prints EER and MinDCF (P_target = 0.05) per list.

  local/mfcc_baseline.py --data data [--scores-dir exp/mfcc_baseline]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from spkid.cli import run_main  # noqa: E402
from spkid.config import parse_options  # noqa: E402
from spkid.eval.baseline import BaselineOptions, run_baseline  # noqa: E402


def main(argv: list[str]) -> int:
    opts = parse_options([BaselineOptions], argv, prog="local/mfcc_baseline.py", description=__doc__)[BaselineOptions]
    return run_baseline(opts)


if __name__ == "__main__":
    run_main(main)
