"""spkid/threshold.py: operating-point thresholds saved at scoring time, read back by verification."""

from __future__ import annotations

import json

import pytest

from spkid.errors import SpkidError
from spkid.options import EvalOptions
from spkid.threshold import THRESHOLD_FILE, compute_thresholds, load_threshold, save_thresholds

# targets 0.9 0.8 0.4, non-targets 0.5 0.3 0.2 0.1; a trial is accepted when score >= t.
SCORES = [0.9, 0.8, 0.4, 0.5, 0.3, 0.2, 0.1]
LABELS = [1, 1, 1, 0, 0, 0, 0]


def test_thresholds_by_hand():
    got = compute_thresholds(SCORES, LABELS, EvalOptions())
    # t=0.5: FNR 1/3, FPR 1/4 -- the closest pair; EER = max = 33.33 %
    assert got["eer"]["threshold"] == 0.5 and got["eer"]["eer_percent"] == pytest.approx(100 / 3, abs=1e-4)
    # cost 0.05 FNR + 0.95 FPR: t=0.8 gives 0.05/3 (no false alarm), normalised by 0.05 -> 1/3
    assert got["min_dcf"]["threshold"] == 0.8 and got["min_dcf"]["min_dcf"] == pytest.approx(1 / 3, abs=1e-6)
    assert (got["n_target"], got["n_nontarget"], got["score_type"], got["as_norm"]) == (3, 4, "cosine", False)


def test_save_and_load(tmp_path):
    save_thresholds(tmp_path, "voxsrc20_val", SCORES, LABELS, EvalOptions())
    save_thresholds(tmp_path, "vox1_O", [0.1, 0.2], [1, 0], EvalOptions(score_type="euclidean"))
    table = json.loads((tmp_path / THRESHOLD_FILE).read_text())
    assert sorted(table) == ["vox1_O", "voxsrc20_val"]
    t = load_threshold(tmp_path)
    assert (t.value, t.point, t.trial_list, t.score_type) == (0.5, "eer", "voxsrc20_val", "cosine")
    assert t.describe() == "threshold 0.5000 at the EER point of voxsrc20_val"
    assert load_threshold(tmp_path, "min_dcf").value == 0.8
    assert load_threshold(tmp_path, "eer", "vox1_O").score_type == "euclidean"
    with pytest.raises(SpkidError, match="no thresholds for trial list 'x' \\(it has: vox1_O, voxsrc20_val\\)"):
        load_threshold(tmp_path, "eer", "x")
    with pytest.raises(SpkidError, match="unknown operating point"):
        load_threshold(tmp_path, "fast")


def test_missing_or_broken_file(tmp_path):
    with pytest.raises(SpkidError, match="threshold.json not found: score the system first"):
        load_threshold(tmp_path)
    (tmp_path / THRESHOLD_FILE).write_text("{not json")
    with pytest.raises(SpkidError, match="cannot read it"):
        load_threshold(tmp_path)
