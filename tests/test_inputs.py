"""spkid/data/inputs.py: users' recordings in any rate, channel count and soundfile format; bad ones refused by name."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from spkid.errors import SpkidError
from spkid.data.audio import level_dbfs
from spkid.data.inputs import MIN_SECONDS, SILENCE_DBFS, Failures, InputError, load_inputs, load_recording


def tone(seconds: float, rate: int, freq: float = 440.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_16k_wav_is_returned_unchanged(tmp_path):
    x = tone(1.0, 16000)
    sf.write(tmp_path / "a.wav", x, 16000, subtype="FLOAT")
    rec = load_recording(str(tmp_path / "a.wav"))
    assert rec.wave.dtype == np.float32 and rec.source_rate == 16000 and rec.channels == 1 and not rec.notes
    np.testing.assert_array_equal(rec.wave, x)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_any_rate_is_resampled_to_16k(tmp_path, rate):
    sf.write(tmp_path / "a.wav", tone(1.5, rate, freq=440.0), rate, subtype="FLOAT")
    rec = load_recording(str(tmp_path / "a.wav"))
    assert rec.source_rate == rate
    assert abs(len(rec.wave) - 24000) <= 1
    # the tone is still a 440-Hz tone at 16 kHz: the spectral peak sits at 440 Hz
    spec = np.abs(np.fft.rfft(rec.wave[2000:-2000]))
    peak_hz = np.argmax(spec) * 16000 / len(rec.wave[2000:-2000])
    assert abs(peak_hz - 440) < 2


def test_stereo_is_mixed_down_with_a_note(tmp_path):
    left, right = tone(1.0, 16000, 300), tone(1.0, 16000, 500)
    sf.write(tmp_path / "st.wav", np.stack([left, right], 1), 16000, subtype="FLOAT")
    rec = load_recording(str(tmp_path / "st.wav"))
    assert rec.channels == 2
    np.testing.assert_allclose(rec.wave, (left + right) / 2, atol=1e-7)
    assert len(rec.notes) == 1 and "st.wav" in rec.notes[0] and "2 channels" in rec.notes[0]


@pytest.mark.parametrize("fmt,ext,subtype", [("FLAC", "flac", "PCM_16"), ("OGG", "ogg", "VORBIS"),
                                             ("AIFF", "aiff", "PCM_16"), ("WAV", "wav", "PCM_24")])
def test_common_formats(tmp_path, fmt, ext, subtype):
    x = tone(1.0, 16000)
    sf.write(tmp_path / f"a.{ext}", x, 16000, format=fmt, subtype=subtype)
    rec = load_recording(str(tmp_path / f"a.{ext}"))
    assert len(rec.wave) == len(x)
    tol = 0.05 if fmt == "OGG" else 1e-3  # Vorbis is lossy
    assert np.sqrt(np.mean((rec.wave - x) ** 2)) < tol


def test_too_short_names_the_file(tmp_path):
    p = tmp_path / "short.wav"
    sf.write(p, tone(MIN_SECONDS * 0.8, 16000), 16000)
    with pytest.raises(InputError, match=r"short\.wav: only 0\.40 s of audio; at least 0\.5 s") as e:
        load_recording(str(p))
    assert e.value.path == str(p)
    # the length is judged after resampling: 0.6 s at 8 kHz is long enough
    sf.write(p, tone(0.6, 8000), 8000)
    assert abs(load_recording(str(p)).seconds - 0.6) < 1e-3


def test_empty_file_is_too_short(tmp_path):
    p = tmp_path / "empty.wav"
    sf.write(p, np.zeros(0, np.float32), 16000)
    with pytest.raises(InputError, match=r"empty\.wav: only 0\.00 s"):
        load_recording(str(p))


def test_silent_files_are_refused(tmp_path):
    p = tmp_path / "zeros.wav"
    sf.write(p, np.zeros(16000, np.float32), 16000)
    with pytest.raises(InputError, match=r"zeros\.wav: silent \(all zeros"):
        load_recording(str(p))
    # -90 dBFS RMS: below the floor
    quiet = tone(1.0, 16000, amp=np.sqrt(2) * 10 ** (-90 / 20))
    assert abs(level_dbfs(quiet) - -90) < 0.1
    sf.write(p, quiet, 16000, subtype="FLOAT")
    with pytest.raises(InputError, match=r"silent \(-90\.0 dBFS, below -80 dBFS\)"):
        load_recording(str(p))
    # -70 dBFS is quiet but usable
    sf.write(p, tone(1.0, 16000, amp=np.sqrt(2) * 10 ** (-70 / 20)), 16000, subtype="FLOAT")
    assert load_recording(str(p)).seconds == 1.0
    assert SILENCE_DBFS == -80.0


def test_corrupt_missing_and_nan_files(tmp_path):
    bad = tmp_path / "corrupt.wav"
    bad.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage that is not audio" * 3)
    with pytest.raises(InputError, match=r"corrupt\.wav: cannot decode it as audio .*ffmpeg"):
        load_recording(str(bad))
    with pytest.raises(InputError, match=r"nope\.wav: no such file"):
        load_recording(str(tmp_path / "nope.wav"))
    with pytest.raises(InputError, match="is a directory"):
        load_recording(str(tmp_path))
    x = tone(1.0, 16000)
    x[100] = np.nan
    sf.write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(InputError, match=r"nan\.wav: holds NaN"):
        load_recording(str(tmp_path / "nan.wav"))
    assert issubclass(InputError, SpkidError)


def test_pipes_only_when_allowed(tmp_path):
    sf.write(tmp_path / "a.wav", tone(1.0, 16000), 16000)
    entry = f"cat {tmp_path / 'a.wav'} |"
    with pytest.raises(SpkidError) as e:
        load_recording(entry)
    # named as the wav.scp entry it is, not as an utterance
    assert str(e.value) == f"wav.scp entry '{entry}' is a shell command; pass --allow-pipes=true to run such entries"
    failures = Failures()
    assert list(load_inputs([("u1", entry)], failures)) == []
    assert failures.report() == f"1 input(s) skipped:\n  u1: wav.scp entry '{entry}' is a shell command; " \
                                f"pass --allow-pipes=true to run such entries"
    assert len(load_recording(entry, allow_pipes=True).wave) == 16000


def test_batch_goes_on_past_bad_inputs_and_reports_them(tmp_path):
    sf.write(tmp_path / "good1.wav", tone(1.0, 16000), 16000)
    sf.write(tmp_path / "stereo.wav", np.stack([tone(1.0, 44100)] * 2, 1), 44100)
    sf.write(tmp_path / "silent.wav", np.zeros(16000, np.float32), 16000)
    (tmp_path / "corrupt.wav").write_bytes(b"not a wav file at all")
    items = [(name, str(tmp_path / f"{name}.wav")) for name in ("good1", "silent", "corrupt", "stereo", "missing")]
    failures, notes = Failures(), []
    got = dict(load_inputs(items, failures, notes))
    assert list(got) == ["good1", "stereo"]
    assert [k for k, _ in failures.items] == ["silent", "corrupt", "missing"]
    report = failures.report()
    assert report.startswith("3 input(s) skipped:")
    for name in ("silent.wav: silent", "corrupt.wav: cannot decode", "missing.wav: no such file"):
        assert name in report
    assert len(notes) == 1 and "stereo.wav" in notes[0]
