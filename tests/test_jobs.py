"""spkid/jobs.py through utils/run.py and utils/slurm.py: Kaldi's run.pl contract (JOB=1:N, one log
per job, waits for all, names the failed jobs and their logs), locally and on the test cluster."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spkid.errors import SpkidError
from spkid.jobs import JobsFailed, parse_args, run_jobs

ROOT = Path(__file__).resolve().parents[1]
RUN, SLURM = str(ROOT / "utils" / "run.py"), str(ROOT / "utils" / "slurm.py")


def runner(argv, env=None, cwd=None):
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env, cwd=cwd, timeout=120)


def check_contract(runner_argv, tmp_path, env=None):
    """Jobs 1-3 each write their index; job 2 fails: all three ran, each logged on its own, and the
    failure names job 2 and its log (and only it)."""
    logs = tmp_path / "log"
    p = runner([*runner_argv, "JOB=1:3", f"{logs}/work.JOB.log",
                f"echo JOB > {tmp_path}/out.JOB; echo done JOB; [ JOB != 2 ] || {{ echo bad input 2 >&2; exit 7; }}"],
               env=env, cwd=tmp_path)
    assert p.returncode == 1
    assert [(tmp_path / f"out.{j}").read_text() for j in (1, 2, 3)] == ["1\n", "2\n", "3\n"]
    for j in (1, 2, 3):
        text = (logs / f"work.{j}.log").read_text()
        assert f"done {j}" in text and f"# Ended (code {7 if j == 2 else 0})" in text
    assert "1 / 3 job(s) failed" in p.stderr
    assert f"job 2 (exit 7), log {logs}/work.2.log: bad input 2" in p.stderr
    assert "work.1.log" not in p.stderr and "work.3.log" not in p.stderr


def test_local_runner_follows_the_run_pl_contract(tmp_path):
    check_contract([RUN], tmp_path)


def test_slurm_runner_follows_the_run_pl_contract(tmp_path, slurm_cluster):
    check_contract([SLURM, "--time=5"], tmp_path, slurm_cluster.env)


def test_slurm_jobs_run_on_the_cluster_in_parallel(tmp_path, slurm_cluster):
    p = runner([SLURM, "JOB=1:2", f"{tmp_path}/j.JOB.log",
                "echo $SLURM_JOB_ID $SLURM_JOB_NAME; date +%s.%N; sleep 2; date +%s.%N"],
               env=slurm_cluster.env, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    spans, ids = [], set()
    for j in (1, 2):
        lines = [ln for ln in (tmp_path / f"j.{j}.log").read_text().splitlines() if not ln.startswith("#")]
        job_id, name = lines[0].split()
        assert name == "j"
        ids.add(job_id)
        spans.append((float(lines[1]), float(lines[2])))
    assert len(ids) == 2  # each job is a Slurm job of its own
    assert max(s for s, _ in spans) < min(e for _, e in spans)  # both ran at once (the node has 2 CPUs)


def test_single_job_one_shell_line_and_quoted_words(tmp_path):
    p = runner([RUN, f"{tmp_path}/one.log", "echo a b | tr a-z A-Z"])
    assert p.returncode == 0 and "A B" in (tmp_path / "one.log").read_text()
    p = runner([RUN, "JOB=2:3", f"{tmp_path}/w.JOB.log", "printf", "%s|", "x y", "JOB", "NOTJOB"])
    assert p.returncode == 0
    assert "x y|3|NOTJOB|" in (tmp_path / "w.3.log").read_text()
    assert not (tmp_path / "w.1.log").exists()


def test_max_jobs_run_limits_the_jobs_at_once(tmp_path):
    p = runner([RUN, "--max-jobs-run=1", "JOB=1:2", f"{tmp_path}/m.JOB.log", "date +%s.%N; sleep 0.5; date +%s.%N"])
    assert p.returncode == 0
    (s1, e1), (s2, e2) = [[float(x) for x in (tmp_path / f"m.{j}.log").read_text().split("\n") if x[:1].isdigit()]
                          for j in (1, 2)]
    assert e1 <= s2 or e2 <= s1


@pytest.mark.parametrize("argv, message", [
    (["JOB=1:2", "x.JOB.log"], "usage"),
    (["JOB=3:1", "x.JOB.log", "true"], "empty job range"),
    (["JOB=1:2", "x.log", "true"], "has no JOB in its name"),
    (["-p", "gpu", "JOB=1:2", "x.JOB.log", "true"], "expected the log file"),
    (["--max-jobs-run=0", "x.log", "true"], "--max-jobs-run"),
])
def test_bad_calls_are_refused_by_name(argv, message):
    with pytest.raises(SpkidError, match=message):
        parse_args("run.py", argv)


def test_a_signal_reaches_the_jobs_and_finished_ones_keep_their_output(tmp_path):
    """Pre-emption: the runner passes SIGTERM on to the running jobs and exits 143; a job that had
    finished has its output, the interrupted one has its log closed by its exit."""
    proc = subprocess.Popen([sys.executable, RUN, "JOB=1:2", f"{tmp_path}/s.JOB.log",
                             f"[ JOB = 1 ] && touch {tmp_path}/done.1 || {{ trap 'echo got TERM; exit 143' TERM; "
                             f"sleep 30 & wait; }}"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not (tmp_path / "done.1").exists() or "Ended" not in (tmp_path / "s.1.log").read_text():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143
    assert "got TERM" in (tmp_path / "s.2.log").read_text()
    assert "job 2 (exit 143)" in err and "job 1" not in err


def test_run_jobs_raises_with_the_runners_report(tmp_path):
    run_jobs("run.py", 2, tmp_path / "ok.JOB.log", ["true"], "nothing")
    with pytest.raises(JobsFailed, match=r"(?s)stage X: run.py: 1 / 2 job\(s\) failed.*r\.2\.log.*only the others"):
        run_jobs("run.py", 2, tmp_path / "r.JOB.log", ["test", "JOB", "=", "1"], "stage X")


def test_after_a_signal_no_job_starts(tmp_path):
    proc = subprocess.Popen([sys.executable, RUN, "--max-jobs-run=1", "JOB=1:2", f"{tmp_path}/n.JOB.log",
                             f"touch {tmp_path}/began.JOB; sleep 30"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not (tmp_path / "began.1").exists():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143
    assert "2 / 2 job(s) failed" in err and "job 2 (not started)" in err
    assert not (tmp_path / "began.2").exists() and not (tmp_path / "n.2.log").exists()
