"""A model's layer table: each layer's output shape for one example input, and its size
(``steps/model_summary.py``)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from spkid.config import option
from spkid.errors import SpkidError
from spkid.models import build_model, trunk_parameters
from spkid.models.features import HOP_LENGTH, SAMPLE_RATE, num_frames
from spkid.options import ModelOptions


def layer_table(model: nn.Module, samples: int) -> list[tuple[str, str, tuple[int, ...], int]]:
    """(name, type, output shape without the batch axis, parameters) for each layer, in call
    order, for one all-zero waveform of ``samples`` samples. The model, its ``trunk`` and plain
    ``nn.Sequential`` stages are opened up; every other module is one row."""
    rows: dict[str, tuple[str, str, tuple[int, ...], int]] = {}
    hooks = []
    trunk = getattr(model, "trunk", None)

    def visit(prefix: str, module: nn.Module) -> None:
        for name, child in module.named_children():
            full = f"{prefix}{name}"
            if child is trunk or type(child) is nn.Sequential:
                visit(full + ".", child)
                continue

            def hook(mod, inputs, output, full=full):
                if full not in rows:
                    rows[full] = (full, type(mod).__name__, tuple(output.shape[1:]),
                                  sum(p.numel() for p in mod.parameters()))
            hooks.append(child.register_forward_hook(hook))

    visit("", model)
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, samples))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    return list(rows.values())


MIN_SUMMARY_FRAMES = 16  # feature frames of the shortest example input


@dataclass
class SummaryOptions:
    seconds: float = option(2.0, "length of the example input in seconds")


def print_summary(model_opts: ModelOptions, opts: SummaryOptions) -> int:
    """Print the layer table of the model ``model_opts`` builds for an input of ``opts.seconds``,
    then its embedding size and trunk parameters."""
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

