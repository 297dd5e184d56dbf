"""Kaldi ``segments``: utterances that are stretches of longer recordings, as Kaldi reads them.

``<utt> <recording> <start-s> <end-s>`` per line; wav.scp is then keyed by recording. As Kaldi's
``extract-segments`` does: a segment is samples ``[int(start*rate), int(end*rate))`` of its
recording, an end of -1 means the recording's end, a segment ending less than
:data:`MAX_OVERSHOOT` past its recording's end is cut there, and one ending further or starting
at or past the end is refused.

A data dir's segment reaches the audio readers as one wav.scp-like entry (:func:`segment_entry`):
the recording's entry and the segment's times joined by NUL bytes, which no file path can hold,
so every reader, job list and fingerprint handles it like any entry.
"""

from __future__ import annotations

from pathlib import Path

from spkid.errors import SpkidError

SEPARATOR = "\0"
MAX_OVERSHOOT = 0.5  # seconds: extract-segments' --max-overshoot default


class SegmentError(SpkidError):
    pass


def read_segments(path: Path, lines) -> list[tuple[int, str, str, str, str]]:
    """(line number, utt, recording, start, end) of a segments file's ``(line number, line)``
    pairs; a line Kaldi would skip (not 4 fields, a time that is not a number, start < 0, end <=
    start unless end is -1) or a repeated utterance is an error naming the file and the line."""
    out, seen = [], set()
    for lineno, line in lines:
        fields = line.split()
        try:
            ok = len(fields) == 4 and float(fields[2]) >= 0 and (float(fields[3]) > float(fields[2])
                                                                 or float(fields[3]) == -1)
        except ValueError:
            ok = False
        if not ok:
            raise SegmentError(f"{path}:{lineno}: expected '<utt> <recording> <start-s> <end-s>' with end > start "
                               f"(or -1: to the recording's end), got '{line}'")
        if fields[0] in seen:
            raise SegmentError(f"{path}:{lineno}: utterance '{fields[0]}' is listed twice; each must appear once")
        seen.add(fields[0])
        out.append((lineno, *fields))
    return out


def segment_entry(recording_entry: str, start: str, end: str) -> str:
    return SEPARATOR.join((recording_entry, start, end))


def split_entry(entry: str) -> tuple[str, tuple[float, float] | None]:
    """(the recording's entry, (start, end) seconds or None when ``entry`` is a whole file)."""
    if SEPARATOR not in entry:
        return entry, None
    recording, start, end = entry.split(SEPARATOR)
    return recording, (float(start), float(end))


def entry_name(entry: str) -> str:
    """How a message names an entry: a segment as ``FILE [start-end s]``."""
    recording, times = split_entry(entry)
    if times is None:
        return entry
    return f"{recording} [{times[0]:g}-{'end' if times[1] == -1 else f'{times[1]:g}'} s]"


def segment_problem(start: float, end: float, samples: int, rate: int) -> str | None:
    """Why a segment cannot be cut from a recording of ``samples`` samples at ``rate``, or None."""
    seconds = samples / rate
    if int(start * rate) >= samples:
        return f"starts at {start:g} s, at or past the end of its recording ({seconds:.2f} s)"
    if end != -1 and int(end * rate) >= samples + int(MAX_OVERSHOOT * rate):
        return (f"ends at {end:g} s, {end - seconds:.2f} s past the end of its recording ({seconds:.2f} s); Kaldi's "
                f"extract-segments cuts at most {MAX_OVERSHOOT:g} s: fix its line in segments")
    return None


def segment_bounds(entry: str, samples: int, rate: int) -> tuple[int, int]:
    """``[first, last)`` samples of the recording that the segment ``entry`` is (the whole
    recording for a plain entry), or a SegmentError naming it."""
    _, times = split_entry(entry)
    if times is None:
        return 0, samples
    problem = segment_problem(*times, samples, rate)
    if problem:
        raise SegmentError(f"segment {entry_name(entry)} {problem}")
    start, end = times
    return int(start * rate), samples if end == -1 else min(int(end * rate), samples)
