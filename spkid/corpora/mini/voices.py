"""Voices of the mini corpus: the catalogue of base voices, speakers drawn from it, synthesis.

A speaker is a base voice (engine + voice) with a fixed speed factor alpha (resampling shifts
F0 and formants together, as speed perturbation does), a fixed engine pitch and rate. Base
voices are grouped by (gender, language) so hard trial lists can pair speakers of one group.
Babble voices (MUSAN-shaped speech) come from languages no speaker uses, so a babble talker
is never an enrolled speaker.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from spkid.errors import SpkidError

FESTIVAL_VOICE_DIR = Path("/usr/share/festival/voices/english")
MBROLA_DIRS = (Path("/usr/share/mbrola"), Path("/usr/lib/x86_64-linux-gnu/mbrola"), Path("/usr/local/share/mbrola"))

# espeak-ng language voices the speakers use: accent -> language tag.
SPEAKER_ACCENTS = {
    "en-us": "en", "en-gb": "en", "en-gb-scotland": "en", "en-gb-x-rp": "en", "en-029": "en",
    "en-us-nyc": "en", "en-gb-x-gbcwmd": "en", "de": "de", "fr-fr": "fr", "fr-be": "fr",
    "es": "es", "es-419": "es", "it": "it", "nl": "nl",
}
# Languages reserved for babble: no speaker uses them.
BABBLE_ACCENTS = {"pl": "pl", "sv": "sv", "pt": "pt", "pt-br": "pt", "ru": "ru"}
# espeak-ng variants that sound like a person (the robot, whisper and creaky ones are left out).
ESPEAK_VARIANTS = {
    "m": ("m1 m2 m3 m4 m5 m6 m7 m8 adam Andy benjamin boris caleb david ed edward gustave "
          "iven iven2 john Lee max Mike michel miguel norbert pablo paul pedro quincy rob robert "
          "sandro shelby travis victor zac antonio marcelo Marco Hugo Diogo Denis").split(),
    "f": "f1 f2 f3 f4 f5 Alicia Andrea Annie aunty belinda linda steph steph2 steph3 anika".split(),
}
FLITE_VOICES = {"awb": "m", "rms": "m", "slt": "f", "kal16": "m"}
FESTIVAL_VOICES = {"kal_diphone": "m", "ked_diphone": "m"}
# mbrola diphone voices (Debian contrib/non-free), driven by espeak-ng -v mb-<name>.
MBROLA_VOICES = {
    "us1": ("f", "en"), "us2": ("m", "en"), "us3": ("m", "en"), "en1": ("m", "en"),
    "de1": ("f", "de"), "de2": ("m", "de"), "fr1": ("m", "fr"), "fr4": ("f", "fr"),
    "es1": ("m", "es"), "it3": ("m", "it"), "nl2": ("m", "nl"),
}


class VoiceError(SpkidError):
    pass


@dataclass(frozen=True)
class BaseVoice:
    engine: str     # espeak | flite | festival | mbrola
    voice: str      # engine voice name (espeak: accent+variant)
    gender: str     # m | f
    lang: str       # language tag, e.g. en


@dataclass(frozen=True)
class Speaker:
    spk: str
    role: str       # train | test | val
    base: BaseVoice
    alpha: float    # speed factor: >1 raises F0 and formants
    pitch: int      # engine pitch (espeak 0-99; flite F0 mean Hz; festival unused)
    rate: float     # speaking-rate factor (1 = engine default)

    def tsv(self) -> str:
        b = self.base
        return f"{self.spk}\t{self.role}\t{b.engine}\t{b.voice}\t{b.gender}\t{b.lang}\t{self.alpha:.4f}\t{self.pitch}\t{self.rate:.3f}"


SPEAKER_TSV_HEADER = "speaker\trole\tengine\tvoice\tgender\tlanguage\talpha\tpitch\trate"


def mbrola_voice_path(name: str) -> Path | None:
    for d in MBROLA_DIRS:
        for p in (d / name / name, d / name):
            if p.is_file():
                return p
    return None


def check_engines(extra_voices: bool) -> None:
    """Fail with the package to install when an engine or voice the corpus needs is missing."""
    hint = "install it with utils/setup_env.sh (as root), which run.sh calls first"
    for exe, pkg in (("espeak-ng", "espeak-ng"), ("flite", "flite"), ("festival", "festival"),
                     ("fluidsynth", "fluidsynth")):
        if shutil.which(exe) is None:
            raise VoiceError(f"'{exe}' not found on PATH: the mini corpus needs the Debian package {pkg}; {hint}")
    for v, pkg in (("kal_diphone", "festvox-kallpc16k"), ("ked_diphone", "festvox-kdlpc16k")):
        if not (FESTIVAL_VOICE_DIR / v).is_dir():
            raise VoiceError(f"festival voice {FESTIVAL_VOICE_DIR / v} not found: install the Debian package {pkg}; {hint}")
    if extra_voices:
        missing = [v for v in MBROLA_VOICES if mbrola_voice_path(v) is None]
        if shutil.which("mbrola") is None or missing:
            what = "the mbrola program" if shutil.which("mbrola") is None else "mbrola voices " + " ".join(missing)
            raise VoiceError(
                f"--extra-voices true needs {what} (Debian contrib/non-free: mbrola "
                + " ".join(f"mbrola-{v}" for v in MBROLA_VOICES)
                + "); run utils/setup_env.sh --extra-voices as root, or use --extra-voices false")


def catalogue(extra_voices: bool) -> dict[tuple[str, str], list[BaseVoice]]:
    """Base voices the speakers may use, grouped by (gender, language)."""
    groups: dict[tuple[str, str], list[BaseVoice]] = {}

    def add(v: BaseVoice) -> None:
        groups.setdefault((v.gender, v.lang), []).append(v)

    for accent, lang in SPEAKER_ACCENTS.items():
        for gender, variants in ESPEAK_VARIANTS.items():
            for var in variants:
                add(BaseVoice("espeak", f"{accent}+{var}", gender, lang))
    for v, g in FLITE_VOICES.items():
        add(BaseVoice("flite", v, g, "en"))
    for v, g in FESTIVAL_VOICES.items():
        add(BaseVoice("festival", v, g, "en"))
    if extra_voices:
        for v, (g, lang) in MBROLA_VOICES.items():
            add(BaseVoice("mbrola", v, g, lang))
    return groups


def babble_voices() -> list[BaseVoice]:
    return [BaseVoice("espeak", f"{accent}+{var}", g, lang)
            for accent, lang in BABBLE_ACCENTS.items()
            for g, variants in ESPEAK_VARIANTS.items() for var in variants]


GROUP_WEIGHTS = {"en": 0.4, "de": 0.12, "fr": 0.12, "es": 0.12, "it": 0.12, "nl": 0.12}


def plan_speakers(rng: np.random.Generator, counts: dict[str, int], id_base: dict[str, int],
                  extra_voices: bool) -> list[Speaker]:
    """Draw speakers for each role. Speakers come in pairs sharing (gender, language) so every
    group of a role has at least two speakers (hard non-target trials need them). Non-espeak
    engines are drawn with a fixed share so each is represented; a base voice is reused only
    with a different alpha, pitch and rate."""
    groups = catalogue(extra_voices)
    keys = sorted(groups)
    langs = sorted(GROUP_WEIGHTS)
    used: dict[BaseVoice, int] = {}
    out: list[Speaker] = []
    for role in ("train", "test", "val"):
        n = counts[role]
        group_seq: list[tuple[str, str]] = []
        while len(group_seq) < n:
            lang = langs[int(rng.choice(len(langs), p=[GROUP_WEIGHTS[l] for l in langs]))]
            gender = "m" if rng.random() < 0.5 else "f"
            key = (gender, lang) if (gender, lang) in groups else ("m", lang)
            assert key in keys
            group_seq += [key, key] if n - len(group_seq) >= 2 else [key]
        for i, key in enumerate(group_seq):
            cands = groups[key]
            others = [v for v in cands if v.engine != "espeak"]
            share = 0.5 if extra_voices else 0.3
            pool = others if others and rng.random() < share else [v for v in cands if v.engine == "espeak"]
            least = min(used.get(v, 0) for v in pool)
            pool = [v for v in pool if used.get(v, 0) == least]
            base = pool[int(rng.integers(len(pool)))]
            used[base] = used.get(base, 0) + 1
            alpha = float(rng.uniform(0.88, 1.14))
            if base.engine == "flite":
                pitch = int(rng.uniform(85, 130) if base.gender == "m" else rng.uniform(150, 220))
            else:
                pitch = int(rng.integers(25, 75))
            rate = float(rng.uniform(0.85, 1.15))
            out.append(Speaker(f"id{id_base[role] + i:05d}", role, base, alpha, pitch, rate))
    return out


def _read_mono(path: str) -> tuple[np.ndarray, int]:
    x, sr = sf.read(path, dtype="float32", always_2d=True)
    return x.mean(axis=1), sr


def _run(cmd: list[str], what: str, stdin: str | None = None) -> None:
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
    if proc.returncode != 0:
        raise VoiceError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd[:4])} ...: {proc.stderr.strip()[-300:]}")


def synthesize(base: BaseVoice, texts: list[str], pitches: list[int], rates: list[float],
               workdir: str) -> list[tuple[np.ndarray, int]]:
    """Synthesize each text; returns (samples, sample rate) per text. Festival runs once for
    all texts (its start-up is slow); the other engines run once per text."""
    out = []
    if base.engine == "festival":
        script = [f"(voice_{base.voice})"]
        paths = []
        for i, (text, rate) in enumerate(zip(texts, rates)):
            p = os.path.join(workdir, f"fest{i}.wav")
            paths.append(p)
            script.append(f"(Parameter.set 'Duration_Stretch {1.0 / rate:.3f})")
            script.append(f'(utt.save.wave (SynthText "{text.replace(chr(34), "")}") "{p}" \'riff)')
        _run(["festival", "--pipe"], f"festival voice {base.voice}", stdin="\n".join(script) + "\n")
        return [_read_mono(p) for p in paths]
    for i, (text, pitch, rate) in enumerate(zip(texts, pitches, rates)):
        p = os.path.join(workdir, f"tts{i}.wav")
        if base.engine in ("espeak", "mbrola"):
            voice = f"mb-{base.voice}" if base.engine == "mbrola" else base.voice
            _run(["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(int(160 * rate)), "-w", p, text],
                 f"espeak-ng voice {voice}")
        elif base.engine == "flite":
            _run(["flite", "-voice", base.voice, "--setf", f"int_f0_target_mean={pitch}",
                  "--setf", f"duration_stretch={1.0 / rate:.3f}", "-t", text, "-o", p], f"flite voice {base.voice}")
        else:
            raise ValueError(f"unknown engine {base.engine}")
        out.append(_read_mono(p))
    return out


def scratch_dir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="spkid-tts-")
