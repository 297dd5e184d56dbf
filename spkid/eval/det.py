"""DET curves (paper Figure 2): miss against false-alarm probability on normal-deviate axes,
one curve per system in one PNG, each system's EER point marked."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global figure state, faster import
from scipy.special import ndtri  # the normal quantile, = scipy.stats.norm.ppf, at a third of its import time

from spkid.eval import metrics
from spkid.fileio import atomic_paths

TICKS = [0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8]


@dataclass
class DetCurve:
    name: str
    fpr: np.ndarray
    fnr: np.ndarray
    eer: float

    @classmethod
    def from_metrics(cls, name: str, m: metrics.Metrics) -> "DetCurve":
        """The curve of the operating points ``m`` was computed from (no second sort of the scores)."""
        return cls(name, m.rates.fpr, m.rates.fnr, m.eer)

    @classmethod
    def from_scores(cls, name: str, scores, labels, eer_method: str = "roc") -> "DetCurve":
        return cls.from_metrics(name, metrics.compute_metrics(scores, labels, eer_method=eer_method))


def plot_det(curves: Sequence[DetCurve], path: str | os.PathLike, title: str = "",
             eer_method: str = "roc") -> None:
    """Write the DET plot of ``curves`` to ``path`` (PNG, atomically)."""
    fig = Figure(figsize=(5.5, 5.5), dpi=120)
    ax = fig.subplots()
    lo_p = 0.0005
    for c in curves:
        lo_p = min(lo_p, max(min(c.eer, 0.5) / 4, TICKS[0]))
    clip = (TICKS[0] / 2, 1 - TICKS[0] / 2)
    for c in curves:
        x = ndtri(np.clip(c.fpr, *clip))
        y = ndtri(np.clip(c.fnr, *clip))
        (line,) = ax.plot(x, y, lw=1.4, label=f"{c.name} (EER {100 * c.eer:.2f}%)")
        e = ndtri(np.clip(c.eer, *clip))
        ax.plot([e], [e], "o", color=line.get_color(), ms=5)
    ticks = [t for t in TICKS if t >= lo_p]
    pos = ndtri(ticks)
    ax.set_xticks(pos, [f"{100 * t:g}" for t in ticks])
    ax.set_yticks(pos, [f"{100 * t:g}" for t in ticks])
    lim = (ndtri(lo_p), ndtri(0.5))
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    ax.plot(lim, lim, ":", color="grey", lw=0.8)
    ax.set_xlabel("False alarm probability (%)")
    ax.set_ylabel("Miss probability (%)")
    ax.set_title(title or "DET")
    ax.grid(True, lw=0.4, alpha=0.6)
    ax.legend(loc="upper right", fontsize=8, title=f"dots: EER ({eer_method})", title_fontsize=7)
    fig.tight_layout()
    with atomic_paths(path) as (tmp,):
        fig.savefig(tmp, format="png")
