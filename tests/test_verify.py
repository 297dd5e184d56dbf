"""spkid/eval/verify.py (steps/verify.py): two recordings -> score and decision at the saved threshold; pairs -> score file."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from spkid.config import ConfigError, parse_options
from spkid.errors import SpkidError
from spkid.eval.extract import load_system
from spkid.eval.extract import embed_waveform
from spkid.data.inputs import load_recording
from spkid.options import EvalOptions
from spkid.eval.verify import VerifyOptions, read_pairs, verify
from trained_system import make_experiment, save_metrics, voice, write_voice


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("verify")
    exp = make_experiment(root / "exp")
    # scored validation list: EER point 0.5, MinDCF point 0.8 (see tests/test_threshold.py)
    save_metrics(exp, "voxsrc20_val", "voxsrc20_val")
    wav = root / "wav"
    files = {
        "a": write_voice(wav / "a.wav", 2.0, f0=110, seed=1),
        "b": write_voice(wav / "b.wav", 1.5, f0=210, seed=2),
        "c": write_voice(wav / "c.wav", 0.7, f0=150, seed=3),  # shorter than a crop: wrap-padded
    }
    x = voice(2.0, 44100, f0=110, seed=1)  # "a" again, at 44.1 kHz in stereo
    sf.write(wav / "a_stereo44k.wav", np.stack([x, x], 1), 44100)
    files["a2"] = wav / "a_stereo44k.wav"
    sf.write(wav / "silent.wav", np.zeros(16000, np.float32), 16000)
    files["silent"] = wav / "silent.wav"
    (wav / "corrupt.wav").write_bytes(b"RIFF....WAVE nonsense")
    files["corrupt"] = wav / "corrupt.wav"
    return exp, {k: str(v) for k, v in files.items()}


def mean_crop_cosine(system, a: str, b: str) -> float:
    """The paper's score computed directly: mean over all crop pairs of the cosine similarity."""
    ea, eb = (embed_waveform(system.model, load_recording(f).wave, system.eval_opts, torch.device("cpu")) for f in (a, b))
    return float(np.mean([[x @ y / np.linalg.norm(x) / np.linalg.norm(y) for y in eb] for x in ea]))


def test_one_pair(setup, capsys):
    exp, f = setup
    system = load_system(exp)
    for other in ("b", "c", "a2"):
        assert verify(VerifyOptions(), str(exp), f["a"], f[other]) == 0
        out = capsys.readouterr()
        score, decision, rest = out.out.split(" ", 2)
        assert float(score) == pytest.approx(mean_crop_cosine(system, f["a"], f[other]), abs=1e-4)
        assert decision == ("same" if float(score) >= 0.5 else "different")
        assert rest.strip() == "(threshold 0.5000 at the EER point of voxsrc20_val)"
    assert "a_stereo44k.wav: 2 channels mixed down" in out.err
    # the same voice through resampling and mixdown scores as itself
    assert float(score) > 0.99
    assert verify(VerifyOptions(point="min_dcf", threshold="2"), str(exp), f["a"], f["a"]) == 0
    assert capsys.readouterr().out.split()[1] == "different"  # cosine <= 1 < 2
    assert verify(VerifyOptions(point="min_dcf"), str(exp), f["a"], f["b"]) == 0
    assert "threshold 0.8000 at the MinDCF point of voxsrc20_val" in capsys.readouterr().out


def test_bad_file_in_one_pair_is_an_error_naming_it(setup):
    exp, f = setup
    with pytest.raises(SpkidError, match=r"silent\.wav: silent"):
        verify(VerifyOptions(), str(exp), f["a"], f["silent"])
    with pytest.raises(SpkidError, match=r"corrupt\.wav: cannot decode"):
        verify(VerifyOptions(), str(exp), f["corrupt"], f["a"])


def test_pairs_file_scores_the_rest_and_reports_bad_files(setup, tmp_path, capsys):
    exp, f = setup
    pairs = tmp_path / "pairs.txt"
    pairs.write_text(f"{f['a']} {f['b']}\n{f['a']} {f['silent']}\n1 {f['a']} {f['a2']}\n"
                     f"{f['corrupt']} {f['c']}\n{f['b']} {f['c']} nontarget\n")
    out = tmp_path / "out.score"
    assert verify(VerifyOptions(pairs=str(pairs), scores_out=str(out), quiet=True), str(exp)) == 1
    lines = [line.split() for line in out.read_text().splitlines()]
    assert [(a, b) for a, b, _, _ in lines] == [(f["a"], f["b"]), (f["a"], f["a2"]), (f["b"], f["c"])]
    system = load_system(exp)
    for a, b, score, decision in lines:
        assert float(score) == pytest.approx(mean_crop_cosine(system, a, b), abs=1e-5)
        assert decision == ("same" if float(score) >= 0.5 else "different")
    cap = capsys.readouterr()
    assert "scored 3 of 5 pairs" in cap.out
    assert "2 input(s) skipped" in cap.err and "silent.wav: silent" in cap.err and "corrupt.wav: cannot decode" in cap.err
    assert "2 pair(s) not scored" in cap.err


def test_a_shell_command_runs_only_with_allow_pipes(setup, capsys):
    # the error told the user to pass --allow-pipes=true, an option verify did not have
    exp, f = setup
    command = f"cat {f['a']} |"
    with pytest.raises(SpkidError, match=r"is a shell command; pass --allow-pipes=true"):
        verify(VerifyOptions(), exp, command, f["b"])
    opts = parse_options([VerifyOptions], ["--allow-pipes=true"])[VerifyOptions]
    capsys.readouterr()
    assert verify(opts, exp, command, f["b"]) == 0
    piped = capsys.readouterr().out
    assert verify(VerifyOptions(), exp, f["a"], f["b"]) == 0
    assert capsys.readouterr().out == piped  # the same score and decision as the file itself


def test_threshold_problems(setup, tmp_path):
    exp, f = setup
    bare = make_experiment(tmp_path / "bare")
    with pytest.raises(SpkidError, match="nothing is scored yet.*score it first"):
        verify(VerifyOptions(), str(bare), f["a"], f["b"])
    with pytest.raises(SpkidError, match="no saved threshold for trial list 'vox1_O'"):
        verify(VerifyOptions(threshold_list="vox1_O"), str(exp), f["a"], f["b"])
    normed = make_experiment(tmp_path / "normed", eval_opts=EvalOptions(eval_frames=100, as_norm=True))
    save_metrics(normed, "voxsrc20_val", "voxsrc20_val", as_norm=True)
    with pytest.raises(SpkidError, match="AS-norm.*--threshold=VALUE"):
        verify(VerifyOptions(), str(normed), f["a"], f["b"])
    # PLDA, mean subtraction, QMF: trained on the training set too, refused the same way
    plda = make_experiment(tmp_path / "plda", eval_opts=EvalOptions(eval_frames=100, score_type="plda"))
    save_metrics(plda, "voxsrc20_val", "voxsrc20_val")
    with pytest.raises(SpkidError, match="PLDA or QMF.*--threshold=VALUE tuned on raw cosine"):
        verify(VerifyOptions(), str(plda), f["a"], f["b"])
    with pytest.raises(SpkidError, match="--pairs needs --scores-out"):
        verify(VerifyOptions(pairs="x"), str(exp))
    with pytest.raises(SpkidError, match="--threshold=high is not a number"):
        verify(VerifyOptions(threshold="high"), str(exp), f["a"], f["b"])


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_threshold_must_be_finite(value):
    # nan said "different" for a file against itself, exit 0: refused before any audio is read
    with pytest.raises(ConfigError, match=rf"command line: --threshold={value} is not a finite number"):
        parse_options([VerifyOptions], [f"--threshold={value}", "exp/X", "a.wav", "a.wav"],
                      positional=["exp_dir", "a", "b"])
    with pytest.raises(SpkidError, match=rf"--threshold={value} is not a finite number"):
        verify(VerifyOptions(threshold=value), "exp/none", "a.wav", "a.wav")


def test_scores_out_is_checked_before_any_work(tmp_path):
    (tmp_path / "adir").mkdir()
    # refused before the pairs are read or the system loads (neither exists here)
    with pytest.raises(SpkidError, match=rf"--scores-out={tmp_path / 'adir'} is a folder; give a file name"):
        verify(VerifyOptions(pairs=str(tmp_path / 'none.txt'), scores_out=str(tmp_path / 'adir')), str(tmp_path / "no_exp"))
    assert list((tmp_path / "adir").iterdir()) == []


def test_pairs_file_formats_and_bad_lines(tmp_path):
    p = tmp_path / "pairs"
    p.write_text("# a comment\n\na.wav b.wav\n1 c.wav d.wav\ne.wav f.wav nontarget\n")
    assert read_pairs(str(p)) == [("a.wav", "b.wav"), ("c.wav", "d.wav"), ("e.wav", "f.wav")]
    p.write_text("a.wav b.wav\nc.wav\n")
    with pytest.raises(SpkidError, match=r"pairs:2: expected 'a.wav b.wav', got 'c.wav'"):
        read_pairs(str(p))
    p.write_bytes(b"a.wav b.wav\nc\xe9.wav d.wav\n")
    with pytest.raises(SpkidError, match=r"pairs:2: not UTF-8 text"):
        read_pairs(str(p))
    p.write_text("a.wav b.wav\nc.wav sox|\n- d.wav\n")
    with pytest.raises(SpkidError, match=r"pairs:2: 'sox\|' is a shell command \('cmd \|'\), not a recording; "
                                         r"spkid runs commands \('cmd\|'\) only with --allow-pipes=true"):
        read_pairs(str(p))
    with pytest.raises(SpkidError, match=r"pairs:3: '-' is standard input"):
        read_pairs(str(p), allow_pipes=True)


def test_crops_that_cannot_fit_in_memory_are_refused(setup, tmp_path):
    # the system's own crops are checked as stage 4 checks them: before any recording is embedded
    _, f = setup
    huge = make_experiment(tmp_path / "huge", eval_opts=EvalOptions(eval_frames=400, num_eval_crops=10_000_000))
    with pytest.raises(SpkidError, match=r"--num-eval-crops=10000000 crops of --eval-frames=400 need about [0-9.]+ "
                                         r"GiB to embed one utterance, but .* GiB available"):
        verify(VerifyOptions(threshold="0.5"), str(huge), f["a"], f["b"])
