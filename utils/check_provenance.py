#!/usr/bin/env python3
"""Whether stage outputs still agree with the record of what made them (provenance.json).

    utils/check_provenance.py exp/EA4/embeddings/vox1 [DIR ...]

For each DIR holding a provenance.json: every input (final.pt, wav.scp, arks, trial lists,
score files) and output still has its recorded sha256, and config.conf still sets the options
it was made with. Exit 0 when all agree (a DIR without a record has nothing to check), 3 when
one does not (each problem on stderr, naming the file), 1 on other errors. run.sh asks it before
skipping a finished stage, and redoes the stage when the answer is 3.
"""
import argparse
import sys

from spkid.cli import run_main
from spkid.expdir import Record

STALE = 3


def main(argv) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dirs", nargs="+")
    stale = False
    for d in p.parse_args(argv).dirs:
        record = Record.load(d)
        for problem in record.problems() if record is not None else []:
            print(f"{d}: {problem}", file=sys.stderr)
            stale = True
    return STALE if stale else 0


if __name__ == "__main__":
    run_main(main)
