"""Training under Slurm (spkid/train/slurm.py, steps/train.sh): Slurm's hostlist syntax, the
rendezvous read from a job step's environment, and, on the real one-node test cluster
(tests/slurm_cluster.py), stage 3 as Slurm runs it: two tasks of one step standing in for two
nodes, and a job pre-empted with SIGTERM and submitted again."""

import shlex
import subprocess
import time

import pytest
import torch

from slurm_cluster import free_ports
from spkid.errors import SpkidError
from spkid.expdir import SystemDir
from spkid.train.slurm import FIRST_PORT, PORTS, expand_hostlist, slurm_rendezvous
from two_process_run import TRAIN_SH, assert_same_weights


@pytest.mark.parametrize("hostlist, hosts", [
    ("vm", ["vm"]),
    ("node[01-03,07]", ["node01", "node02", "node03", "node07"]),
    ("gpu[8-10],cpu1", ["gpu8", "gpu9", "gpu10", "cpu1"]),
    ("node[098-101]", ["node098", "node099", "node100", "node101"]),
    ("r[1-2]n[1,3]", ["r1n1", "r1n3", "r2n1", "r2n3"]),
    ("a-1.x[2],b_2", ["a-1.x2", "b_2"]),
])
def test_hostlists_expand_as_slurm_expands_them(hostlist, hosts):
    assert expand_hostlist(hostlist) == hosts


@pytest.mark.parametrize("hostlist, why", [
    ("node[01-03", "unbalanced brackets"), ("node]1[", "unbalanced brackets"), ("node[[1]]", "unbalanced brackets"),
    ("node[3-1]", "'3-1' in [3-1] is not a number or a rising range"), ("node[a]", "'a' in [a] is not a number"),
    ("", "names no host"), ("no de", "'no de' is not a host name"),
])
def test_a_malformed_hostlist_is_named(hostlist, why):
    with pytest.raises(SpkidError) as e:
        expand_hostlist(hostlist)
    assert str(e.value).startswith(f"node list '{hostlist}'") and why in str(e.value)


def test_scontrol_expands_hostlists_the_same_way(slurm_cluster):
    for hostlist in ("node[01-03,07],gpu5", "node[098-101]", "r[1-2]n[1,3]"):
        out = subprocess.run(["scontrol", "show", "hostnames", hostlist], env=slurm_cluster.env,
                             capture_output=True, text=True, check=True).stdout.split()
        assert expand_hostlist(hostlist) == out


STEP = {"SLURM_JOB_ID": "123456", "SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "2", "SLURM_STEP_NUM_NODES": "2",
        "SLURM_STEP_NODELIST": "gpu[07-08]", "SLURM_NODEID": "1"}


def test_the_rendezvous_comes_from_the_step():
    r = slurm_rendezvous(STEP, gpus=8)
    assert (r.nnodes, r.node_rank, r.master_addr, r.master_port) == (2, 1, "gpu07", FIRST_PORT + 123456 % PORTS)
    assert slurm_rendezvous({**STEP, "MASTER_PORT": "29400"}, gpus=8).master_port == 29400
    # CPU processes: two tasks on one node stand in for two nodes (the tests do)
    assert slurm_rendezvous({**STEP, "SLURM_STEP_NUM_NODES": "1", "SLURM_STEP_NODELIST": "vm"}, gpus=0).nnodes == 2


def test_a_step_that_is_not_one_task_per_node_is_refused_with_the_fix():
    with pytest.raises(SpkidError, match="16 tasks on 2 node.*one task per node.*--ntasks-per-node=1"):
        slurm_rendezvous({**STEP, "SLURM_STEP_NUM_TASKS": "16"}, gpus=8)
    with pytest.raises(SpkidError, match="not inside a Slurm job step \\(SLURM_STEP_NODELIST unset\\)"):
        slurm_rendezvous({k: v for k, v in STEP.items() if k != "SLURM_STEP_NODELIST"}, gpus=8)
    with pytest.raises(SpkidError, match="MASTER_PORT=x is not a port number"):
        slurm_rendezvous({**STEP, "MASTER_PORT": "x"}, gpus=8)


# ---------------------------------------------------------------- on the Slurm test cluster

def _env(cluster) -> dict:
    return {**cluster.env, "OMP_NUM_THREADS": "1", "MASTER_PORT": str(free_ports(1)[0])}


@pytest.mark.slow
def test_two_tasks_of_a_step_train_as_two_nodes_like_torchrun(slurm_cluster, two_process_run, tmp_path):
    """srun -N1 -n2: each task starts a torchrun of one process, their rendezvous (2 nodes, the
    task's rank, the step's first host) read from Slurm's environment; the epoch's weights are
    those of one torchrun of two processes."""
    exp = tmp_path / "exp"
    r = subprocess.run(["srun", "-N1", "-n2", TRAIN_SH, "--gpus", "0", *two_process_run.options, "--epochs=1", str(exp)],
                       env=_env(slurm_cluster), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    log = (exp / "log" / "train.log").read_text()
    assert "2 process(es) on cpu" in log and "epoch 1/1:" in log
    assert_same_weights(SystemDir(two_process_run.exp).checkpoints / "epoch_0001.pt", exp / "final.pt")


def _job_state(env: dict, job: str) -> str:
    out = subprocess.run(["squeue", "-h", "-j", job, "-t", "all", "-o", "%T"], env=env, capture_output=True, text=True)
    return out.stdout.strip()


@pytest.mark.slow
def test_a_job_preempted_with_sigterm_resumes_when_submitted_again(slurm_cluster, two_process_run, tmp_path):
    """sbatch around steps/train.sh (it starts the job step itself); scancel --signal=TERM
    mid-epoch reaches every process of the step (torchrun, both ranks, their DataLoader
    workers): the ranks save the step and the job ends; the same job submitted again resumes
    there, and its final.pt is the uninterrupted run's."""
    exp = tmp_path / "exp"
    env = _env(slurm_cluster)
    # --wrap: sbatch runs a copy of a script it is given, away from path.sh
    job = f"--wrap={shlex.join([TRAIN_SH, '--cpu-procs', '2', *two_process_run.options, str(exp)])}"
    job_id = subprocess.run(["sbatch", "--parsable", "-N1", "-n2", f"--output={tmp_path}/first.out", job],
                            env=env, capture_output=True, text=True, check=True).stdout.strip()
    log = SystemDir(exp).log / "train.log"
    deadline = time.monotonic() + 300
    while not (log.is_file() and "epoch 1 step 1:" in log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.02)
    subprocess.run(["scancel", "--signal=TERM", job_id], env=env, check=True)
    while _job_state(env, job_id) not in ("FAILED", "COMPLETED", "CANCELLED") and time.monotonic() < deadline:
        time.sleep(0.2)
    first = (tmp_path / "first.out").read_text()
    assert _job_state(env, job_id) == "FAILED" and "SIGTERM: stopped in epoch" in first, first[-3000:]
    assert "torchrun: stopped by SIGTERM" in first and "Traceback" not in first, first[-3000:]
    stopped = torch.load(SystemDir(exp).interrupted, weights_only=True)
    assert stopped["world_size"] == 2 and not (exp / "final.pt").exists()

    r = subprocess.run(["sbatch", "--wait", "-N1", "-n2", f"--output={tmp_path}/second.out", job],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (tmp_path / "second.out").read_text()[-3000:]
    assert f"and step {stopped['step']} of epoch {stopped['epoch'] + 1} from" in log.read_text()
    assert_same_weights(two_process_run.exp / "final.pt", exp / "final.pt")
