#!/usr/bin/env python3
"""Stage 5: score every trial list of a data dir with a system's stored embeddings.

    steps/score.py exp/HA4 data/vox1

For each list data/vox1/trials/<list>: exp/HA4/scores/vox1/<list>.score ("<enroll> <test>
<score>", list order), <list>.metrics.json and <list>.det.png, and one line
"<list>: EER x% MinDCF(p=0.05) y". The scoring options (score type, AS-norm, P_target) come
from exp/HA4/config.conf; any of them given here wins. AS-norm reads the cohort extracted by
stage 4 (steps/extract.sh --cohort-data data/vox2_dev) from exp/HA4/embeddings/cohort/.
"""

from __future__ import annotations

from pathlib import Path

from spkid.cli import run_main
from spkid.config import parse_options
from spkid.console import step_log
from spkid.eval.score_set import ScoreOptions, score_set
from spkid.expdir import SystemDir
from spkid.options import SYSTEM_CONF, EvalOptions


def main(argv: list[str]) -> int:
    # the system's resolved options first, then this command line
    args = parse_options([ScoreOptions, EvalOptions], argv, ["exp_dir", "data_dir"], prog="steps/score.py",
                         description=__doc__, saved=SYSTEM_CONF)
    exp_dir, data_dir = Path(args.positionals["exp_dir"]), Path(args.positionals["data_dir"])
    with step_log(SystemDir(exp_dir).step_log(f"score.{data_dir.name}"), argv):
        return score_set(exp_dir, data_dir, args[ScoreOptions], args[EvalOptions])


if __name__ == "__main__":
    run_main(main)
