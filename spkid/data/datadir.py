"""Kaldi data directories: wav.scp, utt2spk, spk2utt, utt2dur, segments and trial lists.

Plain sorted text files (``LC_ALL=C`` order, which is Python's code-point order) that a person
can ``head``, ``wc -l`` and ``diff``. Readers name the file and line of any malformed entry;
:func:`spkid.data.validate.validate_data_dir` checks a whole directory by Kaldi's rules before
hours of training depend on it.

Trial lists live in ``<data-dir>/trials/<name>``, one ``<enroll-utt> <test-utt>
target|nontarget`` per line; VoxCeleb's ``1|0 a.wav b.wav`` lists are read too.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Collection, Iterable, Iterator, Mapping

import numpy as np

from spkid.console import progress
from spkid.data.audio import SAMPLE_RATE, audio_info, is_pipe
from spkid.data.segments import read_segments, segment_entry
from spkid.errors import SpkidError
from spkid.fileio import atomic_write

log = logging.getLogger(__name__)


class DataDirError(SpkidError):
    pass


def _name(path: Path) -> object:
    """How messages name a list: '-' is standard input."""
    return "<stdin>" if str(path) == "-" else path


def decoded_lines(raw: Iterable[bytes], name: object) -> Iterator[tuple[int, str]]:
    """The non-empty lines of ``raw``, decoded and stripped, with their numbers; a byte that is
    not UTF-8 is an error naming ``name``, the line and the fix."""
    for lineno, data in enumerate(raw, 1):
        try:
            line = data.decode("utf-8-sig" if lineno == 1 else "utf-8").strip()
        except UnicodeDecodeError as e:
            fix = ("pipe it through iconv -f LATIN1 -t UTF-8" if name == "<stdin>" else
                   f"iconv -f LATIN1 -t UTF-8 {name} -o {name}.utf8, then rename that onto it")
            raise DataDirError(f"{name}:{lineno}: not UTF-8 text (byte 0x{data[e.start]:02x} at column {e.start + 1}); "
                               f"Kaldi lists must be UTF-8: re-encode it (e.g. {fix})") from None
        if line:
            yield lineno, line


def list_lines(path: Path) -> Iterable[tuple[int, str]]:
    """The non-empty lines of a list, stripped, with their line numbers; '-' reads stdin."""
    if str(path) == "-":
        yield from decoded_lines(sys.stdin.buffer, _name(path))
        return
    if not path.is_file():
        raise DataDirError(f"{path} not found")
    try:
        # utf-8-sig: a byte-order mark (an editor's "UTF-8 with BOM") is not part of the first key
        with open(path, encoding="utf-8-sig") as f:
            for lineno, line in enumerate(f, 1):
                line = line.strip()
                if line:
                    yield lineno, line
    except UnicodeDecodeError:
        # text files decode ahead of the line being read: find the line in the bytes
        with open(path, "rb") as f:
            for _ in decoded_lines(f, path):
                pass
        raise DataDirError(f"{path}: not UTF-8 text; Kaldi lists must be UTF-8") from None


def kaldi_pipe(entry: str) -> str | None:
    """How Kaldi (and kaldiio) would execute or redirect ``entry`` instead of opening it as a
    file: ``cmd |`` runs cmd and reads its output, ``| cmd`` runs cmd and writes into it, ``-``
    is standard input. None for an ordinary path. spkid opens none of these from a list found on
    disk (a wav.scp command runs only with --allow-pipes, see :mod:`spkid.data.audio`)."""
    text = entry.strip()
    if text.endswith("|"):
        return "a shell command ('cmd |')"
    if text.startswith("|"):
        return "a shell command ('| cmd')"
    if text == "-":
        return "standard input ('-')"
    return None


def read_scp_lines(path: str | os.PathLike, fix: str = "re-run steps/extract.sh") -> list[tuple[int, str, str, int]]:
    """(line number, utt, ark path, byte offset) per line of a ``<utt> <ark>:<offset>`` scp.

    An ark given as a command or as stdin (see :func:`kaldi_pipe`), a missing or negative offset
    and a Kaldi range (``ark:12[0:4]``) are errors naming the file, the line and ``fix``: an scp
    is data that another job or a person wrote, never something to run."""
    path = Path(path)
    out = []
    for lineno, line in list_lines(path):
        parts = line.split(maxsplit=1)
        where = parts[1] if len(parts) == 2 else ""
        pipe = kaldi_pipe(where) or kaldi_pipe(where.rsplit(":", 1)[0])
        if pipe:
            raise DataDirError(f"{path}:{lineno}: '{line}' names {pipe}, not an ark file; spkid never runs or "
                               f"reads stdin from an scp (is the file tampered with?): {fix}")
        ark, _, offset = where.rpartition(":")
        if not ark or not (offset.isascii() and offset.isdigit()):
            raise DataDirError(f"{path}:{lineno}: expected '<utt> <ark>:<offset>', got '{line}'; {fix}")
        out.append((lineno, parts[0], ark, int(offset)))
    return out


def read_scp(path: str | os.PathLike) -> list[tuple[str, str, int]]:
    """(utt, ark path, byte offset) per line of a kaldiio ``<utt> <ark>:<offset>`` scp (see
    :func:`read_scp_lines`)."""
    return [(utt, ark, offset) for _, utt, ark, offset in read_scp_lines(path)]


def read_table(path: str | os.PathLike, ncols: int | None = None) -> dict[str, str]:
    """Read ``<key> <rest of line>``; duplicate keys and short lines are errors (file:line).

    ``ncols``: if given, the exact number of whitespace-separated fields each line must have."""
    path = Path(path)
    name = _name(path)
    out: dict[str, str] = {}
    for lineno, line in list_lines(path):
        parts = line.split(maxsplit=1)
        if len(parts) < 2:
            raise DataDirError(f"{name}:{lineno}: expected '<key> <value>', got '{line}'")
        if ncols is not None and len(line.split()) != ncols:
            raise DataDirError(f"{name}:{lineno}: expected {ncols} fields, got '{line}'")
        key, value = parts
        if key in out:
            raise DataDirError(f"{name}:{lineno}: duplicate key '{key}'; each must appear once "
                               f"(fix: LC_ALL=C sort -u -k1,1 {name})")
        out[key] = value
    return out


def write_table(path: str | os.PathLike, table: Mapping[str, object]) -> None:
    """Write ``<key> <value>`` lines sorted by key (C order), atomically."""
    with atomic_write(path) as f:
        for key in sorted(table):
            value = table[key]
            if isinstance(value, (list, tuple)):
                value = " ".join(map(str, value))
            f.write(f"{key} {value}\n")


def refused_pipe(entry: str, allow_pipes: bool) -> str | None:
    """What ``entry`` is (:func:`kaldi_pipe`) when spkid must not run or redirect it: anything
    Kaldi would, except a ``cmd |`` the user allowed with ``allow_pipes``; None to open it."""
    what = kaldi_pipe(entry)
    return None if what is None or (allow_pipes and is_pipe(entry)) else what


def read_wav_scp(path: str | os.PathLike, allow_pipes: bool = False) -> dict[str, str]:
    """utt -> audio file, or a shell command ending in '|' when ``allow_pipes`` (the user's
    --allow-pipes; the command runs in :mod:`spkid.data.audio`). Any other entry that Kaldi
    would execute or read from stdin (:func:`kaldi_pipe`) is an error naming the file and line."""
    path = Path(path)
    table = read_table(path)
    refused = [(u, e, what) for u, e in table.items() if (what := refused_pipe(e, allow_pipes))]
    if refused:
        utt, entry, what = refused[0]
        lineno = next(n for n, line in list_lines(path) if line.split(maxsplit=1)[0] == utt)
        fix = ("give audio files ('<utt> <file>') instead" if not is_pipe(entry) else
               "pass --allow-pipes=true to steps/extract.sh (or steps/embed.py, steps/verify.py) if you trust it, "
               "or write the audio to files and list those")
        more = f" (and {len(refused) - 1} more such lines)" if len(refused) > 1 else ""
        raise DataDirError(f"{_name(path)}:{lineno}: utterance '{utt}' is {what}: '{entry}'{more}; spkid runs "
                           f"none unless told to: {fix}")
    return table


def read_utt2spk(path: str | os.PathLike) -> dict[str, str]:
    return read_table(path, ncols=2)


def read_spk2utt(path: str | os.PathLike) -> dict[str, list[str]]:
    return {spk: utts.split() for spk, utts in read_table(path).items()}


def read_utt2dur(path: str | os.PathLike) -> dict[str, float]:
    path = Path(path)
    out = {}
    for utt, value in read_table(path, ncols=2).items():
        try:
            dur = float(value)
        except ValueError:
            raise DataDirError(f"{path}: utterance {utt}: duration '{value}' is not a number") from None
        if not dur > 0:
            raise DataDirError(f"{path}: utterance {utt}: duration {value} must be positive")
        out[utt] = dur
    return out


def num_samples(entries: Mapping[str, str], utt2dur: Mapping[str, float] | None, what: str) -> dict[str, int]:
    """Length in samples of each entry: from utt2dur when present, else from the file headers."""
    if utt2dur is not None:
        missing = [u for u in entries if u not in utt2dur]
        if missing:
            raise DataDirError(f"{what}/utt2dur has no duration for '{missing[0]}' ({len(missing)} of "
                               f"{len(entries)} missing): regenerate it, or delete it to read the lengths "
                               f"from the file headers (utils/validate_data_dir.py {what} lists such problems)")
        return {u: int(round(utt2dur[u] * SAMPLE_RATE)) for u in entries}
    log.warning("%s has no utt2dur: reading %d file headers (write utt2dur to skip this)", what, len(entries))
    return {u: audio_info(e, utt=u).frames for u, e in progress(entries.items(), desc=f"lengths {what}",
                                                                quiet=len(entries) < 1000)}


def segment_entries(path: Path, recordings: Mapping[str, str]) -> dict[str, str]:
    """utt -> entry of a segmented data dir: each line of ``path``/segments cut from the
    recording ``recordings`` (its wav.scp) names (see :mod:`spkid.data.segments`)."""
    out = {}
    for lineno, utt, rec, start, end in read_segments(path / "segments", list_lines(path / "segments")):
        if rec not in recordings:
            raise DataDirError(f"{path}/segments:{lineno}: recording '{rec}' of utterance '{utt}' is not in "
                               f"{path}/wav.scp (with segments, wav.scp lists recordings): add it or fix the line")
        out[utt] = segment_entry(recordings[rec], start, end)
    return out


def utt2spk_to_spk2utt(utt2spk: Mapping[str, str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for utt in sorted(utt2spk):
        out.setdefault(utt2spk[utt], []).append(utt)
    return out


def utt_id_from_path(path: str) -> str:
    """VoxCeleb list path -> utterance id: 'id10270/x6uYqmx31kE/00001.wav' -> 'id10270/x6uYqmx31kE/00001'."""
    stem, ext = os.path.splitext(path)
    return stem if ext.lower() in (".wav", ".flac", ".m4a") else path


@dataclass
class Trials:
    """A trial list: parallel arrays of enrolment ids, test ids and labels (1 target, 0 non-target)."""

    enroll: list[str]
    test: list[str]
    labels: np.ndarray  # int8, 1 = target
    lines: list[int] = field(default_factory=list)  # each trial's line in its file (read_trials)

    def __len__(self) -> int:
        return len(self.enroll)

    def absent(self, path: str | os.PathLike, known: Collection[str], where: str) -> list[str]:
        """'<path>:<line>: utterance 'u' is not in <where>' for each trial utterance not in ``known``."""
        return [f"{path}:{self.lines[i] if self.lines else i + 1}: utterance '{utt}' is not in {where}"
                for i, pair in enumerate(zip(self.enroll, self.test)) for utt in pair if utt not in known]

    @property
    def utterances(self) -> set[str]:
        return set(self.enroll) | set(self.test)


def read_trials(path: str | os.PathLike) -> Trials:
    """Read Kaldi ``enroll test target|nontarget`` or VoxCeleb ``1|0 a.wav b.wav`` trials."""
    path = Path(path)
    enroll, test, labels, lines = [], [], [], []
    for lineno, line in list_lines(path):
        lines.append(lineno)
        f = line.split()
        if len(f) != 3:
            raise DataDirError(f"{path}:{lineno}: expected 3 fields ('enroll test target|nontarget' "
                               f"or '1|0 a.wav b.wav'), got '{line}'")
        if f[2] in ("target", "nontarget"):
            enroll.append(f[0]), test.append(f[1]), labels.append(f[2] == "target")
        elif f[0] in ("1", "0"):
            enroll.append(utt_id_from_path(f[1])), test.append(utt_id_from_path(f[2])), labels.append(f[0] == "1")
        else:
            raise DataDirError(f"{path}:{lineno}: cannot tell the label in '{line}': the Kaldi form ends "
                               f"in target|nontarget, the VoxCeleb form starts with 1|0")
    if not enroll:
        raise DataDirError(f"{path}: an empty trial list; fill it (one 'enroll test target|nontarget' per line) "
                           f"or remove it")
    return Trials(enroll, test, np.asarray(labels, dtype=np.int8), lines)


def write_trials(path: str | os.PathLike, trials: Trials) -> None:
    """Write Kaldi-format trials, keeping the list's order (trial lists are not re-sorted)."""
    with atomic_write(path) as f:
        for e, t, lab in zip(trials.enroll, trials.test, trials.labels):
            f.write(f"{e} {t} {'target' if lab else 'nontarget'}\n")


@dataclass
class DataDir:
    """A loaded data directory."""

    path: Path
    wav_scp: dict[str, str]
    utt2spk: dict[str, str]
    spk2utt: dict[str, list[str]]
    utt2dur: dict[str, float] | None

    @classmethod
    def load(cls, path: str | os.PathLike, allow_pipes: bool = False) -> "DataDir":
        """The lists of ``path``; wav.scp commands ('cmd |') only with ``allow_pipes`` (see
        :func:`read_wav_scp`)."""
        path = Path(path)
        if not path.is_dir():
            raise DataDirError(f"data directory {path} not found: run the data preparation stage first "
                               f"(./run.sh --stage 2 --stop-stage 2)")
        utt2spk = read_utt2spk(path / "utt2spk")
        spk2utt = read_spk2utt(path / "spk2utt") if (path / "spk2utt").exists() else utt2spk_to_spk2utt(utt2spk)
        utt2dur = read_utt2dur(path / "utt2dur") if (path / "utt2dur").exists() else None
        wav_scp = read_wav_scp(path / "wav.scp", allow_pipes)
        if (path / "segments").exists():
            wav_scp = segment_entries(path, wav_scp)
        empty = [name for name, table in (("wav.scp", wav_scp), ("utt2spk", utt2spk)) if not table]
        if empty:  # every stage would have run on nothing and said it was done
            raise DataDirError(f"{path}/{empty[0]} lists no utterances: a data directory needs at least one; re-run "
                               f"the data preparation (./run.sh --stage 2 --stop-stage 2) or fill it")
        return cls(path, wav_scp, utt2spk, spk2utt, utt2dur)

    @property
    def utts(self) -> list[str]:
        return sorted(self.wav_scp)

    def trial_lists(self) -> dict[str, Path]:
        tdir = self.path / "trials"
        return {p.name: p for p in sorted(tdir.iterdir()) if p.is_file()} if tdir.is_dir() else {}

    def write(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_table(self.path / "wav.scp", self.wav_scp)
        write_table(self.path / "utt2spk", self.utt2spk)
        write_table(self.path / "spk2utt", utt2spk_to_spk2utt(self.utt2spk))
        if self.utt2dur is not None:
            write_table(self.path / "utt2dur", {u: f"{d:.3f}" for u, d in self.utt2dur.items()})
