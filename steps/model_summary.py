#!/usr/bin/env python3
"""Print a model's layers with their output shapes for a short input, then its size.

    steps/model_summary.py --config conf/HA4.conf [--config conf/mini.conf] [--channels=...]

The last line is ``trunk parameters: N`` (the embedding network without the loss head and the
embedding BN, as paper section 2.1 counts them).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from spkid.cli import run_main
from spkid.config import option, parse_options
from spkid.errors import SpkidError
from spkid.models.features import HOP_LENGTH, SAMPLE_RATE, num_frames
from spkid.models import build_model, trunk_parameters
from spkid.models.summary import layer_table
from spkid.options import SYSTEM_OPTIONS, ModelOptions


MIN_SUMMARY_FRAMES = 16  # feature frames of the shortest example input


@dataclass
class SummaryOptions:
    seconds: float = option(2.0, "length of the example input in seconds")


def main(argv: Sequence[str]) -> int:
    *system, opts, _ = parse_options(
        [*SYSTEM_OPTIONS, SummaryOptions], argv, prog="model_summary.py",
        description=__doc__)
    model_opts = next(o for o in system if isinstance(o, ModelOptions))
    samples = int(round(opts.seconds * SAMPLE_RATE))
    if num_frames(samples) < MIN_SUMMARY_FRAMES:
        least = (MIN_SUMMARY_FRAMES - 1) * HOP_LENGTH / SAMPLE_RATE
        raise SpkidError(f"--seconds={opts.seconds} is too short to run the trunk; use at least {least:g}")
    model = build_model(model_opts)
    rows = layer_table(model, samples)
    print(f"model: {model_opts.trunk}  input: {samples} samples ({opts.seconds:g} s) = "
          f"{num_frames(samples)} frames; shapes (channels, [mel bins,] frames) without the batch axis")
    width = max(len(r[0]) for r in rows)
    kind = max(len(r[1]) for r in rows)
    print(f"{'layer':<{width}}  {'type':<{kind}}  {'output shape':<22}  {'params':>10}")
    for name, typ, shape, params in rows:
        print(f"{name:<{width}}  {typ:<{kind}}  {str(shape):<22}  {params:>10,}")
    print(f"embedding: {model.embed_dim}" + (" with BatchNorm1d" if model_opts.embed_bn else ""))
    print(f"trunk parameters: {trunk_parameters(model)}")
    return 0


if __name__ == "__main__":
    run_main(main)
