"""The layout of an experiment directory ``exp/<SYS>``: the one place that spells its paths.

    exp/<SYS>/config.conf                 the resolved options (stage 3; read by stages 4-6)
    exp/<SYS>/final.pt                    the trained network (stage 3)
    exp/<SYS>/checkpoints/epoch_*.pt      training checkpoints
    exp/<SYS>/checkpoints/interrupted.pt  the checkpoint of a training run stopped mid-epoch by SIGTERM
    exp/<SYS>/log/<step>.log              the steps' logs (train.log, extract.<set>.log, score.<set>.log)
    exp/<SYS>/derived_from                a derived system: the system whose network it shares
    exp/<SYS>/initialised_from            a fine-tuned system: the --init-from it started from
    exp/<SYS>/embeddings/<set>/           stage 4: embeddings.{ark,scp}, xvector.{ark,scp}, utt2spk
    exp/<SYS>/scores/<set>/<list>.score   stage 5 (+ .metrics.json, .det.png)
    exp/<SYS>/backend.{npz,info}          stage 5's fitted back-end (+ plda.npz, qmf.json) and what it was fitted from

A fusion (``exp/fusion/F1``) and the MFCC floor (``exp/mfcc_baseline``) keep their score files
in the same ``scores/<set>/<list>.score`` layout, so the table reads every row the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from spkid.fileio import atomic_write

#: the embeddings set of the training utterances the back-end learns from (stage 4 with --cohort-data)
COHORT = "cohort"


@dataclass(frozen=True)
class SystemDir:
    """``exp/<SYS>`` (or a fusion's or the floor's directory): where each of its files lives."""

    root: Path

    def __init__(self, root: str | os.PathLike) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def config(self) -> Path:
        return self.root / "config.conf"

    @property
    def final(self) -> Path:
        return self.root / "final.pt"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def interrupted(self) -> Path:
        return self.checkpoints / "interrupted.pt"

    @property
    def log(self) -> Path:
        return self.root / "log"

    def step_log(self, step: str) -> Path:
        """``log/<step>.log``: what a step (extract.<set>, score.<set>, import_model, ...) printed."""
        return self.log / f"{step}.log"

    def embeddings(self, set_name: str) -> Path:
        """``embeddings/<set>/`` of stage 4 (``COHORT`` for the back-end's training utterances)."""
        return self.root / "embeddings" / set_name

    def scores(self, set_name: str) -> Path:
        return self.root / "scores" / set_name

    def score_file(self, set_name: str, list_name: str) -> Path:
        return self.scores(set_name) / f"{list_name}.score"

    # ------------------------------------------------ the scoring back-end, fitted once (spkid.eval.backend)

    @property
    def backend_record(self) -> Path:
        """What the saved back-end was fitted from (written last: it vouches for the files below)."""
        return self.root / "backend.info"

    @property
    def backend_stats(self) -> Path:
        """The cohort's statistics: mean crop, speaker vectors, speaker means."""
        return self.root / "backend.npz"

    @property
    def plda(self) -> Path:
        return self.root / "plda.npz"

    @property
    def qmf(self) -> Path:
        return self.root / "qmf.json"

    # ------------------------------------------------ what the system was derived or initialised from

    @property
    def derived_from_record(self) -> Path:
        return self.root / "derived_from"

    def derived_from(self) -> SystemDir | None:
        """The system whose network this one shares (``steps/derive_system.py``), so that stage 4
        links that system's embeddings instead of extracting them; None when not derived."""
        ref = self.derived_from_record
        if not ref.is_file():
            return None
        return SystemDir(os.path.normpath(self.root / ref.read_text().strip()))

    def record_derived_from(self, base: SystemDir | None) -> None:
        """Name ``base`` (relative to this dir) as the system this one shares its network with;
        None: this one has a network of its own."""
        if base is None:
            self.derived_from_record.unlink(missing_ok=True)
            return
        with atomic_write(self.derived_from_record) as f:
            f.write(os.path.relpath(base.root, self.root) + "\n")

    @property
    def initialised_from_record(self) -> Path:
        return self.root / "initialised_from"

    def initialised_from(self) -> str | None:
        """The ``--init-from`` path training started from (the results table names it)."""
        init = self.initialised_from_record
        return init.read_text().strip() if init.is_file() else None

    def record_initialised_from(self, weights: str | os.PathLike) -> None:
        with atomic_write(self.initialised_from_record) as f:
            f.write(f"{Path(weights).resolve()}\n")


def fusion_dir(exp_root: str | os.PathLike, name: str) -> SystemDir:
    """``exp/fusion/<name>`` (F1, F2): the fused score files, weights and search record."""
    return SystemDir(Path(exp_root) / "fusion" / name)
