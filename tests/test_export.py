"""spkid/eval/export.py and steps/export.py: the exported network gives the PyTorch embeddings."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from spkid.errors import SpkidError
from spkid.eval.export import (ExportError, ExportRunOptions, export, export_system, load_exported,
                               max_embedding_difference)
from spkid.eval.extract import load_system
from trained_system import TINY_MODEL, make_experiment, voice

# Measured: TorchScript 0 (same kernels), ONNX via onnxruntime ~5e-8 on embeddings of size ~0.4.
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    torch.set_num_threads(1)
    return load_system(make_experiment(tmp_path_factory.mktemp("exp") / "tiny"))


def test_load_system_restores_the_weights(system, tmp_path):
    saved = torch.load(system.exp_dir / "final.pt", weights_only=True)["model"]
    for name, value in system.model.state_dict().items():
        torch.testing.assert_close(value, saved[name])
    assert not system.model.training and system.model_opts == TINY_MODEL
    with pytest.raises(SpkidError, match=r"nothing/config\.conf not found: \S*nothing holds no resolved options; train it first"):
        load_system(tmp_path / "nothing")


def test_load_system_refuses_a_mismatched_checkpoint(tmp_path):
    exp = make_experiment(tmp_path / "a")
    make_experiment(tmp_path / "b", model_opts=type(TINY_MODEL)(trunk="Q_SAP", channels="4,8,8,8", embed_dim=16))
    (tmp_path / "b" / "final.pt").replace(exp / "final.pt")
    with pytest.raises(SpkidError, match="does not match .*config.conf"):
        load_system(exp)
    (exp / "final.pt").write_bytes(b"garbage")
    with pytest.raises(SpkidError, match="cannot load it as a checkpoint"):
        load_system(exp)


def test_torchscript_matches_pytorch(system, tmp_path):
    out = tmp_path / "m.pt"
    export(system, "torchscript", out)
    run = load_exported(out, "torchscript")
    diff = max_embedding_difference(system, run)
    assert diff <= TOLERANCE
    # the check itself can fail: a different network is far off
    other = load_system(make_experiment(tmp_path / "other", seed=1))
    assert max_embedding_difference(other, run) > 1e-3
    extra = {"config.conf": ""}
    torch.jit.load(str(out), _extra_files=extra)
    conf = extra["config.conf"].decode()
    assert "--trunk=Q_SAP" in conf and "--eval-frames=100" in conf


@pytest.mark.slow  # the torch.export + ONNX translation alone takes 15-30 s on 2 cores
def test_onnx_matches_pytorch_with_dynamic_batch_and_length(system, tmp_path):
    out = tmp_path / "m.onnx"
    export(system, "onnx", out)
    run = load_exported(out, "onnx")
    assert max_embedding_difference(system, run, lengths=(8000, 20001, 64247), batch=3) <= TOLERANCE
    one = voice(1.3)[None]
    with torch.inference_mode():
        ref = system.model(torch.from_numpy(one)).numpy()
    np.testing.assert_allclose(run(one), ref, atol=TOLERANCE)
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["sample_rate"] == "16000" and "--embed-dim=32" in meta["config.conf"]


def test_unknown_format(system, tmp_path):
    with pytest.raises(ExportError, match="unknown export format 'tflite'"):
        export(system, "tflite", tmp_path / "m")


def test_export_step(system, tmp_path, capsys):
    assert export_system(ExportRunOptions(format="torchscript", out=str(tmp_path / 'x.pt')), str(system.exp_dir)) == 0
    line = capsys.readouterr().out
    assert "x.pt [torchscript]; max |embedding difference| vs PyTorch" in line
    assert export_system(ExportRunOptions(check=False), str(system.exp_dir)) == 0
    assert (system.exp_dir / "export" / "model.pt").is_file()


def test_export_step_checks_the_output_path_first(tmp_path):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    # refused before the system loads: a missing experiment would be the error otherwise
    with pytest.raises(SpkidError, match=rf"--out={tmp_path / 'adir'} is a folder; give a file name"):
        export_system(ExportRunOptions(out=str(tmp_path / 'adir')), str(tmp_path / "no_exp"))
    with pytest.raises(SpkidError, match=rf"--out={tmp_path / 'afile' / 'm.pt'}: {tmp_path / 'afile'} is a file, "
                                         rf"not a folder"):
        export_system(ExportRunOptions(out=str(tmp_path / 'afile' / 'm.pt')), str(tmp_path / "no_exp"))
    assert list((tmp_path / "adir").iterdir()) == []


def test_export_failing_the_check_leaves_no_file(system, tmp_path):
    out = tmp_path / "sub" / "m.pt"
    # every difference is above a negative tolerance
    with pytest.raises(SpkidError, match=r"differs from the PyTorch network by 0 \(> --tolerance=-1\), "
                                         rf"so {out} was not written"):
        export_system(ExportRunOptions(out=str(out), tolerance=-1.0), str(system.exp_dir))
    assert list(out.parent.iterdir()) == []
    out.write_bytes(b"old export")
    with pytest.raises(SpkidError, match="was not written"):
        export_system(ExportRunOptions(out=str(out), tolerance=-1.0), str(system.exp_dir))
    assert [p.name for p in out.parent.iterdir()] == ["m.pt"] and out.read_bytes() == b"old export"
    assert export_system(ExportRunOptions(out=str(out)), str(system.exp_dir)) == 0
    assert [p.name for p in out.parent.iterdir()] == ["m.pt"] and load_exported(out, "torchscript") is not None
