#!/usr/bin/env python3
"""Check Kaldi data directories by the rules of Kaldi's utils/validate_data_dir.sh --no-feats
--no-text and what utils/fix_data_dir.sh needs to leave them unchanged (sorted unique lists,
utt2spk sorted by speaker too, segments keyed like utt2spk and naming wav.scp's recordings,
utt2dur/reco2dur matching), then audio present and 16 kHz mono, every trial utterance known.
Prints each problem with its file and line and the fix.

    utils/validate_data_dir.py [--no-audio | --check-audio] [--no-trials] DATA_DIR [DATA_DIR ...]
"""
import argparse
import sys

from spkid.cli import run_main
from spkid.data.validate import validate_data_dir


def main(argv) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--no-audio", action="store_true", help="skip the check that audio files exist")
    p.add_argument("--check-audio", action="store_true",
                   help="also decode every recording and refuse what stage 4 would (a WAV cut short of its header's "
                        "length, NaN/inf samples, under 0.5 s, silent); reads all the audio")
    p.add_argument("--no-trials", action="store_true", help="skip trial-list checks")
    p.add_argument("dirs", nargs="+")
    a = p.parse_args(argv)
    bad = 0
    for d in a.dirs:
        problems = validate_data_dir(d, check_audio=not a.no_audio, check_trials=not a.no_trials,
                                     check_samples=a.check_audio)
        for msg in problems:
            print(f"validate_data_dir: {msg}", file=sys.stderr)
        if problems:
            bad += 1
        else:
            print(f"validate_data_dir: {d}: OK")
    return 1 if bad else 0


if __name__ == "__main__":
    run_main(main)
