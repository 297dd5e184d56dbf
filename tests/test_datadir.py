import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from spkid.data.audio import AudioError, AudioInfo, audio_info, read_audio, wav_header_info
from spkid.data.augment import pack_audio
from spkid.data.datadir import (DataDir, DataDirError, read_table, read_trials, read_utt2dur, utt2spk_to_spk2utt,
                                write_trials)
from spkid.data.validate import MAX_REPORTED, validate_data_dir

ROOT = Path(__file__).resolve().parents[1]


def make_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data" / "set"
    utts = {"id00001/sessA/00001": "id00001", "id00001/sessA/00002": "id00001", "id00002/sessB/00001": "id00002"}
    wavs = {}
    for utt in utts:
        p = tmp_path / "wav" / f"{utt}.wav"
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(p, np.zeros(9600, dtype=np.float32), 16000)
        wavs[utt] = str(p)
    DataDir(d, wavs, utts, utt2spk_to_spk2utt(utts), {u: 0.6 for u in utts}).write()
    (d / "trials").mkdir()
    (d / "trials" / "O").write_text("id00001/sessA/00001 id00001/sessA/00002 target\n"
                                    "id00001/sessA/00001 id00002/sessB/00001 nontarget\n")
    return d


def test_valid_dir(tmp_path):
    d = make_dir(tmp_path)
    assert validate_data_dir(d) == []
    loaded = DataDir.load(d)
    assert loaded.spk2utt == {"id00001": ["id00001/sessA/00001", "id00001/sessA/00002"],
                              "id00002": ["id00002/sessB/00001"]}
    assert list(loaded.trial_lists()) == ["O"]


def test_unsorted_file_named_with_fix(tmp_path):
    d = make_dir(tmp_path)
    lines = (d / "utt2spk").read_text().splitlines()
    (d / "utt2spk").write_text("\n".join(reversed(lines)) + "\n")
    problems = validate_data_dir(d)
    assert any(f"{d}/utt2spk:2: not sorted" in p and "LC_ALL=C sort" in p for p in problems)


def test_missing_speaker_and_audio_and_trial_utt(tmp_path):
    d = make_dir(tmp_path)
    (d / "utt2spk").write_text("id00001/sessA/00001 id00001\nid00001/sessA/00002 id00001\n")
    (d / "spk2utt").write_text("id00001 id00001/sessA/00001 id00001/sessA/00002\n")
    (tmp_path / "wav" / "id00001" / "sessA" / "00002.wav").unlink()
    with open(d / "trials" / "O", "a") as f:
        f.write("id00001/sessA/00001 id09999/x/00001 nontarget\n")
    problems = "\n".join(validate_data_dir(d))
    assert f"{d}/wav.scp: 'id00002/sessB/00001' is missing from {d}/utt2spk" in problems
    assert "audio file" in problems and "00002.wav not found" in problems
    assert f"{d}/trials/O:3: utterance 'id09999/x/00001' is not in {d}/utt2spk" in problems


def test_spk2utt_mismatch_and_duplicates(tmp_path):
    d = make_dir(tmp_path)
    (d / "spk2utt").write_text("id00001 id00001/sessA/00001\nid00002 id00002/sessB/00001\n")
    assert any("spk2utt: does not match utt2spk" in p for p in validate_data_dir(d))
    (d / "utt2spk").write_text("a x\na y\n")
    assert any("duplicate key 'a'" in p for p in validate_data_dir(d))


def test_missing_files(tmp_path):
    assert "not a directory" in validate_data_dir(tmp_path / "nope")[0]
    (tmp_path / "empty").mkdir()
    assert any("wav.scp: missing" in p for p in validate_data_dir(tmp_path / "empty"))
    with pytest.raises(DataDirError, match="run the data preparation stage"):
        DataDir.load(tmp_path / "nope")


def test_read_errors_name_file_and_line(tmp_path):
    p = tmp_path / "utt2dur"
    p.write_text("a 1.5\nb\n")
    with pytest.raises(DataDirError, match=r"utt2dur:2: expected '<key> <value>'"):
        read_table(p)
    p.write_text("a 1.5\nb -2\n")
    with pytest.raises(DataDirError, match="utterance b: duration -2 must be positive"):
        read_utt2dur(p)


def test_trials_both_formats(tmp_path):
    vox = tmp_path / "veri.txt"
    vox.write_text("1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav\n"
                   "0 id10270/x6uYqmx31kE/00001.wav id10300/ize_eiCFEg0/00003.wav\n")
    t = read_trials(vox)
    assert t.enroll == ["id10270/x6uYqmx31kE/00001"] * 2
    assert t.test == ["id10270/8jEAjG6SegY/00008", "id10300/ize_eiCFEg0/00003"]
    assert t.labels.tolist() == [1, 0]
    write_trials(tmp_path / "kaldi", t)
    assert (tmp_path / "kaldi").read_text().splitlines()[1].endswith(" nontarget")
    back = read_trials(tmp_path / "kaldi")
    assert back.enroll == t.enroll and back.test == t.test and back.labels.tolist() == [1, 0]
    (tmp_path / "bad").write_text("a b maybe\n")
    with pytest.raises(DataDirError, match="bad:1: cannot tell the label"):
        read_trials(tmp_path / "bad")


def test_empty_trial_list_and_absent_utterances_are_named_by_file_and_line(tmp_path):
    # an empty list reached scoring as "no embeddings to score"
    (tmp_path / "empty").write_text("\n\n")
    with pytest.raises(DataDirError, match=rf"{tmp_path / 'empty'}: an empty trial list; fill it .* or remove it"):
        read_trials(tmp_path / "empty")
    (tmp_path / "t").write_text("a b target\n\nc ghost nontarget\n")
    t = read_trials(tmp_path / "t")
    assert t.lines == [1, 3]
    assert t.absent(tmp_path / "t", {"a", "b", "c"}, "data/x/wav.scp") == \
        [f"{tmp_path / 't'}:3: utterance 'ghost' is not in data/x/wav.scp"]


def test_cli_exit_codes(tmp_path):
    d = make_dir(tmp_path)
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    ok = subprocess.run([sys.executable, ROOT / "utils/validate_data_dir.py", str(d)], capture_output=True, text=True, env=env)
    assert ok.returncode == 0 and "OK" in ok.stdout
    (d / "wav.scp").write_text("zzz /nonexistent.wav\n")
    bad = subprocess.run([sys.executable, ROOT / "utils/validate_data_dir.py", str(d)], capture_output=True, text=True, env=env)
    assert bad.returncode == 1 and "wav.scp" in bad.stderr


def run_util(name: str, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "LC_ALL": "C"}
    return subprocess.run([sys.executable, ROOT / "utils" / name, *args], input=stdin, capture_output=True, env=env)


def test_non_utf8_list_is_one_line_naming_file_and_line(tmp_path):
    d = make_dir(tmp_path)
    lines = (d / "utt2spk").read_bytes().splitlines(keepends=True)
    lines[1] = lines[1].replace(b"id00001\n", b"id0000\xe9\n")
    (d / "utt2spk").write_bytes(b"".join(lines))
    with pytest.raises(DataDirError, match=rf"{d}/utt2spk:2: not UTF-8 text \(byte 0xe9 at column 27\).*iconv"):
        read_table(d / "utt2spk")
    problems = validate_data_dir(d)
    assert len(problems) == 1 and f"{d}/utt2spk:2: not UTF-8" in problems[0]
    # the line is found past the text reader's first chunk too
    (tmp_path / "big").write_bytes(b"".join(b"u%06d s\n" % i for i in range(20000)) + b"\xff x\n")
    with pytest.raises(DataDirError, match=r"big:20001: not UTF-8 text \(byte 0xff at column 1\)"):
        read_table(tmp_path / "big")
    for util, args in (("validate_data_dir.py", [str(d)]), ("utt2spk_to_spk2utt.py", [str(d / "utt2spk")]),
                       ("pack_audio.py", ["--quiet", str(d)])):
        if util == "pack_audio.py":
            (d / "wav.scp").write_bytes(b"r1 /x/caf\xe9.wav\n")
        r = run_util(util, *args)
        err = r.stderr.decode()
        assert r.returncode == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1, (util, err)
        assert "not UTF-8 text" in err and (":2: " in err or "wav.scp:1: " in err), err


def test_utt2spk_to_spk2utt_reads_stdin(tmp_path):
    d = make_dir(tmp_path)
    r = run_util("utt2spk_to_spk2utt.py", "-", stdin=(d / "utt2spk").read_bytes())
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode() == (d / "spk2utt").read_text()
    r = run_util("utt2spk_to_spk2utt.py", "-", stdin=b"a x\n\xe9 y\n")
    assert r.returncode == 1 and r.stderr.decode().strip() == \
        "utt2spk_to_spk2utt.py: error: <stdin>:2: not UTF-8 text (byte 0xe9 at column 1); Kaldi lists must be " \
        "UTF-8: re-encode it (e.g. pipe it through iconv -f LATIN1 -t UTF-8)"
    r = run_util("utt2spk_to_spk2utt.py", "-", stdin=b"a x\nb\n")
    assert r.returncode == 1 and r.stderr.decode().strip() == \
        "utt2spk_to_spk2utt.py: error: <stdin>:2: expected '<key> <value>', got 'b'"


def test_byte_order_mark_does_not_change_the_first_key(tmp_path):
    # a wav.scp saved as "UTF-8 with BOM" silently renamed its first utterance to U+FEFF + id
    d = make_dir(tmp_path)
    for name in ("wav.scp", "utt2spk"):
        (d / name).write_bytes(b"\xef\xbb\xbf" + (d / name).read_bytes())
    # our readers skip the mark; Kaldi's tools would not, so the validator names it
    assert validate_data_dir(d) == [f"{d}/{name}: starts with a byte-order mark, which Kaldi's tools take as part of "
                                    f"the first key (our readers skip it; fix: sed -i '1s/^\\xEF\\xBB\\xBF//' {d}/{name})"
                                    for name in ("utt2spk", "wav.scp")]
    assert sorted(DataDir.load(d).wav_scp)[0] == "id00001/sessA/00001"
    r = run_util("utt2spk_to_spk2utt.py", "-", stdin=(d / "utt2spk").read_bytes())
    assert r.returncode == 0 and r.stdout.decode() == (d / "spk2utt").read_text()


def test_utt2spk_to_spk2utt_help(tmp_path):
    r = run_util("utt2spk_to_spk2utt.py", "--help")  # it was taken for a file: "error: --help not found"
    assert r.returncode == 0 and r.stdout.decode().startswith("usage: utt2spk_to_spk2utt.py UTT2SPK > SPK2UTT")


def test_unreadable_audio_says_not_found_or_why(tmp_path):
    d = make_dir(tmp_path)
    missing = tmp_path / "wav" / "gone.wav"
    (d / "wav.scp").write_text(f"a {tmp_path / 'wav/id00001/sessA/00001.wav'}\nb {missing}\n")
    with pytest.raises(AudioError) as e:
        pack_audio(d)
    assert str(e.value) == f"utterance 'b': {missing} not found; fix its path in wav.scp or restore the file"
    assert not (d / "bank.index").exists() and not (d / "bank.pcm16").exists()
    with pytest.raises(AudioError, match=rf"^{missing} not found"):
        audio_info(str(missing))
    (tmp_path / "junk.wav").write_bytes(b"RIFF junk")
    with pytest.raises(AudioError, match=r"^utterance 'j': cannot read .*junk\.wav: .*"):
        read_audio(str(tmp_path / "junk.wav"), utt="j")


def test_audio_info_from_wav_headers_equals_libsndfile(tmp_path):
    """The header fast path reports what sf.info does, and leaves every unusual file to it."""
    x = np.random.default_rng(0).uniform(-0.5, 0.5, (1001, 2))
    files = {}
    for name, ch, rate, fmt, subtype in [("pcm16", 1, 16000, "WAV", "PCM_16"), ("pcm24", 2, 8000, "WAV", "PCM_24"),
                                         ("pcm32", 1, 16000, "WAV", "PCM_32"), ("f32", 2, 16000, "WAV", "FLOAT"),
                                         ("f64", 1, 44100, "WAV", "DOUBLE"), ("u8", 1, 16000, "WAV", "PCM_U8"),
                                         ("wavex", 1, 16000, "WAVEX", "PCM_16"), ("flac", 1, 16000, "FLAC", "PCM_16")]:
        files[name] = tmp_path / f"{name}.{'flac' if fmt == 'FLAC' else 'wav'}"
        sf.write(files[name], x[:, :ch], rate, format=fmt, subtype=subtype)
    raw = files["pcm16"].read_bytes()
    data = raw.index(b"data")
    files["junk_chunk"] = tmp_path / "junk.wav"  # an odd-length chunk (padded) before the samples
    files["junk_chunk"].write_bytes(raw[:12] + b"junk" + (3).to_bytes(4, "little") + b"abc\0" + raw[12:])
    files["truncated"] = tmp_path / "truncated.wav"  # data chunk longer than the file
    files["truncated"].write_bytes(raw[:-101])
    files["no_data"] = tmp_path / "no_data.wav"
    files["no_data"].write_bytes(raw[:data])
    files["text"] = tmp_path / "text.wav"
    files["text"].write_text("not audio\n")
    fast = {"pcm16", "pcm24", "pcm32", "f32", "f64", "junk_chunk"}
    for name, path in files.items():
        assert (wav_header_info(str(path)) is not None) == (name in fast), name
        try:
            info = sf.info(str(path))
        except Exception:
            with pytest.raises(AudioError):
                audio_info(str(path))
            continue
        assert audio_info(str(path)) == AudioInfo(info.frames, info.samplerate, info.channels), name


def test_empty_lists_are_a_problem(tmp_path):
    d = make_dir(tmp_path)
    for name in ("wav.scp", "utt2spk", "spk2utt", "utt2dur"):
        (d / name).write_text("")
    problems = validate_data_dir(d)
    assert [p.split(";")[0] for p in problems] == [f"{d}/wav.scp: empty", f"{d}/utt2spk: empty"]
    assert "at least one utterance" in problems[0] and "./run.sh --stage 2" in problems[0]
    r = run_util("validate_data_dir.py", str(d))
    assert r.returncode == 1 and b"OK" not in r.stdout and b"wav.scp: empty" in r.stderr


def test_audio_not_16k_mono_or_unreadable_is_reported(tmp_path):
    d = make_dir(tmp_path)
    wav = DataDir.load(d).wav_scp
    stereo, rate8k, junk = wav["id00001/sessA/00001"], wav["id00001/sessA/00002"], wav["id00002/sessB/00001"]
    sf.write(stereo, np.zeros((1600, 2), np.float32), 16000)
    sf.write(rate8k, np.zeros(800, np.float32), 8000)
    Path(junk).write_bytes(b"RIFF not audio")
    problems = validate_data_dir(d)
    assert problems[0].startswith(f"{d}/wav.scp: utterance 'id00002/sessB/00001': cannot read {junk}: ")
    assert problems[1:] == [
        f"{d}/wav.scp: utterance 'id00001/sessA/00001': {stereo} is 16000 Hz with 2 channel(s), not 16000 Hz mono "
        f"(resample: ffmpeg -i IN -ac 1 -ar 16000 OUT.wav)",
        f"{d}/wav.scp: utterance 'id00001/sessA/00002': {rate8k} is 8000 Hz with 1 channel(s), not 16000 Hz mono "
        f"(resample: ffmpeg -i IN -ac 1 -ar 16000 OUT.wav)"]
    assert validate_data_dir(d, check_audio=False) == []


def test_utt2dur_is_compared_with_the_audio(tmp_path):
    # --check-audio said OK; training then cropped past the end and blamed the file
    d = make_dir(tmp_path)
    (d / "utt2dur").write_text("id00001/sessA/00001 0.6\nid00001/sessA/00002 3.5\nid00002/sessB/00001 0.62\n")
    wav = DataDir.load(d).wav_scp["id00001/sessA/00002"]
    assert validate_data_dir(d) == [f"{d}/utt2dur:2: utterance 'id00001/sessA/00002' lasts 3.5 s there but 0.600 s "
                                    f"in {wav}; regenerate utt2dur, or delete it to read the lengths from the audio "
                                    f"headers"]  # 0.62 s is within the tolerance of a feature-derived length
    r = run_util("validate_data_dir.py", "--check-audio", str(d))
    assert r.returncode == 1 and b"utt2dur:2: utterance 'id00001/sessA/00002' lasts 3.5 s" in r.stderr


def test_utterances_too_short_to_embed_are_listed_from_the_headers(tmp_path):
    d = make_dir(tmp_path)
    wav = DataDir.load(d).wav_scp["id00002/sessB/00001"]
    sf.write(wav, np.full(4000, 0.1, np.float32), 16000)
    (d / "utt2dur").unlink()
    want = [f"{d}/wav.scp: utterance 'id00002/sessB/00001': {wav}: only 0.25 s of audio; at least 0.5 s is needed"]
    assert validate_data_dir(d) == want
    decoded = validate_data_dir(d, check_samples=True)  # (the other two are all zeros: silent)
    assert [p for p in decoded if "00001.wav: only" in p or "sessB" in p] == want  # once, not again when decoded


def test_a_fifo_in_wav_scp_is_named_as_one(tmp_path):
    # it was reported as "not found" (and stage 4 waited on it for ever)
    d = make_dir(tmp_path)
    fifo = DataDir.load(d).wav_scp["id00001/sessA/00002"]
    Path(fifo).unlink()
    os.mkfifo(fifo)
    assert validate_data_dir(d) == [f"{d}/wav.scp: utterance 'id00001/sessA/00002': audio file {fifo} is a FIFO "
                                    f"(named pipe), not a regular file: reading it can wait for ever; give the "
                                    f"audio as a file"]


def test_many_bad_files_report_at_most_max_reported(tmp_path):
    d = tmp_path / "d"
    n = MAX_REPORTED + 3
    wavs = {f"u{i:02d}": str(tmp_path / f"{i}.wav") for i in range(n)}
    for p in wavs.values():
        sf.write(p, np.zeros(160, np.float32), 44100)
    utts = {u: "s" for u in wavs}
    DataDir(d, wavs, utts, utt2spk_to_spk2utt(utts), None).write()
    problems = validate_data_dir(d)
    assert len(problems) == MAX_REPORTED + 1 and all("44100 Hz" in p for p in problems[:-1])
    assert problems[-1] == f"{d}/wav.scp: ... and 3 more files not 16 kHz mono"


def segmented_dir(tmp_path: Path) -> Path:
    """A MUSAN-like dir as Kaldi has it: recordings in wav.scp, windows everywhere else."""
    d = tmp_path / "seg"
    d.mkdir(parents=True)
    wav = tmp_path / "rec.wav"
    sf.write(wav, np.zeros(16000 * 7, dtype=np.float32), 16000)
    (d / "wav.scp").write_text(f"noise/rec {wav}\n")
    (d / "reco2dur").write_text("noise/rec 7.000\n")
    (d / "segments").write_text("noise/rec-0000000 noise/rec 0.00 5.00\nnoise/rec-0000300 noise/rec 3.00 7.00\n")
    (d / "utt2spk").write_text("noise/rec-0000000 noise/rec-0000000\nnoise/rec-0000300 noise/rec-0000300\n")
    (d / "spk2utt").write_text("noise/rec-0000000 noise/rec-0000000\nnoise/rec-0000300 noise/rec-0000300\n")
    (d / "utt2dur").write_text("noise/rec-0000000 5.000\nnoise/rec-0000300 4.000\n")
    return d


def test_kaldi_rules_for_a_segmented_dir(tmp_path):
    d = segmented_dir(tmp_path)
    assert validate_data_dir(d) == []
    # keyed by recording while segments is keyed by window: Kaldi's fix_data_dir.sh keeps no utterance
    (d / "utt2spk").write_text("noise/rec noise/rec\n")
    (d / "spk2utt").write_text("noise/rec noise/rec\n")
    problems = "\n".join(validate_data_dir(d))
    assert f"{d}/utt2spk: 'noise/rec' is missing from {d}/segments" in problems
    assert f"{d}/segments: 'noise/rec-0000000' is missing from {d}/utt2spk" in problems
    assert f"{d}/utt2dur: 'noise/rec-0000000' is missing from {d}/utt2spk" in problems
    d = segmented_dir(tmp_path / "b")
    (d / "reco2dur").write_text("noise/other 7.000\n")
    (d / "segments").write_text("noise/rec-0000000 noise/rec 0.00 5.00\nnoise/rec-0000300 noise/rec 7.00 7.00\n")
    problems = "\n".join(validate_data_dir(d))
    assert f"{d}/segments:2: expected '<utt> <recording> <start-s> <end-s>' with end > start" in problems
    assert f"{d}/reco2dur: 'noise/other' is missing from {d}/wav.scp" in problems


def test_kaldi_rules_order_newline_and_tilde(tmp_path):
    d = make_dir(tmp_path)
    # sorted by utterance but not by speaker: Kaldi wants speaker ids as prefixes of utterance ids
    (d / "utt2spk").write_text("id00001/sessA/00001 zz\nid00001/sessA/00002 aa\nid00002/sessB/00001 aa\n")
    (d / "spk2utt").write_text("aa id00001/sessA/00002 id00002/sessB/00001\nzz id00001/sessA/00001\n")
    problems = validate_data_dir(d, check_audio=False)
    assert any("utt2spk:1: not in order when sorted by speaker" in p for p in problems), problems
    assert not any("spk2utt" in p for p in problems)  # it is utt2spk's order that is wrong
    d = make_dir(tmp_path / "b")
    (d / "utt2dur").write_text((d / "utt2dur").read_text().rstrip("\n"))
    assert validate_data_dir(d) == [f"{d}/utt2dur: the last line has no newline; Kaldi's tools refuse it "
                                    f"(fix: echo >> {d}/utt2dur)"]
    d = make_dir(tmp_path / "c")
    lines = (d / "wav.scp").read_text().splitlines()
    (d / "wav.scp").write_text("".join(f"{line.split()[0]} ~/{i}.wav\n" for i, line in enumerate(lines)))
    assert any("Kaldi refuses '~' in wav.scp" in p for p in validate_data_dir(d, check_audio=False))


def test_check_audio_decodes_and_refuses_what_stage_4_refuses(tmp_path):
    d = tmp_path / "data" / "set"
    t = np.arange(16000) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    waves = {"a/s/good": tone, "b/s/nan": tone.copy(), "c/s/zeros": np.zeros_like(tone), "d/s/cut": tone}
    waves["b/s/nan"][10] = np.nan
    wavs = {}
    for utt, x in waves.items():
        p = tmp_path / "wav" / f"{utt}.wav"
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(p, x, 16000, subtype="FLOAT" if "nan" in utt else "PCM_16")
        wavs[utt] = str(p)
    cut = Path(wavs["d/s/cut"])
    cut.write_bytes(cut.read_bytes()[:44 + 2 * 12000])
    utt2spk = {u: u.split("/")[0] for u in waves}
    DataDir(d, wavs, utt2spk, utt2spk_to_spk2utt(utt2spk), None).write()
    # the headers alone look fine (libsndfile reads a cut-short WAV without a word)
    assert validate_data_dir(d) == []
    problems = validate_data_dir(d, check_samples=True)
    assert problems == [
        f"{d}/wav.scp: utterance 'b/s/nan': {wavs['b/s/nan']}: holds NaN or infinite samples (a corrupt float file); "
        f"re-export or convert it",
        f"{d}/wav.scp: utterance 'c/s/zeros': {wavs['c/s/zeros']}: silent (all zeros, below -80 dBFS); check the "
        f"recording or the microphone input",
        f"{d}/wav.scp: utterance 'd/s/cut': {wavs['d/s/cut']}: cut short: its header promises 16000 samples, the file "
        f"holds 12000 (an interrupted copy or conversion); copy or convert it again"]
    r = run_util("validate_data_dir.py", "--check-audio", str(d))
    assert r.returncode == 1 and r.stderr.decode().count("validate_data_dir: ") == 3
    assert run_util("validate_data_dir.py", str(d)).returncode == 0


def test_wav_scp_commands_need_allow_pipes_and_stdin_or_output_pipes_never_load(tmp_path):
    d = make_dir(tmp_path)
    lines = (d / "wav.scp").read_text().splitlines()
    utt = lines[1].split()[0]
    for entry, allowed in (("sox x.wav -t wav - |", True), ("| tee x.wav", False), ("-", False)):
        lines[1] = f"{utt} {entry}"
        (d / "wav.scp").write_text("\n".join(lines) + "\n")
        with pytest.raises(DataDirError, match=rf"^{d}/wav.scp:2: utterance '{utt}' is (a shell command|standard "
                                               rf"input) .*: '{re.escape(entry)}'; spkid runs none unless told to"):
            DataDir.load(d)
        if allowed:
            assert DataDir.load(d, allow_pipes=True).wav_scp[utt] == entry
        else:
            with pytest.raises(DataDirError, match="give audio files"):
                DataDir.load(d, allow_pipes=True)
        # the validator lists Kaldi's commands (not running them) and reports what no reader takes
        assert any(f"wav.scp:2: utterance '{utt}'" in p for p in validate_data_dir(d)) == (not allowed)
