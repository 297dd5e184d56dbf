import os
from pathlib import Path

import pytest
import torch

from spkid.config import parse_options, read_resolved
from spkid.errors import SpkidError
from spkid.options import SYSTEM_OPTIONS
from spkid.train.derive import base_config, derive_system
from trained_system import make_experiment


def derive(argv: list[str]) -> int:
    """steps/derive_system.py's command line, parsed as it parses it."""
    *new, (base, out) = parse_options(list(SYSTEM_OPTIONS), argv, ["base_dir", "out_dir"], first_conf=base_config)
    return derive_system(Path(base), Path(out), new)


def with_embeddings(exp):
    d = exp / "embeddings" / "vox1"
    d.mkdir(parents=True)
    (d / "embeddings.ark").write_bytes(b"ARKDATA")
    (d / "embeddings.scp").write_text(f"a/b/1 {d}/embeddings.ark:7\nb/c/2 {d}/embeddings.ark:9\n")
    (d / "extract.info").write_text("utterances 2\n")
    (d / ".done").write_text("the mini corpus\n")


def test_eval_option_links_network_and_embeddings(tmp_path):
    base = make_experiment(tmp_path / "EA4")
    with_embeddings(base)
    out = tmp_path / "EA4_plda"
    assert derive(["--score-type=plda", "--lda-dim=16", str(base), str(out)]) == 0
    ev = read_resolved(out / "config.conf", SYSTEM_OPTIONS)[3]
    assert (ev.score_type, ev.lda_dim) == ("plda", 16)
    assert os.path.samefile(out / "final.pt", base / "final.pt")
    assert os.path.samefile(out / "embeddings/vox1/embeddings.ark", base / "embeddings/vox1/embeddings.ark")
    # its own scp names its own (linked) ark; stage 4's marker is not carried over
    assert (out / "embeddings/vox1/embeddings.scp").read_text().splitlines()[1] == \
        f"b/c/2 {out}/embeddings/vox1/embeddings.ark:9"
    assert not (out / "embeddings/vox1/.done").exists()
    assert "derived by steps/derive_system.py" in (out / "config.conf").read_text()
    derive(["--mean-subtract=true", str(base), str(tmp_path / "EA4_ms")])
    assert "EA4: --mean-subtract=true\n" in (tmp_path / "EA4_ms" / "config.conf").read_text()  # conf syntax, not True


def test_average_last_writes_the_mean_network(tmp_path):
    base = make_experiment(tmp_path / "HA2")
    (base / "checkpoints").mkdir()
    model = torch.load(base / "final.pt", weights_only=True)["model"]
    for e in (1, 2, 3):
        state = {k: (v + e if v.is_floating_point() else v) for k, v in model.items()}
        torch.save({"model": state}, base / "checkpoints" / f"epoch_{e:04d}.pt")
    out = tmp_path / "HA2_avg"
    derive(["--average-last=2", str(base), str(out)])
    avg = torch.load(out / "final.pt", weights_only=True)["model"]
    for k, v in model.items():
        if v.is_floating_point():
            torch.testing.assert_close(avg[k], v + 2.5)
    assert read_resolved(out / "config.conf", SYSTEM_OPTIONS)[2].average_last == 2
    assert not (out / "embeddings").exists()  # another network: stage 4 extracts anew


def test_network_options_refused(tmp_path):
    base = make_experiment(tmp_path / "EA4")
    with pytest.raises(SpkidError, match="--margin would change the network"):
        derive(["--margin=0.5", str(base), str(tmp_path / "x")])
    with pytest.raises(SpkidError, match="no trained system"):
        derive([str(tmp_path / "none"), str(tmp_path / "y")])
