"""The MFCC-statistics floor: EER/MinDCF by hand, and a run over the tiny corpus' lists."""

from __future__ import annotations

import numpy as np
import pytest

from mini_corpus_fixture import tiny_corpus
from spkid.data.datadir import read_trials
from spkid.eval import metrics
from spkid.eval.baseline import BaselineOptions, run_baseline, standardize
from spkid.eval.scoring import scores_for_trials
from spkid.corpora.prepare import PrepareOptions, prepare



def test_standardize():
    v = {"a": np.array([1.0, 0.0]), "b": np.array([2.0, 0.0]), "c": np.array([0.0, 3.0])}
    s = np.stack(list(standardize(v).values()))
    assert np.allclose(s.mean(0), 0) and np.allclose(s.std(0), 1)


def test_baseline_prints_and_writes_every_list(tmp_path, capsys):
    """Every list printed; with --scores-dir its score file and description, the printed EER being
    the one the score file gives (what stage 6 puts in the table's floor row)."""
    data, out_dir = tmp_path / "data", tmp_path / "exp" / "mfcc_baseline"
    prepare(PrepareOptions(corpus_dir=str(tiny_corpus()), data=str(data), quiet=True))
    assert run_baseline(BaselineOptions(data=str(data), quiet=True, scores_dir=str(out_dir))) == 0
    out = capsys.readouterr().out
    assert (out_dir / "description").read_text() == "MFCC mean+std baseline\n"
    for set_name, name in (("vox1", "vox1_O"), ("vox1", "vox1_E"), ("vox1", "vox1_H"), ("voxsrc20_val", "voxsrc20_val")):
        line = next(line for line in out.splitlines() if f" {name} " in f" {line} ")
        eer, dcf = map(float, line.split()[-2:])
        assert 0 <= eer <= 100 and 0 <= dcf <= 20
        trials = read_trials(data / set_name / "trials" / name)
        scores = scores_for_trials(out_dir / "scores" / set_name / f"{name}.score", trials)
        assert eer == pytest.approx(100 * metrics.eer(scores, trials.labels, "roc"), abs=0.006)
