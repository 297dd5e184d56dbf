"""VoxCeleb2's AAC (.m4a) files to 16 kHz mono 16-bit wav with ffmpeg, in parallel and resumably:
threads of this process each running ffmpeg, or Kaldi-style jobs of a ``--cmd`` runner (a Slurm
cluster), each converting one list of files (local/convert_m4a.py).

Each output is written to a hidden temporary name and renamed when ffmpeg succeeds, so a file
that exists is complete and a re-run skips it. A file that fails is counted and named at the end
(and listed in a failures file); the others are converted regardless.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from spkid import console
from spkid.errors import SpkidError
from spkid.fileio import atomic_paths, atomic_write
from spkid.jobs import run_jobs, runs_here, split_contiguous
from spkid.options import SAMPLE_RATE

MAX_NAMED = 20


class ConvertError(SpkidError):
    pass


@dataclass
class ConvertResult:
    converted: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)

    def summary(self) -> str:
        return (f"converted {self.converted}, already done {self.skipped}, failed {len(self.failed)}")


def find_files(root: str | os.PathLike, suffix: str) -> list[str]:
    """Relative paths (sorted) of the files under ``root`` ending in ``suffix``."""
    root = Path(root)
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):  # linked speaker dirs count
        dirnames.sort()
        rel = os.path.relpath(dirpath, root)
        for name in filenames:
            if name.endswith(suffix) and not name.startswith("."):
                out.append(name if rel == "." else os.path.join(rel, name))
    return sorted(out)


def ffmpeg_binary() -> str:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise ConvertError("ffmpeg not found on PATH: install it (Debian/Ubuntu: apt-get install ffmpeg) "
                           "and run again")
    return exe


def convert_file(src: Path, dst: Path, ffmpeg: str = "ffmpeg") -> str | None:
    """Decode ``src`` into ``dst`` as 16 kHz mono pcm_s16le wav; None on success, else the reason."""
    try:
        with atomic_paths(dst, durable=False) as (tmp,):  # a million files: no fsync each
            cmd = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-threads", "1", "-y", "-i", str(src),
                   "-vn", "-ac", "1", "-ar", str(SAMPLE_RATE), "-c:a", "pcm_s16le", "-f", "wav", str(tmp)]
            proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, errors="replace")
            if proc.returncode != 0 or not tmp.is_file() or tmp.stat().st_size <= 44:
                lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
                raise ConvertError(lines[-1] if lines else f"ffmpeg exited with status {proc.returncode} and no audio")
    except ConvertError as e:  # raised in the block so that its temporary file is removed, not renamed
        return str(e)
    return None


def _bounded(executor: ThreadPoolExecutor, jobs: Iterable, fn, limit: int) -> Iterator[tuple[object, Future]]:
    """Submit ``fn(job)`` keeping at most ``limit`` in flight (a million futures would not fit)."""
    pending: dict[Future, object] = {}
    it = iter(jobs)
    while True:
        while len(pending) < limit:
            job = next(it, None)
            if job is None:
                break
            pending[executor.submit(fn, job)] = job
        if not pending:
            return
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        for fut in done:
            yield pending.pop(fut), fut


def convert_files(src_root: Path, dst_root: Path, rels: list[str], nj: int, progress: bool) -> ConvertResult:
    """``src_root/<rel>.m4a`` into ``dst_root/<rel>.wav`` for each of ``rels``, ``nj`` ffmpeg at once."""
    ffmpeg = ffmpeg_binary()
    result = ConvertResult()

    def one(rel: str) -> str | None:
        return convert_file(src_root / rel, (dst_root / rel).with_suffix(".wav"), ffmpeg)

    with ThreadPoolExecutor(max_workers=max(1, nj)) as ex, \
            console.progress(total=len(rels), desc="m4a->wav", unit="file", quiet=not progress) as bar:
        for rel, fut in _bounded(ex, rels, one, 4 * max(1, nj)):
            reason = fut.result()
            if reason is None:
                result.converted += 1
            else:
                result.failed.append((str(rel), reason))
                bar.set_postfix(failed=len(result.failed))
            bar.update(1)
    return result


@dataclass
class ConvertJobs:
    """Conversion as jobs ``JOB=1:nj`` of a Kaldi-style runner (:mod:`spkid.jobs`): ``cmd`` (cmd.sh's
    cpu_cmd), ``job_command`` (local/convert_m4a.py, which converts one list), and ``work_dir``,
    where the lists (``split/``) and the logs (``log/convert.JOB.log``) go."""
    cmd: str
    job_command: list[str]
    work_dir: Path

    def run(self, src_root: Path, dst_root: Path, rels: list[str], nj: int) -> ConvertResult:
        nj = max(1, min(nj, len(rels)))
        split = self.work_dir / "split"
        shutil.rmtree(split, ignore_errors=True)  # lists of an earlier run: the files still to do differ
        split.mkdir(parents=True)
        for k, part in enumerate(split_contiguous(rels, nj), 1):
            with atomic_write(split / f"m4a.{k}") as f:
                f.writelines(f"{rel}\n" for rel in part)
        run_jobs(self.cmd, nj, self.work_dir / "log" / "convert.JOB.log",
                 [*self.job_command, f"--list={split}/m4a.JOB", f"--failures={split}/failed.JOB", str(src_root),
                  str(dst_root)], "m4a->wav conversion")
        failed = [tuple(line.split("\t", 1)) for k in range(nj)
                  for line in (split / f"failed.{k + 1}").read_text().splitlines()]
        shutil.rmtree(split)
        return ConvertResult(converted=len(rels) - len(failed), failed=failed)


def convert_tree(src_root: str | os.PathLike, dst_root: str | os.PathLike, nj: int = 1,
                 progress: bool = True, failures_file: str | os.PathLike | None = None,
                 jobs: ConvertJobs | None = None) -> ConvertResult:
    """Convert every ``src_root/<rel>.m4a`` into ``dst_root/<rel>.wav`` with ``nj`` ffmpeg processes
    (here, or as ``nj`` jobs of ``jobs.cmd`` unless that is the local runner).

    Existing outputs are skipped. The failures (relative path and ffmpeg's last message) are
    returned and, when ``failures_file`` is given, written there (or the file removed if none)."""
    src_root, dst_root = Path(src_root), Path(dst_root)
    if not src_root.is_dir():
        raise ConvertError(f"{src_root} not found: extract the VoxCeleb2 archive first")
    ffmpeg_binary()
    rels = find_files(src_root, ".m4a")
    todo = [rel for rel in rels if not (dst_root / rel).with_suffix(".wav").is_file()]
    if not todo:
        result = ConvertResult()
    elif jobs is None or runs_here(jobs.cmd):
        result = convert_files(src_root, dst_root, todo, nj, progress)
    else:
        result = jobs.run(src_root, dst_root, todo, nj)
    result.skipped = len(rels) - len(todo)
    result.failed.sort()
    if failures_file is not None:
        failures_file = Path(failures_file)
        if result.failed:
            with atomic_write(failures_file) as f:
                for rel, reason in result.failed:
                    f.write(f"{src_root / rel}\t{reason}\n")
        else:
            failures_file.unlink(missing_ok=True)
    return result


def describe_failures(result: ConvertResult, src_root: Path, failures_file: Path | None) -> str:
    """The failed files, named (the first MAX_NAMED), for the end of a run."""
    lines = [f"{len(result.failed)} file(s) failed to convert:"]
    for rel, reason in result.failed[:MAX_NAMED]:
        lines.append(f"  {src_root / rel}: {reason}")
    if len(result.failed) > MAX_NAMED:
        lines.append(f"  ... and {len(result.failed) - MAX_NAMED} more")
    if failures_file is not None:
        lines.append(f"  (all listed in {failures_file})")
    return "\n".join(lines)
