"""Same speaker or not: recordings compared with a trained system (``steps/verify.py``).

Each recording is embedded as evaluation embeds a test utterance (:mod:`spkid.eval.usage`),
scored as stage 5 scores a trial (the system's score type, without AS-norm) and decided at the
threshold saved when the system was scored (:mod:`spkid.eval.threshold`), or at a given one.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spkid.config import option
from spkid.data.datadir import Trials, list_lines, refused_pipe
from spkid.data.inputs import Failures
from spkid.device import pick_device
from spkid.errors import SpkidError
from spkid.eval.backend import describe, needs_training_set
from spkid.eval.extract import load_system
from spkid.eval.scoring import raw_scores, trial_indices
from spkid.eval.threshold import DEFAULT_LIST, OPERATING_POINTS, Threshold, load_threshold
from spkid.eval.usage import embed_recordings, normalised_means
from spkid.fileio import atomic_write, check_output_file


@dataclass
class VerifyOptions:
    pairs: str = option("", "file of pairs 'a.wav b.wav' per line (then give only EXP)")
    scores_out: str = option("", "with --pairs: where to write '<a> <b> <score> same|different'")
    point: str = option("eer", "saved operating point to decide at", OPERATING_POINTS)
    threshold_list: str = option(DEFAULT_LIST, "trial list whose saved threshold to use")
    threshold: str = option("", "decision threshold; empty = the one saved when --threshold-list was scored")
    device: str = option("auto", "auto (CUDA when present), cpu, cuda, cuda:N")
    allow_pipes: bool = option(False, "run recordings given as shell commands ('... |', as in wav.scp)")
    quiet: bool = option(False, "no progress bar")

    def problems(self) -> dict[str, str]:
        """--threshold, when given, is a finite number: every score compares false with nan (all
        pairs 'different', a file against itself included) and ±inf decides every pair alike."""
        if not self.threshold:
            return {}
        try:
            finite = math.isfinite(float(self.threshold))
        except ValueError:
            return {"threshold": "is not a number; give the decision threshold, e.g. --threshold=0.35"}
        return {} if finite else {"threshold": "is not a finite number: every pair would get the same decision; "
                                               "give a finite threshold, or none to use the saved one"}


def read_pairs(path: str, allow_pipes: bool = False) -> list[tuple[str, str]]:
    """The (a, b) recordings of a pairs file; a shell command ('cmd|') only with ``allow_pipes``."""
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
        refused = [(e, what) for e in parts if (what := refused_pipe(e, allow_pipes))]
        if refused:
            raise SpkidError(f"{p}:{lineno}: '{refused[0][0]}' is {refused[0][1]}, not a recording; spkid runs "
                             f"commands ('cmd|') only with --allow-pipes=true")
        pairs.append((parts[0], parts[1]))
    if not pairs:
        raise SpkidError(f"pairs file {p} holds no pairs")
    return pairs


def decision_threshold(opts: VerifyOptions, exp_dir: str, score_type: str, as_norm: bool) -> Threshold:
    if opts.threshold:  # a finite number: verify checked it
        return Threshold(float(opts.threshold), "given", "the command line", score_type, False)
    t = load_threshold(exp_dir, opts.point, opts.threshold_list)
    if t.as_norm or as_norm:
        raise SpkidError(f"{exp_dir} is scored with a back-end trained on the training set (AS-norm, mean "
                         f"subtraction, PLDA or QMF); verification scores without it, so pass --threshold=VALUE "
                         f"tuned on raw {score_type if score_type != 'plda' else 'cosine'} scores")
    if t.score_type != score_type:
        raise SpkidError(f"the {t.trial_list} threshold of {exp_dir} was saved for {t.score_type} scores but the "
                         f"system now scores with {score_type}; re-run steps/score.sh")
    return t


def verify(opts: VerifyOptions, exp_dir: str, a_wav: str = "", b_wav: str = "") -> int:
    """Print the score and decision of ``a_wav`` against ``b_wav``, or with ``opts.pairs`` write
    those of every pair to ``opts.scores_out``; 1 when some pair could not be scored."""
    for name, why in opts.problems().items():  # (parse_options has checked them for steps/verify.py)
        raise SpkidError(f"--{name}={getattr(opts, name)} {why}")
    if opts.pairs and not opts.scores_out:
        raise SpkidError("--pairs needs --scores-out=FILE")
    if opts.scores_out:
        check_output_file(opts.scores_out, "--scores-out")
    pairs = read_pairs(opts.pairs, opts.allow_pipes) if opts.pairs else [(a_wav, b_wav)]
    system = load_system(exp_dir, pick_device(opts.device))
    threshold = decision_threshold(opts, exp_dir, system.eval_opts.score_type, needs_training_set(system.eval_opts))

    files = sorted({f for pair in pairs for f in pair})
    failures, notes = Failures(), []
    crops = dict(embed_recordings(system, ((f, f) for f in files), failures, notes, opts.allow_pipes,
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

