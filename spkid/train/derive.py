"""A system that differs from a trained one only in its back-end or in checkpoint averaging
(``steps/derive_system.py``): its config.conf and final.pt, with the base system's network and
embeddings linked rather than copied when the network is the same."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

import torch

from spkid.config import format_value, read_resolved, write_resolved
from spkid.errors import SpkidError
from spkid.fileio import atomic_write
from spkid.options import SYSTEM_OPTIONS, EvalOptions, TrainOptions
from spkid.train.average import average_checkpoints, last_checkpoints

# what a derived system may change: the evaluation options and the averaging of checkpoints
DERIVABLE_TRAIN = {"average_last"}


def link_or_copy(src: Path, dst: Path) -> None:
    """A hard link (same inode and mtime, so extraction's fingerprint matches); a copy keeping
    the mtime across file systems."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.link.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def own_scp(src: Path, dst: Path) -> None:
    """``src`` with each ark path replaced by the ark of that name beside ``dst`` (its linked
    copy), so that re-extracting the base system never changes what ``dst`` reads."""
    lines = []
    for line in src.read_text(encoding="utf-8").splitlines():
        utt, where = line.split(" ", 1)
        ark, _, offset = where.rpartition(":")
        lines.append(f"{utt} {dst.parent / Path(ark).name}:{offset}\n")
    with atomic_write(dst) as f:
        f.writelines(lines)


def changed_options(base: list, new: list) -> list[tuple[str, object, object]]:
    out = []
    for b, n in zip(base, new):
        for f in dataclasses.fields(b):
            if getattr(b, f.name) != getattr(n, f.name):
                out.append((type(b).__name__, f.name, getattr(b, f.name), getattr(n, f.name)))
    return out


def base_config(positionals: list[str]) -> Path:
    """BASE_DIR/config.conf of a trained system (for ``parse_options(first_conf=...)``: the
    derived system's options are the base's, changed by the command line)."""
    base = Path(positionals[0])
    conf = base / "config.conf"
    if not conf.is_file() or not (base / "final.pt").is_file():
        raise SpkidError(f"{base} holds no trained system (config.conf and final.pt): train it first (stage 3)")
    return conf


def derive_system(base: Path, out: Path, new: list) -> int:
    """Write ``out`` as ``base`` with the options ``new`` (every SYSTEM_OPTIONS group); options
    that change the network are refused."""
    if base.resolve() == out.resolve():
        raise SpkidError(f"derive_system.py writes a new system: OUT_DIR must differ from {base}")
    old = read_resolved(base / "config.conf", SYSTEM_OPTIONS)
    changes = changed_options(old, new)
    network = [(g, f) for g, f, _, _ in changes
               if g != EvalOptions.__name__ and not (g == TrainOptions.__name__ and f in DERIVABLE_TRAIN)]
    if network:
        names = ", ".join("--" + f.replace("_", "-") for _, f in network)
        raise SpkidError(f"{names} would change the network of {base}: train a new system with it (stage 3) "
                         f"instead of deriving one")
    said = " ".join(f"--{f.replace('_', '-')}={format_value(v)}" for _, f, _, v in changes) or "no change"
    out.mkdir(parents=True, exist_ok=True)
    train_new = next(o for o in new if isinstance(o, TrainOptions))
    train_old = next(o for o in old if isinstance(o, TrainOptions))
    if train_new.average_last != train_old.average_last and train_new.average_last > 0:
        paths = last_checkpoints(base, train_new.average_last)
        final = out / "final.pt"
        tmp = final.with_name(".final.pt.avg.tmp")
        torch.save({"model": average_checkpoints(paths), "averaged": [str(p) for p in paths]}, tmp)
        os.replace(tmp, final)
        what = f"final.pt = mean of {', '.join(p.name for p in paths)}"
    else:
        link_or_copy(base / "final.pt", out / "final.pt")
        linked = 0
        for src in sorted((base / "embeddings").glob("*/*")):
            # stage 4's marker is not linked: stage 4 runs for OUT_DIR and adds what its back-end needs
            if src.is_file() and not src.name.startswith("."):
                dst = out / "embeddings" / src.parent.name / src.name
                if src.suffix == ".scp":
                    own_scp(src, dst)
                else:
                    link_or_copy(src, dst)
                linked += 1
        what = f"final.pt and {linked} embedding file(s) of {base} linked"
    write_resolved(out / "config.conf", *new, header=f"derived by steps/derive_system.py from {base}: {said}")
    print(f"derive_system.py: {out} = {base} with {said}; {what}")
    return 0

