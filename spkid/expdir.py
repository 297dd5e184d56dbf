"""The layout of an experiment directory ``exp/<SYS>``: the one place that spells its paths.

    exp/<SYS>/config.conf                 the resolved options (stage 3; read by stages 4-6)
    exp/<SYS>/final.pt                    the trained network (stage 3)
    exp/<SYS>/.done.train                 run.sh's stage 3 marker
    exp/<SYS>/checkpoints/epoch_*.pt      training checkpoints
    exp/<SYS>/checkpoints/interrupted.pt  the checkpoint of a training run stopped mid-epoch by SIGTERM
    exp/<SYS>/log/<step>.log              the steps' logs (train.log, extract.<set>.log, score.<set>.log)
    exp/<SYS>/derived_from                a derived system: the system whose network it shares
    exp/<SYS>/initialised_from            a fine-tuned system: the --init-from it started from
    exp/<SYS>/embeddings/<set>/           stage 4: embeddings.{ark,scp}, xvector.{ark,scp}, utt2spk
    exp/<SYS>/scores/<set>/<list>.score   stage 5 (+ .metrics.json, .det.png)
    exp/<SYS>/backend/                    stage 5's fitted back-end: cohort_stats.npz (+ plda.npz, qmf.json)

A fusion (``exp/fusion/F1``) and the MFCC floor (``exp/mfcc_baseline``) keep their score files
in the same ``scores/<set>/<list>.score`` layout, so the table reads every row the same way.

Each stage output folder (``exp/<SYS>`` itself for stage 3, ``embeddings/<set>``, ``scores/<set>``,
``backend``) also holds ``provenance.json`` (:class:`Record`): the sha256 of every
input it was made from, the options it used, the sha256 of every file it wrote. Consumers check
it before use (:func:`check_current`), stage 4 and run.sh before calling a stage done
(docs/reliability.md, "Provenance").
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from spkid.errors import SpkidError
from spkid.fileio import atomic_write

#: the embeddings set of the training utterances the back-end learns from (stage 4 with --cohort-data)
COHORT = "cohort"


class _Under:
    """A file or folder of the experiment directory as an attribute of :class:`SystemDir`:
    ``_Under("backend", "plda.npz")`` on ``SystemDir("exp/EA4")`` is ``exp/EA4/backend/plda.npz``."""

    def __init__(self, *parts: str) -> None:
        self.parts = parts

    def __get__(self, system: SystemDir | None, owner: type) -> Path:
        return self if system is None else system.root.joinpath(*self.parts)  # (the class: the descriptor)


@dataclass(frozen=True)
class SystemDir:
    """``exp/<SYS>`` (or a fusion's or the floor's directory): where each of its files lives."""

    root: Path

    config = _Under("config.conf")
    final = _Under("final.pt")
    trained_marker = _Under(".done.train")  # run.sh's stage 3 marker (written there, and by an import)
    checkpoints = _Under("checkpoints")
    interrupted = _Under("checkpoints", "interrupted.pt")
    log = _Under("log")
    # the scoring back-end, fitted once (spkid.eval.backend): the cohort's statistics (mean crop,
    # speaker vectors, speaker means), the PLDA, the QMF, and its provenance.json
    backend = _Under("backend")
    backend_stats = _Under("backend", "cohort_stats.npz")
    plda = _Under("backend", "plda.npz")
    qmf = _Under("backend", "qmf.json")
    # what the system was derived or initialised from (read with the methods below)
    derived_from_record = _Under("derived_from")
    initialised_from_record = _Under("initialised_from")

    def __init__(self, root: str | os.PathLike) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def name(self) -> str:
        return self.root.name

    def epoch_checkpoint(self, epoch: int) -> Path:
        return self.checkpoints / f"epoch_{epoch:04d}.pt"

    def epoch_checkpoints(self) -> list[Path]:
        """The epoch checkpoints there, oldest first."""
        return sorted(self.checkpoints.glob("epoch_*.pt"))

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


# ---------------------------------------------------------------------------------- provenance
#
# Each stage output folder (embeddings/<set>/, scores/<set>/, fusion/<F>/, the table's folder)
# holds a record, provenance.json, of what it was made from: for every input file its content
# digest, the options it used (as config.conf states them), and the digests of the files it
# wrote. A consumer checks the record of what it reads before use, and run.sh calls a stage
# finished only when its marker is there and its record still agrees with the disk.

RECORD = "provenance.json"
SHORT = 8  # hex digits of a digest shown to people (RESULTS.md, messages)
# A file written this recently when it was hashed may change again within the same timestamp
# tick: its stat is then not recorded, and every check hashes it again (git's "racy" rule).
RACY_NS = 2_000_000_000
_CHUNK = 1 << 22


def file_digest(path: str | os.PathLike) -> str:
    """The sha256 of a file's content, read in 4 MiB chunks (``sha256sum`` prints the same)."""
    h = hashlib.sha256()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def _signature(st: os.stat_result) -> list[int]:
    """What changes whenever a file is written, truncated, replaced or touched (ctime cannot be
    set back by a user), so that an unchanged signature means unchanged content."""
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def fingerprint(path: Path, folder: Path) -> dict:
    """``path``'s digest (and its stat signature, unless racy), the path relative to ``folder``."""
    before = path.stat()
    digest = file_digest(path)
    after = path.stat()
    steady = _signature(before) == _signature(after) and \
        time.time_ns() - max(after.st_mtime_ns, after.st_ctime_ns) > RACY_NS
    return {"path": os.path.relpath(path, folder), "sha256": digest, "stat": _signature(after) if steady else None}


def fingerprint_problem(entry: dict, folder: Path) -> str | None:
    """None when the file ``entry`` names still has the recorded content, else what is wrong
    with it. An unchanged stat signature stands for the content (a stat instead of reading a
    3 GB ark); any other file is hashed again."""
    path = folder / entry["path"]
    try:
        st = path.stat()
    except OSError:
        return f"{os.path.normpath(path)} is missing"
    if not stat.S_ISREG(st.st_mode):  # (a record naming /dev/zero or a FIFO would never finish)
        return f"{os.path.normpath(path)} is not a regular file"
    if entry.get("stat") == _signature(st):
        return None
    now = file_digest(path)
    if now == entry["sha256"]:
        return None
    return f"{os.path.normpath(path)} changed (sha256 {entry['sha256'][:SHORT]} recorded, {now[:SHORT]} now)"


def config_options(config: Path, names: Sequence[str]) -> dict[str, str]:
    """The options ``names`` (``--num-eval-crops`` ...) as ``config`` sets them."""
    from spkid.config import read_values
    from spkid.options import SYSTEM_OPTIONS

    lines = read_values(config, SYSTEM_OPTIONS)
    return {n: lines.get(n, "") for n in names}


@dataclass
class Record:
    """What a stage output folder was made from: ``<folder>/provenance.json``."""

    folder: Path
    stage: int
    redo: str  # the command that makes the folder again (shown to the user, never run)
    inputs: dict[str, dict] = field(default_factory=dict)  # role (final.pt, wav.scp, ...) -> fingerprint
    config: str = ""  # the config.conf the options are read from, relative to the folder
    options: dict[str, str] = field(default_factory=dict)  # --name -> value, as used
    outputs: dict[str, dict] = field(default_factory=dict)  # file name -> fingerprint

    @classmethod
    def made_from(cls, folder: str | os.PathLike, stage: int, redo: str, inputs: dict[str, Path],
                  config: Path | None = None, options: dict[str, str] | None = None,
                  checked: dict[str, dict] | None = None) -> Record:
        """The record of a stage about to make ``folder`` from ``inputs`` (role -> file), and from
        ``checked`` (role -> the fingerprint another record holds, just checked by the consumer:
        :meth:`input_entry`)."""
        folder = Path(folder)
        try:
            entries = {role: fingerprint(Path(p), folder) for role, p in inputs.items()}
        except FileNotFoundError as e:
            raise SpkidError(f"{e.filename} not found: stage {stage} makes {folder} from it ({redo})") from None
        return cls(folder, stage, redo, {**(checked or {}), **entries},
                   os.path.relpath(config, folder) if config else "", dict(options or {}))

    def summary(self) -> dict[str, str]:
        """Input role -> digest and option -> value: what two makings of a folder must share."""
        return {**{r: e["sha256"] for r, e in self.inputs.items()}, **self.options}

    def differences(self, other: Record) -> list[str]:
        """How ``other`` was made otherwise (inputs' digests, options), e.g. 'final.pt 1a2b3c4d -> 5e6f7a8b'."""
        mine, theirs = self.summary(), other.summary()
        return [f"{k} {theirs.get(k, '-')[:SHORT]} -> {mine.get(k, '-')[:SHORT]}"
                for k in sorted(mine.keys() | theirs.keys()) if mine.get(k) != theirs.get(k)]

    def reasons_to_redo(self, old: Record | None) -> list[str]:
        """Why the folder's ``old`` record does not stand for this making: none, made from other
        inputs or options, or its files changed since; empty when the folder is done."""
        if old is None:
            return [f"no {RECORD}"]
        changed = self.differences(old)
        return [f"made with other inputs ({', '.join(changed)})"] if changed else old.problems(with_options=False)

    def input_entry(self, name: str, folder: Path) -> dict:
        """The recorded fingerprint of output ``name``, as an input of a record in ``folder``
        (checked just now: the consumer's record reuses the digest instead of reading the file again)."""
        entry = dict(self.outputs[name])
        entry["path"] = os.path.relpath(self.folder / entry["path"], folder)
        return entry

    def write(self, outputs: Iterable[Path]) -> None:
        """Fingerprint ``outputs`` (files in the folder) and write the record, atomically: last,
        once the outputs are complete."""
        self.outputs = {os.path.relpath(p, self.folder): fingerprint(Path(p), self.folder) for p in outputs}
        body = {k: v for k, v in asdict(self).items() if k != "folder"}
        with atomic_write(self.folder / RECORD) as f:
            json.dump(body, f, indent=1)
            f.write("\n")

    @classmethod
    def load(cls, folder: str | os.PathLike) -> Record | None:
        """The folder's record; None when it has none or one that is not a record (a file found
        on disk is data: every entry must be a path and a digest)."""
        path = Path(folder) / RECORD
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
            record = cls(Path(folder), int(body["stage"]), str(body["redo"]), dict(body["inputs"]),
                         str(body["config"]), {str(k): str(v) for k, v in dict(body["options"]).items()},
                         dict(body["outputs"]))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None
        entries = [*record.inputs.values(), *record.outputs.values()]
        if not all(isinstance(e, dict) and isinstance(e.get("path"), str) and isinstance(e.get("sha256"), str)
                   for e in entries):
            return None
        return record

    def problems(self, with_options: bool = True) -> list[str]:
        """What no longer agrees with the disk: inputs and outputs missing or changed, and (with
        ``with_options``) options that config.conf now sets otherwise."""
        found = [p for e in [*self.inputs.values(), *self.outputs.values()]
                 if (p := fingerprint_problem(e, self.folder)) is not None]
        if with_options and self.config:
            config = Path(os.path.normpath(self.folder / self.config))
            if not config.is_file():
                return [*found, f"{config} is missing"]
            try:
                now = config_options(config, list(self.options))
            except SpkidError as e:
                return [*found, str(e)]
            found += [f"{config} now sets {k}={now[k]} (made with {v})" for k, v in self.options.items() if now[k] != v]
        return found


def check_current(folder: str | os.PathLike, stage: int, redo: str, names: Iterable[str] = ()) -> Record:
    """``folder``'s record, before its files are used: a SpkidError naming the stale or missing
    file and the stage to re-run when the record is absent, lacks one of ``names`` or no longer
    agrees with the disk (options aside: the consumer uses the files as they were made)."""
    folder = Path(folder)
    record = Record.load(folder)
    if record is None:
        raise SpkidError(f"{folder} has no readable {RECORD} (the record of what stage {stage} made it from): "
                         f"re-run stage {stage} for it: {redo}")
    absent = [n for n in names if n not in record.outputs]
    found = [f"{folder / n} was not made by that stage" for n in absent] or record.problems(with_options=False)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise SpkidError(f"{found[0]}{more} since stage {stage} made {folder}: re-run stage {stage} for it: {redo}")
    return record
