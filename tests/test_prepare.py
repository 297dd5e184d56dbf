"""Stage 2 on the tiny mini corpus, and on broken corpora."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mini_corpus_fixture import TINY, tiny_corpus
from spkid.data.augment import PackedAudio
from spkid.data.datadir import DataDir, read_trials, read_utt2dur, read_wav_scp
from spkid.data.validate import validate_data_dir
from spkid.corpora.prepare import PrepareError, PrepareOptions, musan_segments, prepare
from spkid.corpora.sets import SetSummary, compare_known


def run_prepare(corpus: Path, data: Path) -> list[SetSummary]:
    return prepare(PrepareOptions(corpus_dir=str(corpus), data=str(data), nj=2, quiet=True))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    data = tmp_path_factory.mktemp("data")
    return data, run_prepare(tiny_corpus(), data)


def linked_corpus(tmp_path: Path, without: str = "") -> Path:
    """A corpus of symlinks to the tiny corpus' parts, lacking ``without``."""
    src, dst = tiny_corpus(), tmp_path / "corpus"
    dst.mkdir()
    for p in src.iterdir():
        if p.name != without:
            os.symlink(p, dst / p.name)
    return dst


def test_data_dirs_valid(prepared):
    data, summaries = prepared
    names = {s.name for s in summaries}
    assert names == {"vox2_dev", "vox1", "vox1_test", "voxsrc20_val", "musan_noise", "musan_music",
                     "musan_speech", "rirs"}
    for name in names:
        assert validate_data_dir(data / name, augmentation=name == "rirs") == [], name
    vox2 = DataDir.load(data / "vox2_dev")
    assert len(vox2.utts) == TINY["train_speakers"] * TINY["utts_per_speaker"]
    assert len(vox2.spk2utt) == TINY["train_speakers"]
    assert all(u.split("/")[0] == s for u, s in vox2.utt2spk.items())
    assert all(2.0 <= d <= 8.0 for d in vox2.utt2dur.values())
    vox1 = DataDir.load(data / "vox1")
    assert set(vox1.trial_lists()) == {"vox1_O", "vox1_E", "vox1_H"}
    o = read_trials(data / "vox1/trials/vox1_O")
    assert set(DataDir.load(data / "vox1_test").utts) == o.utterances < set(vox1.utts)
    assert not (data / "vox1_test/trials").exists()
    assert set(DataDir.load(data / "voxsrc20_val").trial_lists()) == {"voxsrc20_val"}
    first = (data / "vox1/trials/vox1_E").read_text().splitlines()[0].split()
    assert first[2] in ("target", "nontarget") and not first[0].endswith(".wav")
    rirs = DataDir.load(data / "rirs")
    assert set(rirs.spk2utt) == {"smallroom", "mediumroom"}
    assert all(Path(p).is_file() and os.path.isabs(p) for p in rirs.wav_scp.values())


def test_trials_match_the_voxceleb_lists(prepared):
    data, _ = prepared
    corpus = tiny_corpus()
    for listfile, kaldi in (("veri_test2.txt", "vox1/trials/vox1_O"), ("list_test_hard2.txt", "vox1/trials/vox1_H"),
                            ("voxsrc2020_val.txt", "voxsrc20_val/trials/voxsrc20_val")):
        src = [line.split() for line in (corpus / "lists" / listfile).read_text().splitlines()]
        dst = [line.split() for line in (data / kaldi).read_text().splitlines()]
        ids = voxsrc_ids if listfile.startswith("voxsrc") else (lambda path: path[:-4])
        assert [(ids(a), ids(b), "target" if lab == "1" else "nontarget") for lab, a, b in src] == \
            [tuple(r) for r in dst]
    # VoxSRC 2020: speakers are the idNNNNN part of each path, never 'voxceleb1' or 'voxceleb1_cd'
    val = DataDir.load(data / "voxsrc20_val")
    src = [line.split() for line in (corpus / "lists/voxsrc2020_val.txt").read_text().splitlines()]
    paths = {p for _, a, b in src for p in (a, b)}
    assert val.utt2spk == {voxsrc_ids(p): p.split("/")[1] for p in paths}
    assert {u: Path(w) for u, w in val.wav_scp.items()} == {voxsrc_ids(p): corpus / "voxsrc2020_val/wav" / p
                                                            for p in paths}


def voxsrc_ids(path: str) -> str:
    """The utterance ids of VoxSRC 2020's paths, written out: the speaker first, as Kaldi wants."""
    top, spk, *rest = path[:-4].split("/")
    return "/".join([spk, *rest]) if top == "voxceleb1" else "/".join([spk, top, *rest])


def test_musan_segments(prepared):
    data, _ = prepared
    segs = musan_segments({"a": 11.5, "b": 4.0, "c": 5.0})
    assert segs == {"a-0000000": "a 0.00 5.00", "a-0000300": "a 3.00 8.00", "a-0000600": "a 6.00 11.00",
                    "b-0000000": "b 0.00 4.00", "c-0000000": "c 0.00 5.00"}
    noise = DataDir.load(data / "musan_noise")
    recordings = read_wav_scp(data / "musan_noise/wav.scp")  # (noise.wav_scp: one entry per segment)
    reco2dur = read_utt2dur(data / "musan_noise/reco2dur")
    assert set(reco2dur) == set(recordings)
    lines = (data / "musan_noise/segments").read_text().splitlines()
    assert len(lines) > len(recordings) and [line.split()[0] for line in lines] == sorted(noise.utt2spk)
    assert sorted(noise.wav_scp) == sorted(noise.utt2spk)
    for line in lines:
        seg, rec, start, end = line.split()
        assert rec in recordings and 0 <= float(start) < float(end) <= reco2dur[rec] + 0.01
        assert noise.utt2spk[seg] == seg and noise.utt2dur[seg] == pytest.approx(float(end) - float(start), abs=1e-3)
    # stage 2 packs each MUSAN dir: the recordings' 16-bit samples, in wav.scp order
    packed = PackedAudio.load(data / "musan_noise", recordings)
    assert list(packed.recordings) == sorted(recordings)
    for utt, (offset, n) in packed.recordings.items():
        x, _ = sf.read(recordings[utt], dtype="int16")
        np.testing.assert_array_equal(packed.samples[offset:offset + n], x)


def test_rerun_is_idempotent(prepared, tmp_path, capsys):
    data, _ = prepared
    before = {p: p.read_bytes() for p in sorted(data.rglob("*")) if p.is_file()}
    run_prepare(tiny_corpus(), data)
    after = {p: p.read_bytes() for p in sorted(data.rglob("*")) if p.is_file()}
    assert before == after
    assert "skipped voxsrc19_test (stages 4-6 score it): none of its trial lists (voxsrc2019_test.txt)" in capsys.readouterr().out


SETS_OF = {"voxceleb1": {"vox1", "vox1_test"}, "voxceleb2": {"vox2_dev"},
           "musan": {"musan_noise", "musan_music", "musan_speech"}}


@pytest.mark.parametrize("part", ["voxceleb1", "voxceleb2", "musan"])
def test_a_missing_part_skips_its_sets_and_says_so_once(tmp_path, capsys, part):
    corpus = linked_corpus(tmp_path, without=part)
    data = tmp_path / "data"
    names = {s.name for s in run_prepare(corpus, data)}
    all_sets = {"vox2_dev", "vox1", "vox1_test", "voxsrc20_val", "musan_noise", "musan_music", "musan_speech", "rirs"}
    assert names == all_sets - SETS_OF[part]
    for name in names:
        assert validate_data_dir(data / name, augmentation=name == "rirs") == [], name
    out = capsys.readouterr().out
    # one line per set it could not prepare (vox1_test goes with vox1), naming the folder and the fix
    # (the mini corpus has no VoxSRC 2019 list: that set is skipped in every run)
    skipped = [line for line in out.splitlines() if line.startswith("skipped ") and "voxsrc19" not in line]
    assert len(skipped) == len(SETS_OF[part] - {"vox1_test"}), out
    assert all(f"{corpus / part}" in line and "run.sh --corpus mini --stage 1" in line for line in skipped)


def test_nothing_usable_is_an_error_naming_every_skipped_set(tmp_path):
    corpus = tmp_path / "corpus"
    (corpus / "musan").mkdir(parents=True)
    with pytest.raises(PrepareError, match=r"neither training nor evaluation audio(.|\n)*skipped vox2_dev "
                                           r"\(stage 3 trains on it\)(.|\n)*skipped vox1 "):
        run_prepare(corpus, tmp_path / "data")


def test_lists_without_their_audio_are_skipped(tmp_path, capsys):
    corpus = linked_corpus(tmp_path, without="voxsrc2020_val")
    names = {s.name for s in run_prepare(corpus, tmp_path / "data")}
    assert "voxsrc20_val" not in names and "vox1" in names
    assert f"skipped voxsrc20_val (stages 4-6 score it): {corpus / 'voxsrc2020_val/wav'} not found" in capsys.readouterr().out


def test_missing_corpus_dir(tmp_path):
    with pytest.raises(PrepareError, match="run stage 1 first"):
        run_prepare(tmp_path / "nowhere", tmp_path / "data")


def test_trial_utterance_without_audio(tmp_path):
    corpus = linked_corpus(tmp_path, without="lists")
    (corpus / "lists").mkdir()
    for p in (tiny_corpus() / "lists").iterdir():
        os.symlink(p, corpus / "lists" / p.name)
    (corpus / "lists/veri_test2.txt").unlink()
    (corpus / "lists/veri_test2.txt").write_text("1 id10001/AAAAAAAAAAA/00001.wav id10001/BBBBBBBBBBB/00001.wav\n")
    with pytest.raises(PrepareError, match=r"veri_test2.txt:1: utterance 'id10001/AAAAAAAAAAA/00001' has no audio"):
        run_prepare(corpus, tmp_path / "data")


def test_wrong_sample_rate(tmp_path):
    corpus = linked_corpus(tmp_path, without="musan")
    for kind in ("noise", "music", "speech"):
        (corpus / "musan" / kind / "x").mkdir(parents=True)
        sf.write(corpus / "musan" / kind / "x/a.wav", np.zeros(8000, np.int16), 8000 if kind == "music" else 16000)
    with pytest.raises(PrepareError, match=r"not 16000 Hz mono, e.g. utterance 'x/a'.*ffmpeg"):
        run_prepare(corpus, tmp_path / "data")


def test_compare_known_counts():
    ok = [SetSummary("vox2_dev", 1_092_009, 5_994, {}), SetSummary("vox1", 153_516, 1_251, {"vox1_O": 37_611})]
    assert compare_known(ok) == []
    short = [SetSummary("vox2_dev", 1000, 5_994, {}), SetSummary("vox1", 153_516, 1_251, {"vox1_O": 37_720})]
    warnings = compare_known(short)
    assert len(warnings) == 2 and "1,092,009" in warnings[0] and "37,611" in warnings[1]


def test_linked_speaker_folders_are_found(tmp_path):
    """VoxCeleb1 dev and test merged by links (ln -s .../wav/* corpus/voxceleb/voxceleb1/wav/)."""
    from spkid.corpora.convert import find_files
    from spkid.corpora.prepare import scan_wavs

    real = tmp_path / "real" / "id10001" / "v1"
    real.mkdir(parents=True)
    sf.write(real / "00001.wav", np.zeros(1600, np.float32), 16000)
    wav = tmp_path / "corpus" / "voxceleb1" / "wav"
    wav.mkdir(parents=True)
    (wav / "id10001").symlink_to(tmp_path / "real" / "id10001")
    assert list(scan_wavs(wav)) == ["id10001/v1/00001"]
    assert find_files(wav, ".wav") == ["id10001/v1/00001.wav"]


def kaldi_fix_data_dir(d: Path) -> dict[str, list[str]]:
    """What Kaldi's utils/fix_data_dir.sh would leave in ``d`` (our reading of the script, written
    out independently of spkid.data.validate): sort -k1,1 -u of each file, then recordings,
    speakers and utterances filtered against each other, spk2utt rebuilt from utt2spk."""
    names = ("utt2spk", "spk2utt", "segments", "wav.scp", "utt2dur", "reco2dur")
    f = {n: (d / n).read_bytes().decode().splitlines() for n in names if (d / n).is_file()}
    for n in f:
        if n != "reco2dur":  # the script does not sort reco2dur
            first: dict[bytes, str] = {}
            for line in f[n]:
                first.setdefault(line.split()[0].encode(), line)
            f[n] = [first[k] for k in sorted(first)]

    def keep(n: str, keys) -> None:  # utils/filter_scp.pl: the file's order, lines whose key is kept
        keys = set(keys)
        f[n] = [line for line in f[n] if line.split()[0] in keys]

    def recordings() -> None:
        if "segments" in f:
            recs = {line.split()[1] for line in f["segments"]} & {line.split()[0] for line in f["wav.scp"]}
            f["segments"] = [line for line in f["segments"] if line.split()[1] in recs]
            keep("wav.scp", recs)

    def speakers() -> None:  # utt2spk_to_spk2utt.pl, then spk2utt_to_utt2spk.pl
        spk2utt: dict[str, list[str]] = {}
        for line in f["utt2spk"]:
            u, s = line.split()
            spk2utt.setdefault(s, []).append(u)
        f["spk2utt"] = [" ".join([s, *us]) for s, us in spk2utt.items()]
        f["utt2spk"] = [f"{u} {s}" for s, us in spk2utt.items() for u in us]

    def utterances() -> None:
        lines = f["utt2spk"]
        assert lines == sorted(lines, key=str.encode), "utt2spk is not in sorted order"
        assert lines == sorted(lines, key=lambda x: (x.split()[1].encode(), x.encode())), "not sorted by speaker"
        utts = [line.split()[0] for line in lines]
        for n in ("segments",) if "segments" in f else ("wav.scp",):
            have = {line.split()[0] for line in f[n]}
            utts = [u for u in utts if u in have]
        assert utts, "fix_data_dir.sh: no utterances remained: not proceeding further."
        for n in ("utt2spk", "segments", "utt2dur") + (() if "segments" in f else ("wav.scp",)):
            if n in f:
                keep(n, utts)

    recordings(), speakers(), utterances(), speakers(), recordings()
    return f


def test_every_dir_comes_out_of_kaldis_fix_data_dir_unchanged(prepared, tmp_path):
    data, summaries = prepared
    for s in summaries:
        d = data / s.name
        before = {n: (d / n).read_text().splitlines() for n in
                  ("utt2spk", "spk2utt", "segments", "wav.scp", "utt2dur", "reco2dur") if (d / n).is_file()}
        assert kaldi_fix_data_dir(d) == before, s.name
    # the MUSAN dirs as they were (utt2spk and utt2dur keyed by recording beside window segments)
    old = tmp_path / "old_musan"
    shutil.copytree(data / "musan_noise", old)
    recs = [line.split()[0] for line in (old / "wav.scp").read_text().splitlines()]
    (old / "utt2spk").write_text("".join(f"{r} {r}\n" for r in recs))
    (old / "spk2utt").write_text("".join(f"{r} {r}\n" for r in recs))
    with pytest.raises(AssertionError, match="no utterances remained"):
        kaldi_fix_data_dir(old)
    assert any("is missing from" in p for p in validate_data_dir(old, check_audio=False))
