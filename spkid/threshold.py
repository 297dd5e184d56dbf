"""Decision thresholds saved when a system is scored, for ``steps/verify.py``.

A verification score only becomes a same/different decision against a threshold, and a
threshold only means something for the scores it was tuned on. When scoring writes a trial
list's scores it calls :func:`save_thresholds`, which records in ``exp/<SYS>/threshold.json``,
under the list's name, the two operating points of paper section 3.7 (``spkid.metrics``):

* ``eer``: the threshold at the equal-error-rate point (misses = false alarms);
* ``min_dcf``: the threshold at the minimum detection cost (P_target of EvalOptions, 0.05),
  stricter: it accepts fewer non-targets.

with the score type and AS-norm setting the scores were made with, so verification can refuse
to compare a score with a threshold of another kind. The validation list (``voxsrc20_val``,
:data:`DEFAULT_LIST`) is the one users should tune on: it is not the test lists of Table 2.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spkid.errors import SpkidError
from spkid.fileio import atomic_write
from spkid.metrics import eer_threshold, min_dcf_threshold
from spkid.options import EvalOptions

THRESHOLD_FILE = "threshold.json"
DEFAULT_LIST = "voxsrc20_val"
OPERATING_POINTS = ("eer", "min_dcf")


@dataclass
class Threshold:
    value: float
    point: str        # "eer" or "min_dcf"; anything else: a value the user gave
    trial_list: str
    score_type: str
    as_norm: bool

    def describe(self) -> str:
        if self.point not in OPERATING_POINTS:
            return f"threshold {self.value:.4f} from {self.trial_list}"
        where = "EER point" if self.point == "eer" else "MinDCF point"
        return f"threshold {self.value:.4f} at the {where} of {self.trial_list}"


def compute_thresholds(scores, labels, eval_opts: EvalOptions) -> dict:
    """The EER-point and MinDCF-point thresholds of one list's scores (and the error rates there)."""
    eer, t_eer = eer_threshold(scores, labels)
    dcf, t_dcf = min_dcf_threshold(scores, labels, p_target=eval_opts.p_target)
    labels = np.asarray(labels).astype(bool)
    return {
        "eer": {"threshold": t_eer, "eer_percent": round(100 * eer, 6)},
        "min_dcf": {"threshold": t_dcf, "min_dcf": round(dcf, 6), "p_target": eval_opts.p_target},
        "score_type": eval_opts.score_type,
        "as_norm": eval_opts.as_norm,
        "n_target": int(labels.sum()),
        "n_nontarget": int((~labels).sum()),
    }


def save_thresholds(exp_dir: str | os.PathLike, trial_list: str, scores, labels, eval_opts: EvalOptions) -> Path:
    """Add (or replace) ``trial_list``'s entry in ``exp_dir/threshold.json``; returns the file."""
    path = Path(exp_dir) / THRESHOLD_FILE
    table = _read(path) if path.is_file() else {}
    table[trial_list] = compute_thresholds(scores, labels, eval_opts)
    with atomic_write(path) as f:
        json.dump(dict(sorted(table.items())), f, indent=2)
        f.write("\n")
    return path


def _read(path: Path) -> dict:
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise SpkidError(f"{path}: cannot read it ({e}); re-run scoring (steps/score.sh) to rewrite it") from None
    if not isinstance(table, dict):
        raise SpkidError(f"{path}: expected a JSON object of trial lists; re-run scoring (steps/score.sh)")
    return table


def load_threshold(exp_dir: str | os.PathLike, point: str = "eer", trial_list: str = DEFAULT_LIST) -> Threshold:
    """The saved threshold of ``trial_list`` at ``point``; errors say which lists were scored."""
    if point not in OPERATING_POINTS:
        raise SpkidError(f"unknown operating point '{point}'; choose one of {', '.join(OPERATING_POINTS)}")
    path = Path(exp_dir) / THRESHOLD_FILE
    if not path.is_file():
        raise SpkidError(f"{path} not found: score the system first (steps/score.sh {exp_dir} data/{DEFAULT_LIST}) "
                         f"or pass --threshold=VALUE")
    table = _read(path)
    if trial_list not in table:
        raise SpkidError(f"{path} has no thresholds for trial list '{trial_list}' (it has: "
                         f"{', '.join(sorted(table)) or 'none'}); score that list or pass --threshold-list")
    entry = table[trial_list]
    try:
        return Threshold(float(entry[point]["threshold"]), point, trial_list, entry["score_type"], bool(entry["as_norm"]))
    except (KeyError, TypeError, ValueError):
        raise SpkidError(f"{path}: entry '{trial_list}' is malformed; re-run scoring (steps/score.sh)") from None
