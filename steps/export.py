#!/usr/bin/env python3
"""Export a trained system's network (front-end inside) to TorchScript or ONNX, then check it.

    steps/export.py --format=onnx --out=exp/HA4/export/model.onnx exp/HA4

In: waveform (batch, samples) float32 in [-1, 1] at 16 kHz; out: raw embeddings (batch, D).
The exported file is run on random audio (CPU; torch.jit.load or onnxruntime) and compared with
the PyTorch network before it is renamed onto --out; a difference above --tolerance is an error
and leaves --out as it was.
"""

from __future__ import annotations

from typing import Sequence

from spkid.cli import run_main
from spkid.config import parse_options
from spkid.eval.export import ExportRunOptions, export_system


def main(argv: Sequence[str]) -> int:
    args = parse_options([ExportRunOptions], argv, positional=["exp_dir"], prog="steps/export.py", description=__doc__)
    return export_system(args[ExportRunOptions], args.positionals["exp_dir"])


if __name__ == "__main__":
    run_main(main)
