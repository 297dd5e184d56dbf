#!/usr/bin/env python3
"""Stage 4: embeddings of every utterance of a data dir with a trained system.

    steps/extract.py --nj 4 --gpus 4 exp/HA4 data/vox1
    steps/extract.py --nj 8 --gpus 1 --cmd "slurm.py --gres=gpu:1 --time=4:00:00" exp/HA4 data/vox1

Writes exp/HA4/embeddings/vox1/embeddings.{ark,scp} (kaldiio; one crops x dim float32 matrix
per utterance, raw crop embeddings: ten evenly spaced 4.015-s crops by default, see
--eval-frames/--num-eval-crops in exp/HA4/config.conf), xvector.{ark,scp} (one float vector,
FV, per utterance: the mean of the L2-normalised crops, the vector cosine scoring uses, for
Kaldi's ivector-mean / ivector-compute-lda / ivector-compute-plda) and a copy of utt2spk. The utterances
are split into --nj parts, run as jobs JOB=1:N of the --cmd runner (utils/run.py here,
utils/slurm.py on a Slurm cluster; logs exp/HA4/log/extract.vox1.JOB.log; job K on GPU (K-1) mod
--gpus; with run.py on the CPU the parts are threads of this process sharing one network), each
writing split/emb.<K>.{ark,scp}, then merged; the count is checked against wav.scp. A failed job
fails the step naming its log. Re-running resumes: finished parts are kept, and a finished set is
not redone unless it was made with other crops, another final.pt or another wav.scp
(its provenance.json records their digests), in which case it is extracted again. With --cohort-data
data/vox2_dev and a system whose back-end learns from the training set (--as-norm,
--mean-subtract, --score-type=plda, --qmf), --cohort-utts-per-spk utterances of each training
speaker are extracted too, to exp/HA4/embeddings/cohort/.
"""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path

from spkid.cli import run_main
from spkid.config import parse_options
from spkid.console import step_log
from spkid.eval.extract_set import ExtractOptions, extract_data
from spkid.expdir import SystemDir
from spkid.options import SYSTEM_CONF, EvalOptions


def main(argv: list[str]) -> int:
    # the system's resolved options first, then this command line
    args = parse_options([ExtractOptions, EvalOptions], argv, ["exp_dir", "data_dir"], prog="steps/extract.py",
                         description=__doc__, saved=SYSTEM_CONF)
    exp_dir, data_dir = Path(args.positionals["exp_dir"]), Path(args.positionals["data_dir"])
    # a job its parent started logs to the parent's log/extract.<set>.<JOB>.log
    log = SystemDir(exp_dir).step_log(f"extract.{data_dir.name}")
    with nullcontext() if args[ExtractOptions].job > 0 else step_log(log, argv):
        return extract_data(exp_dir, data_dir, args[ExtractOptions], args[EvalOptions],
                            [sys.executable, str(Path(__file__).resolve()), *without_options(argv, JOB_OPTIONS)])


JOB_OPTIONS = ("--cmd", "--job", "--out-name")  # what the parent sets for its jobs


def without_options(argv: list[str], names: tuple[str, ...]) -> list[str]:
    """``argv`` less the options ``names`` (``--name=value`` or ``--name value``)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in names:
            skip = True
        elif not arg.startswith(tuple(f"{n}=" for n in names)):
            out.append(arg)
    return out


if __name__ == "__main__":
    run_main(main)
