"""spkid/data/segments.py: Kaldi segments read as Kaldi's extract-segments cuts them."""

import numpy as np
import pytest
import soundfile as sf

from spkid.data.audio import AudioError, audio_info, read_audio, read_checked, read_crop
from spkid.data.datadir import DataDir, DataDirError
from spkid.data.segments import SegmentError, entry_name, read_segments, segment_entry

RATE = 16000


@pytest.fixture()
def recording(tmp_path):
    """A 3-s recording whose sample i is i (mod 2**16, as int16), so a cut shows where it came from."""
    samples = np.arange(3 * RATE, dtype=np.int16)
    path = tmp_path / "rec.wav"
    sf.write(path, samples, RATE, subtype="PCM_16")
    return str(path), samples


def test_a_segment_is_the_samples_kaldi_cuts(recording):
    path, samples = recording
    # [int(start * rate), int(end * rate)): 0.50003 s starts at sample 8000, as Kaldi truncates
    got = read_audio(segment_entry(path, "0.50003", "1.25"), keep_pcm16=True)
    np.testing.assert_array_equal(got, samples[8000:20000])
    np.testing.assert_array_equal(read_audio(segment_entry(path, "2.5", "-1"), keep_pcm16=True), samples[40000:])
    # reads inside a segment are relative to its start and stop at its end
    np.testing.assert_array_equal(read_audio(segment_entry(path, "1", "2"), 100, 50, keep_pcm16=True),
                                  samples[16100:16150])
    assert len(read_audio(segment_entry(path, "1", "2"), 15990, 50)) == 10
    assert audio_info(segment_entry(path, "1", "2.5")).frames == 24000
    crop = read_crop(segment_entry(path, "1", "1.01"), 400, keep_pcm16=True)  # 160 samples, wrap-padded
    np.testing.assert_array_equal(crop, np.resize(samples[16000:16160], 400))


def test_overshoot_is_cut_within_half_a_second_and_refused_beyond(recording):
    path, samples = recording
    np.testing.assert_array_equal(read_audio(segment_entry(path, "2", "3.4"), keep_pcm16=True), samples[32000:])
    with pytest.raises(AudioError, match=r"^utterance 'u': segment .*rec.wav \[2-3.6 s\] ends at 3.6 s, 0.60 s past "
                                         r"the end of its recording \(3.00 s\); Kaldi's extract-segments cuts at most "
                                         r"0.5 s: fix its line in segments"):
        read_checked(segment_entry(path, "2", "3.6"), utt="u")
    with pytest.raises(AudioError, match=r"starts at 3 s, at or past the end of its recording \(3.00 s\)"):
        audio_info(segment_entry(path, "3", "3.2"), utt="u")


def test_segment_lines_are_checked_by_file_and_line(tmp_path):
    lines = [(1, "a rec 0 1.5"), (2, "b rec 1.5 -1")]
    assert read_segments(tmp_path / "segments", lines) == [(1, "a", "rec", "0", "1.5"), (2, "b", "rec", "1.5", "-1")]
    for bad in ("c rec 2 1", "c rec -1 2", "c rec x 2", "c rec 0 1 1"):
        with pytest.raises(SegmentError, match=rf"segments:3: expected .*got '{bad}'"):
            read_segments(tmp_path / "segments", [*lines, (3, bad)])
    with pytest.raises(SegmentError, match=r"segments:3: utterance 'a' is listed twice"):
        read_segments(tmp_path / "segments", [*lines, (3, "a rec 2 3")])
    assert entry_name(segment_entry("r.wav", "1.5", "-1")) == "r.wav [1.5-end s]"


def test_a_segmented_data_dir_loads_one_entry_per_segment(tmp_path, recording):
    path, samples = recording
    d = tmp_path / "d"
    d.mkdir()
    (d / "wav.scp").write_text(f"rec {path}\n")
    (d / "segments").write_text("rec-a rec 0 1\nrec-b rec 1 2.5\n")
    (d / "utt2spk").write_text("rec-a s\nrec-b s\n")
    data = DataDir.load(d)
    assert data.utts == ["rec-a", "rec-b"]
    np.testing.assert_array_equal(read_checked(data.wav_scp["rec-b"]), samples[16000:40000] / np.float32(32768))
    (d / "segments").write_text("rec-a rec 0 1\nrec-b other 1 2.5\n")
    with pytest.raises(DataDirError, match=r"segments:2: recording 'other' of utterance 'rec-b' is not in .*wav.scp"):
        DataDir.load(d)
