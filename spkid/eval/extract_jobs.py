"""Stage 4 for one data dir: its utterances split into parts, run in parallel, resumed and merged.

Part k runs on GPU k mod ``--gpus`` as a process of its own (the step command relaunched with
``--job=k``), or, on the CPU, as a thread of this process sharing one network. Each part writes
``split/emb.<k>.{ark,scp}``; the merged ``embeddings.{ark,scp}`` is checked against wav.scp and
``xvector.{ark,scp}`` (one mean normalised vector per utterance) written beside it.
``extract.info`` records what the set was made from (crops, final.pt, wav.scp), so a set made
otherwise is extracted again. The embedding itself is :mod:`spkid.eval.extract`'s.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from tqdm import tqdm

from spkid.config import option
from spkid.data.arks import set_problem
from spkid.data.datadir import DataDir, read_scp, read_table, write_table
from spkid.errors import SpkidError
from spkid.expdir import COHORT, SystemDir
from spkid.fileio import atomic_write, link_or_copy, writer_lock
from spkid.eval.backend import needs_training_set
from spkid.eval.extract import (ExtractError, cohort_subset, crop_samples, embed, load_system, merge_arks,
                                write_embeddings, write_utterance_vectors)
from spkid.options import EvalOptions


@dataclass
class ExtractOptions:
    nj: int = option(1, "parallel jobs (the utterances are split into nj parts)", min=1)
    gpus: int = option(0, "GPUs to spread the jobs over (job k on GPU k mod gpus); 0 = CPU", min=0)
    batch_utts: int = option(0, "utterances whose crops share one forward pass; 0: 16 on a GPU, 1 on the CPU "
                             "(where a one-utterance batch stays in the cache and runs faster)", min=0)
    read_workers: int = option(2, "audio-reading DataLoader workers per job (CPU jobs run as threads of one "
                               "process when --nj > 1: each reads its own audio)", min=0)
    cohort_data: str = option("", "training data dir whose utterances (--cohort-utts-per-spk per speaker) the back-end learns from: AS-norm cohort, mean subtraction, PLDA, QMF (extracted only when the system uses one)")
    allow_pipes: bool = option(False, "run wav.scp entries that are shell commands")
    job: int = option(-1, "internal: run only part JOB of OUT_NAME (set by the parent)")
    out_name: str = option("", "embeddings/<name> to write (default: the data dir's name)")


def job_device(opts: ExtractOptions) -> torch.device:
    if opts.gpus > 0:
        if not torch.cuda.is_available():
            raise SpkidError("--gpus > 0 but CUDA is not available here; use --gpus 0 for the CPU")
        return torch.device("cuda", 0)  # the parent sets CUDA_VISIBLE_DEVICES per job
    return torch.device("cpu")


def job_model(exp_dir: Path, opts: ExtractOptions) -> torch.nn.Module:
    """The network on the job's device; on the CPU each of the --nj jobs gets its share of the cores."""
    device = job_device(opts)
    if device.type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(opts.nj, 1)))
    return load_system(exp_dir, device).model


def run_part(model: torch.nn.Module, ev: EvalOptions, opts: ExtractOptions, items, ark: Path, progress,
             read_workers: int) -> int:
    device = next(model.parameters()).device
    batch_utts = opts.batch_utts or (16 if device.type == "cuda" else 1)
    stream = embed(model, items, crop_samples(ev.eval_frames), ev.num_eval_crops, device,
                   batch_utts, read_workers, opts.allow_pipes)
    return write_embeddings(stream, ark, progress)


class _Stopped(Exception):
    """Raised in a part's thread when another part failed (or Ctrl-C), to end it early."""


def run_parts_in_threads(model: torch.nn.Module, ev: EvalOptions, opts: ExtractOptions,
                         parts: dict[int, list[tuple[str, str]]], arks: list[Path], bar) -> None:
    """CPU parts as threads of this process: one torch start-up and one network for all of them
    (each thread's forward passes use its share of the cores; torch releases the GIL in them).
    The first failure ends the other parts at their next utterance and is raised."""
    lock, stop = threading.Lock(), threading.Event()

    def tick():
        if stop.is_set():
            raise _Stopped
        with lock:
            bar.update(1)

    # no DataLoader workers: forking a process whose other threads run torch can deadlock the child
    with ThreadPoolExecutor(len(parts)) as pool:
        futures = [pool.submit(run_part, model, ev, opts, items, arks[k], tick, 0) for k, items in parts.items()]
        try:
            wait(futures, return_when=FIRST_EXCEPTION)
        finally:
            stop.set()
            wait(futures)
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        raise next((e for e in errors if not isinstance(e, _Stopped)), errors[0])


def fingerprint(exp_dir: Path, ev: EvalOptions, wav_scp: dict[str, str]) -> dict[str, str]:
    """What a set's embeddings depend on: the crops, the trained weights and the audio list.
    Kept in extract.info (and split/fingerprint while parts are being made): a set made with
    other values is extracted again rather than reused."""
    model = SystemDir(exp_dir).final
    st = model.stat() if model.is_file() else None
    wav = hashlib.sha1("".join(f"{u} {wav_scp[u]}\n" for u in sorted(wav_scp)).encode()).hexdigest()
    return {"crops": str(ev.num_eval_crops or "whole"), "eval_frames": str(ev.eval_frames),
            "model": f"{st.st_size}:{st.st_mtime_ns}" if st else "none", "wav.scp-sha1": wav}


def read_info(path: Path) -> dict[str, str]:
    """``extract.info`` or ``split/fingerprint`` (``<key> <value>`` lines), empty when absent."""
    return read_table(path) if path.is_file() else {}


def link_base_set(exp_dir: Path, out_dir: Path, fp: dict[str, str], utts: list[str]) -> Path | None:
    """For a system derived from another (``SystemDir.derived_from``; same network): the other's set of the
    same name, hard-linked into ``out_dir`` when it is complete with the same fingerprint; its
    scp files rewritten to name the linked arks (re-extracting the other system later never
    changes what these read). None when there is nothing to link."""
    base = SystemDir(exp_dir).derived_from()
    if base is None:
        return None
    src = base.embeddings(out_dir.name)
    info = read_info(src / "extract.info")
    if not part_done(src / "embeddings.ark", utts) or {k: info.get(k) for k in fp} != fp:
        return None
    files = sorted((f for f in src.iterdir() if f.is_file() and not f.name.startswith(".")),
                   key=lambda f: f.name == "extract.info")  # extract.info, which marks the set done, last
    for f in files:
        if f.suffix == ".scp":
            with atomic_write(out_dir / f.name) as out:
                for utt, ark, offset in read_scp(f):
                    out.write(f"{utt} {out_dir / Path(ark).name}:{offset}\n")
        else:
            link_or_copy(f, out_dir / f.name)
    return src


def part_done(ark: Path, utts: list[str]) -> bool:
    """Whether ``ark`` and its scp hold exactly ``utts``, every record whole (:func:`spkid.data.arks.set_problem`)."""
    return set_problem(ark, utts) is None


def run_job(exp_dir: Path, ev: EvalOptions, opts: ExtractOptions) -> int:
    """Part ``--job`` of ``embeddings/<--out-name>``, in a process the parent started."""
    split = SystemDir(exp_dir).embeddings(opts.out_name) / "split"
    utts = (split / f"utts.{opts.job}").read_text().split()
    wav = dict(line.split(" ", 1) for line in (split / f"wav.{opts.job}").read_text().splitlines())
    counter = split / f"progress.{opts.job}"
    done = [0]

    def tick():
        done[0] += 1
        if done[0] % 20 == 0 or done[0] == len(utts):
            counter.write_text(str(done[0]))

    run_part(job_model(exp_dir, opts), ev, opts, [(u, wav[u]) for u in utts], split / f"emb.{opts.job}.ark", tick,
             opts.read_workers)
    return 0


def extract_set(exp_dir: Path, ev: EvalOptions, opts: ExtractOptions, job_command: Sequence[str],
                wav_scp: dict[str, str], utt2spk: dict[str, str], out_dir: Path, what: str) -> None:
    """Embeddings of the ``wav_scp`` utterances into ``out_dir``; a GPU part runs as
    ``job_command --job=K --out-name=NAME`` (the step's own command line)."""
    utts = sorted(wav_scp)
    absent = [u for u in utts if u not in utt2spk]
    if absent:  # (its copy of utt2spk left them out without a word)
        raise ExtractError(f"{len(absent)} utterance(s) of {what}'s wav.scp are not in its utt2spk, e.g. "
                           f"'{absent[0]}': add them to utt2spk (or remove them from wav.scp); "
                           f"utils/validate_data_dir.py lists them")
    final = out_dir / "embeddings.ark"
    info_path = out_dir / "extract.info"
    fp = fingerprint(exp_dir, ev, wav_scp)
    old = read_info(info_path)
    damage = set_problem(final, utts) if old else None
    if old and not damage and {k: old.get(k) for k in fp} == fp and (out_dir / "utt2spk").is_file():
        if not part_done(out_dir / "xvector.ark", utts):  # (written before the vectors were, or damaged since)
            write_utterance_vectors(final.with_suffix(".scp"), out_dir / "xvector.ark")
        print(f"extract.py: {final} already holds all {len(utts)} utterances of {what}; nothing to do")
        return
    linked = link_base_set(exp_dir, out_dir, fp, utts)
    if linked is not None:
        print(f"extract.py: {what}: linked from {linked} (a system with the same network)")
        return
    if damage and final.is_file():
        print(f"extract.py: {damage}")
    elif final.is_file() and old:
        changed = ", ".join(f"{k} {old.get(k, '?')} -> {v}" for k, v in fp.items() if old.get(k) != v)
        print(f"extract.py: {final} was made with other settings ({changed or 'incomplete'}); extracting again")
    info_path.unlink(missing_ok=True)  # the set counts as done only once extract.info is back
    nj = max(1, min(opts.nj, len(utts)))
    split = out_dir / "split"
    split.mkdir(parents=True, exist_ok=True)
    if read_info(split / "fingerprint") != fp:  # parts made with other settings are not reused
        for p in split.iterdir():
            p.unlink()
        write_table(split / "fingerprint", fp)
    parts = [utts[k * len(utts) // nj:(k + 1) * len(utts) // nj] for k in range(nj)]
    arks = [split / f"emb.{k}.ark" for k in range(nj)]
    todo = [k for k in range(nj) if not part_done(arks[k], parts[k])]
    start = time.time()
    initial = len(utts) - sum(len(parts[k]) for k in todo)
    bar = tqdm(total=len(utts), desc=f"extract {what}", unit="utt", initial=initial)
    if nj == 1 and todo:
        run_part(job_model(exp_dir, opts), ev, opts, [(u, wav_scp[u]) for u in utts], arks[0], lambda: bar.update(1),
                 opts.read_workers)
    elif todo and opts.gpus == 0:
        run_parts_in_threads(job_model(exp_dir, opts), ev, opts, {k: [(u, wav_scp[u]) for u in parts[k]] for k in todo},
                             arks, bar)
    elif todo:
        log_dir = SystemDir(exp_dir).log
        log_dir.mkdir(parents=True, exist_ok=True)
        procs = {}
        for k in todo:
            (split / f"utts.{k}").write_text("\n".join(parts[k]) + "\n")
            (split / f"wav.{k}").write_text("".join(f"{u} {wav_scp[u]}\n" for u in parts[k]))
            (split / f"progress.{k}").write_text("0")
            env = dict(os.environ)
            if opts.gpus > 0:
                env["CUDA_VISIBLE_DEVICES"] = str(k % opts.gpus)
            log = log_dir / f"extract.{out_dir.name}.{k}.log"
            cmd = [*job_command, f"--job={k}", f"--out-name={out_dir.name}"]
            procs[k] = (subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env), log)
        shown = bar.n
        while procs:
            time.sleep(1.0)
            now = initial + sum(int((split / f"progress.{k}").read_text() or 0) for k in todo)
            bar.update(now - shown)
            shown = now
            for k, (p, log) in list(procs.items()):
                if p.poll() is None:
                    continue
                del procs[k]
                if p.returncode != 0:
                    for q, _ in procs.values():
                        q.terminate()
                    tail = log.read_text().strip().splitlines()[-3:]
                    raise ExtractError(f"extraction job {k} failed (see {log}): {' | '.join(tail)}")
    bar.close()
    n = merge_arks(arks, final)
    got = [u for u, _, _ in read_scp(final.with_suffix(".scp"))]
    if got != utts:
        missing = sorted(set(utts) - set(got))
        raise ExtractError(f"{final.with_suffix('.scp')} has {n} utterances but {what} has {len(utts)}; "
                           f"missing e.g. {', '.join(missing[:5])}; remove {out_dir} and re-run")
    write_table(out_dir / "utt2spk", {u: utt2spk[u] for u in utts if u in utt2spk})
    write_utterance_vectors(final.with_suffix(".scp"), out_dir / "xvector.ark")
    write_table(info_path, {"utterances": str(n), **fp})  # last: it marks the set done
    for p in split.iterdir():
        p.unlink()
    split.rmdir()
    print(f"extract.py: {n} utterances of {what} -> {final} ({nj} job(s), {time.time() - start:.0f}s)")




def extract_data(exp_dir: Path, data_dir: Path, opts: ExtractOptions, ev: EvalOptions,
                 job_command: Sequence[str]) -> int:
    """Stage 4 of ``data_dir`` with ``exp_dir``'s network (and of the training utterances, when the
    system's back-end needs them (AS-norm cohort, mean subtraction, PLDA, QMF; see
    :mod:`spkid.eval.backend`) and ``--cohort-data`` names the training data); ``ev`` are the system's
    evaluation options. ``job_command`` relaunches the step for one GPU part."""
    if opts.job >= 0:
        return run_job(exp_dir, ev, opts)
    data = DataDir.load(data_dir, opts.allow_pipes)
    out = SystemDir(exp_dir).embeddings(data_dir.name)
    with writer_lock(out, f"extracting {data_dir}"):  # one writer per set (the GPU parts are its children)
        extract_set(exp_dir, ev, opts, job_command, data.wav_scp, data.utt2spk, out, str(data_dir))
    if opts.cohort_data and needs_training_set(ev):
        train = DataDir.load(opts.cohort_data, opts.allow_pipes)
        subset = cohort_subset(train.spk2utt, ev.cohort_utts_per_spk)
        out = SystemDir(exp_dir).embeddings(COHORT)
        with writer_lock(out, f"extracting the training utterances of {opts.cohort_data}"):
            extract_set(exp_dir, ev, opts, job_command, {u: train.wav_scp[u] for u in subset}, train.utt2spk, out,
                        f"the back-end's training utterances ({len(train.spk2utt)} speakers of {opts.cohort_data})")
    return 0
