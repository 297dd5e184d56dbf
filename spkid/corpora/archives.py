"""Split archives joined and checked, zip and tar archives extracted selectively and resumably.

The md5 bookkeeping is :mod:`spkid.corpora.download`'s: a concatenation is verified and gets its
``.md5`` sidecar like a download, so a re-run does not hash it again.
"""

from __future__ import annotations

import os
import re
import shutil
import tarfile
import zipfile
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Sequence

from spkid import console
from spkid.corpora.download import CHUNK, DownloadError, check_md5, mark_verified, verify_existing
from spkid.fileio import atomic_paths, leftover_tmp_paths


def free_space_check(directory: Path, need: int, what: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(directory).free
    if free < need:
        raise DownloadError(f"{what} needs {need / 1e9:.1f} GB in {directory} but only {free / 1e9:.1f} GB "
                            f"are free: free some space (or use another --download-dir) and run again")


def concatenate(parts: Sequence[Path], dest: Path, md5: str | None, progress: bool = True) -> Path:
    """``cat parts > dest`` into a temporary file, check the md5 of the whole, rename it onto ``dest``."""
    if verify_existing(dest, md5, progress):
        return dest
    missing = [p for p in parts if not p.is_file()]
    if missing:
        raise DownloadError(f"cannot build {dest.name}: part {missing[0]} is missing; run the download again")
    for leftover in leftover_tmp_paths(dest):  # of a killed concatenation: as large as the archive
        leftover.unlink()
    free_space_check(dest.parent, sum(p.stat().st_size for p in parts), f"concatenating {dest.name}")
    names = f"{parts[0].name} .. {parts[-1].name}" if len(parts) > 1 else parts[0].name
    with atomic_paths(dest) as (tmp,):  # durable: its .md5 sidecar is to say it is whole
        with open(tmp, "wb") as out, console.progress(total=sum(p.stat().st_size for p in parts), unit="B",
                                                      unit_scale=True, desc=f"cat {dest.name}", quiet=not progress,
                                                      leave=False) as bar:
            for p in parts:
                with open(p, "rb") as f:
                    for block in iter(lambda: f.read(CHUNK), b""):
                        out.write(block)
                        bar.update(len(block))
        got = check_md5(tmp, md5, f"concatenated from {names}", progress,
                        "Each part matched its own md5, so the parts list or the md5 table is at fault: check "
                        "--md5-list, delete the .bad file and run again (the parts are kept).", final=dest)
    mark_verified(dest, got)
    return dest


def _safe_relpath(rel: str, archive: Path, member: str) -> Path:
    p = Path(rel)
    if p.is_absolute() or ".." in p.parts:
        raise DownloadError(f"{archive}: member '{member}' would be written outside the target directory; "
                            f"the archive is not the expected one (delete it and download again)")
    return p


def _write_error(e: OSError, target: Path, archive: Path, dest_root: Path) -> OSError | DownloadError:
    """The error to raise for ``e`` while writing ``target``: ``e`` itself for a read error of
    the archive (no errno: :func:`extract` blames the archive), else one that blames the disk."""
    if e.filename is None and e.errno is None:
        return e
    # the archive is fine (its md5 was checked): the disk or permissions are not
    return DownloadError(f"cannot write {target} while extracting {archive}: {e.strerror or e}; free space / fix "
                         f"permissions under {dest_root} and run again (extraction resumes; the archive is kept)")


def _write_member(src: BinaryIO, target: Path, archive: Path, dest_root: Path) -> None:
    with atomic_paths(target, durable=False) as (tmp,):  # a million members: no fsync each
        try:
            with open(tmp, "wb") as out:
                shutil.copyfileobj(src, out, CHUNK)
        except OSError as e:  # here, before atomic_paths names the file without the archive
            raise _write_error(e, target, archive, dest_root) from None


def _members(archive: Path) -> Iterator[tuple[str, int, Callable[[], BinaryIO]]]:
    """(name, size, open) of each regular file of a zip or tar archive, in archive order."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if not info.is_dir():
                    yield info.filename, info.file_size, lambda info=info: zf.open(info)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive, "r:*") as tf:
            for member in tf:
                if member.isfile():
                    yield member.name, member.size, lambda member=member: tf.extractfile(member)
    else:
        raise DownloadError(f"{archive} is neither a zip nor a tar archive: delete it and download it again")


def extract(archive: str | os.PathLike, dest_root: str | os.PathLike,
            select: Callable[[str], str | None], progress: bool = True) -> tuple[int, int]:
    """Extract the members of a zip or tar archive for which ``select(member_name)`` returns a
    relative output path, under ``dest_root``. A member already there with the right size is
    skipped, so an interrupted extraction resumes. Returns (written, skipped)."""
    archive, dest_root = Path(archive), Path(dest_root)
    written = skipped = 0
    try:
        for name, size, open_member in console.progress(_members(archive), desc=f"extract {archive.name}", unit="file",
                                                        quiet=not progress, leave=False):
            rel = select(name)
            if rel is None:
                continue
            target = dest_root / _safe_relpath(rel, archive, name)
            if target.is_file() and target.stat().st_size == size:
                skipped += 1
                continue
            try:
                with open_member() as src:
                    _write_member(src, target, archive, dest_root)
            except OSError as e:  # creating its folder, renaming it in
                raise _write_error(e, target, archive, dest_root) from None
            written += 1
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as e:
        raise DownloadError(f"cannot extract {archive}: {e}; delete it (and its .md5 file) and run again "
                            f"to download it anew") from None
    if written + skipped == 0:
        raise DownloadError(f"{archive} holds none of the expected files: is it the right archive?")
    return written, skipped


def regex_selector(pattern: str) -> Callable[[str], str | None]:
    """A ``select`` for :func:`extract`: the first group of ``pattern`` searched in the member name."""
    rx = re.compile(pattern)

    def select(name: str) -> str | None:
        m = rx.search(name)
        return m.group(1) if m else None

    return select
