"""The run that the pre-emption tests of tests/test_trainer.py and tests/test_slurm.py resume
against: a tiny system trained for 3 epochs of 12 steps by one torchrun of two CPU processes
(steps/train.sh --cpu-procs 2, a DataLoader worker each), outside any Slurm job."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import torch

from spkid.data.synthetic import make_train_dir

ROOT = Path(__file__).resolve().parents[1]
TRAIN_SH = str(ROOT / "steps" / "train.sh")
#: 6 speakers x 4 utterances, batches of 2 (one per rank): 12 steps an epoch, a progress line each
OPTIONS = ["--trunk=Q_SAP", "--channels=4,8,8,8", "--n-mels=16", "--embed-dim=16", "--train-frames=20",
           "--augment=false", "--loss=softmax", "--batch-size=2", "--epochs=3", "--log-interval=1",
           "--num-workers=1", "--quiet=true"]


@dataclass
class TwoProcessRun:
    corpus: Path  # the training data dir
    exp: Path  # the uninterrupted run's experiment dir

    @property
    def options(self) -> list[str]:
        return [*OPTIONS, f"--train-data={self.corpus}"]


def local_env() -> dict:
    """This machine's environment without a Slurm job's (in one, steps/train.sh would start a job step)."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}, "OMP_NUM_THREADS": "1"}


def train_uninterrupted(root: Path) -> TwoProcessRun:
    make_train_dir(root, num_speakers=6, utts_per_speaker=4, seconds=(1.0, 2.0), seed=3)
    run = TwoProcessRun(root / "data" / "train", root / "uninterrupted")
    r = subprocess.run([TRAIN_SH, "--cpu-procs", "2", *run.options, str(run.exp)], env=local_env(),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return run


def assert_same_weights(a: Path, b: Path) -> None:
    """The networks and loss heads of two checkpoints (or final.pt) are equal, bit for bit."""
    x, y = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    for part in ("model", "loss"):
        assert x[part].keys() == y[part].keys()
        for k in x[part]:
            assert torch.equal(x[part][k], y[part][k]), (a, b, part, k)
