#!/usr/bin/env python3
"""Import a pretrained checkpoint of the paper's code (voxceleb_trainer) or of wespeaker as a spkid
system, which stages 4-6, steps/verify.py, steps/embed.py, steps/export.py and the fusion take
as they take a trained one.

    steps/import_model.py baseline_v2_smproto.model exp/VT_V2
    steps/import_model.py --input-scale=1 my_2023_run.model exp/VT_MINE  # bare file, float-trained
    steps/import_model.py avg_model.pt exp/WS_ECAPA1024          # wespeaker's voxceleb_ECAPA1024
    ./run.sh --corpus voxceleb --stage 4 --systems VT_V2

Networks: voxceleb_trainer ResNetSE34L (-> Q_SAP) and ResNetSE34V2 (-> H_ASP), with its angleproto,
softmaxproto, softmax, amsoftmax or aamsoftmax head; wespeaker ECAPA_TDNN_GLOB_c512/c1024 (-> ECAPA).
The network, widths, embedding size, mel bins and pre-emphasis are read from the file; the
source's front-end and evaluation are the defaults (voxceleb_trainer: ten 400-frame crops as its
README evaluates, Euclidean score, input x1 for its saveParameters dict and x32768 for a bare
state dict, with a note; wespeaker: Kaldi fbank, whole utterance, cosine). The last line says
where each front-end and evaluation setting came from (docs/pretrained.md). System options
given here (--config or --option=value) set what the file cannot tell; one that contradicts the
file is refused. Writes EXP_DIR/config.conf, final.pt and stage 3's marker.
"""

from __future__ import annotations

from typing import Sequence

from spkid.cli import run_main
from spkid.config import parse_options
from spkid.console import step_log
from spkid.expdir import SystemDir
from spkid.models.imports import ImportOptions, import_model
from spkid.options import EvalOptions, LossOptions, ModelOptions


def main(argv: Sequence[str]) -> int:
    system = [ModelOptions, LossOptions, EvalOptions]  # what the file may leave open; training options mean nothing here
    args = parse_options([*system, ImportOptions], argv, positional=["checkpoint", "exp_dir"],
                         prog="steps/import_model.py", description=__doc__)
    exp_dir = args.positionals["exp_dir"]
    with step_log(SystemDir(exp_dir).step_log("import_model"), argv):
        return import_model(args.positionals["checkpoint"], exp_dir, args.of(system), args[ImportOptions], args.given)


if __name__ == "__main__":
    run_main(main)
