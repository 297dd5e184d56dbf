"""Plan and generate the mini corpus (stage 1 with --corpus mini).

Everything random is drawn from ``numpy.random.default_rng([seed, stream, index])``: the plan
(speakers, trial lists) in the main process, and each generation task (one speaker, one noise
clip, one song, one babble clip, one room) from its own stream, so the corpus is identical
for a given seed and size whatever --nj is.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from spkid.console import progress
from spkid.config import option
from spkid.errors import SpkidError
from spkid.fileio import atomic_paths, atomic_write
from spkid.options import MAX_SEED
from spkid.corpora.mini import channel as ch
from spkid.corpora.mini.noise import NOISE_KINDS, babble_clip, render_song, synth_noise
from spkid.corpora.mini.rirs import room_rirs
from spkid.corpora.mini.text import sentence
from spkid.corpora.mini.trials import Utt, draw_trials, format_voxceleb
from spkid.corpora.mini.voices import (SPEAKER_TSV_HEADER, Speaker, babble_voices, check_engines, plan_speakers,
                               scratch_dir, synthesize)

SR = ch.SR
MARKER = "SUBSTITUTE_CORPUS.txt"
GENERATED = ("voxceleb2", "voxceleb1", "voxsrc2020_val", "musan", "RIRS_NOISES", "lists")
# Random streams (the second element of every seed sequence).
PLAN, SPEAKER, NOISE, MUSIC, BABBLE, RIR, TRIALS = range(7)
SESSION_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
WORDS_PER_SECOND = 2.6
MUSAN_SUBDIRS = {"noise": ("free-sound", "sound-bible"), "music": ("fma", "jamendo"),
                 "speech": ("librivox", "us-gov")}


@dataclass
class MiniCorpusOptions:
    out: str = option("", "corpus directory to write (required)")
    nj: int = option(2, "parallel generation processes", min=1)
    seed: int = option(1, "random seed: the same seed and sizes give the same corpus", min=0, max=MAX_SEED)
    extra_voices: bool = option(False, "add mbrola voices (Debian contrib/non-free; utils/setup_env.sh --extra-voices installs them)")
    train_speakers: int = option(40, "training speakers (voxceleb2/wav)")
    test_speakers: int = option(16, "test speakers (voxceleb1/wav; O/E/H lists)")
    val_speakers: int = option(12, "validation speakers (voxsrc2020_val/wav)")
    utts_per_speaker: int = option(30, "utterances per speaker")
    sessions: int = option(3, "sessions (channels) per speaker")
    min_dur: float = option(2.0, "shortest utterance, seconds")
    max_dur: float = option(8.0, "longest utterance, seconds")
    noise_clips: int = option(40, "MUSAN-shaped noise clips")
    music_clips: int = option(16, "MUSAN-shaped music clips")
    speech_clips: int = option(20, "MUSAN-shaped speech (babble) clips")
    rooms: int = option(20, "simulated rooms per room type (small, medium)")
    rirs_per_room: int = option(5, "impulse responses (microphones) per room")
    quiet: bool = option(False, "no progress bar")

    def check(self) -> None:
        if not self.out:
            raise SpkidError("--out DIR is required (the corpus directory to write)")
        if self.nj < 1:
            raise SpkidError(f"--nj must be at least 1, not {self.nj}")
        if self.train_speakers < 2 or self.test_speakers < 4 or self.val_speakers < 4:
            raise SpkidError("need at least 2 training, 4 test and 4 validation speakers "
                             "(--train-speakers, --test-speakers, --val-speakers)")
        if self.utts_per_speaker < 2 * self.sessions or self.sessions < 2:
            raise SpkidError(f"--utts-per-speaker ({self.utts_per_speaker}) must be at least twice --sessions "
                             f"({self.sessions}), and --sessions at least 2")
        if not 1.0 <= self.min_dur < self.max_dur:
            raise SpkidError(f"need 1 <= --min-dur < --max-dur, got {self.min_dur} and {self.max_dur}")


def wav_root(role: str) -> str:
    return {"train": "voxceleb2/wav", "test": "voxceleb1/wav", "val": "voxsrc2020_val/wav"}[role]


def write_wav(path: Path, x: np.ndarray) -> None:
    """16-bit mono 16 kHz, written under a temporary name and renamed."""
    with atomic_paths(path, durable=False) as (tmp,):  # thousands of files: no fsync each
        sf.write(tmp, ch.to_pcm16(x), SR, subtype="PCM_16", format="WAV")


# ---------------------------------------------------------------- speakers

def _session_ids(rng: np.random.Generator, n: int) -> list[str]:
    ids: list[str] = []
    while len(ids) < n:
        s = "".join(SESSION_CHARS[i] for i in rng.integers(len(SESSION_CHARS), size=11))
        if s not in ids:
            ids.append(s)
    return ids


def _synth_utterances(rng: np.random.Generator, spk: Speaker, lengths: list[tuple[float, float]],
                      workdir: str) -> list[np.ndarray]:
    """Speech for each (min, max) seconds: a fresh sentence per utterance with small jitter of
    pitch, rate and alpha, silence-trimmed; re-synthesised with more words when too short."""
    n = len(lengths)
    words = [max(3, int(rng.uniform(lo + 0.3, hi) * WORDS_PER_SECOND * spk.rate)) for lo, hi in lengths]
    out: list[np.ndarray | None] = [None] * n
    pending = list(range(n))
    for attempt in range(5):
        if not pending:
            break
        texts = [sentence(rng, spk.base.lang, words[i]) for i in pending]
        pitches = [int(np.clip(spk.pitch + rng.integers(-4, 5), 0, 99)) if spk.base.engine != "flite"
                   else int(spk.pitch * rng.uniform(0.95, 1.05)) for _ in pending]
        rates = [spk.rate * float(rng.uniform(0.93, 1.07)) for _ in pending]
        alphas = [spk.alpha * float(rng.uniform(0.985, 1.015)) for _ in pending]
        audio = synthesize(spk.base, texts, pitches, rates, workdir)
        still = []
        for i, (x, sr), alpha in zip(pending, audio, alphas):
            y = ch.trim_silence(ch.resample_speed(x, sr, alpha))
            if len(y) < lengths[i][0] * SR and attempt < 4:
                words[i] = int(words[i] * 1.6) + 2
                still.append(i)
            else:
                out[i] = y
        pending = still
    return [y for y in out if y is not None]


def _pad(rng: np.random.Generator, x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Leading and trailing silence (the channel's noise floor fills it), then cut to ``hi`` s."""
    pad = [np.zeros(int(rng.uniform(0.05, 0.35) * SR), np.float32) for _ in range(2)]
    y = np.concatenate([pad[0], x, pad[1]])
    if len(y) < lo * SR:
        y = np.concatenate([y, np.zeros(int(lo * SR) - len(y) + 1, np.float32)])
    return ch.fit_length(y, int(hi * SR))


def _degrade(rng: np.random.Generator, x: np.ndarray, workdir: str) -> np.ndarray:
    """Validation-side domain shift: a held-out room and a held-out noise, never in the
    augmentation sets (their streams differ from the musan/RIRS_NOISES ones)."""
    room = str(rng.choice(["smallroom", "mediumroom", "largeroom"]))
    h = room_rirs(rng, room, 1)[0]
    y = np.convolve(x, h / (np.linalg.norm(h) + 1e-9))[: len(x)].astype(np.float32)
    noise = synth_noise(rng, str(rng.choice(NOISE_KINDS)), len(y) / SR + 0.01)[: len(y)]
    return ch.add_noise(y, noise, float(rng.uniform(0, 15)))


def speaker_task(out: str, seed: int, index: int, spk: Speaker, opts: MiniCorpusOptions) -> list[dict]:
    """All utterances of one speaker; returns one record per utterance."""
    rng = np.random.default_rng([seed, SPEAKER, index])
    n = opts.utts_per_speaker
    sess_ids = _session_ids(rng, opts.sessions)
    channels = [ch.Channel.random(rng) for _ in sess_ids]
    sess_of = np.sort(np.concatenate([np.arange(opts.sessions), rng.integers(opts.sessions, size=n - opts.sessions)]))
    # Validation speakers: the first half of each session enrols at full length; the rest are
    # short, reverberant and noisy test sides (VoxSRC 2020's domain shift).
    kinds = ["normal"] * n
    if spk.role == "val":
        kinds = ["enroll" if k % 2 == 0 else "test" for k in range(n)]
    lengths = [(opts.min_dur, opts.max_dur) if k != "test" else (1.5, 4.0) for k in kinds]
    records = []
    with scratch_dir() as workdir:
        speech = _synth_utterances(rng, spk, lengths, workdir)
        counters = [0] * opts.sessions
        tests = 0
        for k, x in enumerate(speech):
            s = int(sess_of[k])
            counters[s] += 1
            lo, hi = lengths[k]
            y = _pad(rng, x, lo, hi)
            if kinds[k] == "test":
                y = _degrade(rng, y, workdir)
            y = channels[s].apply(y, rng)
            rel = f"{spk.spk}/{sess_ids[s]}/{counters[s]:05d}.wav"
            if kinds[k] == "test":  # the shapes of VoxSRC 2020's list (see spkid.corpora.voxsrc)
                tests += 1
                rel = f"voxceleb1_cd/{spk.spk}/{tests:06d}.wav"
            elif kinds[k] == "enroll":
                rel = f"voxceleb1/{rel}"
            write_wav(Path(out) / wav_root(spk.role) / rel, y)
            records.append({"path": rel, "spk": spk.spk, "session": sess_ids[s], "kind": kinds[k],
                            "dur": len(y) / SR, "role": spk.role})
    return records


# ---------------------------------------------------------------- augmentation sets

def musan_path(kind: str, index: int, total: int) -> str:
    """MUSAN's layout: <kind>/<source>/<kind>-<source>-NNNN.wav, clips split over two sources."""
    sub = MUSAN_SUBDIRS[kind][0 if index < (total + 1) // 2 else 1]
    return f"musan/{kind}/{sub}/{kind}-{sub}-{index:04d}.wav"


def noise_task(out: str, seed: int, index: int, total: int) -> list[dict]:
    rng = np.random.default_rng([seed, NOISE, index])
    kind = NOISE_KINDS[index % len(NOISE_KINDS)]
    rel = musan_path("noise", index, total)
    write_wav(Path(out) / rel, synth_noise(rng, kind, float(rng.uniform(5, 20))))
    return [{"path": rel}]


def music_task(out: str, seed: int, index: int, total: int) -> list[dict]:
    rng = np.random.default_rng([seed, MUSIC, index])
    rel = musan_path("music", index, total)
    with scratch_dir() as workdir:
        write_wav(Path(out) / rel, render_song(rng, float(rng.uniform(15, 30)), workdir))
    return [{"path": rel}]


def babble_task(out: str, seed: int, index: int, total: int) -> list[dict]:
    rng = np.random.default_rng([seed, BABBLE, index])
    voices = babble_voices()
    voice = voices[int(rng.integers(len(voices)))]
    rel = musan_path("speech", index, total)
    with scratch_dir() as workdir:
        write_wav(Path(out) / rel, babble_clip(rng, voice, float(rng.uniform(10, 25)), workdir))
    return [{"path": rel, "voice": voice.voice}]


def rir_task(out: str, seed: int, index: int, room_type: str, n_mics: int) -> list[dict]:
    rng = np.random.default_rng([seed, RIR, index, 0 if room_type == "smallroom" else 1])
    room = f"Room{index + 1:03d}"
    recs = []
    for m, h in enumerate(room_rirs(rng, room_type, n_mics), 1):
        rel = f"RIRS_NOISES/simulated_rirs/{room_type}/{room}/{room}-{m:05d}.wav"
        write_wav(Path(out) / rel, h)
        recs.append({"path": rel, "room_type": room_type, "room": room, "mic": m})
    return recs


def _run_task(task: tuple) -> list[dict]:
    fn, args = task
    return fn(*args)


# ---------------------------------------------------------------- lists

def write_lists(out: Path, seed: int, speakers: list[Speaker], records: list[dict], rirs: list[dict]) -> dict[str, int]:
    """train_list.txt, the four trial lists, speakers.tsv and RIRS_NOISES' rir_list."""
    lists = out / "lists"
    records = sorted(records, key=lambda r: (r["role"], r["path"]))   # task completion order varies with --nj
    spk_by_id = {s.spk: s for s in speakers}
    rng = np.random.default_rng([seed, TRIALS])

    def utt(r: dict) -> Utt:
        b = spk_by_id[r["spk"]].base
        return Utt(r["path"], r["spk"], r["session"], (b.gender, b.lang))

    train = sorted(r["path"] for r in records if r["role"] == "train")
    with atomic_write(lists / "train_list.txt") as f:
        f.writelines(f"{p.split('/')[0]} {p}\n" for p in train)
    test = sorted((utt(r) for r in records if r["role"] == "test"), key=lambda u: u.path)
    # O-like: a random half of each test speaker's utterances, as Vox1-O covers a subset of
    # VoxCeleb1; E-like and H-like draw on all of them.
    o_set = [u for u in test if rng.random() < 0.5]
    counts = {}
    val = [utt(r) for r in records if r["role"] == "val"]
    val_kind = {r["path"]: r["kind"] for r in records if r["role"] == "val"}
    specs = {
        "veri_test2.txt": (o_set, o_set, 3, False),
        "list_test_all2.txt": (test, test, 6, False),
        "list_test_hard2.txt": (test, test, 6, True),
        "voxsrc2020_val.txt": ([u for u in val if val_kind[u.path] == "enroll"],
                               [u for u in val if val_kind[u.path] == "test"], 4, False),
    }
    for name, (enroll, tst, per_side, hard) in specs.items():
        rows = draw_trials(rng, enroll, tst, per_side, same_group_nontargets=hard)
        with atomic_write(lists / name) as f:
            f.write(format_voxceleb(rows))
        counts[name] = len(rows)
    with atomic_write(lists / "speakers.tsv") as f:
        f.write(SPEAKER_TSV_HEADER + "\n")
        f.writelines(s.tsv() + "\n" for s in speakers)
    for room_type in ("smallroom", "mediumroom"):
        with atomic_write(out / "RIRS_NOISES/simulated_rirs" / room_type / "rir_list") as f:
            for r in sorted((r for r in rirs if r["room_type"] == room_type), key=lambda r: r["path"]):
                f.write(f"--rir-id {room_type}-{r['room']}-{r['mic']:05d} --room-id {room_type}-{r['room']} "
                        f"{r['path']}\n")
    return counts


def _prepare_out(out: Path) -> None:
    """Start from an empty directory; only a previous mini corpus (its marker file) is replaced."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise SpkidError(f"{out} exists, is not empty and holds no {MARKER}: refusing to overwrite it "
                             f"(choose another --out, or remove it yourself)")
        for name in GENERATED:
            shutil.rmtree(out / name, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            (out / ".done").unlink()
    out.mkdir(parents=True, exist_ok=True)


def generate(opts: MiniCorpusOptions) -> dict:
    """Write the whole mini corpus under ``opts.out``; returns a summary dict."""
    opts.check()
    check_engines(opts.extra_voices)
    t0 = time.time()
    out = Path(opts.out)
    _prepare_out(out)
    with atomic_write(out / MARKER) as f:
        f.write("SUBSTITUTE CORPUS generated by local/make_mini_corpus.py (spkid). It is NOT VoxCeleb,\n"
                "MUSAN or RIRS_NOISES: text-to-speech speakers, synthetic noise and music, simulated\n"
                "rooms. Error rates measured on it say nothing about VoxCeleb.\n"
                f"options: {opts}\n")
    rng = np.random.default_rng([opts.seed, PLAN])
    speakers = plan_speakers(rng, {"train": opts.train_speakers, "test": opts.test_speakers, "val": opts.val_speakers},
                             {"train": 1, "test": 10001, "val": 20001}, opts.extra_voices)
    tasks: list[tuple] = [(speaker_task, (str(out), opts.seed, i, s, opts)) for i, s in enumerate(speakers)]
    tasks += [(music_task, (str(out), opts.seed, i, opts.music_clips)) for i in range(opts.music_clips)]
    tasks += [(babble_task, (str(out), opts.seed, i, opts.speech_clips)) for i in range(opts.speech_clips)]
    tasks += [(rir_task, (str(out), opts.seed, i, t, opts.rirs_per_room))
              for t in ("smallroom", "mediumroom") for i in range(opts.rooms)]
    tasks += [(noise_task, (str(out), opts.seed, i, opts.noise_clips)) for i in range(opts.noise_clips)]
    results: list[dict] = []
    bar = progress(total=len(tasks), desc="mini corpus", unit="task", quiet=opts.quiet)
    if opts.nj == 1:
        for t in tasks:
            results += _run_task(t)
            bar.update()
    else:
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(opts.nj) as pool:
            for recs in pool.imap_unordered(_run_task, tasks):
                results += recs
                bar.update()
    bar.close()
    utts = [r for r in results if "spk" in r]
    rirs = [r for r in results if "room_type" in r]
    counts = write_lists(out, opts.seed, speakers, utts, rirs)
    size_mb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
    summary = {"speakers": len(speakers), "utterances": len(utts), "trials": counts, "rirs": len(rirs),
               "seconds": time.time() - t0, "megabytes": size_mb,
               "hours": sum(r["dur"] for r in utts) / 3600}
    return summary
