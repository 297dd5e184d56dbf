"""Atomic file writes: an output is either complete or absent, so an interrupted stage can be re-run."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import IO, Iterator, Sequence

from spkid.errors import SpkidError


@contextlib.contextmanager
def _naming(paths: Sequence[Path]) -> Iterator[None]:
    """An OSError that names no file (a write on a full disk or over a quota: "[Errno 28] No space
    left on device") becomes a SpkidError naming the files being written and the fix."""
    try:
        yield
    except OSError as e:
        if e.filename is not None or e.errno is None:
            raise
        raise SpkidError(f"cannot write {' and '.join(map(str, paths))}: {os.strerror(e.errno)}; free space on "
                         f"its file system (or raise the quota) and run the same command again") from e


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8",
                 durable: bool = True) -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it onto ``path`` only if the block succeeds.

    ``durable``: fsync before the rename, so that a machine crash leaves the old file or the new
    one, never an empty one. Writers of one file per utterance (a million of them for VoxCeleb)
    pass False: an fsync each would cost more than the write."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    # mkstemp creates 0600; outputs should get the ordinary mode under the user's umask
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        with _naming([path]), os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _tmp_path(path: str | os.PathLike) -> Path:
    """The temporary name of ``path`` for :func:`atomic_paths` (see :func:`leftover_tmp_paths`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def leftover_tmp_paths(path: str | os.PathLike) -> list[Path]:
    """The temporary files of atomic writes to ``path`` (a glob pattern in its name allowed) that
    a writer killed before it could remove them (SIGKILL, a node lost) left beside it."""
    path = Path(path)
    return sorted(path.parent.glob(f".{path.name}.*.tmp"))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_paths(*paths: str | os.PathLike, durable: bool = True) -> Iterator[list[Path]]:
    """Temporary names beside ``paths`` for writers that need file names (kaldiio, torch.save,
    soundfile, ffmpeg); renamed onto ``paths`` in the order given when the block succeeds,
    removed when it fails. ``durable``: as :func:`atomic_write`, each file fsynced first."""
    tmps = [_tmp_path(p) for p in paths]
    try:
        with _naming([Path(p) for p in paths]):
            yield tmps
            if durable:
                for tmp in tmps:
                    _fsync(tmp)
        for tmp, path in zip(tmps, paths):
            os.replace(tmp, path)
    finally:
        for tmp in tmps:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary folder beside ``path`` to fill; swapped in for ``path`` when the block
    succeeds (an old ``path`` is set aside until the swap, then removed), removed when it fails.
    A folder is not renamed onto another atomically: a crash between the two renames leaves
    ``path`` absent and the old one in ``.<name>.old``, never a mixture of the two."""
    path = Path(path)
    tmp, old = path.with_name(f".{path.name}.tmp"), path.with_name(f".{path.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with _naming([path]):
            yield tmp
        shutil.rmtree(old, ignore_errors=True)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)


def _check_writable(folder: Path, option: str, value: Path) -> None:
    """``folder`` must be a writable folder or creatable in one; errors name ``option=value``."""
    top = folder
    while not top.exists() and top != top.parent:
        top = top.parent
    if not top.is_dir():
        raise SpkidError(f"{option}={value}: {top} is a file, not a folder; give another {option}")
    if not os.access(top, os.W_OK | os.X_OK):
        raise SpkidError(f"{option}={value}: cannot write in {top}; give another {option} or fix its permissions")


def check_output_file(path: str | os.PathLike, option: str) -> None:
    """Refuse, before any work, an output file that cannot be written (``option`` names the setting)."""
    path = Path(path)
    if path.is_dir():
        raise SpkidError(f"{option}={path} is a folder; give a file name, e.g. {option}={path / 'out'}")
    _check_writable(path.parent, option, path)


def check_output_dir(path: str | os.PathLike, option: str) -> None:
    """Refuse, before any work, an output folder that cannot be created or written in."""
    _check_writable(Path(path), option, Path(path))


@contextlib.contextmanager
def writer_lock(folder: str | os.PathLike, what: str) -> Iterator[None]:
    """Be the one writer of ``folder`` (an experiment, an embeddings set) for the block.

    An flock on ``folder/.lock``, which the kernel drops when the process ends however it ends (a
    SIGKILL, the OOM killer), so a dead run never leaves it held. The holder writes its PID, host
    and ``what`` into the file; a second writer gets an error naming them instead of interleaving
    its log, checkpoints or temporary files with theirs."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 4096).decode(errors="replace").strip() or "another process (just starting)"
        os.close(fd)
        raise SpkidError(f"{folder} is in use by {holder}; one process at a time may write there: wait for "
                         f"it to finish or stop it (this process wanted it for {what})") from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"PID {os.getpid()} on {socket.gethostname()} ({what}, since "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S')})\n".encode())
        yield
    finally:
        os.close(fd)


def link_or_copy(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """``dst`` as a hard link of ``src`` (same inode and mtime: no space, and extraction's
    fingerprint of a linked final.pt matches); a copy keeping the mtime across file systems.
    Replaces ``dst`` atomically."""
    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.link.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)
