"""spkid/eval/threshold.py: the thresholds scoring saved, read back for verification."""

from __future__ import annotations

import pytest

from spkid.errors import SpkidError
from spkid.eval.threshold import load_threshold
from trained_system import save_metrics


def test_load_saved_thresholds(tmp_path):
    save_metrics(tmp_path, "voxsrc20_val", "voxsrc20_val")
    save_metrics(tmp_path, "vox1", "vox1_O", [0.1, 0.2], [1, 0], score_type="euclidean")
    t = load_threshold(tmp_path)
    assert (t.value, t.point, t.trial_list, t.score_type, t.as_norm) == (0.5, "eer", "voxsrc20_val", "cosine", False)
    assert t.describe() == "threshold 0.5000 at the EER point of voxsrc20_val"
    assert load_threshold(tmp_path, "min_dcf").value == 0.8
    assert load_threshold(tmp_path, "eer", "vox1_O").score_type == "euclidean"
    with pytest.raises(SpkidError, match=r"no saved threshold for trial list 'x' \(it has scored: vox1_O, voxsrc20_val\)"):
        load_threshold(tmp_path, "eer", "x")
    with pytest.raises(SpkidError, match="unknown operating point"):
        load_threshold(tmp_path, "fast")


def test_nothing_scored_or_broken_file(tmp_path):
    with pytest.raises(SpkidError, match=r"nothing is scored yet\): score it first \(steps/score.sh"):
        load_threshold(tmp_path)
    bad = tmp_path / "scores" / "voxsrc20_val" / "voxsrc20_val.metrics.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    with pytest.raises(SpkidError, match="cannot read the eer threshold"):
        load_threshold(tmp_path)
