"""Decision thresholds for ``steps/verify.py``, as saved when the system was scored.

A verification score only becomes a same/different decision against a threshold, and a
threshold only means something for the scores it was tuned on. Scoring (``steps/score.py``)
writes, for each trial list, ``exp/<SYS>/scores/<set>/<list>.metrics.json`` holding the two
operating points of paper section 3.6 (``spkid.eval.metrics.Metrics.to_json``):

* ``eer_threshold``: the threshold at the equal-error-rate point (misses = false alarms);
* ``min_dcf_threshold``: the threshold at the minimum detection cost (P_target of EvalOptions,
  0.05), stricter: it accepts fewer non-targets,

with the score type and AS-norm setting the scores were made with, so that verification can
refuse to compare a score with a threshold of another kind. Users should decide at the
thresholds of the validation list (``voxsrc20_val``, :data:`DEFAULT_LIST`), not of the test
lists of Table 2.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from spkid.errors import SpkidError

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


def metrics_files(exp_dir: str | os.PathLike) -> dict[str, Path]:
    """Trial list name -> its ``scores/<set>/<list>.metrics.json`` in ``exp_dir``."""
    return {p.name[: -len(".metrics.json")]: p for p in sorted(Path(exp_dir).glob("scores/*/*.metrics.json"))}


def load_threshold(exp_dir: str | os.PathLike, point: str = "eer", trial_list: str = DEFAULT_LIST) -> Threshold:
    """The threshold scoring saved for ``trial_list`` at ``point``; errors say which lists were scored."""
    if point not in OPERATING_POINTS:
        raise SpkidError(f"unknown operating point '{point}'; choose one of {', '.join(OPERATING_POINTS)}")
    files = metrics_files(exp_dir)
    if trial_list not in files:
        have = f"it has scored: {', '.join(files)}" if files else "nothing is scored yet"
        raise SpkidError(f"{exp_dir} has no saved threshold for trial list '{trial_list}' ({have}): score it "
                         f"first (steps/score.sh {exp_dir} data/{DEFAULT_LIST}), choose --threshold-list, "
                         f"or pass --threshold=VALUE")
    path = files[trial_list]
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
        return Threshold(float(entry[f"{point}_threshold"]), point, trial_list,
                         str(entry.get("score_type", "cosine")), bool(entry.get("as_norm", False)))
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise SpkidError(f"{path}: cannot read the {point} threshold from it ({e!r}); re-run steps/score.sh") from None
