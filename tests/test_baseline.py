"""The MFCC-statistics floor: EER/MinDCF by hand, and a run over the tiny corpus' lists."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

from mini_corpus_fixture import tiny_corpus
from spkid.eval.baseline import standardize
from spkid.corpora.prepare import PrepareOptions, prepare

ROOT = Path(__file__).resolve().parent.parent


def test_standardize():
    v = {"a": np.array([1.0, 0.0]), "b": np.array([2.0, 0.0]), "c": np.array([0.0, 3.0])}
    s = np.stack(list(standardize(v).values()))
    assert np.allclose(s.mean(0), 0) and np.allclose(s.std(0), 1)


def test_baseline_script_prints_every_list(tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    prepare(PrepareOptions(corpus_dir=str(tiny_corpus()), data=str(data), quiet=True))
    spec = importlib.util.spec_from_file_location("mfcc_baseline", ROOT / "local/mfcc_baseline.py")
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, mod)   # dataclasses look their module up there
    spec.loader.exec_module(mod)
    assert mod.main(["--data", str(data), "--quiet", "true"]) == 0
    out = capsys.readouterr().out
    for name in ("vox1_O", "vox1_E", "vox1_H", "voxsrc20_val"):
        line = next(line for line in out.splitlines() if f" {name} " in f" {line} ")
        eer, dcf = map(float, line.split()[-2:])
        assert 0 <= eer <= 100 and 0 <= dcf <= 20
