from pathlib import Path

import kaldiio
import numpy as np
import pytest
import soundfile as sf
import torch

from spkid.eval import extract
from spkid.config import write_resolved
from spkid.data.synthetic import make_noise_set
from spkid.data.validate import validate_data_dir
from spkid.errors import SpkidError
from spkid.eval.extract_set import ExtractOptions, extract_data
from spkid.eval.score_set import ScoreOptions, score_set
from spkid.models import build_model
from spkid.options import EvalOptions, LossOptions, ModelOptions, TrainOptions
from trained_system import system_step


def test_crop_geometry():
    assert extract.crop_samples(400) == 64_240
    assert extract.crop_samples(200) == 32_240
    starts = extract.crop_starts(100_000, 64_240, 10)
    np.testing.assert_array_equal(starts, np.linspace(0, 100_000 - 64_240, 10).astype(int))
    assert starts[0] == 0 and starts[-1] == 100_000 - 64_240
    wave = np.arange(100_000, dtype=np.float32)
    crops = extract.utterance_crops(wave, 64_240, 10)
    assert crops.shape == (10, 64_240)
    np.testing.assert_array_equal(crops[3], wave[starts[3]:starts[3] + 64_240])
    assert extract.utterance_crops(wave, 64_240, 0).shape == (1, 100_000)


def test_short_utterances_are_wrap_padded():
    wave = np.arange(5, dtype=np.float32)
    crops = extract.utterance_crops(wave, 12, 10)
    assert crops.shape == (10, 12) and np.all(crops == crops[0])
    np.testing.assert_array_equal(crops[0], [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1])  # repeated, not zero-padded
    assert extract.utterance_crops(wave, 12, 0).shape == (1, 12)


def test_merge_arks_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    mats = {f"u{i}": rng.normal(size=(i + 1, 3)).astype(np.float32) for i in range(5)}
    parts = []
    for k, keys in enumerate([["u3", "u4"], ["u0", "u1", "u2"]]):
        ark = tmp_path / f"p{k}.ark"
        assert extract.write_embeddings(((u, mats[u]) for u in keys), ark) == len(keys)
        parts.append(ark)
    assert extract.merge_arks(parts, tmp_path / "all.ark") == 5
    back = dict(kaldiio.load_scp(str(tmp_path / "all.scp")))
    assert sorted(back) == sorted(mats)
    for u, m in mats.items():
        np.testing.assert_array_equal(back[u], m)
    assert [line.split()[0] for line in (tmp_path / "all.scp").read_text().splitlines()] == sorted(mats)


def test_cohort_subset():
    spk2utt = {"b": [f"b/{i}" for i in range(10)], "a": ["a/0", "a/1"]}
    assert extract.cohort_subset(spk2utt, 3) == ["a/0", "a/1", "b/0", "b/4", "b/9"] or \
        extract.cohort_subset(spk2utt, 3) == ["a/0", "a/1", "b/0", "b/5", "b/9"]
    assert len(extract.cohort_subset(spk2utt, 0)) == 12


def tiny_system(tmp_path: Path, eval_frames=30, crops=3):
    torch.manual_seed(0)
    model_opts = ModelOptions(trunk="Q_SAP", channels="2,2,2,2", n_mels=16, embed_dim=8)
    exp = tmp_path / "exp" / "T"
    write_resolved(exp / "config.conf", model_opts, LossOptions(), TrainOptions(),
                   EvalOptions(eval_frames=eval_frames, num_eval_crops=crops))
    model = build_model(model_opts)
    torch.save({"model": model.state_dict(), "epoch": 1, "num_speakers": 2}, exp / "final.pt")
    return exp, model.eval()


def tiny_data(tmp_path: Path, n=5):
    return make_noise_set(tmp_path, n, (0.5, 0.75), speakers=2, seed=1)


def system_and_trials(tmp_path: Path, second_test: str = ""):
    """A tiny system and a 3-utterance set with a two-trial list ``l``: the first utterance against
    the second (target) and against ``second_test`` (default: the third)."""
    torch.set_num_threads(1)
    exp, _ = tiny_system(tmp_path)
    data = tiny_data(tmp_path, n=3)
    utts = sorted(data.wav_scp)
    (data.path / "trials").mkdir()
    (data.path / "trials" / "l").write_text(f"{utts[0]} {utts[1]} target\n{utts[0]} {second_test or utts[2]} nontarget\n")
    return exp, data, utts


extract_main = system_step(ExtractOptions, lambda *args: extract_data(*args, job_command=[]))


def test_embed_waveform_uses_the_systems_crops(tmp_path):
    """steps/verify.py and steps/embed.py embed with the crops of the system's EvalOptions."""
    torch.set_num_threads(1)
    _, model = tiny_system(tmp_path)
    wave = (0.1 * np.random.default_rng(2).normal(size=9000)).astype(np.float32)
    crop = extract.crop_samples(30)
    for crops in (3, 0):
        got = extract.embed_waveform(model, wave, EvalOptions(eval_frames=30, num_eval_crops=crops))
        with torch.no_grad():
            want = model(torch.from_numpy(extract.utterance_crops(wave, crop, crops))).numpy()
        assert got.shape == ((crops or 1), 8)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("nj", [1, 2])
def test_extract_end_to_end(tmp_path, nj, capsys):
    torch.set_num_threads(1)
    exp, model = tiny_system(tmp_path)
    data = tiny_data(tmp_path)
    main = extract_main
    assert main([f"--nj={nj}", "--read-workers=0", "--batch-utts=2", str(exp), str(data.path)]) == 0
    out = exp / "embeddings" / "set"
    table = dict(kaldiio.load_scp(str(out / "embeddings.scp")))
    assert sorted(table) == sorted(data.wav_scp)
    assert not (out / "split").exists()
    assert (out / "utt2spk").read_text().splitlines()[0] == "id00000/s/00000 id00000"
    crop = extract.crop_samples(30)
    for utt, entry in data.wav_scp.items():
        wave, _ = sf.read(entry, dtype="float32")
        with torch.no_grad():
            want = model(torch.from_numpy(extract.utterance_crops(wave, crop, 3))).numpy()
        assert table[utt].shape == (3, 8)
        np.testing.assert_allclose(table[utt], want, rtol=1e-4, atol=1e-5)
    # one FV per utterance for Kaldi's back-end: the mean of the normalised crops, as scoring has it
    vectors = dict(kaldiio.load_scp(str(out / "xvector.scp")))
    assert sorted(vectors) == sorted(table)
    for utt, mat in table.items():
        unit = mat / np.linalg.norm(mat, axis=1, keepdims=True)
        assert vectors[utt].shape == (8,) and vectors[utt].dtype == np.float32
        np.testing.assert_allclose(vectors[utt], unit.mean(axis=0), rtol=1e-6, atol=1e-7)
    ark = (out / "xvector.ark").read_bytes()
    assert ark.count(b" \0BFV \4\x08\0\0\0") == len(table)  # Kaldi's binary float vector, dim 8
    capsys.readouterr()
    assert main([f"--nj={nj}", str(exp), str(data.path)]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_cpu_parts_as_threads_match_one_batched_job(tmp_path):
    """The CPU fast path (--nj 2: parts as threads of one process, one-utterance batches by
    default) writes the embeddings of the straightforward one (one job, 16-utterance batches,
    DataLoader workers)."""
    torch.set_num_threads(1)
    exp, _ = tiny_system(tmp_path)
    data = tiny_data(tmp_path, n=7)
    main = extract_main
    scp = exp / "embeddings" / "set" / "embeddings.scp"
    assert main(["--nj=1", "--batch-utts=16", "--read-workers=1", str(exp), str(data.path)]) == 0
    plain = dict(kaldiio.load_scp(str(scp)))
    (exp / "embeddings" / "set" / "provenance.json").unlink()
    assert main(["--nj=2", str(exp), str(data.path)]) == 0
    fast = dict(kaldiio.load_scp(str(scp)))
    assert sorted(fast) == sorted(plain) == sorted(data.wav_scp)
    for utt in plain:
        np.testing.assert_allclose(fast[utt], plain[utt], rtol=1e-5, atol=1e-6)


def test_a_failing_cpu_part_fails_the_set(tmp_path):
    """A part that fails in its thread raises its own error (naming the utterance); the set is not marked done."""
    torch.set_num_threads(1)
    exp, _ = tiny_system(tmp_path)
    data = tiny_data(tmp_path, n=6)
    bad = sorted(data.wav_scp)[-1]
    sf.write(data.wav_scp[bad], np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(SpkidError, match=f"utterance '{bad}': {data.wav_scp[bad]}: only 0.00 s of audio"):
        extract_main(["--nj=2", str(exp), str(data.path)])
    out = exp / "embeddings" / "set"
    assert not (out / "provenance.json").exists() and not (out / "embeddings.scp").exists()


def test_audio_that_cannot_be_embedded_stops_the_set_naming_utterance_and_file(tmp_path):
    # NaN samples made NaN embeddings with exit 0 (found only at stage 5), a cut-short WAV was
    # embedded from what it held: both are refused as verify/embed refuse them
    torch.set_num_threads(1)
    exp, _ = tiny_system(tmp_path)
    data = tiny_data(tmp_path, n=3)
    bad = sorted(data.wav_scp)[1]
    x, _ = sf.read(data.wav_scp[bad], dtype="float32")
    x[50] = np.nan
    sf.write(data.wav_scp[bad], x, 16000, subtype="FLOAT")
    with pytest.raises(SpkidError, match=f"utterance '{bad}': {data.wav_scp[bad]}: holds NaN or infinite samples"):
        extract_main(["--read-workers=0", str(exp), str(data.path)])
    sf.write(data.wav_scp[bad], np.nan_to_num(x), 16000, subtype="PCM_16")
    held = len(x) // 2
    Path(data.wav_scp[bad]).write_bytes(Path(data.wav_scp[bad]).read_bytes()[:44 + 2 * held])
    with pytest.raises(SpkidError, match=f"utterance '{bad}': {data.wav_scp[bad]}: cut short: its header promises "
                                         f"{len(x)} samples, the file holds {held}"):
        extract_main(["--read-workers=0", str(exp), str(data.path)])
    assert not (exp / "embeddings" / "set" / "provenance.json").exists()


def test_one_writer_per_embeddings_set_and_utt2spk_covers_wav_scp(tmp_path):
    # two extractions of one set deleted each other's temporary files; an utterance missing from
    # utt2spk was left out of the set's copy of it without a word
    from test_fileio import hold_lock

    exp, _ = tiny_system(tmp_path)
    data = tiny_data(tmp_path, n=3)
    out = exp / "embeddings" / "set"
    holder = hold_lock(out)
    try:
        with pytest.raises(SpkidError, match=rf"{out} is in use by PID {holder.pid} on .*training exp/X"):
            extract_main(["--read-workers=0", str(exp), str(data.path)])
    finally:
        holder.kill()
        holder.wait()
    assert sorted(p.name for p in out.iterdir()) == [".lock"]
    lost = sorted(data.utt2spk)[1]
    del data.utt2spk[lost]
    data.write()
    with pytest.raises(SpkidError, match=rf"1 utterance\(s\) of {data.path}'s wav.scp are not in its utt2spk, e.g. "
                                         rf"'{lost}': add them to utt2spk"):
        extract_main(["--read-workers=0", str(exp), str(data.path)])


def test_changed_crops_or_weights_are_extracted_again(tmp_path, capsys):
    torch.set_num_threads(1)
    exp, _ = tiny_system(tmp_path)
    data = tiny_data(tmp_path, n=3)
    main = extract_main
    args = ["--read-workers=0", str(exp), str(data.path)]
    scp = exp / "embeddings" / "set" / "embeddings.scp"
    assert main(args) == 0
    assert {v.shape for v in dict(kaldiio.load_scp(str(scp))).values()} == {(3, 8)}
    capsys.readouterr()
    assert main(["--num-eval-crops=5", *args]) == 0
    assert "made with other inputs (--num-eval-crops 3 -> 5)" in capsys.readouterr().out
    assert {v.shape for v in dict(kaldiio.load_scp(str(scp))).values()} == {(5, 8)}
    before = dict(kaldiio.load_scp(str(scp)))
    # retrained: new weights in final.pt
    torch.manual_seed(7)
    model = build_model(ModelOptions(trunk="Q_SAP", channels="2,2,2,2", n_mels=16, embed_dim=8))
    torch.save({"model": model.state_dict(), "epoch": 2, "num_speakers": 2}, exp / "final.pt")
    capsys.readouterr()
    assert main(["--num-eval-crops=5", *args]) == 0
    assert "made with other inputs (final.pt " in capsys.readouterr().out
    after = dict(kaldiio.load_scp(str(scp)))
    assert not any(np.allclose(before[u], after[u]) for u in before)
    capsys.readouterr()
    assert main(["--num-eval-crops=5", *args]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_extract_errors(tmp_path):
    exp, model = tiny_system(tmp_path)
    data = tiny_data(tmp_path, n=2)
    # a final.pt of NaN weights (a diverged training wrote one) gave NaN embeddings and exit 0
    state = model.state_dict()
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = torch.full_like(state[name], float("nan"))
    torch.save({"model": state, "epoch": 1, "num_speakers": 2}, exp / "final.pt")
    with pytest.raises(extract.ExtractError, match=rf"final.pt: 1 weight tensors are NaN or infinite \(e.g. {name}\)"):
        extract_main(["--read-workers=0", str(exp), str(data.path)])
    assert not (exp / "embeddings" / "set" / "embeddings.ark").exists()
    (exp / "final.pt").unlink()
    with pytest.raises(SpkidError, match="final.pt not found"):
        extract_main(["--read-workers=0", str(exp), str(data.path)])


def test_crop_memory_estimate_is_what_the_forward_pass_holds():
    # per crop: the probe's input and the tensors the pass makes (a view of it makes none, a ReLU
    # one of the same size), then the crops as numpy and as a tensor; 4 bytes a sample throughout
    crop = extract.crop_samples(400)
    view = torch.nn.Sequential(torch.nn.Unflatten(1, (-1, 1)))
    assert extract.crops_bytes(view, crop, 10, "cpu") == 10 * (4 * crop + 8 * crop)
    relu = torch.nn.Sequential(torch.nn.Unflatten(1, (-1, 1)), torch.nn.ReLU())
    assert extract.crops_bytes(relu, crop, 10, "cpu") == 10 * (8 * crop + 8 * crop)
    # the weights are not counted, nor are views of them
    linear = torch.nn.Sequential(torch.nn.Unflatten(1, (-1, 1)), torch.nn.Linear(1, 1, bias=False))
    assert extract.crops_bytes(linear, crop, 1, "cpu") == 8 * crop + 8 * crop


def test_crops_that_cannot_fit_in_memory_are_refused(tmp_path):
    # 100,000 crops was an OOM kill at 11.6 GB; the estimate, the limit and the options are named
    exp, _ = tiny_system(tmp_path)
    data = tiny_data(tmp_path, n=2)
    with pytest.raises(SpkidError, match=r"--num-eval-crops=10000000 crops of --eval-frames=400 need about "
                                         r"[0-9.]+ GiB to embed one utterance, but this .* has [0-9.]+ GiB available: "
                                         r"lower --num-eval-crops or --eval-frames"):
        extract_main(["--read-workers=0", "--num-eval-crops=10000000", "--eval-frames=400", str(exp), str(data.path)])
    assert not (exp / "embeddings" / "set" / "embeddings.ark").exists()
    assert extract_main(["--read-workers=0", str(exp), str(data.path)]) == 0  # the system's own 3 crops fit


def test_a_segmented_dir_embeds_each_segment_as_its_own_file(tmp_path):
    # the validator said OK and extraction embedded the recordings instead; now each utterance is
    # recording[start:end], as Kaldi's extract-segments cuts it: the same as the cut files' embeddings
    exp, _ = tiny_system(tmp_path)
    rng = np.random.default_rng(3)
    recordings = {r: (0.1 * rng.normal(size=3 * 16000)).astype(np.float32) for r in ("r1", "r2")}
    cuts = {"r1-a": ("r1", "0", "1.2"), "r1-b": ("r1", "1.1", "-1"), "r2-a": ("r2", "0.5", "3.3")}  # 0.3 s past
    seg, cut = tmp_path / "data" / "seg", tmp_path / "data" / "cut"
    for d in (seg, cut, tmp_path / "wav"):
        d.mkdir(parents=True, exist_ok=True)
    for r, x in recordings.items():
        sf.write(tmp_path / "wav" / f"{r}.wav", x, 16000, subtype="FLOAT")
    for u, (r, start, end) in cuts.items():
        x = recordings[r]
        sf.write(tmp_path / "wav" / f"{u}.wav", x[int(float(start) * 16000):None if end == "-1" else
                                                  int(float(end) * 16000)], 16000, subtype="FLOAT")
    (seg / "wav.scp").write_text("".join(f"{r} {tmp_path / 'wav' / r}.wav\n" for r in recordings))
    (seg / "segments").write_text("".join(f"{u} {' '.join(c)}\n" for u, c in cuts.items()))
    (cut / "wav.scp").write_text("".join(f"{u} {tmp_path / 'wav' / u}.wav\n" for u in cuts))
    for d in (seg, cut):
        (d / "utt2spk").write_text("".join(f"{u} {u[:2]}\n" for u in cuts))
        (d / "spk2utt").write_text("r1 r1-a r1-b\nr2 r2-a\n")
    assert validate_data_dir(seg) == []
    for d in (seg, cut):
        assert extract_main(["--read-workers=0", str(exp), str(d)]) == 0
    got = dict(kaldiio.load_scp(str(exp / "embeddings" / "seg" / "embeddings.scp")))
    want = dict(kaldiio.load_scp(str(exp / "embeddings" / "cut" / "embeddings.scp")))
    assert sorted(got) == sorted(cuts)
    for u in cuts:
        np.testing.assert_allclose(got[u], want[u], rtol=1e-5, atol=1e-6)
    # a segment ending further past its recording than Kaldi cuts is named by the validator and refused
    (seg / "segments").write_text("r1-a r1 0 1.2\nr1-b r1 1.1 -1\nr2-a r2 0.5 3.6\n")
    assert validate_data_dir(seg) == [f"{seg}/segments:3: utterance 'r2-a' ends at 3.6 s, 0.60 s past the end of "
                                      f"its recording (3.00 s); Kaldi's extract-segments cuts at most 0.5 s: fix its "
                                      f"line in segments"]
    with pytest.raises(SpkidError, match=r"utterance 'r2-a': segment .*r2.wav \[0.5-3.6 s\] ends at 3.6 s"):
        extract_main(["--read-workers=0", str(exp), str(seg)])


def test_an_empty_data_dir_is_refused(tmp_path):
    # extraction said it embedded 0 utterances and exited 0; scoring and training did alike
    exp, _ = tiny_system(tmp_path)
    data = tiny_data(tmp_path, n=2)
    for name in ("wav.scp", "utt2spk", "spk2utt"):
        (data.path / name).write_text("")
    with pytest.raises(SpkidError, match=rf"^{data.path}/wav.scp lists no utterances: a data directory needs at "
                                         rf"least one; re-run the data preparation"):
        extract_main(["--read-workers=0", str(exp), str(data.path)])
    assert not (exp / "embeddings" / "set").exists()


def test_as_norm_cohort_flow(tmp_path, capsys):
    """Stage 4 with --cohort-data extracts the cohort; stage 5 AS-norms against it."""
    torch.set_num_threads(1)
    exp, _ = tiny_system(tmp_path)
    conf = exp / "config.conf"
    conf.write_text(conf.read_text().replace("--as-norm=false", "--as-norm=true")
                    .replace("--cohort-utts-per-spk=10", "--cohort-utts-per-spk=2"))
    data = tiny_data(tmp_path, n=6)
    train = tiny_data(tmp_path / "train", n=8)
    utts = sorted(data.wav_scp)
    (data.path / "trials").mkdir()
    (data.path / "trials" / "l").write_text(f"{utts[0]} {utts[2]} target\n{utts[0]} {utts[1]} nontarget\n")
    main = extract_main
    assert main(["--read-workers=0", f"--cohort-data={train.path}", str(exp), str(data.path)]) == 0
    cohort = exp / "embeddings" / "cohort"
    assert len((cohort / "embeddings.scp").read_text().splitlines()) == 4  # 2 speakers x 2
    capsys.readouterr()
    assert system_step(ScoreOptions, score_set)([str(exp), str(data.path)]) == 0
    assert "AS-norm top-300 of 2 cohort speakers" in capsys.readouterr().out
    assert len((exp / "scores" / "set" / "l.score").read_text().splitlines()) == 2


def test_a_trial_utterance_missing_from_wav_scp_names_the_list_line_and_fix(tmp_path):
    # it said "re-run steps/extract.sh", which embeds wav.scp and so changes nothing
    exp, data, utts = system_and_trials(tmp_path, "ghost/x/00001")
    assert extract_main(["--read-workers=0", str(exp), str(data.path)]) == 0
    with pytest.raises(SpkidError) as e:
        system_step(ScoreOptions, score_set)([str(exp), str(data.path)])
    msg = str(e.value)
    assert msg.startswith(f"{data.path}/trials/l:2: utterance 'ghost/x/00001' is not in {data.path}/wav.scp, so it "
                          f"has no embedding: correct the trial list, or add the utterance")
    assert "re-run steps/extract.sh" not in msg



def test_no_list_line_runs_at_stage_4_or_5(tmp_path):
    """'cmd |', '| cmd' lines written into every list stages 4 and 5 read (wav.scp of the set and
    of the cohort's training data, the set's and the cohort's embeddings.scp (read under
    --mean-subtract: it ran them), xvector.scp, a trial list): nothing runs; stage 5 fails naming
    the file and line; stage 4 refuses a data dir's commands without --allow-pipes and extracts
    its own damaged outputs again."""
    torch.set_num_threads(1)
    exp, _ = tiny_system(tmp_path)
    conf = exp / "config.conf"
    conf.write_text(conf.read_text().replace("--mean-subtract=false", "--mean-subtract=true")
                    .replace("--cohort-utts-per-spk=10", "--cohort-utts-per-spk=2"))
    data, train = tiny_data(tmp_path, n=4), tiny_data(tmp_path / "train", n=4)
    utts = sorted(data.wav_scp)
    (data.path / "trials").mkdir()
    (data.path / "trials" / "l").write_text(f"{utts[0]} {utts[2]} target\n{utts[0]} {utts[1]} nontarget\n")
    stage4 = ["--read-workers=0", f"--cohort-data={train.path}", str(exp), str(data.path)]
    assert extract_main(stage4) == 0
    score = system_step(ScoreOptions, score_set)
    pwned = tmp_path / "PWNED"
    emb, cohort = exp / "embeddings" / "set", exp / "embeddings" / "cohort"

    def tamper(path, line_no, pipe):
        lines = path.read_text().splitlines()
        key = lines[line_no - 1].split()[0]
        lines[line_no - 1] = f"{key} touch {pwned}; cat x |" if pipe == "cmd |" else f"{key} | touch {pwned}"
        path.write_text("\n".join(lines) + "\n")

    for pipe in ("cmd |", "| cmd"):
        for path, step, argv in ((data.path / "wav.scp", extract_main, stage4),
                                 (train.path / "wav.scp", extract_main, stage4),
                                 (emb / "embeddings.scp", score, [str(exp), str(data.path)]),
                                 (cohort / "embeddings.scp", score, [str(exp), str(data.path)]),
                                 (data.path / "trials" / "l", score, [str(exp), str(data.path)])):
            before = path.read_text()
            tamper(path, 2, pipe)
            # an embeddings.scp changed since stage 4 is refused by its digest before it is read
            with pytest.raises(SpkidError, match=rf"^{path}(:2: | changed \(sha256 )"):
                step(argv)
            path.write_text(before)
    for path, pipe in ((emb / "embeddings.scp", "cmd |"), (emb / "xvector.scp", "| cmd"),
                       (cohort / "embeddings.scp", "| cmd")):
        tamper(path, 1, pipe)
        assert extract_main(stage4) == 0  # stage 4's own outputs: made again, not run
        assert "touch" not in path.read_text()
    assert score([str(exp), str(data.path)]) == 0
    assert not pwned.exists()


def test_stage5_refuses_embeddings_that_are_not_what_stage4_recorded(tmp_path):
    """Provenance (spkid.expdir): a final.pt changed after stage 4 makes stage 4 extract again and
    stage 5 refuse the old ark; an ark changed in place (its records still well formed) is
    refused by stage 5 naming the ark and stage 4."""
    exp, data, utts = system_and_trials(tmp_path)
    score = system_step(ScoreOptions, score_set)
    assert extract_main(["--read-workers=0", str(exp), str(data.path)]) == 0
    assert score([str(exp), str(data.path)]) == 0
    ark = exp / "embeddings" / "set" / "embeddings.ark"

    # retrained after stage 4: a different network in final.pt
    torch.manual_seed(11)
    model = build_model(ModelOptions(trunk="Q_SAP", channels="2,2,2,2", n_mels=16, embed_dim=8))
    torch.save({"model": model.state_dict(), "epoch": 2, "num_speakers": 2}, exp / "final.pt")
    with pytest.raises(SpkidError, match=rf"{exp}/final.pt changed .* since stage 4 made {ark.parent}: re-run "
                                         rf"stage 4 for it: steps/extract.sh {exp} {data.path}"):
        score([str(exp), str(data.path)])
    assert extract_main(["--read-workers=0", str(exp), str(data.path)]) == 0  # redone, not "nothing to do"
    assert score([str(exp), str(data.path)]) == 0

    # one float of the last record changed in place: the ark still parses, its digest does not match
    blob = bytearray(ark.read_bytes())
    blob[-4:] = np.float32(0.123).tobytes()
    ark.write_bytes(bytes(blob))
    with pytest.raises(SpkidError, match=rf"{ark} changed \(sha256 [0-9a-f]{{8}} recorded, [0-9a-f]{{8}} now\) since "
                                         rf"stage 4 made {ark.parent}: re-run stage 4 for it"):
        score([str(exp), str(data.path)])
