import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from spkid.config import parse_options, read_resolved
from spkid.data.datadir import write_table
from spkid.errors import SpkidError
from spkid.eval.extract import write_embeddings, write_utterance_vectors
from spkid.eval.extract_set import SET_FILES, link_base_set, set_making
from spkid.expdir import Record
from spkid.options import SYSTEM_OPTIONS
from spkid.train.derive import BASE_CONF, derive_system
from trained_system import make_experiment


def derive(argv: list[str]) -> int:
    """steps/derive_system.py's command line, parsed as it parses it."""
    args = parse_options(SYSTEM_OPTIONS, argv, ["base_dir", "out_dir"], saved=BASE_CONF)
    return derive_system(Path(args.positionals["base_dir"]), Path(args.positionals["out_dir"]), args.of(SYSTEM_OPTIONS))


def test_eval_option_links_network_and_stage4_links_embeddings(tmp_path):
    base = make_experiment(tmp_path / "EA4")
    out = tmp_path / "EA4_plda"
    assert derive(["--score-type=plda", "--lda-dim=16", str(base), str(out)]) == 0
    evaluation = read_resolved(out / "config.conf", SYSTEM_OPTIONS)[3]
    assert (evaluation.score_type, evaluation.lda_dim) == ("plda", 16)
    assert os.path.samefile(out / "final.pt", base / "final.pt")
    assert "derived by steps/derive_system.py" in (out / "config.conf").read_text()
    derive(["--mean-subtract=true", str(base), str(tmp_path / "EA4_ms")])
    assert "EA4: --mean-subtract=true\n" in (tmp_path / "EA4_ms" / "config.conf").read_text()  # conf syntax, not True

    # stage 4 of the derived system: the base's finished set, same fingerprint, is linked
    wav = {"a/b/1": "/x/1.wav", "b/c/2": "/x/2.wav"}
    src = base / "embeddings" / "vox1"
    src.mkdir(parents=True)
    write_embeddings(((u, np.full((2, 4), i + 1, np.float32)) for i, u in enumerate(sorted(wav))), src / "embeddings.ark")
    offset = (src / "embeddings.scp").read_text().splitlines()[1].rsplit(":", 1)[1]
    (src / "utt2spk").write_text("a/b/1 a\nb/c/2 b\n")
    write_utterance_vectors(src / "embeddings.scp", src / "xvector.ark")
    (src / ".done").write_text("the mini corpus\n")
    data = tmp_path / "data" / "vox1"
    write_table(data / "wav.scp", wav)
    write_table(data / "utt2spk", {"a/b/1": "a", "b/c/2": "b"})
    lists = {"wav.scp": data / "wav.scp", "utt2spk": data / "utt2spk"}
    dst = out / "embeddings" / "vox1"
    making = set_making(out, evaluation, dst, "extract", lists)
    # the same making as the base's: the linked final.pt has the base's content
    assert not making.differences(set_making(base, evaluation, src, "extract", lists))
    assert link_base_set(out, dst, making, sorted(wav)) is None  # the base's set is not finished
    set_making(base, evaluation, src, "extract", lists).write([src / n for n in SET_FILES])
    assert link_base_set(out, dst, making, sorted(wav)) == src
    assert os.path.samefile(dst / "embeddings.ark", src / "embeddings.ark")
    # its own scp names its own (linked) ark, its own record; stage 4's marker is not carried over
    assert (dst / "embeddings.scp").read_text().splitlines()[1] == f"b/c/2 {dst}/embeddings.ark:{offset}"
    assert not (dst / ".done").exists()
    assert not making.reasons_to_redo(Record.load(dst))
    other = set_making(out, replace(evaluation, num_eval_crops=5), dst, "extract", lists)
    assert link_base_set(out, dst, other, sorted(wav)) is None  # other crops: extract

    # the cohort, which the base (plain cosine) never extracts: a sibling derived from the same
    # base links the one its first sibling extracted; an averaged system (no derived_from) does not
    first, second = out / "embeddings" / "cohort", tmp_path / "EA4_ms" / "embeddings" / "cohort"
    first.mkdir()
    for f in SET_FILES:
        (first / f).write_bytes((src / f).read_bytes().replace(str(src).encode(), str(first).encode()))
    set_making(out, evaluation, first, "extract", lists).write([first / n for n in SET_FILES])
    second.mkdir(parents=True)
    assert link_base_set(tmp_path / "EA4_ms", second, set_making(tmp_path / "EA4_ms", evaluation, second, "extract", lists),
                         sorted(wav)) == first
    assert os.path.samefile(second / "embeddings.ark", first / "embeddings.ark")
    assert (second / "embeddings.scp").read_text().splitlines()[1] == f"b/c/2 {second}/embeddings.ark:{offset}"
    make_experiment(tmp_path / "EA4_avg")
    (tmp_path / "EA4_avg" / "embeddings" / "cohort").mkdir(parents=True)
    avg = tmp_path / "EA4_avg" / "embeddings" / "cohort"
    assert link_base_set(tmp_path / "EA4_avg", avg, set_making(tmp_path / "EA4_avg", evaluation, avg, "extract", lists),
                         sorted(wav)) is None


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
    assert not (out / "derived_from").exists()  # another network: stage 4 extracts anew


def test_network_options_refused(tmp_path):
    base = make_experiment(tmp_path / "EA4")
    with pytest.raises(SpkidError, match="--margin would change the network"):
        derive(["--margin=0.5", str(base), str(tmp_path / "x")])
    with pytest.raises(SpkidError, match="no trained system"):
        derive([str(tmp_path / "none"), str(tmp_path / "y")])
