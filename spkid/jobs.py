"""Kaldi's job-runner contract (utils/run.pl, utils/slurm.pl), for utils/run.py (this machine) and
utils/slurm.py (a Slurm cluster, one ``srun`` per job):

    RUNNER [OPTIONS] [JOB=1:N] LOG COMMAND [ARGS...]

runs COMMAND once per job index with every ``JOB`` (as a word: ``extract.JOB.log``, ``--job=JOB``)
in LOG and the command replaced by the index, each job's output in its own log (a header with
the command, its start, and a footer with its exit code and time), waits for all of them, and
exits non-zero naming the failed jobs and their logs. One argument is a shell command line as it
is (pipes allowed); several are quoted word by word. A SIGTERM or SIGINT is passed on to the
running jobs, which are waited for: a job that finished keeps its outputs.

The steps call a runner through :func:`run_jobs` with the ``--cmd`` string of cmd.sh.
Standard library only: the runners start in a fraction of a second.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from spkid.errors import SpkidError

JOB_RANGE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(\d+):(\d+)$")
LOCAL_RUNNER = "run.py"


class JobsFailed(SpkidError):
    """Some jobs of a runner call failed; the message names them and their logs."""


@dataclass
class JobSpec:
    """One runner call: ``options`` (the runner's own and, for Slurm, srun's), the job indices,
    the log-file template and the command template (both still holding the job variable)."""
    options: list[str]
    variable: str
    first: int
    last: int
    log: str
    command: list[str]
    max_jobs_run: int = 0  # 0: all at once

    def substitute(self, text: str, job: int) -> str:
        return re.sub(rf"\b{self.variable}\b", str(job), text) if self.variable else text

    def command_line(self, job: int) -> str:
        words = [self.substitute(w, job) for w in self.command]
        return words[0] if len(words) == 1 else shlex.join(words)


def parse_args(prog: str, argv: Sequence[str]) -> JobSpec:
    """``[OPTIONS] [VAR=A:B] LOG COMMAND...``; options are ``--name=value`` words (or lone flags)
    before the rest, ``--max-jobs-run=N`` is the runner's own."""
    argv = list(argv)
    options, max_jobs = [], 0
    while argv and argv[0].startswith("-"):
        opt = argv.pop(0)
        if opt.startswith("--max-jobs-run"):
            value = opt.partition("=")[2] or (argv.pop(0) if argv else "")
            if not value.isdigit() or int(value) < 1:
                raise SpkidError(f"{prog}: --max-jobs-run takes a whole number >= 1, not '{value}'")
            max_jobs = int(value)
        else:
            options.append(opt)
    variable, first, last = "", 1, 1
    if argv and (m := JOB_RANGE.match(argv[0])):
        argv.pop(0)
        variable, first, last = m.group(1), int(m.group(2)), int(m.group(3))
        if first > last:
            raise SpkidError(f"{prog}: empty job range {variable}={first}:{last}")
    if len(argv) < 2:
        raise SpkidError(f"{prog}: usage: {prog} [options] [JOB=1:N] LOG COMMAND [ARGS...] "
                         f"(got {shlex.join(argv) or 'nothing'} after the options)")
    log = argv.pop(0)
    if not log.endswith(".log"):
        raise SpkidError(f"{prog}: expected the log file (…/NAME.JOB.log) before the command, got '{log}'; "
                         f"give options as --name=value, before it")
    if variable and len(range(first, last + 1)) > 1 and variable not in re.findall(r"\b\w+\b", log):
        raise SpkidError(f"{prog}: the log file '{log}' has no {variable} in its name: the jobs would share it")
    return JobSpec(options, variable, first, last, log, argv, max_jobs)


@dataclass
class JobRun:
    """The live state of one runner call: the running processes, what finished with which code."""
    spec: JobSpec
    launcher: list[str]
    running: dict[int, subprocess.Popen] = field(default_factory=dict)
    codes: dict[int, int] = field(default_factory=dict)
    stopping: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run_one(self, job: int) -> None:
        if self.stopping:  # a signal came: a job not started stays as it was, log included
            return
        log = Path(self.spec.substitute(self.spec.log, job))
        log.parent.mkdir(parents=True, exist_ok=True)
        line = self.spec.command_line(job)
        start = time.time()
        with open(log, "w") as out:
            out.write(f"# {line}\n# Started at {time.ctime(start)}\n#\n")
            out.flush()
            with self.lock:
                if self.stopping:
                    out.write("# Not started: the runner was stopped\n")
                    return
                proc = subprocess.Popen([*self.launcher, "bash", "-c", line], stdin=subprocess.DEVNULL,
                                        stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
                self.running[job] = proc
            code = proc.wait()
            with self.lock:
                del self.running[job]
                self.codes[job] = code
            out.write(f"# Ended (code {code}) at {time.ctime()}, elapsed time {time.time() - start:.0f} seconds\n")

    def stop(self, signum: int, _frame=None) -> None:
        """Pass the signal on to every running job (its whole process group) and start no more."""
        with self.lock:
            self.stopping = True
            for proc in self.running.values():
                try:
                    os.killpg(proc.pid, signum)
                except ProcessLookupError:
                    pass


def run_all(prog: str, spec: JobSpec, launcher: Sequence[str]) -> int:
    """Every job of ``spec`` through ``launcher`` (empty: this machine; ``srun ...``: Slurm), at most
    ``max_jobs_run`` at once; the exit status: 0, 1 when jobs failed (named on stderr), or 128+N
    after signal N."""
    run = JobRun(spec, list(launcher))
    jobs = list(range(spec.first, spec.last + 1))
    got_signal = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, f: (got_signal.append(s), run.stop(s)))
    workers = min(len(jobs), spec.max_jobs_run or len(jobs))
    queue = iter(jobs)
    queue_lock = threading.Lock()

    def worker() -> None:
        while True:
            with queue_lock:
                job = next(queue, None)
            if job is None:
                return
            run.run_one(job)

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.2)  # short joins: the main thread must stay free to take a signal
    failed = [j for j in jobs if run.codes.get(j) != 0]
    if failed:
        print(failure_report(prog, spec, failed, run.codes), file=sys.stderr)
    if got_signal:
        return 128 + got_signal[0]
    return 1 if failed else 0


def failure_report(prog: str, spec: JobSpec, failed: list[int], codes: dict[int, int]) -> str:
    total = spec.last - spec.first + 1
    lines = [f"{prog}: {len(failed)} / {total} job(s) failed:"]
    for job in failed:
        log = spec.substitute(spec.log, job)
        status = f"exit {codes[job]}" if job in codes else "not started"
        lines.append(f"  job {job} ({status}), log {log}{last_line(Path(log))}")
    return "\n".join(lines)


def last_line(log: Path) -> str:
    """The job's last line of output, to say at a glance why it failed (srun's own lines about
    the step ending say nothing of why)."""
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines()
                 if ln.strip() and not ln.startswith(("#", "srun: "))]
    except OSError:
        return ""
    return f": {lines[-1].strip()[:300]}" if lines else ""


def slurm_launcher(spec: JobSpec) -> list[str]:
    """One ``srun`` per job: a job of its own (or a step of the allocation when run inside one),
    named after the log, with the user's srun options (partition, GPUs, memory, time) after ours."""
    name = Path(spec.log).name.removesuffix(".log").replace(f".{spec.variable}", "") if spec.variable \
        else Path(spec.log).stem
    return ["srun", "--ntasks=1", "--nodes=1", f"--job-name={name}", "--quiet", *spec.options]


def split_contiguous(items: Sequence, nj: int) -> list[Sequence]:
    """``items`` in ``nj`` contiguous parts, in order, their sizes differing by at most one:
    job k's list is part k - 1."""
    return [items[k * len(items) // nj:(k + 1) * len(items) // nj] for k in range(nj)]


def runs_here(cmd: str) -> bool:
    """Whether ``cmd`` is the local runner (or empty): a step may then do its jobs' work in its own
    process (threads), which spares a process start-up per job."""
    return not cmd.strip() or Path(shlex.split(cmd)[0]).name == LOCAL_RUNNER


def run_jobs(cmd: str, n: int, log: Path, command: Sequence[str], what: str) -> None:
    """``cmd JOB=1:n log command...`` (``cmd``: a runner with its options, as cmd.sh defines them);
    raises :class:`JobsFailed` with the runner's report when a job failed. A SIGTERM or SIGINT
    that this process gets goes on to the runner (and so to the jobs), which is waited for."""
    argv = [*shlex.split(cmd), f"JOB=1:{n}", str(log), *command]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    got = []

    def pass_on(signum, _frame):
        got.append(signal.Signals(signum).name)
        proc.send_signal(signum)

    previous = {sig: signal.signal(sig, pass_on) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        _, err = proc.communicate()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if proc.returncode != 0:
        report = err.strip() or f"{argv[0]} exited with status {proc.returncode}"
        cause = f"Stopped by {got[0]}; run the stage again" if got else "Fix the cause and run the stage again"
        raise JobsFailed(f"{what}: {report}\n{cause}: finished jobs are kept and only the others are redone")
