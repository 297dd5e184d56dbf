"""Stage 4 for one data dir: its utterances split into parts, run in parallel, resumed and merged.

The parts are Kaldi-style jobs ``JOB=1:N`` of the ``--cmd`` runner (:mod:`spkid.jobs`: utils/run.py
on this machine, utils/slurm.py on a Slurm cluster), each the step command relaunched with
``--job=JOB`` and logging to ``exp/SYS/log/extract.<set>.JOB.log``; job K uses GPU (K-1) mod
``--gpus``. With the local runner on the CPU the parts are threads of this process sharing one
network instead. Each part writes ``split/emb.<K>.{ark,scp}`` atomically, so a failed or
pre-empted stage keeps its finished parts and a re-run redoes only the others; the merged ``embeddings.{ark,scp}`` is checked against wav.scp and
``xvector.{ark,scp}`` (one mean normalised vector per utterance) written beside it.
``provenance.json`` records what the set was made from (the digests of final.pt, wav.scp and
utt2spk, the crop options) and the digests of what it wrote (:mod:`spkid.expdir`), so a set
made otherwise, or changed since, is extracted again. The embedding itself is :mod:`spkid.eval.extract`'s.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from spkid.console import progress
from spkid.config import option, to_conf_values
from spkid.data.arks import set_problem
from spkid.data.datadir import DataDir, read_scp, read_table, write_table
from spkid.errors import SpkidError
from spkid.expdir import COHORT, RECORD, Record, SystemDir
from spkid.fileio import atomic_write, link_or_copy, writer_lock
from spkid.jobs import LOCAL_RUNNER, run_jobs, runs_here, split_contiguous
from spkid.eval.backend import describe, needs_training_set
from spkid.eval.extract import (ExtractError, cohort_subset, crop_samples, embed, load_system, merge_arks,
                                write_embeddings, write_utterance_vectors)
from spkid.options import EvalOptions


@dataclass
class ExtractOptions:
    nj: int = option(1, "parallel jobs (the utterances are split into nj parts)", min=1)
    gpus: int = option(0, "GPUs to spread the jobs over (job K on GPU (K-1) mod gpus of those it sees); 0 = CPU",
                       min=0)
    cmd: str = option(LOCAL_RUNNER, "job runner for the parts, Kaldi's --cmd (cmd.sh's extract_cmd): run.py on "
                      "this machine (CPU parts as threads of this process), or e.g. 'slurm.py --gres=gpu:1 "
                      "--time=4:00:00' (docs/cluster.md)")
    batch_utts: int = option(0, "utterances whose crops share one forward pass; 0: 16 on a GPU, 1 on the CPU "
                             "(where a one-utterance batch stays in the cache and runs faster)", min=0)
    read_workers: int = option(2, "audio-reading DataLoader workers per job (CPU jobs run as threads of one "
                               "process when --nj > 1: each reads its own audio)", min=0)
    cohort_data: str = option("", "training data dir whose utterances (--cohort-utts-per-spk per speaker) the back-end learns from: AS-norm cohort, mean subtraction, PLDA, QMF (extracted only when the system uses one)")
    allow_pipes: bool = option(False, "run wav.scp entries that are shell commands")
    quiet: bool = option(False, "no progress (bar on a terminal, plain lines in a log); the summary line stays")
    job: int = option(0, "internal: run only part JOB (1-based) of OUT_NAME, as a job of --cmd", min=0)
    out_name: str = option("", "embeddings/<name> to write (default: the data dir's name)")


def job_device(opts: ExtractOptions) -> torch.device:
    """Job K (1-based) on GPU (K-1) mod --gpus of those it sees: on this machine all of them, under
    Slurm with --gres=gpu:1 its own one (Slurm sets CUDA_VISIBLE_DEVICES)."""
    if opts.gpus > 0:
        if not torch.cuda.is_available():
            raise SpkidError("--gpus > 0 but CUDA is not available here; use --gpus 0 for the CPU")
        return torch.device("cuda", max(opts.job - 1, 0) % min(opts.gpus, torch.cuda.device_count()))
    return torch.device("cpu")


def job_model(exp_dir: Path, opts: ExtractOptions) -> torch.nn.Module:
    """The network on the job's device; on the CPU each of the --nj jobs gets its share of the cores
    (threads of this process or processes of their own alike: the same embeddings either way)."""
    device = job_device(opts)
    if device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // opts.nj))
    return load_system(exp_dir, device).model


def run_part(model: torch.nn.Module, evaluation: EvalOptions, opts: ExtractOptions, part: Part, progress,
             read_workers: int) -> int:
    device = next(model.parameters()).device
    batch_utts = opts.batch_utts or (16 if device.type == "cuda" else 1)
    stream = embed(model, part.items(), crop_samples(evaluation.eval_frames), evaluation.num_eval_crops, device,
                   batch_utts, read_workers, opts.allow_pipes)
    return write_embeddings(stream, part.ark, progress)


class _Stopped(Exception):
    """Raised in a part's thread when another part failed (or Ctrl-C), to end it early."""


def run_parts_in_threads(model: torch.nn.Module, evaluation: EvalOptions, opts: ExtractOptions, parts: list[Part],
                         bar) -> None:
    """CPU parts as threads of this process: one torch start-up and one network for all of them
    (each thread's forward passes use its share of the cores; torch releases the GIL in them).
    The first failure ends the other parts at their next utterance and is raised; the parts
    that finished keep their arks."""
    lock, stop = threading.Lock(), threading.Event()

    def tick():
        if stop.is_set():
            raise _Stopped
        with lock:
            bar.update(1)

    # no DataLoader workers: forking a process whose other threads run torch can deadlock the child
    with ThreadPoolExecutor(len(parts)) as pool:
        futures = [pool.submit(run_part, model, evaluation, opts, part, tick, 0) for part in parts]
        try:
            wait(futures, return_when=FIRST_EXCEPTION)
        finally:
            stop.set()
            wait(futures)
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        raise next((e for e in errors if not isinstance(e, _Stopped)), errors[0])


#: the options of config.conf a set's embeddings depend on (the cohort's also on its size)
CROP_OPTIONS = ("--eval-frames", "--num-eval-crops")
#: what stage 4 writes into a set's folder, recorded in its provenance.json
SET_FILES = ("embeddings.ark", "embeddings.scp", "xvector.ark", "xvector.scp", "utt2spk")


def set_making(exp_dir: Path, evaluation: EvalOptions, out_dir: Path, redo: str, data_files: dict[str, Path],
               options: Sequence[str] = CROP_OPTIONS) -> Record:
    """What a set's embeddings are made from: the trained weights, the data dir's lists and the
    crop options (spkid.expdir's provenance record). A set made otherwise is extracted again."""
    system = SystemDir(exp_dir)
    used = to_conf_values(evaluation)
    return Record.made_from(out_dir, 4, redo, {"final.pt": system.final, **data_files}, system.config,
                            {name: used[name] for name in options})


def data_lists(data_dir: Path) -> dict[str, Path]:
    """The lists of a data dir that decide what a set embeds: wav.scp, utt2spk and, when it cuts
    its recordings, segments."""
    names = ("wav.scp", "utt2spk", "segments")
    return {n: data_dir / n for n in names if n != "segments" or (data_dir / n).is_file()}


def read_info(path: Path) -> dict[str, str]:
    """``split/fingerprint`` (``<key> <value>`` lines), empty when absent."""
    return read_table(path) if path.is_file() else {}


def same_network_systems(exp_dir: Path) -> list[SystemDir]:
    """The systems whose embeddings ``exp_dir`` may link: the one it was derived from
    (``SystemDir.derived_from``; same network), then the others beside it derived from that one,
    which share its cohort (the base extracts none when its own back-end needs none)."""
    base = SystemDir(exp_dir).derived_from()
    if base is None:
        return []
    siblings = [SystemDir(d) for d in sorted(exp_dir.parent.iterdir())
                if d != exp_dir and d.is_dir() and SystemDir(d).derived_from() == base]
    return [base, *siblings]


def link_base_set(exp_dir: Path, out_dir: Path, making: Record, utts: list[str]) -> Path | None:
    """For a system derived from another: that system's (or, failing it, a sibling's) set of the
    same name, hard-linked into ``out_dir`` when it is complete and made as ``making`` would make
    it; its scp files rewritten to name the linked arks (re-extracting the other system later
    never changes what these read), and a record of its own. None when there is nothing to link."""
    for system in same_network_systems(exp_dir):
        src = system.embeddings(out_dir.name)
        if not making.reasons_to_redo(Record.load(src)) and part_done(src / "embeddings.ark", utts):
            break
    else:
        return None
    for name in SET_FILES:
        if name.endswith(".scp"):
            with atomic_write(out_dir / name) as out:
                for utt, ark, offset in read_scp(src / name):
                    out.write(f"{utt} {out_dir / Path(ark).name}:{offset}\n")
        else:
            link_or_copy(src / name, out_dir / name)
    making.write([out_dir / name for name in SET_FILES])
    return src


def part_done(ark: Path, utts: list[str]) -> bool:
    """Whether ``ark`` and its scp hold exactly ``utts``, every record whole (:func:`spkid.data.arks.set_problem`)."""
    return set_problem(ark, utts) is None


@dataclass
class Part:
    """Job ``job`` (1-based, Kaldi's JOB) of a set: its utterances and audio, written to
    ``split/wav.<job>`` for a job process to read, and its ``split/emb.<job>.{ark,scp}``."""
    job: int
    wav_scp: dict[str, str]
    split: Path

    @property
    def ark(self) -> Path:
        return self.split / f"emb.{self.job}.ark"

    def items(self) -> list[tuple[str, str]]:
        return sorted(self.wav_scp.items())

    def done(self) -> bool:
        return part_done(self.ark, sorted(self.wav_scp))

    @classmethod
    def read(cls, split: Path, job: int) -> Part:
        wav_list = split / f"wav.{job}"
        if not wav_list.is_file():
            raise ExtractError(f"{wav_list} not found: job {job} runs only as part of steps/extract.py --cmd, "
                               f"which writes it; run the stage itself")
        return cls(job, dict(line.split(" ", 1) for line in wav_list.read_text().splitlines()), split)


def split_parts(split: Path, wav_scp: dict[str, str], nj: int, making: Record) -> list[Part]:
    """The set's utterances in ``nj`` contiguous parts (sorted order), listed in ``split/``. Parts
    finished for the same making are kept (a re-run redoes only the others); parts made
    otherwise are removed."""
    utts = sorted(wav_scp)
    nj = max(1, min(nj, len(utts)))
    split.mkdir(parents=True, exist_ok=True)
    if read_info(split / "fingerprint") != making.summary():
        for p in split.iterdir():
            p.unlink()
        write_table(split / "fingerprint", making.summary())
    parts = []
    for k, chunk in enumerate(split_contiguous(utts, nj), 1):
        part = Part(k, {u: wav_scp[u] for u in chunk}, split)
        with atomic_write(split / f"wav.{part.job}") as f:
            f.writelines(f"{u} {w}\n" for u, w in part.items())
        parts.append(part)
    return parts


def runs_in_process(opts: ExtractOptions) -> bool:
    """The local runner's CPU parts run as threads of this process (one torch start-up and one
    network instead of a process each: faster, see docs/benchmarks.md), and one local job is
    this process; anything else goes through ``--cmd``."""
    return runs_here(opts.cmd) and (opts.gpus == 0 or opts.nj == 1)


def run_parts(exp_dir: Path, evaluation: EvalOptions, opts: ExtractOptions, job_command: Sequence[str],
              parts: list[Part], name: str, what: str) -> None:
    """The unfinished parts: in this process (see :func:`runs_in_process`), or as jobs
    ``JOB=1:N`` of ``--cmd`` with logs ``exp/SYS/log/extract.<name>.JOB.log`` (each job finds
    whether its part is already done)."""
    todo = [part for part in parts if not part.done()]
    if not todo:
        return
    if not runs_in_process(opts):
        log = SystemDir(exp_dir).log / f"extract.{name}.JOB.log"
        print(f"extract.py: {what}: {len(todo)} of {len(parts)} part(s) to do through '{opts.cmd}' "
              f"(logs {log.parent}/extract.{name}.*.log)")
        run_jobs(opts.cmd or LOCAL_RUNNER, len(parts), log, [*job_command, "--job=JOB", f"--out-name={name}"],
                 f"extraction of {what}")
        return
    n = sum(len(p.wav_scp) for p in parts)
    with progress(total=n, desc=f"extract {what}", unit="utt", initial=n - sum(len(p.wav_scp) for p in todo),
                  quiet=opts.quiet) as bar:
        model = job_model(exp_dir, opts)
        if len(todo) == 1:
            run_part(model, evaluation, opts, todo[0], lambda: bar.update(1), opts.read_workers)
        else:
            run_parts_in_threads(model, evaluation, opts, todo, bar)


def run_job(exp_dir: Path, evaluation: EvalOptions, opts: ExtractOptions) -> int:
    """Part ``--job`` of ``embeddings/<--out-name>``: one job of :func:`run_parts`' ``--cmd``."""
    part = Part.read(SystemDir(exp_dir).embeddings(opts.out_name) / "split", opts.job)
    if part.done():
        print(f"extract.py: part {part.job} ({len(part.wav_scp)} utterances) is already done: {part.ark}")
        return 0
    start = time.time()
    done = [0]

    def tick():  # plain lines in the job's log
        done[0] += 1
        if done[0] % 100 == 0:
            print(f"extract.py: part {part.job}: {done[0]} of {len(part.wav_scp)} utterances")

    n = run_part(job_model(exp_dir, opts), evaluation, opts, part, tick, opts.read_workers)
    print(f"extract.py: part {part.job}: {n} utterances -> {part.ark} ({time.time() - start:.0f}s)")
    return 0


def check_utt2spk(utts: list[str], utt2spk: dict[str, str], what: str) -> None:
    absent = [u for u in utts if u not in utt2spk]
    if absent:  # (its copy of utt2spk left them out without a word)
        raise ExtractError(f"{len(absent)} utterance(s) of {what}'s wav.scp are not in its utt2spk, e.g. "
                           f"'{absent[0]}': add them to utt2spk (or remove them from wav.scp); "
                           f"utils/validate_data_dir.py lists them")


def already_extracted(out_dir: Path, utts: list[str], making: Record, what: str) -> bool:
    """Whether ``out_dir`` holds the set as ``making`` would make it, unchanged since (its
    provenance record); else the record is removed (the set counts as done only once that is
    back) and why is said."""
    final = out_dir / "embeddings.ark"
    old = Record.load(out_dir)
    redo = making.reasons_to_redo(old) or ([damage] if (damage := set_problem(final, utts)) else [])
    if not redo:
        print(f"extract.py: {final} already holds all {len(utts)} utterances of {what}; nothing to do")
        return True
    if final.is_file() and old is not None:
        print(f"extract.py: {final}: {'; '.join(redo)}; extracting again")
    (out_dir / RECORD).unlink(missing_ok=True)
    return False


def merge_parts(out_dir: Path, parts: list[Part], utts: list[str], utt2spk: dict[str, str], making: Record,
                what: str) -> int:
    """The parts' arks into ``embeddings.{ark,scp}``, checked against the set's utterances, with
    ``xvector.{ark,scp}``, ``utt2spk`` and, last (it marks the set done), the provenance record."""
    final = out_dir / "embeddings.ark"
    n = merge_arks([p.ark for p in parts], final)
    got = [u for u, _, _ in read_scp(final.with_suffix(".scp"))]
    if got != utts:
        missing = sorted(set(utts) - set(got))
        raise ExtractError(f"{final.with_suffix('.scp')} has {n} utterances but {what} has {len(utts)}; "
                           f"missing e.g. {', '.join(missing[:5])}; remove {out_dir} and re-run")
    write_table(out_dir / "utt2spk", {u: utt2spk[u] for u in utts})
    write_utterance_vectors(final.with_suffix(".scp"), out_dir / "xvector.ark")
    making.write([out_dir / name for name in SET_FILES])
    shutil.rmtree(parts[0].split)
    return n


def extract_set(exp_dir: Path, evaluation: EvalOptions, opts: ExtractOptions, job_command: Sequence[str],
                wav_scp: dict[str, str], utt2spk: dict[str, str], out_dir: Path, what: str, making: Record) -> None:
    """Embeddings of the ``wav_scp`` utterances into ``out_dir`` as ``making`` records them:
    split into parts, the parts not yet done run (``job_command --job=JOB --out-name=NAME`` is
    one job), merged and checked."""
    utts = sorted(wav_scp)
    check_utt2spk(utts, utt2spk, what)
    if already_extracted(out_dir, utts, making, what):
        return
    linked = link_base_set(exp_dir, out_dir, making, utts)
    if linked is not None:
        print(f"extract.py: {what}: linked from {linked} (a system with the same network)")
        return
    start = time.time()
    parts = split_parts(out_dir / "split", wav_scp, opts.nj, making)
    run_parts(exp_dir, evaluation, opts, job_command, parts, out_dir.name, what)
    n = merge_parts(out_dir, parts, utts, utt2spk, making, what)
    print(f"extract.py: {n} utterances of {what} -> {out_dir / 'embeddings.ark'} ({len(parts)} job(s), "
          f"{time.time() - start:.0f}s)")


def extract_data(exp_dir: Path, data_dir: Path, opts: ExtractOptions, evaluation: EvalOptions,
                 job_command: Sequence[str]) -> int:
    """Stage 4 of ``data_dir`` with ``exp_dir``'s network (and of the training utterances, when the
    system's back-end needs them (AS-norm cohort, mean subtraction, PLDA, QMF; see
    :mod:`spkid.eval.backend`) and ``--cohort-data`` names the training data); ``evaluation`` are the system's
    evaluation options. ``job_command`` is the step's command line for one job of ``--cmd``."""
    if opts.job > 0:
        return run_job(exp_dir, evaluation, opts)
    data = DataDir.load(data_dir, opts.allow_pipes)
    out = SystemDir(exp_dir).embeddings(data_dir.name)
    with writer_lock(out, f"extracting {data_dir}"):  # one writer per set (the GPU parts are its children)
        making = set_making(exp_dir, evaluation, out, f"steps/extract.sh {exp_dir} {data_dir}", data_lists(data_dir))
        extract_set(exp_dir, evaluation, opts, job_command, data.wav_scp, data.utt2spk, out, str(data_dir), making)
    if opts.cohort_data and needs_training_set(evaluation):
        if not (Path(opts.cohort_data) / "wav.scp").is_file():  # (VoxCeleb1 alone: no training set)
            raise ExtractError(f"{exp_dir}'s back-end ({describe(evaluation)}) learns from training utterances, but "
                               f"{opts.cohort_data} (--cohort-data) is not there: obtain the training set (stages 1-2, "
                               f"docs/voxceleb.md) or score {exp_dir} without those options")
        train = DataDir.load(opts.cohort_data, opts.allow_pipes)
        subset = cohort_subset(train.spk2utt, evaluation.cohort_utts_per_spk)
        out = SystemDir(exp_dir).embeddings(COHORT)
        with writer_lock(out, f"extracting the training utterances of {opts.cohort_data}"):
            train_dir = Path(opts.cohort_data)
            making = set_making(exp_dir, evaluation, out, f"steps/extract.sh --cohort-data {train_dir} {exp_dir} {data_dir}",
                                data_lists(train_dir),
                                (*CROP_OPTIONS, "--cohort-utts-per-spk"))
            extract_set(exp_dir, evaluation, opts, job_command, {u: train.wav_scp[u] for u in subset}, train.utt2spk, out,
                        f"the back-end's training utterances ({len(train.spk2utt)} speakers of {opts.cohort_data})",
                        making)
    return 0
