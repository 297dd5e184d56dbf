#!/usr/bin/env python3
"""Stage 4: embeddings of every utterance of a data dir with a trained system.

    steps/extract.py --nj 4 --gpus 4 exp/HA4 data/vox1

Writes exp/HA4/embeddings/vox1/embeddings.{ark,scp} (kaldiio; one crops x dim float32 matrix
per utterance, raw crop embeddings: ten evenly spaced 4.015-s crops by default, see
--eval-frames/--num-eval-crops in exp/HA4/config.conf), xvector.{ark,scp} (one float vector,
FV, per utterance: the mean of the L2-normalised crops, the vector cosine scoring uses, for
Kaldi's ivector-mean / ivector-compute-lda / ivector-compute-plda) and a copy of utt2spk. The utterances
are split into --nj parts run in parallel (one process per part; part k on GPU k mod --gpus,
or on the CPU when --gpus 0, where the parts are threads of this process sharing one network),
each writing split/emb.<k>.{ark,scp}, then merged; the count is checked against wav.scp. Re-running resumes: finished parts are kept, and a finished set is
not redone unless it was made with other crops, another final.pt or another wav.scp
(extract.info records them), in which case it is extracted again. With --cohort-data
data/vox2_dev and a system whose back-end learns from the training set (--as-norm,
--mean-subtract, --score-type=plda, --qmf), --cohort-utts-per-spk utterances of each training
speaker are extracted too, to exp/HA4/embeddings/cohort/.
"""

from __future__ import annotations

import sys
from pathlib import Path

from spkid.cli import run_main
from spkid.config import parse_options
from spkid.eval.extract_jobs import ExtractOptions, extract_data
from spkid.options import SYSTEM_OPTIONS, exp_config


def main(argv: list[str]) -> int:
    # the system's resolved options first, then this command line
    opts, *_, ev, (exp_dir, data_dir) = parse_options(
        [ExtractOptions, *SYSTEM_OPTIONS], argv, ["exp_dir", "data_dir"], prog="extract.py", description=__doc__,
        first_conf=exp_config)
    parent_argv = [a for a in argv if not a.startswith(("--job=", "--out-name="))]
    return extract_data(Path(exp_dir), Path(data_dir), opts, ev, [sys.executable, str(Path(__file__).resolve()),
                                                                  *parent_argv])


if __name__ == "__main__":
    run_main(main)
