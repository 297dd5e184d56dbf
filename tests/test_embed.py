"""spkid/eval/embed.py (steps/embed.py): a folder or wav.scp -> ark/scp or .npy, crops and normalisation as evaluation."""

from __future__ import annotations

import kaldiio
import numpy as np
import pytest
import soundfile as sf
import torch

from spkid.errors import SpkidError
from spkid.eval.extract import load_system
from spkid.eval.extract import embed_waveform
from spkid.data.inputs import load_recording
from spkid.eval.embed import EmbedOptions, embed
from trained_system import make_experiment, voice, write_voice


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("embed")
    exp = make_experiment(root / "exp")
    rec = root / "recordings"
    write_voice(rec / "spk1" / "r1.wav", 1.5, f0=110, seed=1)
    sf.write(rec / "spk1" / "r2.flac", voice(1.2, 22050, f0=115, seed=4), 22050)
    (rec / "spk2").mkdir()
    x = voice(1.0, 48000, f0=200, seed=5)
    sf.write(rec / "spk2" / "stereo.wav", np.stack([x, 0.5 * x], 1), 48000)
    sf.write(rec / "spk2" / "short.wav", voice(0.2, 16000), 16000)
    (rec / "spk2" / "broken.ogg").write_bytes(b"OggS not really")
    (rec / "notes.txt").write_text("not audio: ignored")
    return exp, rec


def crops_of(exp, path: str) -> np.ndarray:
    system = load_system(exp)
    return embed_waveform(system.model, load_recording(path).wave, system.eval_opts, torch.device("cpu"))


def test_folder_to_ark_means(setup, tmp_path, capsys):
    exp, rec = setup
    out = tmp_path / "emb"
    assert embed(EmbedOptions(out=str(out), quiet=True), str(exp), str(rec)) == 1  # two bad files
    table = dict(kaldiio.load_scp(str(out / "embeddings.scp")))
    assert sorted(table) == ["spk1/r1", "spk1/r2", "spk2/stereo"]
    for key, path in (("spk1/r1", "spk1/r1.wav"), ("spk2/stereo", "spk2/stereo.wav")):
        crops = crops_of(exp, str(rec / path))
        assert crops.shape == (10, 32)
        want = (crops / np.linalg.norm(crops, axis=1, keepdims=True)).mean(0)
        np.testing.assert_allclose(table[key], want, atol=1e-6)
    # the dot product of two stored vectors is the mean crop-by-crop cosine (the system's score)
    a, b = crops_of(exp, str(rec / "spk1/r1.wav")), crops_of(exp, str(rec / "spk1/r2.flac"))
    cos = (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (b / np.linalg.norm(b, axis=1, keepdims=True)).T
    assert table["spk1/r1"] @ table["spk1/r2"] == pytest.approx(cos.mean(), abs=1e-5)
    cap = capsys.readouterr()
    assert "embedded 3 of 5 recording(s)" in cap.out and "(mean, 32-dim, ark)" in cap.out
    assert "short.wav: only 0.20 s" in cap.err and "broken.ogg: cannot decode" in cap.err
    assert "note: " in cap.err and "stereo.wav: 2 channels mixed down" in cap.err
    # a plain Kaldi binary ark, byte for byte as kaldiio writes the table, its scp naming the final ark
    kaldiio.save_ark(str(tmp_path / "ref.ark"), table, scp=str(tmp_path / "ref.scp"))
    assert (out / "embeddings.ark").read_bytes() == (tmp_path / "ref.ark").read_bytes()
    assert (out / "embeddings.scp").read_text() == (tmp_path / "ref.scp").read_text().replace(
        str(tmp_path / "ref.ark"), str(out / "embeddings.ark"))
    assert sorted(p.name for p in out.iterdir()) == ["embeddings.ark", "embeddings.scp"]


def test_wav_scp_to_npy_crops(setup, tmp_path):
    exp, rec = setup
    scp = tmp_path / "wav.scp"
    scp.write_text(f"u1 {rec / 'spk1/r1.wav'}\nu2 {rec / 'spk2/stereo.wav'}\n")
    out = tmp_path / "emb"
    assert embed(EmbedOptions(out=str(out), format="npy", kind="crops", quiet=True), str(exp), str(scp)) == 0
    arr = np.load(out / "embeddings.npy")
    assert (out / "keys.txt").read_text().split() == ["u1", "u2"]
    assert arr.shape == (2, 10, 32) and arr.dtype == np.float32
    np.testing.assert_allclose(arr[1], crops_of(exp, str(rec / "spk2/stereo.wav")), atol=1e-6)


def test_one_audio_file_is_one_recording(setup, tmp_path):
    # it used to be read as a wav.scp: "not UTF-8 text ... re-encode it (iconv ...)"
    exp, rec = setup
    out = tmp_path / "emb"
    assert embed(EmbedOptions(out=str(out), format="npy", quiet=True), str(exp), str(rec / "spk1" / "r2.flac")) == 0
    assert (out / "keys.txt").read_text() == "r2\n"
    crops = crops_of(exp, str(rec / "spk1" / "r2.flac"))
    want = (crops / np.linalg.norm(crops, axis=1, keepdims=True)).mean(0)
    np.testing.assert_allclose(np.load(out / "embeddings.npy")[0], want, atol=1e-6)


def test_input_problems(setup, tmp_path):
    exp, rec = setup
    with pytest.raises(SpkidError, match="--out=FOLDER is required"):
        embed(EmbedOptions(), str(exp), str(rec))
    with pytest.raises(SpkidError, match="not found: give a folder of audio files, an audio file or a wav.scp"):
        embed(EmbedOptions(out=str(tmp_path)), str(exp), str(tmp_path / "nothing"))
    (tmp_path / "empty.scp").write_text("\n")
    with pytest.raises(SpkidError, match=rf"^{tmp_path / 'empty.scp'} is empty: it lists no recordings; give a "
                                         rf"wav.scp with '<key> <audio file>' lines"):
        embed(EmbedOptions(out=str(tmp_path)), str(exp), str(tmp_path / "empty.scp"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpkidError, match="no audio files"):
        embed(EmbedOptions(out=str(tmp_path)), str(exp), str(tmp_path / "empty"))
    bad = tmp_path / "bad"
    bad.mkdir()
    sf.write(bad / "z.wav", np.zeros(16000, np.float32), 16000)
    with pytest.raises(SpkidError, match=r"(?s)none of the 1 input\(s\) could be used:.*z\.wav: silent"):
        embed(EmbedOptions(out=str(tmp_path), quiet=True), str(exp), str(bad))


def test_output_folder_is_checked_before_any_work(setup, tmp_path):
    exp, rec = setup
    (tmp_path / "afile").write_text("x")
    for out in (tmp_path / "afile", tmp_path / "afile" / "emb"):
        # refused before the system loads: a missing experiment would be the error otherwise
        with pytest.raises(SpkidError, match=rf"--out={out}: {tmp_path / 'afile'} is a file, not a folder; "
                                             rf"give another --out"):
            embed(EmbedOptions(out=str(out)), str(tmp_path / "no_exp"), str(rec))
    assert (tmp_path / "afile").read_text() == "x"


def test_keys_with_spaces_and_wav_scp_commands_are_refused_before_any_work(setup, tmp_path):
    """A file "a b.wav" gave the key "a b": an scp line Kaldi reads as the key "a"; a wav.scp
    command runs only with --allow-pipes. Both refused before the system loads, naming the file."""
    exp, _ = setup
    spaced = write_voice(tmp_path / "in" / "a b.wav", 1.0)
    out = tmp_path / "out"
    with pytest.raises(SpkidError, match=rf"{out}/embeddings.scp \(the key of {spaced}; --format=npy keeps any "
                                         r"name\): cannot write the key 'a b'"):
        embed(EmbedOptions(out=str(out)), str(tmp_path / "no_exp"), str(tmp_path / "in"))
    assert embed(EmbedOptions(out=str(out), format="npy", quiet=True), str(exp), str(tmp_path / "in")) == 0
    assert (out / "keys.txt").read_text() == "a b\n"
    pwned = tmp_path / "PWNED"
    scp = tmp_path / "wav.scp"
    scp.write_text(f"r1 {spaced}\nr2 touch {pwned}; cat '{spaced}' |\n")
    with pytest.raises(SpkidError, match=rf"^{scp}:2: utterance 'r2' is a shell command .*--allow-pipes=true"):
        embed(EmbedOptions(out=str(out)), str(tmp_path / "no_exp"), str(scp))
    assert not pwned.exists()
    assert embed(EmbedOptions(out=str(out), allow_pipes=True, quiet=True), str(exp), str(scp)) == 0
    assert pwned.exists()  # the user's explicit option: the command ran
