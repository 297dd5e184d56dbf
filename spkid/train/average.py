"""Checkpoint averaging (``--average-last N``): the network of ``final.pt`` as the element-wise
mean of the last N epochs' networks (wespeaker's ``average_model``, SpeechBrain's
``average_checkpoints``).

Batch-norm running statistics are averaged like the weights, not recomputed. At the end of a
decayed learning-rate schedule the last checkpoints sit close together in weight space, so
each one's statistics describe activations close to those of the averaged network, and
their mean is what wespeaker and SpeechBrain ship; recomputing them would need another pass
over the augmented training data (and its random draws) after training. Integer buffers
(``num_batches_tracked``) are not means: the newest checkpoint's value is kept.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from spkid.errors import SpkidError
from spkid.expdir import SystemDir

EPOCH_FILE = re.compile(r"epoch_(\d+)\.pt$")


def average_state_dicts(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of floating-point entries; other entries from the last dict."""
    if not states:
        raise SpkidError("no networks to average")
    keys = list(states[-1])
    for i, s in enumerate(states):
        if list(s) != keys:
            diff = sorted(set(s) ^ set(keys))[:3]
            raise SpkidError(f"network {i + 1} of {len(states)} has other parameters than the last "
                             f"(e.g. {', '.join(diff)}): checkpoints of different systems cannot be averaged")
    out = {}
    for k in keys:
        last = states[-1][k]
        if last.is_floating_point():
            acc = torch.zeros_like(last, dtype=torch.float64)
            for s in states:
                acc += s[k].to(torch.float64)
            out[k] = (acc / len(states)).to(last.dtype).contiguous()
        else:
            out[k] = last.clone()
    return out


def kept_checkpoints(keep: int, average_last: int) -> int:
    """How many checkpoints training keeps: ``keep`` (0 = all), at least the ``average_last``."""
    return 0 if keep == 0 else max(keep, average_last)


def last_checkpoints(exp_dir: str | os.PathLike, n: int) -> list[Path]:
    """The checkpoints of the last ``n`` epochs in ``exp_dir/checkpoints``, oldest first; an
    error naming what is there when there are fewer, or a gap among them."""
    found = sorted((int(m.group(1)), p) for p in SystemDir(exp_dir).epoch_checkpoints()
                   if (m := EPOCH_FILE.search(p.name)))
    chosen = found[-n:] if n > 0 else []
    if n < 1 or len(chosen) < n or chosen[-1][0] - chosen[0][0] != n - 1:
        have = ", ".join(str(e) for e, _ in found) or "none"
        raise SpkidError(f"--average-last {n} needs the checkpoints of the last {n} consecutive epochs in "
                         f"{SystemDir(exp_dir).checkpoints} (epochs there: {have}); train with "
                         f"--average-last {n} so that they are kept, or average fewer")
    return [p for _, p in chosen]


def average_checkpoints(paths: list[Path]) -> dict[str, torch.Tensor]:
    """The mean network (``"model"`` entry) of training checkpoints."""
    states = []
    for p in paths:
        try:
            states.append(torch.load(p, map_location="cpu", weights_only=True)["model"])
        except Exception as e:  # truncated or foreign files: torch raises many types
            raise SpkidError(f"{p}: cannot read its network to average ({e}); remove it and "
                             f"average fewer epochs, or resume training to rewrite it") from None
    return average_state_dicts(states)
