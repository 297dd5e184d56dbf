#!/usr/bin/env python3
"""Export a trained system's network (front-end inside) to TorchScript or ONNX, then check it.

    steps/export.py --format=onnx --out=exp/H_ASP/export/model.onnx exp/H_ASP

In: waveform (batch, samples) float32 in [-1, 1] at 16 kHz; out: raw embeddings (batch, D).
The exported file is run on random audio (CPU; torch.jit.load or onnxruntime) and compared with
the PyTorch network before it is renamed onto --out; a difference above --tolerance is an error
and leaves --out as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from spkid.cli import run_main
from spkid.config import option, parse_options
from spkid.eval.export import FORMATS, SUFFIXES, ExportError, export, load_exported, max_embedding_difference
from spkid.eval.extract import load_system
from spkid.fileio import atomic_paths, check_output_file


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
    line = f"exported {exp_dir} ({system.model_opts.trunk}, {system.model.embed_dim}-dim) to {out} [{run.format}]"
    # written and checked under a temporary name: a file that fails the check never reaches --out
    with atomic_paths(out) as (tmp,):
        export(system, run.format, tmp)
        if run.check:
            diff = max_embedding_difference(system, load_exported(tmp, run.format))
            if not diff <= run.tolerance:
                raise ExportError(f"the export of {exp_dir} differs from the PyTorch network by {diff:.3g} "
                                  f"(> --tolerance={run.tolerance:g}), so {out} was not written; raise --tolerance "
                                  f"if that difference is acceptable")
            line += f"; max |embedding difference| vs PyTorch {diff:.2g}"
    print(line)
    return 0


if __name__ == "__main__":
    run_main(main)
