import contextlib
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from spkid.data.audio import AudioError, audio_info, float_to_pcm16, pcm16_to_float, read_audio, read_checked, truncation_problem
from spkid.data.inputs import InputError, load_recording


def test_stereo_is_mixed_down_to_the_channel_mean(tmp_path):
    rng = np.random.default_rng(0)
    pcm = rng.integers(-20000, 20000, size=(1000, 2)).astype(np.int16)
    path = tmp_path / "st.wav"
    sf.write(path, pcm, 16000, subtype="PCM_16")
    want = pcm.astype(np.float64).mean(axis=1) / 32768
    np.testing.assert_allclose(read_audio(str(path)), want, atol=1e-7)
    # keep_pcm16 is for mono files only: a stereo one still comes back mixed down, as float32
    got = read_audio(str(path), 100, 50, keep_pcm16=True)
    assert got.dtype == np.float32 and got.shape == (50,)
    np.testing.assert_allclose(got, want[100:150], atol=1e-7)


def test_pcm16_reads_are_the_float_reads_exactly(tmp_path):
    pcm = (np.arange(3000) * 37 % 65536 - 32768).astype(np.int16)
    path = tmp_path / "m.wav"
    sf.write(path, pcm, 16000, subtype="PCM_16")
    raw = read_audio(str(path), 1234, 500, keep_pcm16=True)
    assert raw.dtype == np.int16
    np.testing.assert_array_equal(raw, pcm[1234:1734])
    flt = read_audio(str(path), 1234, 500)
    np.testing.assert_array_equal(pcm16_to_float(raw), flt)
    np.testing.assert_array_equal(flt, pcm[1234:1734] / np.float32(32768))
    np.testing.assert_array_equal(pcm16_to_float(torch.from_numpy(raw)).numpy(), flt)


def test_float_to_pcm16_rounds_and_clips():
    q = 1 / 32768
    x = np.array([0.0, 0.4 * q, 0.6 * q, -0.6 * q, 100.4 * q, 1.0, -1.0, 1.7, -3.0])
    assert float_to_pcm16(x).tolist() == [0, 0, 1, -1, 100, 32767, -32768, 32767, -32768]
    pcm = np.arange(-32768, 32768, 7, dtype=np.int16)
    np.testing.assert_array_equal(float_to_pcm16(pcm16_to_float(pcm)), pcm)  # exact round trip


def cut_short(path, keep_bytes: int) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:keep_bytes])


def bad_recordings(tmp_path):
    """(file, what the one rule says about it) for each kind of recording no reader may embed."""
    t = np.arange(16000 * 2) / 16000
    good = (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    out = {}
    nan = good.copy()
    nan[100] = np.nan
    sf.write(tmp_path / "nan.wav", nan, 16000, subtype="FLOAT")
    out["nan.wav"] = "holds NaN or infinite samples"
    inf = good.copy()
    inf[5] = np.inf
    sf.write(tmp_path / "inf.wav", inf, 16000, subtype="FLOAT")
    out["inf.wav"] = "holds NaN or infinite samples"
    sf.write(tmp_path / "short.wav", good[:4000], 16000)
    out["short.wav"] = "only 0.25 s of audio; at least 0.5 s is needed"
    sf.write(tmp_path / "zeros.wav", np.zeros_like(good), 16000)
    out["zeros.wav"] = "silent (all zeros, below -80 dBFS)"
    sf.write(tmp_path / "cut.wav", good, 16000, subtype="PCM_16")
    cut_short(tmp_path / "cut.wav", 44 + 2 * 20000)  # 1.25 s of the 2 s the header promises
    out["cut.wav"] = "cut short: its header promises 32000 samples, the file holds 20000"
    sf.write(tmp_path / "good.wav", good, 16000, subtype="PCM_16")
    return out


def test_one_rule_for_what_may_be_embedded(tmp_path):
    # stage 4 embedded NaN audio into NaN embeddings with exit 0, and a WAV cut short silently;
    # verify/embed refused some of these: now every reader refuses all of them, in the same words
    for name, problem in bad_recordings(tmp_path).items():
        path = str(tmp_path / name)
        with pytest.raises(AudioError) as e:
            read_checked(path, utt="id1/s/00001")
        assert str(e.value).startswith(f"utterance 'id1/s/00001': {path}: {problem}"), str(e.value)
        with pytest.raises(InputError) as e:
            load_recording(path)
        assert str(e.value).startswith(f"{path}: {problem}"), str(e.value)
    good = read_checked(str(tmp_path / "good.wav"), utt="u")
    assert len(good) == 32000 and np.array_equal(good, read_audio(str(tmp_path / "good.wav")))


def test_a_streamed_wav_of_unknown_length_is_not_cut_short(tmp_path):
    sf.write(tmp_path / "s.wav", np.full(16000, 0.1, np.float32), 16000, subtype="PCM_16")
    data = bytearray((tmp_path / "s.wav").read_bytes())
    assert data[36:40] == b"data"
    data[40:44] = (0xFFFFFFFF).to_bytes(4, "little")  # what a writer to a pipe puts there
    (tmp_path / "s.wav").write_bytes(bytes(data))
    assert truncation_problem(str(tmp_path / "s.wav")) is None
    assert truncation_problem(str(tmp_path / "missing.wav")) is None  # the read names a missing file


@contextlib.contextmanager
def unreadable(path):
    """``path`` unreadable for this process: mode 000, and when running as root (which reads
    anything) the effective user switched to nobody for the block."""
    path.chmod(0)
    root = os.geteuid() == 0
    if root:
        os.seteuid(65534)
    try:
        yield
    finally:
        if root:
            os.seteuid(0)
        path.chmod(0o644)


def test_a_fifo_or_a_device_is_refused_not_read(tmp_path):
    # reading a FIFO waited for a writer for ever; every reader now refuses it before opening it
    fifo = tmp_path / "in.wav"
    os.mkfifo(fifo)
    for read in (read_checked, audio_info, read_audio):
        with pytest.raises(AudioError, match=rf"^utterance 'u': {fifo} is a FIFO \(named pipe\), not a regular file"):
            read(str(fifo), utt="u")
    with pytest.raises(InputError, match=rf"^{fifo}: is a FIFO \(named pipe\), not a regular file"):
        load_recording(str(fifo))
    with pytest.raises(AudioError, match=r"/dev/null is a device, not a regular file"):
        read_checked("/dev/null", utt="u")


def test_permission_denied_is_said_so(tmp_path):
    # was "cannot decode it as audio ...; convert it: ffmpeg ..." (verify/embed), "not found" (stage 4)
    path = tmp_path / "locked.wav"
    sf.write(path, np.full(16000, 0.1, np.float32), 16000, subtype="PCM_16")
    with unreadable(path):
        with pytest.raises(AudioError, match=rf"^utterance 'u': {path} permission denied: this user cannot read it"):
            read_checked(str(path), utt="u")
        with pytest.raises(InputError, match=rf"^{path}: permission denied"):
            load_recording(str(path))
    assert len(read_checked(str(path), utt="u")) == 16000
