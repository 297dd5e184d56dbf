"""Validation of Kaldi data directories, by the rules of Kaldi's own tools.

A dir that :func:`validate_data_dir` accepts passes Kaldi's ``utils/validate_data_dir.sh
--no-feats --no-text`` and comes out of ``utils/fix_data_dir.sh`` unchanged (our reading of both
scripts); on top, the audio headers and the trial lists under ``trials/`` are checked.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

from spkid.data.audio import (SAMPLE_RATE, AudioInfo, audio_infos, check_entries, duration_problem, file_problem,
                              is_pipe)
from spkid.data.segments import SegmentError, read_segments, segment_problem
from spkid.data.datadir import DataDirError, decoded_lines, list_lines, read_trials, read_utt2dur, read_wav_scp

MAX_REPORTED = 10
# seconds utt2dur may differ from the audio: Kaldi's get_utt2dur.sh, reading lengths from features,
# writes frames x 10 ms, up to a 25-ms window short of the audio; rounding to 3 decimals adds 0.5 ms
UTT2DUR_TOLERANCE = 0.03


def _report_some(problems: list[str], found: list[str], where: str, what: str) -> None:
    """Add the first MAX_REPORTED of ``found`` to ``problems``, then one line counting the rest."""
    problems += found[:MAX_REPORTED]
    if len(found) > MAX_REPORTED:
        problems.append(f"{where}: ... and {len(found) - MAX_REPORTED} more {what}")


def _check_lengths(path: Path, files: Mapping[str, str], infos: Mapping[str, AudioInfo],
                   utt2dur: Mapping[str, float] | None, problems: list[str]) -> set[str]:
    """Audio lengths from the headers: under the minimum stage 4 embeds (returned: no need to decode
    them), and utt2dur lines that disagree with them by more than UTT2DUR_TOLERANCE (training
    crops where utt2dur says the audio is, and blamed the file when it was not there)."""
    seconds = {u: i.frames / i.sample_rate for u, i in infos.items() if i.is_16k_mono}  # (others are refused)
    short = {u: p for u, p in ((u, duration_problem(s)) for u, s in seconds.items()) if p}
    _report_some(problems, [f"{path}/wav.scp: utterance '{u}': {files[u]}: {p}" for u, p in short.items()],
                 f"{path}/wav.scp", "utterances too short to embed")
    wrong = [u for u, s in seconds.items() if utt2dur and u in utt2dur and abs(utt2dur[u] - s) > UTT2DUR_TOLERANCE]
    if wrong:
        lines = {line.split(maxsplit=1)[0]: n for n, line in list_lines(path / "utt2dur")}
        _report_some(problems, [f"{path}/utt2dur:{lines[u]}: utterance '{u}' lasts {utt2dur[u]:g} s there but "
                                f"{seconds[u]:.3f} s in {files[u]}; regenerate utt2dur, or delete it to read the "
                                f"lengths from the audio headers" for u in wrong],
                     f"{path}/utt2dur", "durations that disagree with the audio")
    return set(short)


def _check_segments(path: Path, infos: Mapping[str, AudioInfo], problems: list[str]) -> None:
    """Segments that start or end past their recording's end, by Kaldi's extract-segments rule."""
    try:
        segments = read_segments(path / "segments", list_lines(path / "segments"))
    except SegmentError:
        return  # a malformed line: reported with Kaldi's rules
    found = []
    for lineno, utt, rec, start, end in segments:
        problem = segment_problem(float(start), float(end), infos[rec].frames, infos[rec].sample_rate) \
            if rec in infos else None
        if problem:
            found.append(f"{path}/segments:{lineno}: utterance '{utt}' {problem}")
    _report_some(problems, found, f"{path}/segments", "segments past the end of their recording")


def _check_audio(path: Path, wav_scp: Mapping[str, str], problems: list[str], samples: bool = False,
                 utt2dur: Mapping[str, float] | None = None, embedded: bool = True) -> None:
    """Every audio file of ``wav_scp`` (shell commands aside) exists, reads, is 16-kHz mono, is
    long enough to embed and as long as utt2dur says; with ``samples``, each is decoded and
    refused as stage 4 would refuse it (cut short of its header's length, NaN/inf samples,
    silent: ``spkid.data.audio.read_checked``)."""
    scp = f"{path}/wav.scp"
    files = {u: e for u, e in wav_scp.items() if not is_pipe(e)}
    unusable = {u: p for u, p in ((u, file_problem(e)) for u, e in sorted(files.items())) if p}
    _report_some(problems, [f"{scp}: utterance '{u}': audio file {files[u]} {p}" for u, p in unusable.items()],
                 scp, "missing or unreadable audio files")
    present = {u: e for u, e in files.items() if u not in unusable}
    infos, errors = audio_infos(present, desc=f"audio headers {path}", quiet=len(present) < 1000)
    _report_some(problems, [f"{scp}: {e}" for e in errors.values()], scp, "unreadable audio files")
    wrong = [u for u, i in infos.items() if not i.is_16k_mono]
    _report_some(problems, [f"{scp}: utterance '{u}': {files[u]} is {infos[u].sample_rate} Hz with "
                            f"{infos[u].channels} channel(s), not {SAMPLE_RATE} Hz mono (resample: ffmpeg -i IN "
                            f"-ac 1 -ar {SAMPLE_RATE} OUT.wav)" for u in wrong], scp, "files not 16 kHz mono")
    short = _check_lengths(path, files, infos, utt2dur, problems) if embedded else set()
    if (path / "segments").is_file():
        _check_segments(path, infos, problems)
    if samples:
        refused = check_entries({u: files[u] for u in infos if infos[u].is_16k_mono and u not in short},
                                desc=f"audio {path}", quiet=len(infos) < 1000)
        _report_some(problems, [f"{scp}: {e}" for e in refused.values()], scp, "files that cannot be embedded")


def _lines(path: Path, problems: list[str]) -> list[str] | None:
    """The lines of a list as Kaldi's tools see them (bytes order, LC_ALL=C), or None (a problem
    is added) when the file does not end in a newline or is not UTF-8."""
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        problems.append(f"{path}: starts with a byte-order mark, which Kaldi's tools take as part of the first key "
                        f"(our readers skip it; fix: sed -i '1s/^\\xEF\\xBB\\xBF//' {path})")
        return None
    if data and not data.endswith(b"\n"):
        problems.append(f"{path}: the last line has no newline; Kaldi's tools refuse it (fix: echo >> {path})")
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        try:
            list(decoded_lines(data.splitlines(keepends=True), path))
        except DataDirError as e:
            problems.append(str(e))
        return None
    return [line.decode("utf-8") for line in data.splitlines()]


def _keys_sorted(path: Path, lines: list[str], problems: list[str]) -> list[str]:
    """First fields, which must be unique and in C order (``sort -k1,1 -u`` leaves the file as it is)."""
    keys = [line.split(maxsplit=1)[0] if line.strip() else "" for line in lines]
    for i in range(1, len(keys)):
        if keys[i].encode() <= keys[i - 1].encode():
            what = "duplicate" if keys[i] == keys[i - 1] else "not sorted"
            problems.append(f"{path}:{i + 1}: {what} key '{keys[i]}' after '{keys[i - 1]}' "
                            f"(fix: LC_ALL=C sort -u -k1,1 {path} -o {path})")
            break
    return keys


def _same_keys(path: Path, a: list[str], b: list[str], name_a: str, name_b: str, problems: list[str]) -> None:
    """Kaldi compares key lists with ``cmp``: the same keys in the same order."""
    if a != b:
        sa, sb = set(a), set(b)
        found = [f"{path}/{name_a}: '{k}' is missing from {path}/{name_b}" for k in sorted(sa - sb)]
        found += [f"{path}/{name_b}: '{k}' is missing from {path}/{name_a}" for k in sorted(sb - sa)]
        _report_some(problems, found or [f"{path}: {name_a} and {name_b} list their keys in different orders"],
                     f"{path}/{name_a}", f"keys differing from {name_b}")


def _check_kaldi_rules(path: Path, problems: list[str]) -> list[str]:
    """Kaldi's ``utils/validate_data_dir.sh --no-feats --no-text`` and what ``utils/fix_data_dir.sh``
    needs to leave a dir unchanged (our reading of both scripts). Returns the utterance ids."""
    files = {n: path / n for n in ("utt2spk", "spk2utt", "wav.scp", "segments", "utt2dur", "reco2dur")}
    lines = {}
    for name, f in files.items():
        if f.is_file():
            got = _lines(f, problems)
            if got is not None:
                lines[name] = got
    if problems:
        return []
    keys = {name: _keys_sorted(files[name], ls, problems) for name, ls in lines.items()}
    u2s = lines["utt2spk"]
    bad = [i for i, line in enumerate(u2s, 1) if len(line.split()) != 2]
    if bad:
        problems.append(f"{files['utt2spk']}:{bad[0]}: expected '<utt> <spk>', got '{u2s[bad[0] - 1]}'")
        return []
    by_spk = sorted(u2s, key=lambda line: (line.split()[1].encode(), line.encode()))
    if by_spk != u2s:
        i = next(i for i, (a, b) in enumerate(zip(u2s, by_spk)) if a != b)
        problems.append(f"{files['utt2spk']}:{i + 1}: not in order when sorted by speaker ('{u2s[i]}'); Kaldi needs "
                        f"each speaker id to be a prefix of its utterance ids")
    if "spk2utt" in lines:
        derived = [f"{u} {s}" for line in lines["spk2utt"] for s, *us in [line.split()] for u in us]
        if derived != [" ".join(line.split()) for line in by_spk]:
            problems.append(f"{files['spk2utt']}: does not match utt2spk "
                            f"(fix: utils/utt2spk_to_spk2utt.py {files['utt2spk']} > {files['spk2utt']})")
    utts = keys["utt2spk"]
    wav = lines.get("wav.scp", [])
    tilde = [line for line in wav if line.split(maxsplit=1)[-1].startswith("~")]
    if tilde:
        problems.append(f"{files['wav.scp']}: '{tilde[0]}': Kaldi refuses '~' in wav.scp (write the full path)")
    recordings = utts
    if "segments" in lines:
        try:
            read_segments(files["segments"], enumerate(lines["segments"], 1))
        except SegmentError as e:
            problems.append(str(e))
        # fix_data_dir.sh keeps only the utterances of utt2spk that segments lists: the same ids.
        _same_keys(path, utts, keys["segments"], "utt2spk", "segments", problems)
        recordings = sorted({f[1] for f in map(str.split, lines["segments"]) if len(f) > 1}, key=str.encode)
        _same_keys(path, recordings, keys.get("wav.scp", []), "segments (recordings)", "wav.scp", problems)
    elif "wav.scp" in keys:
        _same_keys(path, utts, keys["wav.scp"], "utt2spk", "wav.scp", problems)
    if "utt2dur" in keys:
        _same_keys(path, utts, keys["utt2dur"], "utt2spk", "utt2dur", problems)
    if "reco2dur" in keys:
        _same_keys(path, recordings, keys["reco2dur"], "wav.scp", "reco2dur", problems)
    return utts


def validate_data_dir(path: str | os.PathLike, check_audio: bool = True, check_trials: bool = True,
                      check_samples: bool = False, augmentation: bool = False) -> list[str]:
    """Check a data directory; return a list of problems (empty when valid).

    The rules of Kaldi's ``utils/validate_data_dir.sh --no-feats --no-text``, so that a dir that
    passes here passes there and comes out of ``utils/fix_data_dir.sh`` unchanged: utt2spk,
    spk2utt and wav.scp present, each file ending in a newline, keys unique and in C order,
    utt2spk also in order by speaker, spk2utt equal to utt2spk. Without ``segments`` wav.scp is
    keyed by utterance; with it, wav.scp is keyed by recording: segments has the utterances of
    utt2spk and the recordings of wav.scp. utt2dur is keyed by utterance, reco2dur by recording.
    Then, with ``check_audio``, audio files exist and their headers say 16 kHz mono (with
    ``check_samples`` too, each decodes to samples stage 4 would embed); every
    utterance of every trial list under trials/ is in utt2spk. Each kind of problem is reported
    for at most MAX_REPORTED keys."""
    path = Path(path)
    if not path.is_dir():
        return [f"{path}: not a directory (run the data preparation stage first)"]
    problems = [f"{path}/{name}: missing; every data directory needs wav.scp, utt2spk and spk2utt"
                + (f" (fix: utils/utt2spk_to_spk2utt.py {path}/utt2spk > {path}/spk2utt)" if name == "spk2utt" else "")
                for name in ("wav.scp", "utt2spk", "spk2utt") if not (path / name).is_file()]
    if problems:
        return problems
    for name in ("wav.scp", "utt2spk"):
        if not (path / name).read_bytes().strip():
            problems.append(f"{path}/{name}: empty; a data directory needs at least one utterance (re-run the "
                            f"data preparation stage: ./run.sh --stage 2 --stop-stage 2)")
    if problems:
        return problems
    utts = _check_kaldi_rules(path, problems)
    if not utts:
        return problems
    try:
        utt2dur = read_utt2dur(path / "utt2dur") if (path / "utt2dur").is_file() else None
        wav_scp = read_wav_scp(path / "wav.scp", allow_pipes=True)  # commands are listed, not run, here
    except DataDirError as e:
        return [str(e)]
    if check_audio or check_samples:
        # MUSAN windows and RIRs (``augmentation``) are mixed into crops, never embedded: no minimum length;
        # a segmented dir's utt2dur is keyed by segment, not by the recordings the headers describe
        embedded = not augmentation and not (path / "segments").is_file()
        _check_audio(path, wav_scp, problems, check_samples, utt2dur, embedded)
    if check_trials:
        known = set(utts)
        for tpath in sorted(p for p in (path / "trials").glob("*") if p.is_file()):
            try:
                trials = read_trials(tpath)
            except DataDirError as e:
                problems.append(str(e))
                continue
            _report_some(problems, trials.absent(tpath, known, f"{path}/utt2spk"), f"{tpath}",
                         "trial utterances not in utt2spk")
    return problems
