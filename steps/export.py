#!/usr/bin/env python3
"""Export a trained system's network (front-end inside) to TorchScript or ONNX, then check it.

    steps/export.py --format=onnx --out=exp/H_ASP/export/model.onnx exp/H_ASP

In: waveform (batch, samples) float32 in [-1, 1] at 16 kHz; out: raw embeddings (batch, D).
After writing, the exported file is run on random audio (CPU; torch.jit.load or onnxruntime)
and compared with the PyTorch network; a difference above --tolerance is an error.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from spkid.cli import run_main
from spkid.config import option, parse_options
from spkid.export import FORMATS, SUFFIXES, export, load_exported, max_embedding_difference
from spkid.extract import load_system
from spkid.fileio import check_output_file


@dataclass
class ExportRunOptions:
    format: str = option("torchscript", "output format", FORMATS)
    out: str = option("", "output file; empty = EXP/export/model.pt (TorchScript) or .onnx")
    check: bool = option(True, "compare the exported network with the PyTorch one after writing")
    tolerance: float = option(1e-4, "largest absolute embedding difference --check accepts")


def main(argv: Sequence[str]) -> int:
    run, (exp_dir,) = parse_options([ExportRunOptions], argv, positional=["exp_dir"], prog="steps/export.py",
                                    description=__doc__)
    out = Path(run.out) if run.out else Path(exp_dir) / "export" / f"model{SUFFIXES[run.format]}"
    check_output_file(out, "--out")
    system = load_system(exp_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    export(system, run.format, out)
    line = f"exported {exp_dir} ({system.model_opts.trunk}, {system.model.embed_dim}-dim) to {out} [{run.format}]"
    if run.check:
        diff = max_embedding_difference(system, load_exported(out, run.format))
        if not diff <= run.tolerance:
            print(f"steps/export.py: error: {out} differs from the PyTorch network by {diff:.3g} "
                  f"(> --tolerance={run.tolerance:g})", file=sys.stderr)
            return 1
        line += f"; max |embedding difference| vs PyTorch {diff:.2g}"
    print(line)
    return 0


if __name__ == "__main__":
    run_main(main)
