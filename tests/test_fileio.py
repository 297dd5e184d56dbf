"""spkid/fileio.py: one writer per folder (writer_lock)."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from spkid.errors import SpkidError
from spkid.fileio import writer_lock

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
