"""MUSAN-shaped noise, music and babble sets for the mini corpus.

noise: numpy synthesis of coloured noise, fans, traffic, mains hum, beeps, clicks and rain.
music: random MIDI songs (chords, melody, bass, drums) rendered by fluidsynth with the
General MIDI soundfont TimGM6mb. speech: reserved TTS voices (never speakers) reading text.
"""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

from spkid.corpora.mini.channel import SR, normalize_peak, pink_noise, resample_speed, trim_silence
from spkid.corpora.mini.text import sentence
from spkid.corpora.mini.voices import BaseVoice, VoiceError, synthesize

SOUNDFONT = Path("/usr/share/sounds/sf2/TimGM6mb.sf2")
NOISE_KINDS = ("colored", "fan", "traffic", "hum", "beeps", "clicks", "rain")


def _band(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    sos = signal.butter(2, [lo, hi], "bandpass", fs=SR, output="sos")
    return signal.sosfilt(sos, rng.standard_normal(n)).astype(np.float32)


def synth_noise(rng: np.random.Generator, kind: str, seconds: float) -> np.ndarray:
    """One noise clip of ``kind`` (see NOISE_KINDS), peak-normalised."""
    n = int(seconds * SR)
    t = np.arange(n) / SR
    if kind == "colored":
        y = pink_noise(rng, n, float(rng.choice([-1.0, 0.0, 1.0, 2.0])))
    elif kind == "fan":
        y = _band(rng, n, rng.uniform(100, 400), rng.uniform(1500, 4000))
        y *= 1 + 0.3 * np.sin(2 * np.pi * rng.uniform(2, 12) * t)
        y += 0.3 * np.std(y) * np.sin(2 * np.pi * rng.uniform(80, 300) * t)
    elif kind == "traffic":
        y = pink_noise(rng, n, 2.0)
        env = np.zeros(n)
        for _ in range(int(rng.integers(2, 6))):
            c, w = rng.uniform(0, seconds), rng.uniform(1, 4)
            env += np.exp(-0.5 * ((t - c) / w) ** 2)
        y = y * (0.2 + env)
    elif kind == "hum":
        f0 = float(rng.choice([50.0, 60.0]))
        y = sum(rng.uniform(0.2, 1) / k * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6)) for k in range(1, 8))
        y = y + 0.05 * pink_noise(rng, n, 0.0)
    elif kind == "beeps":
        y = 0.02 * pink_noise(rng, n, 0.0)
        f = rng.uniform(400, 3000)
        period, dur = rng.uniform(0.3, 2.0), rng.uniform(0.05, 0.3)
        y = y + (np.mod(t, period) < dur) * np.sin(2 * np.pi * f * t)
    elif kind == "clicks":
        y = 0.02 * pink_noise(rng, n, 1.0)
        idx = rng.integers(0, n, int(rng.uniform(2, 15) * seconds))
        y[idx] += rng.uniform(-1, 1, len(idx))
        y = signal.lfilter([1.0], [1.0, -0.9], y)
    elif kind == "rain":
        y = _band(rng, n, 2000, 7000) * 0.3
        idx = rng.integers(0, n, int(rng.uniform(50, 300) * seconds))
        y[idx] += rng.uniform(-1, 1, len(idx))
    else:
        raise ValueError(f"unknown noise kind '{kind}'")
    return normalize_peak(np.asarray(y, dtype=np.float32), float(rng.uniform(-12, -3)))


# ---------------------------------------------------------------- music (MIDI + fluidsynth)

def _varlen(v: int) -> bytes:
    out = [v & 0x7F]
    v >>= 7
    while v:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    return bytes(reversed(out))


def midi_file(events: list[tuple[int, bytes]], tempo_bpm: float, tpq: int = 480) -> bytes:
    """A type-0 standard MIDI file from (tick, message) events."""
    body = b"\x00\xff\x51\x03" + struct.pack(">I", int(60_000_000 / tempo_bpm))[1:]
    last = 0
    for tick, msg in sorted(events, key=lambda e: (e[0], e[1][0] & 0xF0 != 0x80)):
        body += _varlen(tick - last) + msg
        last = tick
    body += b"\x00\xff\x2f\x00"
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, tpq) + b"MTrk" + struct.pack(">I", len(body)) + body


def random_song(rng: np.random.Generator, seconds: float, tpq: int = 480) -> tuple[bytes, float]:
    """A random pop-like song: chord pad, melody, bass and drums. Returns (MIDI bytes, tempo)."""
    tempo = float(rng.uniform(75, 140))
    beats = int(seconds * tempo / 60)
    root = int(rng.integers(48, 60))
    scale = [0, 2, 4, 5, 7, 9, 11] if rng.random() < 0.6 else [0, 2, 3, 5, 7, 8, 10]
    progression = [int(d) for d in rng.choice([0, 3, 4, 5, 1], size=4)]
    events: list[tuple[int, bytes]] = []
    programs = [int(rng.choice([0, 4, 16, 24, 48, 88])), int(rng.choice([0, 11, 40, 56, 65, 73, 80])),
                int(rng.integers(32, 40))]
    for ch, prog in enumerate(programs):
        events.append((0, bytes([0xC0 | ch, prog])))

    def note(ch: int, pitch: int, start: int, length: int, vel: int) -> None:
        events.append((start, bytes([0x90 | ch, pitch, vel])))
        events.append((start + length, bytes([0x80 | ch, pitch, 0])))

    for bar in range(beats // 4 + 1):
        degree = progression[bar % 4]
        t0 = bar * 4 * tpq
        chord = [root + scale[(degree + k) % 7] + 12 * ((degree + k) // 7) for k in (0, 2, 4)]
        for p in chord:
            note(0, p, t0, 4 * tpq - 10, 60)
        note(2, chord[0] - 12, t0, 2 * tpq - 10, 80)
        note(2, chord[0] - 12 + (7 if rng.random() < 0.5 else 0), t0 + 2 * tpq, 2 * tpq - 10, 75)
        pos = 0
        while pos < 4 * tpq:
            length = int(rng.choice([tpq // 2, tpq, tpq, 2 * tpq]))
            if rng.random() < 0.85:
                p = root + 12 + scale[int(rng.integers(7))]
                note(1, p, t0 + pos, min(length, 4 * tpq - pos) - 10, int(rng.integers(70, 100)))
            pos += length
        for b in range(4):
            note(9, 36 if b % 2 == 0 else 38, t0 + b * tpq, tpq // 4, 90)
            note(9, 42, t0 + b * tpq + tpq // 2, tpq // 4, 60)
    end = (beats // 4 + 1) * 4 * tpq
    return midi_file([(t, m) for t, m in events if t <= end], tempo, tpq), tempo


def render_song(rng: np.random.Generator, seconds: float, workdir: str) -> np.ndarray:
    """Render a random song with fluidsynth at 16 kHz, mono, cut to ``seconds``."""
    midi, _ = random_song(rng, seconds)
    mid, wav = os.path.join(workdir, "song.mid"), os.path.join(workdir, "song.wav")
    with open(mid, "wb") as f:
        f.write(midi)
    if not SOUNDFONT.is_file():
        raise VoiceError(f"soundfont {SOUNDFONT} not found: install the Debian package timgm6mb-soundfont "
                         f"(utils/setup_env.sh as root)")
    proc = subprocess.run(["fluidsynth", "-ni", "-q", "-R", "0", "-C", "0", "-g", "0.6", "-r", str(SR),
                           "-F", wav, str(SOUNDFONT), mid], capture_output=True, text=True)
    if proc.returncode != 0 or not os.path.isfile(wav):
        raise VoiceError(f"fluidsynth failed rendering {mid}: {proc.stderr.strip()[-300:]}")
    y, sr = sf.read(wav, dtype="float32", always_2d=True)
    y = y.mean(axis=1)[: int(seconds * SR)]
    return normalize_peak(y, float(rng.uniform(-6, -1)))


# ---------------------------------------------------------------- babble speech

def babble_clip(rng: np.random.Generator, voice: BaseVoice, seconds: float, workdir: str) -> np.ndarray:
    """``seconds`` of continuous reading by a reserved babble voice (never a speaker)."""
    pieces, total = [], 0
    alpha = float(rng.uniform(0.92, 1.1))
    while total < seconds * SR:
        text = sentence(rng, voice.lang, int(rng.integers(10, 25)))
        (x, sr), = synthesize(voice, [text], [int(rng.integers(30, 70))], [float(rng.uniform(0.9, 1.1))], workdir)
        x = trim_silence(resample_speed(x, sr, alpha))
        pieces += [x, np.zeros(int(rng.uniform(0.1, 0.5) * SR), np.float32)]
        total += len(x) + len(pieces[-1])
    return normalize_peak(np.concatenate(pieces)[: int(seconds * SR)], float(rng.uniform(-6, -1)))
