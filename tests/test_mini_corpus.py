"""The mini corpus generator: layout, formats, durations, determinism, disjointness, trials."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mini_corpus_fixture import TINY, tiny_corpus, tiny_options
from spkid.errors import SpkidError
from spkid.corpora.mini import channel as ch
from spkid.corpora.mini.corpus import MARKER, generate
from spkid.corpora.mini.noise import midi_file
from spkid.corpora.voxsrc import listed_file
from spkid.corpora.mini.voices import BABBLE_ACCENTS, SPEAKER_ACCENTS, VoiceError, babble_voices, catalogue, check_engines


def hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != MARKER}


def speakers(root: Path) -> dict[str, dict[str, str]]:
    lines = (root / "lists/speakers.tsv").read_text().splitlines()
    head = lines[0].split("\t")
    return {row[0]: dict(zip(head, row)) for row in (line.split("\t") for line in lines[1:])}


def trials(root: Path, name: str) -> list[tuple[str, str, str]]:
    return [tuple(line.split()) for line in (root / "lists" / name).read_text().splitlines()]


def test_layout():
    root = tiny_corpus()
    assert "SUBSTITUTE" in (root / MARKER).read_text()
    for sub in ("voxceleb2/wav", "voxceleb1/wav", "voxsrc2020_val/wav", "musan/noise", "musan/music",
                "musan/speech", "RIRS_NOISES/simulated_rirs/smallroom", "RIRS_NOISES/simulated_rirs/mediumroom"):
        assert (root / sub).is_dir(), sub
    for role, wav in (("train", "voxceleb2/wav"), ("test", "voxceleb1/wav"), ("val", "voxsrc2020_val/wav")):
        files = list((root / wav).rglob("*.wav"))
        n = {"train": TINY["train_speakers"], "test": TINY["test_speakers"], "val": TINY["val_speakers"]}[role]
        assert len(files) == n * TINY["utts_per_speaker"]
        # validation speakers in VoxSRC 2020's shapes: enrolment as VoxCeleb1, test sides as voxceleb1_cd
        shape = (r"(voxceleb1/id\d{5}/[A-Za-z0-9_-]{11}/\d{5}|voxceleb1_cd/id\d{5}/\d{6})\.wav" if role == "val"
                 else r"id\d{5}/[A-Za-z0-9_-]{11}/\d{5}\.wav")
        for p in files:
            assert re.fullmatch(shape, str(p.relative_to(root / wav))), p
    rirs = sorted((root / "RIRS_NOISES/simulated_rirs").rglob("*.wav"))
    assert len(rirs) == 2 * TINY["rooms"] * TINY["rirs_per_room"]
    for p in rirs:
        assert re.fullmatch(r"(small|medium)room/Room(\d{3})/Room\2-\d{5}\.wav",
                            str(p.relative_to(root / "RIRS_NOISES/simulated_rirs"))), p
    assert len(list((root / "musan/speech").rglob("*.wav"))) == TINY["speech_clips"]
    assert len(list((root / "musan/music").rglob("*.wav"))) == TINY["music_clips"]
    assert len(list((root / "musan/noise").rglob("*.wav"))) == TINY["noise_clips"]
    train_list = (root / "lists/train_list.txt").read_text().splitlines()
    assert len(train_list) == TINY["train_speakers"] * TINY["utts_per_speaker"]
    for line in train_list:
        spk, path = line.split()
        assert path.split("/")[0] == spk and (root / "voxceleb2/wav" / path).is_file()


def test_audio_format_and_durations():
    root = tiny_corpus()
    val_test_sides = {b for _, _, b in trials(root, "voxsrc2020_val.txt")}
    for p in root.rglob("*.wav"):
        info = sf.info(p)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16"), p
        x, _ = sf.read(p)
        assert np.isfinite(x).all() and np.abs(x).max() > 0.01, p
        rel = p.relative_to(root)
        if rel.parts[0] in ("voxceleb1", "voxceleb2"):
            assert 2.0 <= info.duration <= 8.0, (p, info.duration)
        elif rel.parts[0] == "voxsrc2020_val":
            short = "/".join(rel.parts[2:]) in val_test_sides
            assert (1.5 <= info.duration <= 4.0) if short else (2.0 <= info.duration <= 8.0), (p, info.duration)


def test_determinism_across_nj_and_seed():
    a, b = tiny_corpus(nj=2), tiny_corpus(nj=1)
    assert hashes(a) == hashes(b)
    other = tiny_corpus(nj=2, seed=4)
    diff = {k for k in hashes(a) if hashes(a)[k] != hashes(other).get(k)}
    assert any(k.startswith("voxceleb2/") for k in diff) and "lists/veri_test2.txt" in diff


def test_speakers_disjoint_and_babble_voices_reserved():
    root = tiny_corpus()
    spk = speakers(root)
    ids = {role: {s for s, r in spk.items() if r["role"] == role} for role in ("train", "test", "val")}
    dirs = {"train": "voxceleb2/wav", "test": "voxceleb1/wav", "val": "voxsrc2020_val/wav"}
    for role, d in dirs.items():
        folders = [root / d / "voxceleb1", root / d / "voxceleb1_cd"] if role == "val" else [root / d]
        assert {p.name for f in folders for p in f.iterdir()} == ids[role]
    assert not (ids["train"] & ids["test"]) and not (ids["train"] & ids["val"]) and not (ids["test"] & ids["val"])
    assert len({(r["engine"], r["voice"], r["alpha"]) for r in spk.values()}) == len(spk)
    speaker_voices = {v for group in catalogue(extra_voices=True).values() for v in group}
    assert not speaker_voices & set(babble_voices())
    assert not set(SPEAKER_ACCENTS) & set(BABBLE_ACCENTS)


@pytest.mark.parametrize("name,root_dir", [("veri_test2.txt", "voxceleb1/wav"), ("list_test_all2.txt", "voxceleb1/wav"),
                                           ("list_test_hard2.txt", "voxceleb1/wav"),
                                           ("voxsrc2020_val.txt", "voxsrc2020_val/wav")])
def test_trial_lists_valid(name, root_dir):
    root = tiny_corpus()
    rows = trials(root, name)
    spk = speakers(root)
    assert {lab for lab, _, _ in rows} == {"0", "1"}
    pairs = set()
    for lab, a, b in rows:
        assert (root / root_dir / a).is_file() and (root / root_dir / b).is_file()
        assert a != b and frozenset((a, b)) not in pairs
        pairs.add(frozenset((a, b)))
        sa, sb = listed_file(a).spk, listed_file(b).spk
        assert (lab == "1") == (sa == sb)
        if lab == "1" and name != "voxsrc2020_val.txt":
            assert a.split("/")[1] != b.split("/")[1], "targets pair different sessions"
        if name == "list_test_hard2.txt" and lab == "0":
            assert (spk[sa]["gender"], spk[sa]["language"]) == (spk[sb]["gender"], spk[sb]["language"])
    if name == "voxsrc2020_val.txt":  # the published shape: '0 voxceleb1/<spk>/<video>/<n>.wav voxceleb1_cd/<spk>/<n>.wav'
        assert all(a.startswith("voxceleb1/") and b.startswith("voxceleb1_cd/") for _, a, b in rows)
    if name == "veri_test2.txt":
        o = {u for _, a, b in rows for u in (a, b)}
        e = {u for _, a, b in trials(root, "list_test_all2.txt") for u in (a, b)}
        assert o < e and len(rows) < len(trials(root, "list_test_all2.txt"))


def test_refuses_foreign_directory(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(SpkidError, match="refusing to overwrite"):
        generate(tiny_options(tmp_path))
    assert (tmp_path / "precious.txt").is_file()


def test_option_checks(tmp_path):
    opts = tiny_options(tmp_path / "c")
    opts.utts_per_speaker = 3
    with pytest.raises(SpkidError, match="utts-per-speaker"):
        generate(opts)


@pytest.mark.skipif(shutil.which("mbrola") is not None, reason="mbrola is installed here")
def test_extra_voices_fail_clearly_without_mbrola():
    with pytest.raises(VoiceError, match="setup_env.sh --extra-voices"):
        check_engines(extra_voices=True)


@pytest.mark.skipif(shutil.which("mbrola") is None, reason="mbrola voices not installed (setup_env.sh --extra-voices)")
def test_extra_voices_add_mbrola_speakers(tmp_path):
    opts = tiny_options(tmp_path / "c")
    opts.extra_voices, opts.train_speakers = True, 16
    generate(opts)
    engines = {row["engine"] for row in speakers(tmp_path / "c").values()}
    assert "mbrola" in engines and len(engines) >= 2


def test_signal_helpers():
    rng = np.random.default_rng(0)
    x = np.concatenate([np.zeros(8000), 0.5 * np.sin(np.arange(16000) / 5), np.zeros(8000)]).astype(np.float32)
    y = ch.trim_silence(x)
    assert 16000 <= len(y) <= 16000 + 2 * 320
    assert len(ch.fit_length(x, 1000)) == 1000 and abs(ch.fit_length(x, 20000)[-1]) < 1e-6
    # alpha > 1 shortens: 22.05 kHz input played 1.1x faster at 16 kHz
    z = ch.resample_speed(np.zeros(22050, np.float32), 22050, 1.1)
    assert abs(len(z) - 16000 / 1.1) < 20
    # pink noise: power per octave roughly flat means 1/f power density; check the slope
    n = ch.pink_noise(rng, 2 ** 16, 1.0)
    p = np.abs(np.fft.rfft(n)) ** 2
    lo, hi = p[100:200].mean(), p[1000:2000].mean()
    assert 5 < lo / hi < 20
    y = ch.add_noise(np.ones(1000, np.float32), np.ones(1000, np.float32), 20.0)
    assert np.allclose(y, 1.1)


def test_midi_file_structure():
    data = midi_file([(0, bytes([0x90, 60, 100])), (480, bytes([0x80, 60, 0]))], tempo_bpm=120)
    assert data[:4] == b"MThd" and data[8:14] == bytes([0, 0, 0, 1, 1, 0xE0])
    track_len = int.from_bytes(data[18:22], "big")
    assert data[14:18] == b"MTrk" and len(data) == 22 + track_len and data.endswith(b"\xff\x2f\x00")
    assert bytes([0x83, 0x60, 0x80, 60, 0]) in data   # delta 480 as a MIDI variable-length number
