"""Reading audio named by wav.scp entries.

Reads seek to the samples they need (soundfile), so a 2-s training crop of a 20-s file
decodes 2 s. Audio is returned as float32 in [-1, 1], mono, as the paper's code reads it.
A Kaldi wav.scp entry ending in '|' is a shell command whose stdout is a wav file; it runs
only when the caller passes ``allow_pipes=True`` (the user's explicit option), never for
lists that came from a download.
"""

from __future__ import annotations

import io
import math
import os
import stat
import struct
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
import soundfile as sf

from spkid.console import progress
from spkid.data.segments import SegmentError, entry_name, segment_bounds, split_entry
from spkid.errors import SpkidError
from spkid.options import SAMPLE_RATE


class AudioError(SpkidError):
    pass


def is_pipe(entry: str) -> bool:
    return entry.rstrip().endswith("|")


def _whose(utt: str) -> str:
    """The start of a message about an entry: its utterance, when the caller knows it."""
    return f"utterance '{utt}': " if utt else ""


def _run_pipe(entry: str, allow_pipes: bool, utt: str = "") -> bytes:
    if not allow_pipes:
        raise AudioError(f"{_whose(utt)}wav.scp entry '{entry}' is a shell command; "
                         f"pass --allow-pipes=true to run such entries")
    proc = subprocess.run(entry.rstrip()[:-1], shell=True, capture_output=True)
    if proc.returncode != 0:
        raise AudioError(f"{_whose(utt)}wav.scp command '{entry}' failed: "
                         f"{proc.stderr.decode(errors='replace')[-300:]}")
    return proc.stdout


NOT_FOUND = "not found"


def file_problem(path: str) -> str | None:
    """Why ``path`` cannot be read as an audio file, found before anything opens it (opening a
    FIFO waits for a writer, for ever), or None: not found, permission denied, a directory, or
    not a regular file (a FIFO, socket or device)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return NOT_FOUND
    except PermissionError:
        st = None
    except OSError as e:
        return f"cannot be opened ({e.strerror})"
    if st is None or not os.access(path, os.R_OK, effective_ids=True):
        return ("permission denied: this user cannot read it (make it readable, e.g. chmod a+r on the file "
                "and a+x on its folders, or run as a user who can)")
    if stat.S_ISDIR(st.st_mode):
        return "is a directory, not an audio file"
    if not stat.S_ISREG(st.st_mode):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                else "a device")
        return f"is {kind}, not a regular file: reading it can wait for ever; give the audio as a file"
    return None


def check_file(entry: str, utt: str = "") -> None:
    """An AudioError naming the utterance and the file when :func:`file_problem` finds one."""
    problem = file_problem(entry)
    if problem == NOT_FOUND:
        raise AudioError(f"{_whose(utt)}{entry} not found; fix its path in wav.scp or restore the file")
    if problem:
        raise AudioError(f"{_whose(utt)}{entry} {problem}")


def _read_error(entry: str, utt: str, e: Exception) -> AudioError:
    """Why ``entry`` did not read. libsndfile says "System error." for a missing file, so whether
    the file exists is looked at here, once a read has failed, and not before every read."""
    if isinstance(e, SegmentError):
        return AudioError(f"{_whose(utt)}{e}")
    source = split_entry(entry)[0]
    if not is_pipe(source):
        try:
            check_file(source, utt)  # gone or unreadable since it was checked
        except AudioError as gone:
            return gone
    return AudioError(f"{_whose(utt)}cannot read {entry_name(entry)}: {e}")


def _open_source(entry: str, utt: str, allow_pipes: bool) -> str | io.BytesIO:
    """What soundfile opens for ``entry`` (a segment's: its recording's): the checked file, or
    the output of a command that is allowed to run."""
    source = split_entry(entry)[0]
    if is_pipe(source):
        return io.BytesIO(_run_pipe(source, allow_pipes, utt))
    check_file(source, utt)  # a stat and an access check: nothing next to a decode
    return source


def crop_samples(frames: int) -> int:
    """Samples in a crop of ``frames`` 10-ms frames with a 25-ms window: frames*160 + 240
    (200 -> 32,240 for training, 400 -> 64,240 for evaluation)."""
    return frames * 160 + 240


def wrap_crop(x: np.ndarray, offset: int, frames: int) -> np.ndarray:
    """``frames`` samples of ``x`` from ``offset``, continuing circularly past its end
    (the wrap-padding of short utterances in the paper's code)."""
    if len(x) == 0:
        raise ValueError("cannot crop empty audio")
    if offset + frames <= len(x):
        return x[offset:offset + frames]
    return x[(offset + np.arange(frames)) % len(x)]


PCM16_SCALE = 1.0 / 32768.0


def pcm16_to_float(x):
    """int16 samples (numpy or torch) as float32 in [-1, 1), exactly as libsndfile reads them;
    float input is returned unchanged."""
    if isinstance(x, np.ndarray):
        return x.astype(np.float32) * np.float32(PCM16_SCALE) if x.dtype == np.int16 else x
    return x.float().mul_(PCM16_SCALE) if str(x.dtype) == "torch.int16" else x  # (no torch import here)


def float_to_pcm16(x: np.ndarray) -> np.ndarray:
    """float audio in [-1, 1] as int16 (rounded, clipped): exact for audio read from 16-bit files."""
    return np.clip(np.rint(np.asarray(x, dtype=np.float64) * 32768.0), -32768, 32767).astype(np.int16)


@dataclass
class AudioInfo:
    frames: int
    sample_rate: int
    channels: int

    @property
    def is_16k_mono(self) -> bool:
        return self.sample_rate == SAMPLE_RATE and self.channels == 1


def _wav_data_chunk(path: str) -> tuple[bytes, int, int] | None:
    """The 16 bytes of a RIFF WAVE file's fmt chunk, and the bytes its data chunk promises and
    the bytes the file holds after the data chunk's header; None for any other file."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"WAVE":
                return None
            fmt = None
            while len(chunk := f.read(8)) == 8:
                cid, size = chunk[:4], int.from_bytes(chunk[4:], "little")
                if cid == b"data":
                    return None if fmt is None else (fmt, size, os.fstat(f.fileno()).st_size - f.tell())
                if cid == b"fmt ":
                    if size < 16:
                        return None
                    fmt = f.read(16)
                    size -= 16
                f.seek(size + (size & 1), os.SEEK_CUR)  # chunks are padded to an even length
    except OSError:
        return None
    return None


def wav_header_info(path: str) -> AudioInfo | None:
    """What libsndfile reports for a plain RIFF WAVE file of integer PCM or float samples, read
    from its chunk headers alone (a tenth of the time of ``sf.info``, which matters for a
    million VoxCeleb2 files); None for any other file or anything unusual in one (a
    WAVE_FORMAT_EXTENSIBLE header, a data chunk running past the end of the file, ...), which
    libsndfile then reads."""
    found = _wav_data_chunk(path)
    if found is None:
        return None
    fmt, size, held = found
    tag, channels, rate, _, block, bits = struct.unpack("<HHIIHH", fmt)
    if ((tag, bits) not in ((1, 16), (1, 24), (1, 32), (3, 32), (3, 64)) or channels < 1
            or block != channels * bits // 8 or size == 0 or size % block or size > held):
        return None
    return AudioInfo(size // block, rate, channels)


# ----------------------------------------------------------------------------- what may be embedded
# One rule for every reader that makes embeddings (stage 4, steps/verify.py, steps/embed.py) and
# for utils/validate_data_dir.py --check-audio, so that a recording refused by one is refused by all.

MIN_SECONDS = 0.5  # about two syllables: below this a speaker embedding says little
SILENCE_DBFS = -80.0
_UNKNOWN_LENGTH = (0, 0xFFFFFFFF)  # what streaming writers put in the data size they cannot know


def level_dbfs(wave: np.ndarray) -> float:
    """RMS level in dB relative to full scale (a full-scale square wave is 0 dBFS; silence -inf)."""
    rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64)))) if len(wave) else 0.0
    return 20.0 * math.log10(rms) if rms > 0 else -math.inf


def truncation_problem(path: str) -> str | None:
    """Why a WAV file is cut short (its header promises more samples than the file holds, which
    libsndfile reads without a word), or None."""
    found = _wav_data_chunk(path)
    if found is None:
        return None
    fmt, size, held = found
    block = max(1, struct.unpack("<HHIIHH", fmt)[4])
    if size in _UNKNOWN_LENGTH or size <= held:
        return None
    return (f"cut short: its header promises {size // block} samples, the file holds {held // block} "
            f"(an interrupted copy or conversion); copy or convert it again")


def duration_problem(seconds: float, min_seconds: float = MIN_SECONDS) -> str | None:
    """Why an utterance of ``seconds`` is too short to embed, or None."""
    return f"only {seconds:.2f} s of audio; at least {min_seconds:g} s is needed" if seconds < min_seconds else None


def wave_problem(wave: np.ndarray, min_seconds: float = MIN_SECONDS, silence_dbfs: float = SILENCE_DBFS) -> str | None:
    """Why 16-kHz samples cannot be embedded (NaN or infinite samples, shorter than
    ``min_seconds``, quieter than ``silence_dbfs``, all zeros included), or None."""
    if wave.size and not np.isfinite(wave).all():
        return "holds NaN or infinite samples (a corrupt float file); re-export or convert it"
    short = duration_problem(len(wave) / SAMPLE_RATE, min_seconds)
    if short:
        return short
    level = level_dbfs(wave)
    if level < silence_dbfs:
        what = "all zeros" if level == -math.inf else f"{level:.1f} dBFS"
        return f"silent ({what}, below {silence_dbfs:g} dBFS); check the recording or the microphone input"
    return None


def read_checked(entry: str, utt: str = "", allow_pipes: bool = False) -> np.ndarray:
    """A whole 16-kHz utterance to embed, or an AudioError naming the utterance, the file and what
    is wrong with it (:func:`truncation_problem`, :func:`wave_problem`)."""
    source = split_entry(entry)[0]
    if not is_pipe(source):
        check_file(source, utt)
    problem = None if is_pipe(source) else truncation_problem(source)
    wave = read_audio(entry, utt=utt, allow_pipes=allow_pipes) if problem is None else None
    problem = problem or wave_problem(wave)
    if problem:
        raise AudioError(f"{_whose(utt)}{entry_name(entry)}: {problem}")
    return wave


def audio_info(entry: str, utt: str = "", allow_pipes: bool = False) -> AudioInfo:
    """The length, rate and channels of ``entry``'s audio (a segment's own length)."""
    try:
        src = _open_source(entry, utt, allow_pipes)
        info = wav_header_info(src) if isinstance(src, str) else None
        if info is None:
            with sf.SoundFile(src) as f:
                info = AudioInfo(f.frames, f.samplerate, f.channels)
        first, last = segment_bounds(entry, info.frames, info.sample_rate)
        return AudioInfo(last - first, info.sample_rate, info.channels)
    except (sf.LibsndfileError, RuntimeError, OSError, SegmentError) as e:
        raise _read_error(entry, utt, e) from None


def _each_entry(entries: Mapping[str, str], read: Callable[[str, str], object], nj: int, desc: str, quiet: bool
                ) -> tuple[dict[str, object], dict[str, AudioError]]:
    """``read(entry, utt)`` of each ``utt -> entry`` by ``nj`` threads: what it returned and the
    errors it raised, both by utterance in sorted order."""
    def one(utt: str) -> object:
        try:
            return read(entries[utt], utt)
        except AudioError as e:
            return e

    utts = sorted(entries)
    # Executor.map submits every item at once (and ignores chunksize for threads): a million
    # futures for VoxCeleb2. Chunks of files keep it to a few hundred.
    size = max(16, min(4096, -(-len(utts) // (4 * max(1, nj)))))  # small sets still use every thread
    chunks = [utts[i:i + size] for i in range(0, len(utts), size)]
    got: list[object] = []
    with ThreadPoolExecutor(max(1, nj)) as pool, \
            progress(total=len(utts), desc=desc, unit="file", quiet=quiet, leave=False) as bar:
        for part in pool.map(lambda chunk: [one(u) for u in chunk], chunks):
            got += part
            bar.update(len(part))
    return ({u: g for u, g in zip(utts, got) if not isinstance(g, AudioError)},
            {u: g for u, g in zip(utts, got) if isinstance(g, AudioError)})


def audio_infos(entries: Mapping[str, str], nj: int = 8, desc: str = "", quiet: bool = True
                ) -> tuple[dict[str, AudioInfo], dict[str, AudioError]]:
    """The header of each ``utt -> file`` entry, read by ``nj`` threads (no decoding): the infos of
    those that read and the errors of those that did not, both by utterance in sorted order."""
    return _each_entry(entries, lambda entry, utt: audio_info(entry, utt=utt), nj, desc, quiet)  # type: ignore[return-value]


def check_entries(entries: Mapping[str, str], nj: int = 8, desc: str = "", quiet: bool = True) -> dict[str, AudioError]:
    """Decode each ``utt -> file`` entry by ``nj`` threads: the errors of those that
    :func:`read_checked` refuses, by utterance in sorted order."""
    return _each_entry(entries, lambda entry, utt: read_checked(entry, utt=utt) is None, nj, desc, quiet)[1]


def read_audio(entry: str, start: int = 0, frames: int = -1, utt: str = "",
               allow_pipes: bool = False, expect_rate: int | None = SAMPLE_RATE,
               keep_pcm16: bool = False) -> np.ndarray:
    """Samples ``[start, start+frames)`` (all from ``start`` when frames < 0) as float32 mono.

    Multi-channel audio is mixed down. ``expect_rate``: a file at another rate is an error
    naming the utterance (resample it once, e.g. with ffmpeg -ar 16000); None accepts any rate.
    ``keep_pcm16``: a mono 16-bit PCM file comes back as its int16 samples (half the bytes to
    move; :func:`pcm16_to_float` gives exactly the float32 read), anything else as float32."""
    try:
        with sf.SoundFile(_open_source(entry, utt, allow_pipes)) as f:
            if expect_rate is not None and f.samplerate != expect_rate:
                raise AudioError(f"utterance '{utt}': {entry_name(entry)} is {f.samplerate} Hz, expected "
                                 f"{expect_rate} Hz (convert: ffmpeg -i IN -ac 1 -ar {expect_rate} OUT.wav)")
            first, last = segment_bounds(entry, f.frames, f.samplerate)
            start += first
            frames = max(0, last - start) if frames < 0 else max(0, min(frames, last - start))
            if start:
                f.seek(start)
            if keep_pcm16 and f.subtype == "PCM_16" and f.channels == 1:
                return f.read(frames, dtype="int16")
            x = f.read(frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError, SegmentError) as e:
        raise _read_error(entry, utt, e) from None
    return x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]


def read_crop(entry: str, frames: int, offset: int = 0, seg_start: int = 0, seg_len: int = -1,
              utt: str = "", keep_pcm16: bool = False) -> np.ndarray:
    """Samples ``[offset, offset+frames)`` of the segment ``[seg_start, seg_start+seg_len)`` of a file.

    Reads only those samples when the segment is long enough; a shorter segment is read whole
    and wrap-padded. ``seg_len`` < 0: to the end of the file. Lengths from utt2dur or segments
    are rounded, so a read that comes back short falls back to the real length.
    ``keep_pcm16``: int16 samples from 16-bit files (see :func:`read_audio`)."""
    if seg_len >= offset + frames:
        x = read_audio(entry, seg_start + offset, frames, utt=utt, keep_pcm16=keep_pcm16)
        if len(x) == frames:
            return x
    x = read_audio(entry, seg_start, seg_len, utt=utt, keep_pcm16=keep_pcm16)
    if len(x) == 0:
        raise AudioError(f"utterance '{utt}': {entry_name(entry)} holds no samples"
                         + (f" from sample {seg_start}" if seg_start else "") + "; remove it from the data dir")
    return wrap_crop(x, offset % len(x), frames)
