#!/usr/bin/env python3
"""Compare recordings with a trained system: same speaker or not.

    steps/verify.py exp/HA4 a.wav b.wav
    steps/verify.py --pairs=pairs.txt --scores-out=pairs.score exp/HA4

One pair: prints the score and the decision. A list of pairs (``a.wav b.wav`` per line; a
Kaldi trial line ``a b target|nontarget`` or a VoxCeleb line ``1|0 a b`` is read too): writes
``<a> <b> <score> same|different`` per pair to --scores-out, reports unusable files at the end
(exit status 1) after scoring the rest.

Recordings may be at any sample rate, stereo (mixed down) and in any format soundfile reads;
they are cropped and embedded as evaluation does. The decision threshold is the one saved when
the system was scored (steps/score.sh: EXP/scores/<set>/<list>.metrics.json), at the EER point
(--point=eer) or the stricter MinDCF point (--point=min_dcf) of the validation list
(--threshold-list, default voxsrc20_val); --threshold overrides it.
"""

from __future__ import annotations

from typing import Sequence

from spkid.cli import run_main
from spkid.config import parse_options
from spkid.eval.verify import VerifyOptions, verify


def main(argv: Sequence[str]) -> int:
    n_pos = 1 if any(a.startswith("--pairs") for a in argv) else 3
    args = parse_options([VerifyOptions], argv, prog="steps/verify.py", description=__doc__,
                         positional=["exp_dir"] if n_pos == 1 else ["exp_dir", "a_wav", "b_wav"])
    return verify(args[VerifyOptions], **args.positionals)


if __name__ == "__main__":
    run_main(main)
