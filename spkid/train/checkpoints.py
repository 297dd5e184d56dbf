"""Checkpoints of a training run: written atomically (whole or absent), with every rank's RNG
streams; the newest readable one found and resumed from (the same file on every rank); the
partial writes of a killed run removed; old ones pruned; a resumed run's options compared with
the saved config.conf."""

from __future__ import annotations

import dataclasses
import logging
import os
import random
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.distributed as dist

from spkid.config import read_resolved, to_conf_values
from spkid.errors import SpkidError
from spkid.expdir import SystemDir
from spkid.fileio import atomic_paths, leftover_tmp_paths
from spkid.options import EvalOptions
from spkid.train.ranks import Dist

log = logging.getLogger("spkid.train")

# Options that may change between a run and its resumption: they do not change what is trained.
RESUMABLE_CHANGES = frozenset({"epochs", "num_workers", "compile", "compile_mode", "batched_augment", "aug_bank_max_gb",
                               "average_last"}
                              | {f.name for f in dataclasses.fields(EvalOptions)})


# ----------------------------------------------------------------------------- RNG states

def rng_state(device: torch.device) -> dict:
    """Python, NumPy and torch (CPU and the CUDA device) generator states, loadable with
    ``torch.load(weights_only=True)``."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(),
             "numpy": (name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(gauss)),
             "torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def gather_rng_states(d: Dist) -> list[dict]:
    """Every rank's :func:`rng_state`, in rank order (a collective: all ranks call it)."""
    mine = rng_state(d.device)
    if d.world_size == 1:
        return [mine]
    out: list = [None] * d.world_size
    dist.all_gather_object(out, mine)
    return out


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ----------------------------------------------------------------------------- checkpoints

def checkpoint_path(exp_dir: Path, epoch: int) -> Path:
    return SystemDir(exp_dir).epoch_checkpoint(epoch)


def newest_checkpoint(exp_dir: Path) -> Path | None:
    """What a re-run resumes from, when it loads: interrupted.pt (the checkpoint of a run stopped
    mid-epoch by SIGTERM: ``epoch`` epochs and ``step`` steps of the next done; removed by the
    next epoch's checkpoint), else the newest epoch checkpoint."""
    layout = SystemDir(exp_dir)
    epochs = layout.epoch_checkpoints()
    return layout.interrupted if layout.interrupted.is_file() else epochs[-1] if epochs else None


def save_atomic(obj: Any, path: Path) -> None:
    """torch.save through :func:`spkid.fileio.atomic_paths` (fsynced): a checkpoint is whole or
    absent. A failed write (full disk, quota) is a SpkidError naming ``path``; the old file stays."""
    with atomic_paths(path) as (tmp,):
        try:
            with open(tmp, "wb") as f:
                torch.save(obj, f)
        except (OSError, RuntimeError) as e:
            cause: BaseException | None = e
            while cause is not None and not isinstance(cause, OSError):  # torch's zip writer may re-raise
                cause = cause.__context__                                 # a failed write as RuntimeError
            if isinstance(cause, OSError) and cause.errno is not None:
                raise SpkidError(f"cannot write {path}: {os.strerror(cause.errno)}; free space on its file system "
                                 f"(or fix its permissions) and run the same command again (training resumes "
                                 f"from the newest checkpoint)") from e
            raise


def remove_partial_writes(exp_dir: Path) -> int:
    """Delete the temporary files of checkpoints and final.pt whose writer was killed (SIGKILL,
    a node lost) before it could remove them; each is as large as a checkpoint. Returns how many."""
    layout = SystemDir(exp_dir)
    partial = [*leftover_tmp_paths(layout.checkpoints / "epoch_*.pt"), *leftover_tmp_paths(layout.interrupted),
               *leftover_tmp_paths(layout.final)]
    for path in partial:
        path.unlink(missing_ok=True)
    if partial:
        log.info("removed %d partial checkpoint file(s) left by a killed run (e.g. %s)", len(partial), partial[0])
    return len(partial)


def load_latest_checkpoint(exp_dir: Path, epochs: int | None = None) -> dict | None:
    """The newest checkpoint that loads; unreadable (e.g. truncated) ones are skipped with a
    warning. interrupted.pt comes first when it is newer than every epoch checkpoint and stopped
    before the last of ``epochs`` (a run asked for fewer epochs ends at an epoch's end)."""
    paths = SystemDir(exp_dir).epoch_checkpoints()[::-1]
    done = int(paths[0].stem.split("_")[1]) if paths else 0
    for path in [SystemDir(exp_dir).interrupted, *paths]:
        if not path.is_file():
            continue
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # any corruption: torch/zip/pickle errors differ by how it broke
            log.warning("skipping unreadable checkpoint %s (%s: %s); resuming from an older one",
                        path, type(e).__name__, e)
            continue
        if "step" in state and (state["epoch"] < done or (epochs is not None and state["epoch"] >= epochs)):
            continue
        state["path"] = str(path)
        return state
    return None


def load_resume_checkpoint(exp_dir: Path, d: Dist, epochs: int | None = None) -> dict | None:
    """The checkpoint to resume from (:func:`load_latest_checkpoint`), the same file on every rank:
    rank 0 picks the newest readable one and the others load that one (a rank that picked on
    its own could start from another epoch after a read error, and the ranks' collectives would
    no longer match). Rank 0 first removes the partial writes of a killed run."""
    if d.is_main:
        remove_partial_writes(exp_dir)
    if d.world_size == 1:
        return load_latest_checkpoint(exp_dir, epochs)
    state = load_latest_checkpoint(exp_dir, epochs) if d.is_main else None
    chosen = [state["path"] if state else ""]
    dist.broadcast_object_list(chosen, src=0)
    if d.is_main or not chosen[0]:
        return state
    try:
        state = torch.load(chosen[0], map_location="cpu", weights_only=True)
    except Exception as e:  # any corruption or an unreachable file
        raise SpkidError(f"rank {d.rank} cannot read {chosen[0]}, the checkpoint rank 0 resumes from "
                         f"({type(e).__name__}: {e}); every node must see the same {exp_dir}") from None
    state["path"] = chosen[0]
    return state


def load_init_weights(path: str | os.PathLike) -> dict:
    """The weights ``--init-from`` names: a ``final.pt`` (trained or imported by
    steps/import_model.py) or an epoch checkpoint, or a system directory (its ``final.pt``)."""
    path = Path(path)
    if path.is_dir():
        path = SystemDir(path).final
    if not path.is_file():
        raise SpkidError(f"--init-from {path}: not found; give a system's final.pt (steps/train.py or "
                         f"steps/import_model.py writes one) or its directory")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated or not a checkpoint
        raise SpkidError(f"--init-from {path}: cannot load it ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise SpkidError(f"--init-from {path}: no 'model' in it; give a spkid final.pt (a voxceleb_trainer or "
                         f"wespeaker file goes through steps/import_model.py first)")
    if "loss" not in state:  # final.pt written before it held the head: the newest checkpoint's
        newest = SystemDir(path.parent).epoch_checkpoints()
        if newest:
            state["loss"] = torch.load(newest[-1], map_location="cpu", weights_only=True).get("loss")
    state["path"] = str(path)
    return state


def prune_checkpoints(exp_dir: Path, keep: int, newest: int) -> None:
    """Keep the ``keep`` checkpoints up to epoch ``newest`` (the one just written; 0 keeps all).
    Newer ones are left alone: they are the unreadable ones a resumed run skipped, and counting
    them could delete the only good checkpoint."""
    if keep <= 0:
        return
    done = [p for p in SystemDir(exp_dir).epoch_checkpoints()[::-1] if p <= checkpoint_path(exp_dir, newest)]
    for path in done[keep:]:
        path.unlink(missing_ok=True)


def config_differences(saved: Path, current: Sequence[Any]) -> list[str]:
    """Options whose value in ``current`` differs from the conf ``saved`` (written by an
    earlier run), except those in RESUMABLE_CHANGES; each as '--opt: saved -> current'."""
    old = to_conf_values(*read_resolved(saved, [type(c) for c in current]))
    new = to_conf_values(*current)
    skip = {"--" + name.replace("_", "-") for name in RESUMABLE_CHANGES}
    return [f"{k}: {old[k]} -> {new[k]}" for k in new if k not in skip and old.get(k) != new[k]]
