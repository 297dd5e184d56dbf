"""spkid/fileio.py: atomic writes of files and folders (whole or absent, no temporary file left,
fsynced only when durable), failed writes naming the file, one writer per folder (writer_lock)."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from spkid.errors import SpkidError
from spkid.fileio import atomic_dir, atomic_paths, atomic_write, leftover_tmp_paths, writer_lock

ROOT = Path(__file__).resolve().parents[1]


def hold_lock(folder: Path) -> subprocess.Popen:
    """Another process holding ``folder``'s lock until it is killed."""
    code = ("import sys, time; from spkid.fileio import writer_lock\n"
            "with writer_lock(sys.argv[1], 'training exp/X'):\n"
            "    print('held', flush=True); time.sleep(60)\n")
    p = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.stdout.readline().strip() == "held"
    return p


def test_a_second_writer_is_refused_by_the_holders_pid_and_host_until_it_dies(tmp_path):
    holder = hold_lock(tmp_path / "exp")
    try:
        with pytest.raises(SpkidError) as e:
            with writer_lock(tmp_path / "exp", "extracting"):
                pass
        msg = str(e.value)
        assert f"{tmp_path / 'exp'} is in use by PID {holder.pid} on {socket.gethostname()} (training exp/X, since" in msg
        assert "wait for it to finish or stop it (this process wanted it for extracting)" in msg
    finally:
        holder.send_signal(signal.SIGKILL)  # no clean-up runs: the kernel drops the lock
        holder.wait()
    with writer_lock(tmp_path / "exp", "extracting"):
        assert f"PID {os.getpid()} on" in (tmp_path / "exp" / ".lock").read_text()
        # within one process too: a second open of the lock is refused while the first is held
        with pytest.raises(SpkidError, match=f"in use by PID {os.getpid()}"):
            with writer_lock(tmp_path / "exp", "again"):
                pass
    with writer_lock(tmp_path / "exp", "after"):  # released when the block ends
        pass


FULL_DISK = """
import resource, signal, sys
import numpy as np
from spkid.data.datadir import Trials
from spkid.errors import SpkidError
from spkid.eval.extract import write_embeddings
from spkid.eval.scoring import write_scores

out = sys.argv[1]
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
n = 2000
writes = [lambda: write_scores(f"{out}/a.score", Trials(["e"] * n, ["t"] * n, np.ones(n, np.int8)), np.zeros(n)),
          lambda: write_embeddings(((f"u{i}", np.ones((10, 64), np.float32)) for i in range(20)), f"{out}/emb.ark")]
for write in writes:
    try:
        write()
    except SpkidError as e:
        print(e)
"""


def test_a_failed_write_names_the_file_being_written(tmp_path):
    # a full disk during extraction or scoring printed "[Errno 28] No space left on device", no file
    p = subprocess.run([sys.executable, "-c", FULL_DISK, str(tmp_path)], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines == [f"cannot write {tmp_path}/a.score: File too large; free space on its file system (or raise the "
                     f"quota) and run the same command again",
                     f"cannot write {tmp_path}/emb.ark and {tmp_path}/emb.scp: File too large; free space on its file "
                     f"system (or raise the quota) and run the same command again"], p.stdout
    assert sorted(f.name for f in tmp_path.iterdir()) == []  # no partial output, no temporary file


def test_errors_that_name_a_file_are_left_as_they_are(tmp_path):
    from spkid.fileio import atomic_write

    with pytest.raises(FileNotFoundError) as e:
        with atomic_write(tmp_path / "out") as f:
            f.write(open(tmp_path / "missing-input").read())
    assert e.value.filename == str(tmp_path / "missing-input") and not (tmp_path / "out").exists()


class Interrupted(Exception):
    pass


def count_fsyncs(monkeypatch) -> list[int]:
    calls: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    return calls


@pytest.mark.parametrize("durable", [True, False])
def test_atomic_paths_renames_in_order_and_fsyncs_only_when_durable(tmp_path, monkeypatch, durable):
    a, b = tmp_path / "sub" / "a.ark", tmp_path / "sub" / "a.scp"
    fsyncs = count_fsyncs(monkeypatch)
    with atomic_paths(a, b, durable=durable) as (tmp_a, tmp_b):
        tmp_a.write_bytes(b"\x00ark")
        tmp_b.write_text("u1 a.ark:1\n")
        assert leftover_tmp_paths(a) == [tmp_a] and not a.exists()  # what a killed writer would leave
    assert (a.read_bytes(), b.read_text()) == (b"\x00ark", "u1 a.ark:1\n")
    assert len(fsyncs) == (2 if durable else 0)
    assert sorted(p.name for p in a.parent.iterdir()) == ["a.ark", "a.scp"]


@pytest.mark.parametrize("durable", [True, False])
def test_atomic_write_fsyncs_only_when_durable(tmp_path, monkeypatch, durable):
    fsyncs = count_fsyncs(monkeypatch)
    with atomic_write(tmp_path / "w.bin", "wb", durable=durable) as f:
        f.write(b"\x01\x02")
        assert [p.name[:7] for p in leftover_tmp_paths(tmp_path / "w.bin")] == [".w.bin."]
    assert (tmp_path / "w.bin").read_bytes() == b"\x01\x02" and len(fsyncs) == (1 if durable else 0)


@pytest.mark.parametrize("durable", [True, False])
def test_an_exception_in_the_block_keeps_the_old_files_and_leaves_no_temporary_one(tmp_path, durable):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("old a")
    with pytest.raises(Interrupted):
        with atomic_paths(a, b, durable=durable) as (tmp_a, tmp_b):
            tmp_a.write_text("new a")
            tmp_b.write_text("new b")
            raise Interrupted
    with pytest.raises(Interrupted):
        with atomic_write(a, durable=durable) as f:
            f.write("new a")
            raise Interrupted
    assert a.read_text() == "old a" and not b.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_atomic_dir_replaces_an_existing_folder_whole(tmp_path):
    data = tmp_path / "data" / "train"
    with atomic_dir(data) as tmp:  # created where there was none
        (tmp / "wav.scp").write_text("u1 a.wav\n")
        (tmp / "segments").write_text("s1 u1 0 1\n")
    with atomic_dir(data) as tmp:
        assert tmp.is_dir() and not any(tmp.iterdir()) and tmp.parent == data.parent
        (tmp / "wav.scp").write_text("u2 b.wav\n")
        assert (data / "segments").is_file()  # the old folder is in place until the block ends
    assert sorted(p.name for p in data.iterdir()) == ["wav.scp"]  # swapped, not merged
    assert (data / "wav.scp").read_text() == "u2 b.wav\n"
    assert sorted(p.name for p in data.parent.iterdir()) == ["train"]  # no .train.tmp, no .train.old


def test_an_exception_in_atomic_dir_keeps_the_old_folder(tmp_path):
    data = tmp_path / "train"
    data.mkdir()
    (data / "wav.scp").write_text("old\n")
    with pytest.raises(Interrupted):
        with atomic_dir(data) as tmp:
            (tmp / "wav.scp").write_text("new\n")
            raise Interrupted
    assert (data / "wav.scp").read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["train"]
