"""Reading a user's recordings for a trained system: any file soundfile decodes, checked.

Training and evaluation read prepared corpora (``spkid.data.audio``: 16 kHz, trusted). A user who
verifies or embeds their own recordings brings whatever they have, so this module accepts more
and checks more:

* any format soundfile reads (WAV, FLAC, OGG/Vorbis, MP3 with libsndfile >= 1.1, AIFF, ...);
* any sample rate, resampled to 16 kHz with ``torchaudio.functional.resample``;
* more than one channel, mixed down to mono (the mean of the channels, as ``spkid.data.audio`` does)
  with a note, because a stereo call recording may hold two speakers;
* refused, with an :class:`InputError` naming the file and the fix: a missing file, a file that
  does not decode, and what stage 4 refuses too (``spkid.data.audio``'s one rule): a WAV cut
  short of its header's length, NaN/inf samples, under :data:`MIN_SECONDS`, and a level below
  :data:`SILENCE_DBFS` (all-zero files included).

:data:`MIN_SECONDS` is 0.5 s; anything between that and the evaluation crop (4 s) is wrap-padded
by the extraction code exactly as evaluation pads short test utterances.

Batch runs (:func:`load_inputs`) go on past a bad file and collect the failures in a
:class:`Failures`, which the step prints at the end.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np
import soundfile as sf
import torch
import torchaudio

from spkid.data.audio import (MIN_SECONDS, NOT_FOUND, SAMPLE_RATE, SILENCE_DBFS, _run_pipe, file_problem, is_pipe,
                              truncation_problem, wave_problem)
from spkid.errors import SpkidError


class InputError(SpkidError):
    """A user's recording that cannot be used; ``path`` names it."""

    def __init__(self, path: str, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


@dataclass
class Recording:
    """A recording ready for the model: float32 mono at ``SAMPLE_RATE``, and how it arrived."""

    wave: np.ndarray
    source_rate: int
    channels: int
    notes: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return len(self.wave) / SAMPLE_RATE


def _decode(entry: str, allow_pipes: bool) -> tuple[np.ndarray, int]:
    """Samples ``(frames, channels)`` as float32 and the sample rate; errors name ``entry``."""
    if is_pipe(entry):
        src: str | io.BytesIO = io.BytesIO(_run_pipe(entry, allow_pipes))
    else:
        problem = file_problem(entry)
        if problem == NOT_FOUND:
            raise InputError(entry, "no such file (check the path)")
        problem = problem or truncation_problem(entry)
        if problem:
            raise InputError(entry, problem)
        src = entry
    try:
        with sf.SoundFile(src) as f:
            rate = f.samplerate
            x = f.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise InputError(entry, f"cannot decode it as audio ({e}); check that it plays, or convert it: "
                                f"ffmpeg -i IN -ac 1 -ar {SAMPLE_RATE} OUT.wav") from None
    return x, rate


def load_recording(entry: str, min_seconds: float = MIN_SECONDS, silence_dbfs: float = SILENCE_DBFS,
                   allow_pipes: bool = False) -> Recording:
    """Read ``entry`` (a path, or a wav.scp command ending in '|' when ``allow_pipes``) as 16-kHz
    mono float32, or raise :class:`InputError` saying why it cannot be used."""
    x, rate = _decode(entry, allow_pipes)
    channels = x.shape[1]
    notes = []
    wave = x.mean(axis=1) if channels > 1 else x[:, 0]
    if channels > 1:
        notes.append(f"{entry}: {channels} channels mixed down to mono (if the channels hold "
                     f"different speakers, split them first)")
    if rate != SAMPLE_RATE and len(wave):
        wave = torchaudio.functional.resample(torch.from_numpy(np.ascontiguousarray(wave)), rate, SAMPLE_RATE).numpy()
    problem = wave_problem(wave, min_seconds, silence_dbfs)
    if problem:
        raise InputError(entry, problem)
    return Recording(wave.astype(np.float32, copy=False), rate, channels, notes)


@dataclass
class Failures:
    """Inputs a batch run skipped, reported together at the end."""

    items: list[tuple[str, str]] = field(default_factory=list)

    def add(self, key: str, error: SpkidError) -> None:
        self.items.append((key, str(error)))

    def __len__(self) -> int:
        return len(self.items)

    def report(self) -> str:
        lines = [f"{len(self.items)} input(s) skipped:"]
        lines += [f"  {key}: {msg}" if not msg.startswith(key) else f"  {msg}" for key, msg in self.items]
        return "\n".join(lines)


def load_inputs(items: Iterable[tuple[str, str]], failures: Failures, notes: list[str] | None = None,
                min_seconds: float = MIN_SECONDS, silence_dbfs: float = SILENCE_DBFS,
                allow_pipes: bool = False) -> Iterator[tuple[str, Recording]]:
    """Yield ``(key, Recording)`` for each ``(key, entry)`` that loads; a bad one is added to
    ``failures`` and skipped, so the rest of the batch still runs. Notes (mixed-down channels)
    are appended to ``notes`` when given."""
    for key, entry in items:
        try:
            rec = load_recording(entry, min_seconds, silence_dbfs, allow_pipes)
        except SpkidError as e:
            failures.add(key, e)
            continue
        if notes is not None:
            notes.extend(rec.notes)
        yield key, rec
