#!/usr/bin/env python3
"""Check Kaldi data directories by the rules of Kaldi's utils/validate_data_dir.sh --no-feats
--no-text and what utils/fix_data_dir.sh needs to leave them unchanged (sorted unique lists,
utt2spk sorted by speaker too, segments keyed like utt2spk and naming wav.scp's recordings,
utt2dur/reco2dur matching), then audio present and 16 kHz mono, every trial utterance known.
Prints each problem with its file and line and the fix.

    utils/validate_data_dir.py [--no-audio | --check-audio] [--no-trials] [--augmentation] DATA_DIR [DATA_DIR ...]

A true/false option alone means true (--check-audio is --check-audio=true).
"""
import sys
from dataclasses import dataclass

from spkid.cli import run_main
from spkid.config import option, parse_options
from spkid.data.validate import validate_data_dir


@dataclass
class ValidateOptions:
    no_audio: bool = option(False, "skip the check that audio files exist")
    check_audio: bool = option(False, "also decode every recording and refuse what stage 4 would (a WAV cut short of "
                                      "its header's length, NaN/inf samples, under 0.5 s, silent); reads all the audio")
    no_trials: bool = option(False, "skip trial-list checks")
    augmentation: bool = option(False, "an augmentation set (MUSAN, RIRs): its clips are mixed into crops, never "
                                       "embedded, so no minimum length")


def main(argv) -> int:
    args = parse_options([ValidateOptions], argv, ["data_dir..."], prog="utils/validate_data_dir.py",
                         description=__doc__)
    opts = args[ValidateOptions]
    bad = 0
    for d in args.positionals["data_dir"]:
        problems = validate_data_dir(d, check_audio=not opts.no_audio, check_trials=not opts.no_trials,
                                     check_samples=opts.check_audio, augmentation=opts.augmentation)
        for msg in problems:
            print(f"validate_data_dir: {msg}", file=sys.stderr)
        if problems:
            bad += 1
        else:
            print(f"validate_data_dir: {d}: OK")
    return 1 if bad else 0


if __name__ == "__main__":
    run_main(main)
