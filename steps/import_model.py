#!/usr/bin/env python3
"""Import a pretrained checkpoint of the paper's code (voxceleb_trainer) or of wespeaker as a spkid
system, which stages 4-6, steps/verify.py, steps/embed.py, steps/export.py and the fusion take
as they take a trained one.

    steps/import_model.py baseline_v2_smproto.model exp/VT_V2
    steps/import_model.py --input-scale=1 baseline_v2_ap.model exp/VT_V2_float
    steps/import_model.py avg_model.pt exp/WS_ECAPA1024          # wespeaker's voxceleb_ECAPA1024
    ./run.sh --corpus voxceleb --stage 4 --systems VT_V2

Networks: voxceleb_trainer ResNetSE34L (-> Q_SAP) and ResNetSE34V2 (-> H_ASP), either loss head;
wespeaker ECAPA_TDNN_GLOB_c512/c1024 (-> ECAPA). The network, widths, embedding size, mel bins and
pre-emphasis are read from the file; the source's front-end and evaluation are the defaults
(voxceleb_trainer: int16-scale input, ten 400-frame crops, Euclidean score; wespeaker: Kaldi fbank,
whole utterance, cosine). System options given here (--config or --option=value) set what the
file cannot tell; one that contradicts the file is refused. Writes EXP_DIR/config.conf, final.pt
and stage 3's marker.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from spkid.cli import run_main
from spkid.config import given_fields, option, parse_options
from spkid.errors import SpkidError
from spkid.models.imports import apply_overrides, import_checkpoint, write_system
from spkid.options import SYSTEM_OPTIONS


@dataclass
class ImportOptions:
    force: bool = option(False, "replace a system already in EXP_DIR (its config.conf and final.pt)")


def main(argv: Sequence[str]) -> int:
    *system, opts, (checkpoint, exp_dir) = parse_options(
        [*SYSTEM_OPTIONS, ImportOptions], argv, positional=["checkpoint", "exp_dir"],
        prog="steps/import_model.py", description=__doc__)
    exp = Path(exp_dir)
    if (exp / "final.pt").exists() and not opts.force:
        raise SpkidError(f"{exp} already holds a system (final.pt); use another directory or --force=true")
    imported = import_checkpoint(checkpoint)
    given = given_fields(argv) - {"force"}
    apply_overrides(imported, {name: next(getattr(g, name) for g in system if hasattr(g, name)) for name in given})
    write_system(imported, exp, checkpoint)
    model, loss, _, evalo = imported.options
    for note in imported.notes:
        print(f"note: {note}")
    head = (f"{loss.loss} head over {imported.num_speakers} speakers" if imported.num_speakers
            else f"{loss.loss} head" if imported.head_state is not None else "no loss head")
    crops = f"{evalo.num_eval_crops} crops of {evalo.eval_frames} frames" if evalo.num_eval_crops else "whole utterances"
    print(f"import_model.py: {checkpoint}: {imported.network} -> {exp} ({model.trunk} {model.channels}, "
          f"{model.embed_dim}-dim, {model.frontend} front-end, input x{model.input_scale:g}; {head}; "
          f"evaluation: {crops}, {evalo.score_type})")
    return 0


if __name__ == "__main__":
    run_main(main)
