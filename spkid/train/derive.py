"""A system that differs from a trained one only in its back-end or in checkpoint averaging
(``steps/derive_system.py``): its config.conf and final.pt, with the base system's network and
embeddings linked rather than copied when the network is the same."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from spkid.config import SavedConf, format_value, read_resolved, write_resolved
from spkid.errors import SpkidError
from spkid.expdir import SystemDir
from spkid.fileio import link_or_copy
from spkid.options import SYSTEM_OPTIONS, EvalOptions, TrainOptions
from spkid.train.average import average_checkpoints, last_checkpoints
from spkid.train.checkpoints import save_atomic

# what a derived system may change: the evaluation options and the averaging of checkpoints
DERIVABLE_TRAIN = {"average_last"}


def changed_options(base: list, new: list) -> list[tuple[str, object, object]]:
    out = []
    for b, n in zip(base, new):
        for f in dataclasses.fields(b):
            if getattr(b, f.name) != getattr(n, f.name):
                out.append((type(b).__name__, f.name, getattr(b, f.name), getattr(n, f.name)))
    return out


def base_config(positionals: dict[str, str]) -> Path:
    """BASE_DIR/config.conf of a trained system (the derived system's options are the base's,
    changed by the command line)."""
    base = SystemDir(positionals["base_dir"])
    if not base.config.is_file() or not base.final.is_file():
        raise SpkidError(f"{base.root} holds no trained system ({base.config.name} and {base.final.name}): "
                         f"train it first (stage 3)")
    return base.config


BASE_CONF = SavedConf(SYSTEM_OPTIONS, base_config, "BASE_DIR/config.conf")


def derive_system(base: Path, out: Path, new: list) -> int:
    """Write ``out`` as ``base`` with the options ``new`` (every SYSTEM_OPTIONS group); options
    that change the network are refused."""
    if base.resolve() == out.resolve():
        raise SpkidError(f"derive_system.py writes a new system: OUT_DIR must differ from {base}")
    base_dir, out_dir = SystemDir(base), SystemDir(out)
    old = read_resolved(base_dir.config, SYSTEM_OPTIONS)
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
        save_atomic({"model": average_checkpoints(paths), "averaged": [str(p) for p in paths]}, out_dir.final)
        out_dir.record_derived_from(None)  # another network: nothing of the base's to share
        what = f"final.pt = mean of {', '.join(p.name for p in paths)}"
    else:
        link_or_copy(base_dir.final, out_dir.final)
        # stage 4 links the base's embeddings of each set (spkid.eval.extract_set.link_base_set)
        # once the base has them, instead of extracting them again
        out_dir.record_derived_from(base_dir)
        what = f"final.pt linked; stage 4 links {base}'s embeddings"
    write_resolved(out_dir.config, *new, header=f"derived by steps/derive_system.py from {base}: {said}")
    print(f"derive_system.py: {out} = {base} with {said}; {what}")
    return 0

