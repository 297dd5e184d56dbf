#!/usr/bin/env python3
"""Stage 2: Kaldi data directories (wav.scp, utt2spk, spk2utt, utt2dur, trials/) from the
corpus layout stage 1 wrote, for the mini corpus and real VoxCeleb alike.

  local/prepare_data.py --corpus-dir corpus/mini --data data
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from spkid.cli import run_main  # noqa: E402
from spkid.config import parse_options  # noqa: E402
from spkid.corpora.prepare import PrepareOptions, prepare  # noqa: E402
from spkid.corpora.sets import format_summary  # noqa: E402


def main(argv: list[str]) -> int:
    opts = parse_options([PrepareOptions], argv, prog="local/prepare_data.py", description=__doc__)[PrepareOptions]
    summaries = prepare(opts)
    print(format_summary(summaries))
    print(f"prepare_data.py: {len(summaries)} data directories in {opts.data}, validated")
    return 0


if __name__ == "__main__":
    run_main(main)
