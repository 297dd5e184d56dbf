#!/usr/bin/env python3
"""DET curves of one or many systems on one trial list, in one PNG (like the paper's Figure 2).

    steps/plot_det.py --trials data/vox1/trials/vox1_O --out det.png \
        --scores exp/HA4/scores/vox1/vox1_O.score,exp/EA4/scores/vox1/vox1_O.score --names HA4,EA4

Normal-deviate axes; each system's EER point (definition: --eer-method) is marked with a dot.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from spkid.eval import metrics
from spkid.cli import run_main
from spkid.config import option, parse_options
from spkid.data.datadir import read_trials
from spkid.eval.det import DetCurve, plot_det
from spkid.errors import SpkidError
from spkid.eval.scoring import scores_for_trials


@dataclass
class DetOptions:
    trials: str = option("", "Kaldi trial list")
    scores: str = option("", "comma-separated score files, one per system")
    names: str = option("", "comma-separated legend names (default: the score files' parent dirs)")
    out: str = option("det.png", "output PNG")
    title: str = option("", "plot title (default: the trial list's name)")
    eer_method: str = option("roc", "EER definition of the marked points", metrics.EER_METHODS)


def main(argv: list[str]) -> int:
    opts, _ = parse_options([DetOptions], argv, prog="plot_det.py", description=__doc__)
    files = [f for f in opts.scores.split(",") if f]
    if not opts.trials or not files:
        raise SpkidError("--trials and --scores are required (see --help)")
    names = [n for n in opts.names.split(",") if n] or [Path(f).parent.parent.parent.name or f for f in files]
    if len(names) != len(files):
        raise SpkidError(f"--names has {len(names)} names for {len(files)} score files")
    trials = read_trials(opts.trials)
    curves = [DetCurve.from_scores(n, scores_for_trials(f, trials, opts.trials), trials.labels, opts.eer_method)
              for n, f in zip(names, files)]
    plot_det(curves, opts.out, opts.title or Path(opts.trials).name, opts.eer_method)
    print(f"plot_det.py: {len(curves)} DET curve(s) -> {opts.out}")
    return 0


if __name__ == "__main__":
    run_main(main)
