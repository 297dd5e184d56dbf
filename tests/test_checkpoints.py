"""Checkpoints: atomic writes (a full disk, Ctrl-C mid-write), the newest readable one, the
partial writes of a killed run, pruning, and the options a resumed run may change."""

import errno
import logging
import os
import signal
import subprocess
import sys

import pytest
import torch

from spkid.config import write_resolved
from spkid.errors import SpkidError
from spkid.options import EvalOptions, LossOptions, ModelOptions, TrainOptions
from spkid.train.checkpoints import (checkpoint_path, config_differences, load_latest_checkpoint, load_resume_checkpoint,
                                     prune_checkpoints, save_atomic)
from spkid.train.ranks import Dist

CPU = Dist(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


def test_truncated_checkpoint_is_skipped(tmp_path, caplog):
    save_atomic({"epoch": 1, "w": torch.arange(3)}, checkpoint_path(tmp_path, 1))
    save_atomic({"epoch": 2, "w": torch.arange(4)}, checkpoint_path(tmp_path, 2))
    newest = checkpoint_path(tmp_path, 2)
    newest.write_bytes(newest.read_bytes()[:100])
    with caplog.at_level(logging.WARNING, logger="spkid.train"):
        state = load_latest_checkpoint(tmp_path)
    assert state["epoch"] == 1 and torch.equal(state["w"], torch.arange(3))
    assert "epoch_0002.pt" in caplog.text and "unreadable" in caplog.text
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.endswith(".tmp")]
    assert load_latest_checkpoint(tmp_path / "nothing") is None


@pytest.mark.parametrize("wrapped", [False, True])
def test_full_disk_is_one_line_and_keeps_the_old_checkpoint(tmp_path, monkeypatch, wrapped):
    """A full disk surfaces from torch.save as an OSError or, when it hits the zip writer's
    end, as a RuntimeError raised while handling it: either way one line naming the file."""
    save_atomic({"epoch": 1}, checkpoint_path(tmp_path, 1))

    def full_disk_save(obj, f):
        f.write(b"partial")
        try:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError:
            if not wrapped:
                raise
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")

    monkeypatch.setattr(torch, "save", full_disk_save)
    with pytest.raises(SpkidError, match=r"cannot write .*epoch_0002\.pt: No space left on device; free space"):
        save_atomic({"epoch": 2}, checkpoint_path(tmp_path, 2))
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["epoch_0001.pt"]
    monkeypatch.undo()
    assert load_latest_checkpoint(tmp_path)["epoch"] == 1


def test_pruning_keeps_the_checkpoint_just_written(tmp_path):
    """A run that resumed from epoch 3 past two unreadable newer checkpoints (4 and 5) and has
    just written epoch 4: --keep-checkpoints 1 keeps that one, not the unreadable epoch 5."""
    for epoch in (3, 4, 5):
        save_atomic({"epoch": epoch}, checkpoint_path(tmp_path, epoch))
    checkpoint_path(tmp_path, 5).write_bytes(b"truncated")
    prune_checkpoints(tmp_path, keep=1, newest=4)
    assert load_latest_checkpoint(tmp_path)["epoch"] == 4
    assert not checkpoint_path(tmp_path, 3).exists()
    prune_checkpoints(tmp_path, keep=0, newest=4)
    assert checkpoint_path(tmp_path, 4).exists()


SLOW_SAVE = """
import sys, time, torch
from pathlib import Path
from spkid.train.checkpoints import save_atomic
import signal
def slow_save(obj, f):
    f.write(b"part of a checkpoint")
    f.flush()
    print("writing", flush=True)
    time.sleep(60)
torch.save = slow_save
signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with SIGINT ignored
save_atomic({}, Path(sys.argv[1]))
"""


def test_ctrl_c_while_writing_a_checkpoint_leaves_no_partial_file(tmp_path):
    path = checkpoint_path(tmp_path, 2)
    proc = subprocess.Popen([sys.executable, "-c", SLOW_SAVE, str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "writing\n"
        assert [p.name for p in path.parent.iterdir()] == [f".epoch_0002.pt.{proc.pid}.tmp"]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert "KeyboardInterrupt" in err
    assert list(path.parent.iterdir()) == []


def test_partial_writes_of_a_killed_run_are_removed_on_resume(tmp_path, caplog):
    """SIGKILL leaves the temporary file, checkpoint-sized; the next run deletes it."""
    save_atomic({"epoch": 1}, checkpoint_path(tmp_path, 1))
    (tmp_path / "checkpoints" / ".epoch_0002.pt.4242.tmp").write_bytes(b"partial")
    (tmp_path / ".final.pt.4242.tmp").write_bytes(b"partial")
    with caplog.at_level(logging.INFO, logger="spkid.train"):
        assert load_resume_checkpoint(tmp_path, CPU)["epoch"] == 1
    assert "removed 2 partial checkpoint file(s)" in caplog.text
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["epoch_0001.pt"]


def test_config_differences(tmp_path):
    system = [ModelOptions(), LossOptions(), TrainOptions(), EvalOptions()]
    write_resolved(tmp_path / "config.conf", *system)
    assert config_differences(tmp_path / "config.conf", system) == []
    changed = [ModelOptions(trunk="ECAPA"), LossOptions(), TrainOptions(lr=0.01, epochs=9, num_workers=1),
               EvalOptions(p_target=0.01)]
    # More epochs, other workers or evaluation options do not change what was trained.
    assert config_differences(tmp_path / "config.conf", changed) == ["--trunk: H_ASP -> ECAPA", "--lr: 0.001 -> 0.01"]
