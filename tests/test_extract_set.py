"""Stage 4's jobs (spkid/eval/extract_set.py) through --cmd: on the Slurm test cluster the parts give
the local run's embeddings byte for byte; a failed part fails the set naming its job log, and the
re-run redoes that part only."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from test_extract import tiny_data, tiny_system

ROOT = Path(__file__).resolve().parents[1]
SLURM_CMD = "slurm.py --time=5"


def extract(exp: Path, data: Path, cmd: str, env: dict | None = None, nj: int = 2) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "steps" / "extract.sh"), f"--nj={nj}", "--read-workers=0", "--cmd", cmd,
                           str(exp), str(data)], capture_output=True, text=True, timeout=300,
                          env=dict(env or os.environ, OMP_NUM_THREADS="1"))


def test_slurm_jobs_give_the_local_embeddings_byte_for_byte(tmp_path, slurm_cluster):
    exp, _ = tiny_system(tmp_path)
    data = tiny_data(tmp_path, n=6)
    out = exp / "embeddings" / "set"
    local = extract(exp, data.path, "run.py")
    assert local.returncode == 0, local.stderr
    want = {f: (out / f).read_bytes() for f in ("embeddings.ark", "xvector.ark")}
    assert not list(exp.glob("log/extract.set.*.log"))  # the local CPU run's parts are threads of the step
    (out / "provenance.json").unlink()
    on_slurm = extract(exp, data.path, SLURM_CMD, slurm_cluster.env)
    assert on_slurm.returncode == 0, on_slurm.stderr
    assert "2 of 2 part(s) to do through 'slurm.py --time=5'" in on_slurm.stdout
    for f, content in want.items():
        assert (out / f).read_bytes() == content, f
    for job in (1, 2):
        log = (exp / "log" / f"extract.set.{job}.log").read_text()
        assert f"part {job}: 3 utterances" in log and "# Ended (code 0)" in log


def test_a_failed_slurm_part_fails_the_set_by_its_log_and_a_rerun_redoes_it_alone(tmp_path, slurm_cluster):
    exp, _ = tiny_system(tmp_path)
    data = tiny_data(tmp_path, n=6)
    out = exp / "embeddings" / "set"
    bad = sorted(data.wav_scp)[-1]  # in part 2
    audio = Path(data.wav_scp[bad])
    good = audio.read_bytes()
    audio.write_bytes(good[:30])  # a broken file: not even a WAV header
    failed = extract(exp, data.path, SLURM_CMD, slurm_cluster.env)
    assert failed.returncode == 1
    log2 = exp / "log" / "extract.set.2.log"
    assert f"1 / 2 job(s) failed:\n  job 2 (exit 1), log {log2}: extract.py: error: " in failed.stderr
    assert bad in log2.read_text() and str(audio) in log2.read_text()
    assert not (out / "provenance.json").exists() and not (out / "embeddings.ark").exists()
    assert (out / "split" / "emb.1.ark").is_file()  # the finished part is kept
    audio.write_bytes(good)
    rerun = extract(exp, data.path, SLURM_CMD, slurm_cluster.env)
    assert rerun.returncode == 0, rerun.stderr
    assert "1 of 2 part(s) to do" in rerun.stdout
    assert "part 1 (3 utterances) is already done" in (exp / "log" / "extract.set.1.log").read_text()
    assert "part 2: 3 utterances" in log2.read_text()
    assert (out / "provenance.json").is_file()


@pytest.mark.parametrize("argv, kept", [
    (["--nj=2", "--cmd", "x", "--job=3", "--out-name=o", "e", "d"], ["--nj=2", "e", "d"]),
    (["--cmd=slurm.py --mem=1G", "--job", "1", "e", "d"], ["e", "d"]),
])
def test_the_job_command_drops_what_the_parent_sets(argv, kept):
    import importlib.util

    spec = importlib.util.spec_from_file_location("extract_step", ROOT / "steps" / "extract.py")
    step = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(step)
    assert step.without_options(argv, step.JOB_OPTIONS) == kept


def test_a_preempted_stage_keeps_its_finished_parts_and_the_resubmitted_one_does_the_rest(tmp_path, slurm_cluster):
    """Slurm's pre-emption signal (SIGTERM) to stage 4 while part 2 is still reading: the step passes
    it on to the runner and the jobs and stops unfinished; part 1, done, is kept, and the same
    command again redoes part 2 alone."""
    import signal
    import time

    exp, _ = tiny_system(tmp_path)
    data = tiny_data(tmp_path, n=6)
    slow = sorted(data.wav_scp)[-1]  # in part 2: its audio comes through a command that waits for 'go'
    go = tmp_path / "go"
    data.wav_scp[slow] = f"while [ ! -e {go} ]; do sleep 0.2; done; cat {data.wav_scp[slow]} |"
    data.write()
    argv = [str(ROOT / "steps" / "extract.sh"), "--nj=2", "--read-workers=0", "--allow-pipes", "--cmd", SLURM_CMD,
            str(exp), str(data.path)]
    env = dict(slurm_cluster.env, OMP_NUM_THREADS="1")
    stage = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    log1 = exp / "log" / "extract.set.1.log"
    deadline = time.monotonic() + 240
    while not (log1.is_file() and "# Ended (code 0)" in log1.read_text()):
        assert time.monotonic() < deadline and stage.poll() is None, stage.communicate()
        time.sleep(0.2)
    stage.send_signal(signal.SIGTERM)
    _, err = stage.communicate(timeout=120)
    assert stage.returncode != 0 and "job 2" in err and "job 1 " not in err
    assert "Stopped by SIGTERM; run the stage again: finished jobs are kept" in err
    out = exp / "embeddings" / "set"
    assert (out / "split" / "emb.1.ark").is_file() and not (out / "split" / "emb.2.ark").exists()
    assert not (out / "provenance.json").exists()
    go.touch()
    again = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "1 of 2 part(s) to do" in again.stdout
    assert "part 1 (3 utterances) is already done" in log1.read_text()
    assert (out / "provenance.json").is_file()


@pytest.mark.parametrize("cmd, gpus, nj, here", [
    ("run.py", 0, 4, True),                        # CPU parts: threads of the step
    ("run.py", 2, 4, False),                       # a process per GPU part, through the local runner
    ("run.py", 1, 1, True),                        # one local job: the step itself
    ("slurm.py --gres=gpu:1", 0, 1, False),        # anything on Slurm is a job
    ("/opt/spkid/utils/run.py --max-jobs-run=2", 0, 2, True),
])
def test_which_parts_run_in_the_step(cmd, gpus, nj, here):
    from spkid.eval.extract_set import ExtractOptions, runs_in_process

    assert runs_in_process(ExtractOptions(cmd=cmd, gpus=gpus, nj=nj)) is here


@pytest.mark.parametrize("visible, gpus, job, index", [
    (4, 4, 1, 0), (4, 4, 4, 3), (4, 2, 3, 0), (4, 2, 4, 1),  # this machine: job K on GPU (K-1) mod --gpus
    (1, 8, 5, 0),                                            # a Slurm job that sees its one GPU
])
def test_job_k_takes_gpu_k_minus_1_mod_gpus_of_those_it_sees(monkeypatch, visible, gpus, job, index):
    import torch

    from spkid.eval.extract_set import ExtractOptions, job_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: visible)
    assert job_device(ExtractOptions(gpus=gpus, job=job)) == torch.device("cuda", index)
