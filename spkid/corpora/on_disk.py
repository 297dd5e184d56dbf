"""Corpora already on disk, in the layouts their downloads left, linked into the corpus dir.

Nothing is copied: stage 1 links speaker folders (VoxCeleb) or whole trees (MUSAN, RIRS_NOISES)
into the corpus layout and goes on from there, converting only what is still m4a. A folder
that does not hold what it should is an error naming what was expected where.

    --vox1-dir    vox1_dev_wav and vox1_test_wav as extracted (``<dir>/wav/idNNNNN/<video>/<n>.wav``),
                  one or more, or a merged ``wav`` folder
    --vox2-dir    VoxCeleb2 dev: ``dev/aac/idNNNNN/<video>/<n>.m4a`` as extracted, the same with the
                  wav files converted in place beside the m4a, or a wav tree
    --musan-dir   ``musan`` with noise/, music/, speech/
    --rirs-dir    ``RIRS_NOISES`` with simulated_rirs/smallroom and mediumroom
    --lists-dir   a folder holding trial lists as published (veri_test2.txt, ...), copied into lists/
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from spkid.errors import SpkidError
from spkid.fileio import atomic_write

SPEAKER = re.compile(r"^id\d+$")


class OnDiskError(SpkidError):
    pass


def _speakers(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and SPEAKER.match(p.name)) if root.is_dir() else []


def first_file(root: Path, suffixes: tuple[str, ...]) -> Path | None:
    """The first file under ``root`` (links followed) whose name ends with one of ``suffixes``."""
    for dirpath, _dirs, files in os.walk(root, followlinks=True):
        for f in sorted(files):
            if f.endswith(suffixes):
                return Path(dirpath) / f
    return None


def has_file(root: Path, suffix: str) -> bool:
    return first_file(root, (suffix,)) is not None


def count_lines(path: Path) -> int:
    """Non-blank lines (a trial list's trials)."""
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def speaker_root(given: Path, option: str, candidates: tuple[str, ...], shape: str) -> Path:
    """The folder under ``given`` whose subfolders are the speakers (``idNNNNN``)."""
    if not given.is_dir():
        raise OnDiskError(f"{option} {given}: not a directory (expected {shape})")
    for rel in candidates:
        if _speakers(given / rel):
            return given / rel
    looked = ", ".join(str(given / rel) if rel else str(given) for rel in candidates)
    raise OnDiskError(f"{option} {given}: no speaker folders (idNNNNN) in {looked}; expected {shape}")


def link(target: Path, link_path: Path, what: str) -> None:
    """``link_path`` -> ``target`` (absolute); an existing link to the same place is kept, anything
    else there is an error (never replaced: it may be someone's data)."""
    target = target.resolve()
    if link_path.is_symlink() or link_path.exists():
        if link_path.resolve() == target:
            return
        raise OnDiskError(f"{link_path} already exists and is not {target} ({what}): remove it, or leave out the "
                          f"option that points at {target}")
    link_path.parent.mkdir(parents=True, exist_ok=True)
    link_path.symlink_to(target, target_is_directory=True)


def link_vox1(dirs: list[Path], corpus: Path) -> int:
    """Each speaker of each VoxCeleb1 copy linked as ``<corpus>/voxceleb1/wav/<spk>``; returns the count."""
    shape = "VoxCeleb1 as extracted: <dir>/wav/idNNNNN/<video>/<n>.wav (vox1_dev_wav, vox1_test_wav) or <dir>/idNNNNN/..."
    n = 0
    for d in dirs:
        root = speaker_root(d, "--vox1-dir", ("wav", ""), shape)
        spks = _speakers(root)
        sample = first_file(spks[0], (".wav", ".m4a"))
        if sample is None or sample.suffix != ".wav":
            raise OnDiskError(f"--vox1-dir {d}: {spks[0]} holds no .wav file" + (f" ({sample} is m4a)" if sample else "")
                              + f"; expected {shape}")
        for spk in spks:
            link(spk, corpus / "voxceleb1" / "wav" / spk.name, f"VoxCeleb1 speaker {spk.name} from --vox1-dir")
        n += len(spks)
    return n


@dataclass
class Vox2Plan:
    linked: int      # speakers whose wav files are there already (wav tree, or converted in place)
    to_convert: int  # speakers linked under voxceleb2/aac, whose m4a files stage 1 converts


def link_vox2(given: Path, corpus: Path) -> Vox2Plan:
    """VoxCeleb2 dev from a copy on disk. A speaker whose every m4a has its wav beside it (or that
    has only wav files) is linked into ``voxceleb2/wav``; any other into ``voxceleb2/aac``, from
    where stage 1 converts it into ``voxceleb2/wav`` (the copy itself is never written to)."""
    shape = ("VoxCeleb2 dev as extracted: <dir>/dev/aac/idNNNNN/<video>/<n>.m4a (wav files converted beside "
             "them count), or a wav tree <dir>/idNNNNN/<video>/<n>.wav")
    root = speaker_root(given, "--vox2-dir", ("dev/aac", "aac", "wav", ""), shape)
    plan = Vox2Plan(0, 0)
    for spk in _speakers(root):
        by_ext: dict[str, set[str]] = {".m4a": set(), ".wav": set()}
        for dirpath, _dirs, files in os.walk(spk, followlinks=True):
            rel = os.path.relpath(dirpath, spk)
            for f in files:
                stem, ext = os.path.splitext(os.path.join(rel, f))
                if ext in by_ext:
                    by_ext[ext].add(stem)
        m4a, wav = by_ext[".m4a"], by_ext[".wav"]
        if not m4a and not wav:
            raise OnDiskError(f"--vox2-dir {given}: {spk} holds neither .m4a nor .wav files; expected {shape}")
        if m4a <= wav:
            link(spk, corpus / "voxceleb2" / "wav" / spk.name, f"VoxCeleb2 speaker {spk.name} from --vox2-dir")
            plan.linked += 1
        else:
            link(spk, corpus / "voxceleb2" / "aac" / spk.name, f"VoxCeleb2 speaker {spk.name} from --vox2-dir")
            plan.to_convert += 1
    return plan


def link_tree(given: Path, corpus: Path, option: str, name: str, required: tuple[str, ...]) -> None:
    """``<corpus>/<name>`` -> ``given`` (or ``given/<name>``) when every ``required`` subfolder is there."""
    for cand in (given, given / name):
        if all((cand / r).is_dir() for r in required):
            link(cand, corpus / name, f"{name} from {option}")
            return
    absent = [str(given / r) for r in required if not (given / r).is_dir()]
    raise OnDiskError(f"{option} {given}: expected {name} as extracted, with {', '.join(required)} in it; "
                      f"{', '.join(absent)} not found (nor under {given / name})")


def link_musan(given: Path, corpus: Path) -> None:
    link_tree(given, corpus, "--musan-dir", "musan", ("noise", "music", "speech"))


def link_rirs(given: Path, corpus: Path) -> None:
    link_tree(given, corpus, "--rirs-dir", "RIRS_NOISES", ("simulated_rirs/smallroom", "simulated_rirs/mediumroom"))


def copy_lists(given: Path, corpus: Path, names: tuple[str, ...]) -> list[str]:
    """The published trial lists of ``names`` found in ``given``, copied into ``<corpus>/lists``
    (copies: a list is small, and stage 2 reads it as a regular file). Returns the names copied."""
    if not given.is_dir():
        raise OnDiskError(f"--lists-dir {given}: not a directory (expected a folder with {', '.join(names)})")
    found = [n for n in names if (given / n).is_file()]
    if not found:
        raise OnDiskError(f"--lists-dir {given}: none of {', '.join(names)} is there")
    for n in found:
        with atomic_write(corpus / "lists" / n, "wb") as out:
            out.write((given / n).read_bytes())
    return found
