"""The VoxSRC trial lists as the challenge publishes them, and where their audio is.

The VoxSRC 2020 validation list pairs a VoxCeleb1 file with one of the challenge's own::

    0 voxceleb1/id10955/fM25hh5Dd-E/00003.wav voxceleb1_cd/id10545/000912.wav

Its paths are relative to one audio root, ``<corpus>/voxsrc2020_val/wav``, which stage 1 fills:
``voxceleb1`` there is a link to the corpus' own VoxCeleb1 (``<corpus>/voxceleb1/wav``) and
``voxceleb1_cd/<spk>/<n>.wav`` comes out of the challenge's ``voxceleb1_cd.zip``. The same
rules read the plain VoxCeleb shape ``<spk>/<video>/<n>.wav`` and anonymous file names.

Utterance ids keep Kaldi's rule that a speaker id is a prefix of its utterances' ids: the
speaker is the ``idNNNNN`` part of the path, moved to the front (``voxceleb1_cd/id10545/000912``
-> ``id10545/voxceleb1_cd/000912``); a ``voxceleb1/...`` path gets the id the same file has in
``data/vox1`` (``id10955/fM25hh5Dd-E/00003``). A path without a speaker part is its own speaker.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from spkid.corpora.on_disk import SPEAKER
from spkid.data.datadir import read_trials, utt_id_from_path
from spkid.errors import SpkidError

# Lists' top folders that name a corpus of the corpus dir: linked into the VoxSRC audio root.
CORPUS_FOLDERS = {"voxceleb1": "voxceleb1/wav", "voxceleb2": "voxceleb2/wav"}


@dataclass(frozen=True)
class ListedFile:
    path: str   # as in the list, relative to the audio root, with its extension
    utt: str    # utterance id
    spk: str    # speaker id

    @property
    def corpus_folder(self) -> str | None:
        """``voxceleb1`` for ``voxceleb1/...``: a file that comes from the corpus dir's own copy."""
        top = self.path.split("/", 1)[0]
        return top if top in CORPUS_FOLDERS and "/" in self.path else None


def listed_file(path: str) -> ListedFile:
    """Utterance and speaker id of one path of a VoxSRC (or VoxCeleb) trial list."""
    stem = utt_id_from_path(path)
    parts = stem.split("/")
    k = next((i for i, p in enumerate(parts) if SPEAKER.match(p)), None)
    if k is None:
        return ListedFile(path, stem, stem)
    if parts[0] in CORPUS_FOLDERS and k == 1:
        return ListedFile(path, "/".join(parts[1:]), parts[1])
    return ListedFile(path, "/".join([parts[k]] + parts[:k] + parts[k + 1:]), parts[k])


def read_listed_files(list_path: Path) -> dict[str, ListedFile]:
    """Every path of a trial list (VoxCeleb's ``1|0 a.wav b.wav`` form) -> its :class:`ListedFile`."""
    paths: dict[str, ListedFile] = {}
    with open(list_path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 3 or fields[0] not in ("0", "1"):
                raise SpkidError(f"{list_path}:{lineno}: expected '1|0 <path> <path>' as the challenge publishes "
                                 f"its lists, got '{line.strip()}'")
            for p in fields[1:]:
                if p not in paths:
                    paths[p] = listed_file(p)
    by_utt: dict[str, str] = {}
    for p, lf in paths.items():
        if by_utt.setdefault(lf.utt, p) != p:
            raise SpkidError(f"{list_path}: '{by_utt[lf.utt]}' and '{p}' map to one utterance id '{lf.utt}'")
    return paths


def link_corpus_folders(files: Iterable[ListedFile], corpus: Path, audio_root: Path) -> None:
    """Link ``<audio_root>/voxceleb1`` to the corpus' VoxCeleb1 (etc.) for the folders the list
    uses and the corpus dir has (a missing one shows as absent files, named by :func:`describe_absent`)."""
    for folder in sorted({f.corpus_folder for f in files} - {None}):
        target, link = corpus / CORPUS_FOLDERS[folder], audio_root / folder
        if link.is_symlink() or link.exists() or not target.is_dir():
            continue
        audio_root.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(target.resolve(), audio_root.resolve()), target_is_directory=True)


@dataclass(frozen=True)
class AudioFolder:
    name: str       # the list's top folder (or file), linked as <audio root>/<name>
    source: Path    # where it is in the folder the user gave


def audio_folders(files: list[ListedFile], given: Path) -> list[AudioFolder]:
    """The challenge's audio from a folder: ``given`` holds the list's paths (``given/voxceleb1_cd/...``)
    or is their top folder itself (``given/<spk>/<n>.wav`` for ``voxceleb1_cd/<spk>/<n>.wav``)."""
    if not files:
        return []
    tops = sorted({f.path.split("/", 1)[0] for f in files})
    sample = files[0].path
    if (given / sample).is_file():
        return [AudioFolder(top, given / top) for top in tops]
    if len(tops) == 1 and "/" in sample and (given / sample.split("/", 1)[1]).is_file():
        return [AudioFolder(tops[0], given)]
    raise SpkidError(f"{given}: the list's file {sample} is neither at {given / sample} nor, taking {given} as its "
                     f"folder {tops[0]}, at {given / sample.split('/', 1)[-1]}: is it the audio of this list?")


def archive_selector(files: Iterable[ListedFile]):
    """A ``select`` for :func:`spkid.corpora.archives.extract`: the listed path an archive member
    is, found by its tail. Members may sit below a folder of the archive, and the list's top
    folder (``voxceleb1_cd``) may be missing from the archive, as when it is the archive's name."""
    wanted: dict[str, str] = {}
    for f in files:
        if f.corpus_folder is None:
            wanted.setdefault(f.path, f.path)
            if "/" in f.path:
                wanted.setdefault(f.path.split("/", 1)[1], f.path)

    def select(member: str) -> str | None:
        parts = member.strip("/").split("/")
        for i in range(len(parts)):
            hit = wanted.get("/".join(parts[i:]))
            if hit is not None:
                return hit
        return None

    return select


def absent_files(files: Iterable[ListedFile], audio_root: Path) -> list[ListedFile]:
    return [f for f in files if not (audio_root / f.path).is_file()]


def describe_absent(absent: list[ListedFile], total: int, list_path: Path, audio_root: Path, corpus: Path,
                    option: str) -> str:
    """The error for listed files without audio: how many, where they were looked for, what to do."""
    own = [f for f in absent if f.corpus_folder]
    other = [f for f in absent if not f.corpus_folder]
    lines = [f"{len(absent)} of the {total} files of {list_path} have no audio under {audio_root}:"]
    if own:
        folder = own[0].corpus_folder
        lines.append(f"  {len(own)} are {folder} files (e.g. {own[0].path}), read from {corpus / CORPUS_FOLDERS[folder]}"
                     f" (linked as {audio_root / folder}): put {folder} there first (components vox1/vox2, or "
                     f"--vox1-dir/--vox2-dir for a copy on disk)")
    if other:
        lines.append(f"  {len(other)} come from the challenge's audio (e.g. {other[0].path}, expected at "
                     f"{audio_root / other[0].path}): check {option} (the archive or directory the list goes with)")
    return "\n".join(lines)


def voxsrc_trials(list_path: Path, audio_root: Path):
    """Stage 2's view of a VoxSRC list: (trials with utterance ids, utt -> wav path, utt -> spk)."""
    files = {lf.utt: lf for lf in read_listed_files(list_path).values()}
    stems = {utt_id_from_path(lf.path): lf.utt for lf in files.values()}
    t = read_trials(list_path)
    t.enroll = [stems[u] for u in t.enroll]
    t.test = [stems[u] for u in t.test]
    wav_scp = {u: str(audio_root / lf.path) for u, lf in files.items()}
    return t, wav_scp, {u: lf.spk for u, lf in files.items()}
