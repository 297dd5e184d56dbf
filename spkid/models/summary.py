"""A model's layer table: each layer's output shape for one example input, and its size."""

from __future__ import annotations

import torch
from torch import nn


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
