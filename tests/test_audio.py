import numpy as np
import soundfile as sf
import torch

from spkid.data.audio import float_to_pcm16, pcm16_to_float, read_audio


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
