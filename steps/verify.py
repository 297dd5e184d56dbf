#!/usr/bin/env python3
"""Compare recordings with a trained system: same speaker or not.

    steps/verify.py exp/H_ASP a.wav b.wav
    steps/verify.py --pairs=pairs.txt --scores-out=pairs.score exp/H_ASP

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

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from spkid.cli import run_main
from spkid.config import option, parse_options
from spkid.data.datadir import Trials, list_lines
from spkid.errors import SpkidError
from spkid.eval.extract import load_system
from spkid.fileio import atomic_write, check_output_file
from spkid.data.inputs import Failures
from spkid.eval.backend import describe, needs_training_set
from spkid.eval.scoring import raw_scores, trial_indices
from spkid.eval.threshold import DEFAULT_LIST, OPERATING_POINTS, Threshold, load_threshold
from spkid.device import pick_device
from spkid.eval.usage import embed_recordings, normalised_means


@dataclass
class VerifyOptions:
    pairs: str = option("", "file of pairs 'a.wav b.wav' per line (then give only EXP)")
    scores_out: str = option("", "with --pairs: where to write '<a> <b> <score> same|different'")
    point: str = option("eer", "saved operating point to decide at", OPERATING_POINTS)
    threshold_list: str = option(DEFAULT_LIST, "trial list whose saved threshold to use")
    threshold: str = option("", "decision threshold; empty = the one saved when --threshold-list was scored")
    device: str = option("auto", "auto (CUDA when present), cpu, cuda, cuda:N")
    quiet: bool = option(False, "no progress bar")


def read_pairs(path: str) -> list[tuple[str, str]]:
    p = Path(path)
    if not p.is_file():
        raise SpkidError(f"pairs file {p} not found")
    pairs = []
    for lineno, line in list_lines(p):
        parts = line.split()
        if parts[0].startswith("#"):
            continue
        if len(parts) == 3 and parts[0] in ("0", "1"):
            parts = parts[1:]
        elif len(parts) == 3 and parts[2] in ("target", "nontarget"):
            parts = parts[:2]
        if len(parts) != 2:
            raise SpkidError(f"{p}:{lineno}: expected 'a.wav b.wav', got '{line}'")
        pairs.append((parts[0], parts[1]))
    if not pairs:
        raise SpkidError(f"pairs file {p} holds no pairs")
    return pairs


def decision_threshold(opts: VerifyOptions, exp_dir: str, score_type: str, as_norm: bool) -> Threshold:
    if opts.threshold:
        try:
            value = float(opts.threshold)
        except ValueError:
            raise SpkidError(f"--threshold takes a number, not '{opts.threshold}'") from None
        return Threshold(value, "given", "the command line", score_type, False)
    t = load_threshold(exp_dir, opts.point, opts.threshold_list)
    if t.as_norm or as_norm:
        raise SpkidError(f"{exp_dir} is scored with a back-end trained on the training set (AS-norm, mean "
                         f"subtraction, PLDA or QMF); verification scores without it, so pass --threshold=VALUE "
                         f"tuned on raw {score_type if score_type != 'plda' else 'cosine'} scores")
    if t.score_type != score_type:
        raise SpkidError(f"the {t.trial_list} threshold of {exp_dir} was saved for {t.score_type} scores but the "
                         f"system now scores with {score_type}; re-run steps/score.sh")
    return t


def main(argv: Sequence[str]) -> int:
    n_pos = 1 if any(a.startswith("--pairs") for a in argv) else 3
    opts, positionals = parse_options([VerifyOptions], argv, prog="steps/verify.py", description=__doc__,
                                      positional=["exp_dir"] if n_pos == 1 else ["exp_dir", "a.wav", "b.wav"])
    exp_dir = positionals[0]
    if opts.pairs and not opts.scores_out:
        raise SpkidError("--pairs needs --scores-out=FILE")
    if opts.scores_out:
        check_output_file(opts.scores_out, "--scores-out")
    pairs = read_pairs(opts.pairs) if opts.pairs else [(positionals[1], positionals[2])]
    system = load_system(exp_dir, pick_device(opts.device))
    threshold = decision_threshold(opts, exp_dir, system.eval_opts.score_type, needs_training_set(system.eval_opts))

    files = sorted({f for pair in pairs for f in pair})
    failures, notes = Failures(), []
    crops = dict(embed_recordings(system, ((f, f) for f in files), failures, notes,
                                  quiet=opts.quiet or not opts.pairs))
    if needs_training_set(system.eval_opts):
        notes.append(f"{exp_dir} scores with {describe(system.eval_opts)} in stage 5; these scores are raw "
                     f"{'euclidean' if system.eval_opts.score_type == 'euclidean' else 'cosine'} ones")
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if not opts.pairs and failures:
        raise SpkidError(failures.items[0][1])
    usable = [(a, b) for a, b in pairs if a in crops and b in crops]
    scores = np.empty(0)
    if usable:
        trials = Trials([a for a, _ in usable], [b for _, b in usable], np.ones(len(usable), np.int8))
        emb = normalised_means(crops)
        # a back-end's threshold was refused above: scores are the raw cosine (or euclidean) ones
        score_type = "euclidean" if system.eval_opts.score_type == "euclidean" else "cosine"
        scores = raw_scores(emb, *trial_indices(trials, emb), score_type)
    same = scores >= threshold.value
    if not opts.pairs:
        print(f"{scores[0]:.4f} {'same' if same[0] else 'different'} ({threshold.describe()})")
        return 0
    with atomic_write(opts.scores_out) as f:
        f.writelines(f"{a} {b} {s:.6f} {'same' if d else 'different'}\n" for (a, b), s, d in zip(usable, scores, same))
    print(f"scored {len(usable)} of {len(pairs)} pairs into {opts.scores_out}: {int(same.sum())} same, "
          f"{int((~same).sum())} different ({threshold.describe()})")
    if failures:
        print(failures.report() + f"\n{len(pairs) - len(usable)} pair(s) not scored", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    run_main(main)
