"""The audio augmentation draws from: MUSAN windows and RIRs, read cheaply.

MUSAN is read through the 5-s windows of ``data/musan_<category>/segments`` (whole files
without one). Random access to a window is cheap in two ways:

- from the wav files, seeking to the samples a crop needs (:func:`spkid.data.audio.read_crop`);
- from the dir's **packed bank**: every recording of wav.scp as 16-bit samples, concatenated
  into ``bank.pcm16`` (raw little-endian int16) with ``bank.index`` (``<rec> <offset>
  <samples>`` lines after a ``#wav.scp-sha1 <digest>`` line). Stage 2 writes it;
  ``utils/pack_audio.py DIR`` writes it for a dir made another way. A window is then a slice of
  one memory-mapped file: no file opens, no decoding. MUSAN is 16-bit, so the bank holds
  exactly the samples the wav files do (real MUSAN: ~109 h, 12.6 GB, the recordings once even
  though the windows overlap).

The RIRs (RIRS_NOISES' simulated small and medium rooms: 60,000 short responses) are held in
memory, L2-normalised; stage 2 packs them the same way, so loading them is one read.

:class:`AugmentSource` gathers both and reads what an :class:`~spkid.data.augment.scheme.AugDraw`
names; :class:`spkid.data.augment.device.DeviceAugmentBank` copies the packed banks and the RIRs
to the training device instead.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from spkid.console import progress
from spkid.data.audio import SAMPLE_RATE, AudioError, float_to_pcm16, pcm16_to_float, read_audio, read_crop, wrap_crop
from spkid.data.augment.scheme import AugDraw, draw_augmentation
from spkid.data.datadir import DataDirError, num_samples, read_table, read_utt2dur, read_wav_scp
from spkid.errors import SpkidError
from spkid.fileio import atomic_paths

#: data/<name> directories under --aug-data that augmentation reads.
AUG_DIRS = {"noise": "musan_noise", "music": "musan_music", "speech": "musan_speech"}
RIR_DIR = "rirs"
PACK_AUDIO, PACK_INDEX = "bank.pcm16", "bank.index"
_DIGEST_KEY = "#wav.scp-sha1"


# ----------------------------------------------------------------------------- packed banks

def _wav_scp_digest(data_dir: Path) -> str:
    return hashlib.sha1((data_dir / "wav.scp").read_bytes()).hexdigest()


def pack_audio(data_dir: str | os.PathLike, quiet: bool = True) -> Path:
    """Write ``bank.pcm16`` and ``bank.index`` for the recordings of ``data_dir/wav.scp``.

    Atomic: the old index goes first and the new one is renamed in last, so an interrupted
    pack leaves no index (the dir is then read from its wav files). Audio that is not 16-bit
    is rounded to 16 bits (a warning says how many recordings). Returns the index path."""
    data_dir = Path(data_dir)
    wav_scp = read_wav_scp(data_dir / "wav.scp")
    if not wav_scp:
        raise DataDirError(f"{data_dir}/wav.scp lists no recordings; nothing to pack")
    audio_path, index_path = data_dir / PACK_AUDIO, data_dir / PACK_INDEX
    lines = [f"{_DIGEST_KEY} {_wav_scp_digest(data_dir)}\n"]
    offset = rounded = 0
    with atomic_paths(audio_path, index_path) as (tmp_audio, tmp_index):
        with open(tmp_audio, "wb") as f:
            for rec in progress(sorted(wav_scp), desc=f"packing {data_dir.name}", quiet=quiet, unit="rec"):
                x = read_audio(wav_scp[rec], utt=rec, keep_pcm16=True)
                if x.dtype != np.int16:
                    x, rounded = float_to_pcm16(x), rounded + 1
                if len(x) == 0:
                    raise AudioError(f"{data_dir}/wav.scp: recording '{rec}' ({wav_scp[rec]}) holds no samples; "
                                     f"remove it")
                f.write(x.astype("<i2", copy=False).tobytes())
                lines.append(f"{rec} {offset} {len(x)}\n")
                offset += len(x)
        with open(tmp_index, "w", encoding="utf-8") as f:
            f.writelines(lines)
        index_path.unlink(missing_ok=True)  # last: atomic_paths renames the audio in, then the index
    if rounded:
        log.warning("%s: %d of %d recordings were not 16-bit PCM and were rounded to 16 bits in %s",
                    data_dir, rounded, len(wav_scp), audio_path)
    return index_path


@dataclass
class PackedAudio:
    """A dir's packed bank: ``samples`` (memory-mapped int16) and each recording's (offset, length)."""

    samples: np.ndarray
    recordings: dict[str, tuple[int, int]]

    @classmethod
    def load(cls, data_dir: Path, wav_scp: Mapping[str, str]) -> "PackedAudio | None":
        """The bank of ``data_dir`` (whose wav.scp is ``wav_scp``), or None when it has none; a
        stale or damaged one, or one that lacks a recording of wav.scp, is an error."""
        index_path, audio_path = data_dir / PACK_INDEX, data_dir / PACK_AUDIO
        if not index_path.exists():
            return None
        fix = f"re-pack it: utils/pack_audio.py {data_dir} (or delete {index_path} to read the wav files)"
        with open(index_path, encoding="utf-8") as f:
            head = f.readline().split()
        if len(head) != 2 or head[0] != _DIGEST_KEY:
            raise DataDirError(f"{index_path}:1: expected '{_DIGEST_KEY} <digest>'; {fix}")
        if head[1] != _wav_scp_digest(data_dir):
            raise DataDirError(f"{index_path} was packed from another {data_dir}/wav.scp; {fix}")
        recordings = {}
        with open(index_path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if lineno == 1 or not line.strip():
                    continue
                try:
                    rec, offset, length = line.split()
                    recordings[rec] = (int(offset), int(length))
                except ValueError:
                    raise DataDirError(f"{index_path}:{lineno}: expected '<rec> <offset> <samples>', got "
                                       f"'{line.strip()}'; {fix}") from None
        missing = [r for r in wav_scp if r not in recordings]
        if missing:
            raise DataDirError(f"{index_path} lacks recording '{missing[0]}' of wav.scp; {fix}")
        total = max((o + n for o, n in recordings.values()), default=0)
        size = audio_path.stat().st_size if audio_path.exists() else -1
        if size != 2 * total:
            raise DataDirError(f"{audio_path} holds {max(size, 0)} bytes but {index_path} needs {2 * total}; {fix}")
        return cls(np.memmap(audio_path, dtype="<i2", mode="r"), recordings)


@dataclass
class WindowBank:
    """Random-access windows of one MUSAN category: file entry, start and length in samples,
    and, when the dir is packed, where each window starts in the packed samples."""

    names: list[str]
    entries: list[str]
    starts: np.ndarray
    lengths: np.ndarray
    packed: np.ndarray | None = None
    pack_starts: np.ndarray | None = None

    @classmethod
    def load(cls, path: Path) -> "WindowBank":
        """From a data dir with wav.scp, and segments (``<win> <rec> <start-s> <end-s>``) or
        utt2dur; read through its packed bank when it has one."""
        wav_scp = read_wav_scp(path / "wav.scp")
        seg_path = path / "segments"
        names, recs, starts, lengths = [], [], [], []
        if seg_path.exists():
            for win, rest in read_table(seg_path, ncols=4).items():
                rec, t0, t1 = rest.split()
                if rec not in wav_scp:
                    raise DataDirError(f"{seg_path}: window '{win}' names recording '{rec}', which is not in "
                                       f"{path}/wav.scp (re-run the data preparation stage)")
                try:
                    s0, s1 = int(round(float(t0) * SAMPLE_RATE)), int(round(float(t1) * SAMPLE_RATE))
                except ValueError:
                    raise DataDirError(f"{seg_path}: window '{win}': times '{t0} {t1}' are not numbers") from None
                if s1 <= s0:
                    raise DataDirError(f"{seg_path}: window '{win}' ends ({t1}) before it starts ({t0})")
                names.append(win), recs.append(rec), starts.append(s0), lengths.append(s1 - s0)
        else:
            dur_path = path / "utt2dur"
            lens = num_samples(wav_scp, read_utt2dur(dur_path) if dur_path.exists() else None, str(path))
            for rec in sorted(wav_scp):
                names.append(rec), recs.append(rec), starts.append(0), lengths.append(lens[rec])
        if not names:
            raise DataDirError(f"{path}: no audio listed (re-run the data preparation stage)")
        bank = cls(names, [wav_scp[r] for r in recs], np.asarray(starts, dtype=np.int64),
                   np.asarray(lengths, dtype=np.int64))
        packed = PackedAudio.load(path, wav_scp)
        if packed is not None:
            offsets = np.asarray([packed.recordings[r][0] for r in recs], dtype=np.int64)
            rec_len = np.asarray([packed.recordings[r][1] for r in recs], dtype=np.int64)
            # segments times are rounded: a window ends at its recording's real end at the latest
            bank.lengths = np.minimum(bank.lengths, rec_len - bank.starts)
            empty = np.flatnonzero(bank.lengths <= 0)
            if len(empty):
                raise DataDirError(f"{seg_path}: window '{names[empty[0]]}' starts after the end of its recording "
                                   f"({rec_len[empty[0]]} samples); re-run the data preparation stage")
            bank.packed, bank.pack_starts = packed.samples, offsets + bank.starts
        return bank

    def __getstate__(self) -> dict:
        # a memory map travels to spawned DataLoader workers as its file name, not its contents
        state = dict(self.__dict__)
        if isinstance(self.packed, np.memmap):
            state["packed"] = ("memmap", self.packed.filename)
        return state

    def __setstate__(self, state: dict) -> None:
        if isinstance(state.get("packed"), tuple):
            state["packed"] = np.memmap(state["packed"][1], dtype="<i2", mode="r")
        self.__dict__.update(state)

    def __len__(self) -> int:
        return len(self.names)

    def read(self, i: int, offset: int, frames: int) -> np.ndarray:
        """``frames`` samples of window ``i`` from ``offset`` (wrap-padded when the window is shorter)."""
        if self.packed is None:
            return read_crop(self.entries[i], frames, offset, int(self.starts[i]), int(self.lengths[i]), self.names[i])
        start, n = int(self.pack_starts[i]), int(self.lengths[i])
        return pcm16_to_float(np.asarray(wrap_crop(self.packed[start:start + n], offset % n, frames)))


@dataclass
class RirBank:
    """Room impulse responses, L2-normalised, held in memory as one buffer (cheap to share with workers)."""

    names: list[str]
    data: np.ndarray
    bounds: np.ndarray  # (R+1,) start of each RIR in data

    @classmethod
    def load(cls, path: Path) -> "RirBank":
        """From a data dir's wav.scp: through its packed bank when it has one (one read for
        RIRS_NOISES' 60,000 responses), else file by file."""
        wav_scp = read_wav_scp(path / "wav.scp")
        packed = PackedAudio.load(path, wav_scp)
        names, parts = [], []
        for name in progress(sorted(wav_scp), desc="loading RIRs", quiet=packed is not None or len(wav_scp) < 1000):
            if packed is not None:
                offset, n = packed.recordings[name]
                h = pcm16_to_float(np.asarray(packed.samples[offset:offset + n]))
            else:
                h = read_audio(wav_scp[name], utt=name)
            norm = float(np.sqrt(np.sum(h.astype(np.float64) ** 2)))
            if not norm > 0:
                raise AudioError(f"{path}/wav.scp: RIR '{name}' ({wav_scp[name]}) is silent; remove it")
            names.append(name), parts.append((h / norm).astype(np.float32))
        if not names:
            raise DataDirError(f"{path}/wav.scp lists no RIRs (re-run the data preparation stage)")
        bounds = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)
        return cls(names, np.concatenate(parts), bounds)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.data[self.bounds[i]:self.bounds[i + 1]]


@dataclass
class AugmentSource:
    """The MUSAN windows and RIRs augmentation draws from, and the reading of what a draw names."""

    banks: dict[str, WindowBank]
    rirs: RirBank
    path: Path

    @classmethod
    def load(cls, aug_dir: Path) -> "AugmentSource":
        aug_dir = Path(aug_dir)
        missing = [str(aug_dir / d) for d in (*AUG_DIRS.values(), RIR_DIR) if not (aug_dir / d / "wav.scp").is_file()]
        if missing:
            raise SpkidError(f"augmentation needs {', '.join(missing)} (wav.scp missing): run the data "
                             f"preparation stage (./run.sh --stage 2 --stop-stage 2) or train with --augment=false")
        banks = {cat: WindowBank.load(aug_dir / d) for cat, d in AUG_DIRS.items()}
        if len(banks["speech"]) < 7:
            raise SpkidError(f"{aug_dir / AUG_DIRS['speech']} has {len(banks['speech'])} windows; babble mixes up "
                             f"to 7 distinct speech clips, so it needs at least 7")
        return cls(banks, RirBank.load(aug_dir / RIR_DIR), aug_dir)

    @property
    def window_lengths(self) -> dict[str, np.ndarray]:
        return {cat: bank.lengths for cat, bank in self.banks.items()}

    @property
    def window_base(self) -> dict[str, int]:
        """Global window number of each category's first window (categories in AUG_DIRS order)."""
        sizes = np.cumsum([0] + [len(self.banks[c]) for c in AUG_DIRS])
        return {cat: int(sizes[i]) for i, cat in enumerate(AUG_DIRS)}

    def draw(self, rng: np.random.Generator, frames: int) -> AugDraw:
        return draw_augmentation(rng, len(self.rirs), self.window_lengths, frames)

    def clips(self, draw: AugDraw, frames: int) -> np.ndarray:
        """(k, frames) float32: the additive clips the draw names (k = 0 for clean and reverb)."""
        if draw.category is None:
            return np.zeros((0, frames), dtype=np.float32)
        bank = self.banks[draw.category]
        return np.stack([bank.read(w, o, frames) for w, o in zip(draw.windows, draw.offsets)])

    def rir(self, draw: AugDraw) -> np.ndarray | None:
        return self.rirs[draw.rir] if draw.rir >= 0 else None

    @property
    def unpacked(self) -> list[str]:
        """The MUSAN categories read from their wav files (their dirs have no packed bank)."""
        return [c for c, b in self.banks.items() if b.packed is None]
