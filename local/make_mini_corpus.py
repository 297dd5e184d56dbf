#!/usr/bin/env python3
"""Stage 1 (--corpus mini): generate the embedded mini corpus, a SUBSTITUTE for VoxCeleb.

VoxCeleb-shaped speakers (text-to-speech voices), sessions (channels) and trial lists, plus
MUSAN-shaped noise/music/babble and RIRS_NOISES-shaped simulated rooms, in the real corpora's
layouts so that stage 2 prepares it with the code that prepares VoxCeleb.

  local/make_mini_corpus.py --out corpus/mini --nj 2 --seed 1 --extra-voices false
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from spkid.cli import run_main  # noqa: E402
from spkid.config import parse_options  # noqa: E402
from spkid.corpora.mini.corpus import MiniCorpusOptions, generate  # noqa: E402


def main(argv: list[str]) -> int:
    opts = parse_options([MiniCorpusOptions], argv, prog="local/make_mini_corpus.py", description=__doc__)[MiniCorpusOptions]
    s = generate(opts)
    trials = ", ".join(f"{k} {v}" for k, v in s["trials"].items())
    print(f"make_mini_corpus.py: {opts.out}: {s['speakers']} speakers, {s['utterances']} utterances "
          f"({s['hours']:.2f} h), {s['rirs']} RIRs; trials: {trials}; {s['megabytes']:.0f} MB "
          f"in {s['seconds']:.1f} s (SUBSTITUTE corpus, not VoxCeleb)")
    return 0


if __name__ == "__main__":
    run_main(main)
