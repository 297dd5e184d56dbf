#!/usr/bin/env python3
"""utt2spk (file or '-') -> spk2utt on stdout, as Kaldi's utils/utt2spk_to_spk2utt.pl."""
import sys

from spkid.cli import run_main
from spkid.data.datadir import read_utt2spk, utt2spk_to_spk2utt


def main(argv):
    if argv in (["-h"], ["--help"]):
        print(f"usage: utt2spk_to_spk2utt.py UTT2SPK > SPK2UTT\n\n{__doc__.strip()}")
        return 0
    if len(argv) != 1:
        print("usage: utt2spk_to_spk2utt.py UTT2SPK > SPK2UTT", file=sys.stderr)
        return 2
    for spk, utts in utt2spk_to_spk2utt(read_utt2spk(argv[0])).items():  # '-': stdin
        print(spk, " ".join(utts))
    return 0


if __name__ == "__main__":
    run_main(main)
