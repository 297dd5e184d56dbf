"""Small synthetic training and augmentation data dirs, for tests and benchmarks.

Not a corpus substitute (that is local/make_mini_corpus.py): just audio of the right shape so
the data pipeline can run anywhere. Speakers are harmonic tones with a speaker-specific pitch
plus noise; MUSAN-shaped noise/music/speech dirs carry 5-s windows with a 3-s hop in
``segments``; RIRs are exponentially decaying noise.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from spkid.data.audio import SAMPLE_RATE
from spkid.data.augment import pack_audio
from spkid.data.datadir import DataDir, utt2spk_to_spk2utt, write_table

WINDOW_S, HOP_S = 5.0, 3.0


def _voice(rng: np.random.Generator, f0: float, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f = f0 * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t))
    phase = 2 * np.pi * np.cumsum(f) / SAMPLE_RATE
    x = sum(np.sin(k * phase) / k for k in range(1, 6))
    env = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(1, 4) * t) ** 2
    return 0.2 * x * env + 0.01 * rng.standard_normal(len(t))


def _write(path: Path, x: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.clip(x, -1, 1).astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
    return str(path)


def make_train_dir(root: Path, num_speakers: int = 8, utts_per_speaker: int = 4,
                   seconds: tuple[float, float] = (1.0, 4.0), seed: int = 0, max_files: int = 0) -> DataDir:
    """A VoxCeleb-shaped training dir ``root/data/train`` (wav.scp utt2spk spk2utt utt2dur).

    ``max_files`` > 0 writes only that many audio files and lists them round-robin under all
    the utterance ids (cheap large dirs for throughput runs; the speakers are then not real)."""
    rng = np.random.default_rng(seed)
    wav_scp, utt2spk, utt2dur = {}, {}, {}
    files: list[tuple[str, float]] = []
    for s in range(num_speakers):
        spk = f"id{s:05d}"
        f0 = rng.uniform(90, 250)
        for u in range(utts_per_speaker):
            utt = f"{spk}/sess{u % 2}/{u:05d}"
            if max_files and len(files) >= max_files:
                path, dur = files[len(utt2spk) % max_files]
            else:
                x = _voice(rng, f0, rng.uniform(*seconds))
                path, dur = _write(root / "wav" / f"{utt}.wav", x), len(x) / SAMPLE_RATE
                files.append((path, dur))
            wav_scp[utt] = path
            utt2spk[utt] = spk
            utt2dur[utt] = dur
    d = DataDir(root / "data" / "train", wav_scp, utt2spk, utt2spk_to_spk2utt(utt2spk), utt2dur)
    d.write()
    return d


def make_noise_set(root: Path, utts: int, seconds: float | tuple[float, float], speakers: int = 2,
                   seed: int = 0) -> DataDir:
    """An evaluation-shaped dir ``root/data/set`` (wav.scp, utt2spk, spk2utt) of ``utts`` white-noise
    recordings, utterance i of speaker i mod ``speakers``; ``seconds`` fixed or drawn from a range."""
    rng = np.random.default_rng(seed)
    wav, utt2spk = {}, {}
    for i in range(utts):
        utt = f"id{i % speakers:05d}/s/{i:05d}"
        n = int(rng.integers(*(int(s * SAMPLE_RATE) for s in seconds))) if isinstance(seconds, tuple) \
            else int(seconds * SAMPLE_RATE)
        wav[utt], utt2spk[utt] = _write(root / "wav" / f"{i}.wav", 0.1 * rng.normal(size=n)), utt.split("/")[0]
    d = DataDir(root / "data" / "set", wav, utt2spk, {}, None)
    d.write()
    return d


def _musan_dir(root: Path, name: str, clips: list[np.ndarray], pack: bool) -> None:
    d = root / "data" / f"musan_{name}"
    wav_scp, utt2dur, segments = {}, {}, {}
    for i, x in enumerate(clips):
        rec = f"{name}-{i:04d}"
        wav_scp[rec] = _write(root / "musan" / name / f"{rec}.wav", x)
        dur = len(x) / SAMPLE_RATE
        utt2dur[rec] = f"{dur:.3f}"
        start = 0.0
        while True:
            end = min(start + WINDOW_S, dur)
            segments[f"{rec}-{int(start * 100):06d}"] = f"{rec} {start:.2f} {end:.2f}"
            if end >= dur:
                break
            start += HOP_S
    write_table(d / "wav.scp", wav_scp)
    write_table(d / "utt2dur", utt2dur)
    write_table(d / "segments", segments)
    if pack:
        pack_audio(d)


def make_aug_dirs(root: Path, num_clips: int = 4, clip_seconds: tuple[float, float] = (1.5, 9.0),
                  num_rirs: int = 6, seed: int = 1, pack: bool = True) -> Path:
    """MUSAN- and RIR-shaped dirs under ``root/data`` (returned): musan_{noise,music,speech} and
    rirs, packed as stage 2 packs them unless ``pack`` is false."""
    rng = np.random.default_rng(seed)
    sr = SAMPLE_RATE

    def seconds() -> float:
        return float(rng.uniform(*clip_seconds))

    noise = [rng.uniform(0.05, 0.3) * rng.standard_normal(int(seconds() * sr)) for _ in range(num_clips)]
    music = []
    for _ in range(num_clips):
        t = np.arange(int(seconds() * sr)) / sr
        notes = rng.uniform(200, 900, size=3)
        music.append(0.2 * sum(np.sin(2 * np.pi * f * t) for f in notes) / 3)
    speech = [_voice(rng, rng.uniform(90, 250), seconds()) for _ in range(max(num_clips, 7))]
    for name, clips in (("noise", noise), ("music", music), ("speech", speech)):
        _musan_dir(root, name, clips, pack)
    wav_scp, utt2spk = {}, {}
    for i in range(num_rirs):
        room = "smallroom" if i % 2 == 0 else "mediumroom"
        n = int(rng.uniform(0.05, 0.4) * sr)
        h = rng.standard_normal(n) * np.exp(-np.arange(n) / (0.2 * n))
        h[0] = 3.0
        rid = f"{room}-Room{i:03d}-00"
        wav_scp[rid] = _write(root / "rirs" / f"{rid}.wav", 0.5 * h / np.abs(h).max())
        utt2spk[rid] = room
    write_table(root / "data" / "rirs" / "wav.scp", wav_scp)
    write_table(root / "data" / "rirs" / "utt2spk", utt2spk)
    if pack:
        pack_audio(root / "data" / "rirs")
    return root / "data"
