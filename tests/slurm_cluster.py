"""A real single-node Slurm cluster on localhost for the tests: munged, slurmctld and slurmd from
Debian's slurm-wlm and munge, run as the current user (root here and in CI) with a slurm.conf
written into a temporary directory, on free ports, so that several test sessions on one machine
each get their own cluster. Clients find it through SLURM_CONF (and the munge socket named there).

`start_cluster()` returns a `SlurmCluster` whose `env` the tests pass to run.sh / sbatch; it raises
`ClusterUnavailable` with the reason when the daemons cannot start, and the fixture turns that into
a skip that prints the reason."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "sinfo", "sbatch", "srun")
STARTUP_TIMEOUT_S = 30.0


class ClusterUnavailable(RuntimeError):
    """The daemons cannot start on this machine; the message says why."""


@dataclass
class SlurmCluster:
    root: Path
    conf: Path
    node: str
    cpus: int
    processes: list = field(default_factory=list)

    @property
    def env(self) -> dict:
        """The environment a client (sbatch, srun, run.sh with a Slurm --cmd) needs."""
        env = dict(os.environ, SLURM_CONF=str(self.conf))
        # A test may itself run inside a Slurm job on a real cluster: its job's variables
        # would leak into the jobs submitted here.
        return {k: v for k, v in env.items() if not k.startswith(("SLURM_JOB", "SLURM_STEP"))}

    def stop(self) -> None:
        for proc in reversed(self.processes):
            if proc.poll() is None:
                proc.terminate()
        for proc in reversed(self.processes):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.processes.clear()
        shutil.rmtree(self.root, ignore_errors=True)


def free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def node_memory_mb() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                # A little below the total: slurmd drains a node whose RealMemory exceeds what it sees.
                return int(line.split()[1]) // 1024 * 9 // 10
    raise ClusterUnavailable("/proc/meminfo has no MemTotal line")


def write_slurm_conf(root: Path, node: str, cpus: int) -> Path:
    ctld_port, slurmd_port = free_ports(2)
    user = pwd.getpwuid(os.getuid()).pw_name
    conf = root / "slurm.conf"
    conf.write_text(f"""\
ClusterName=spkidtest
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
AuthInfo=socket={root}/munge.socket
CredType=cred/munge
StateSaveLocation={root}/ctld
SlurmdSpoolDir={root}/slurmd
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
MinJobAge=30
KillWait=5
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={node_memory_mb()} State=UNKNOWN
PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
""")
    return conf


def start_munged(root: Path) -> subprocess.Popen:
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    cmd = ["munged", "--foreground", "--force", f"--key-file={key}", f"--socket={root}/munge.socket",
           f"--pid-file={root}/munged.pid", f"--log-file={root}/munged.log",
           f"--seed-file={root}/munged.seed"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(root / "munged.err", "w"))


def wait_for(predicate, what: str, cluster: SlurmCluster, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        dead = [p for p in cluster.processes if p.poll() is not None]
        if dead:
            raise ClusterUnavailable(f"{Path(dead[0].args[0]).name} exited ({dead[0].returncode}) "
                                     f"while waiting for {what}: {tail(log)}")
        if predicate():
            return
        time.sleep(0.2)
    raise ClusterUnavailable(f"no {what} after {STARTUP_TIMEOUT_S:.0f} s: {tail(log)}")


def tail(path: Path, lines: int = 5) -> str:
    if not path.exists():
        return f"({path.name} not written)"
    return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])


def node_state(cluster: SlurmCluster) -> str:
    out = subprocess.run(["sinfo", "--noheader", "--Node", "--format=%T", "--nodes", cluster.node],
                         env=cluster.env, capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else ""


def start_cluster() -> SlurmCluster:
    missing = [d for d in DAEMONS if shutil.which(d) is None]
    if missing:
        raise ClusterUnavailable(f"not installed: {' '.join(missing)} (utils/setup_env.sh installs "
                                 "slurm-wlm and munge)")
    root = Path(tempfile.mkdtemp(prefix="spkid-slurm-"))
    root.chmod(0o755)
    for sub in ("ctld", "slurmd"):
        (root / sub).mkdir()
    node = socket.gethostname().split(".")[0]
    cluster = SlurmCluster(root, write_slurm_conf(root, node, os.cpu_count() or 1), node,
                           os.cpu_count() or 1)
    try:
        cluster.processes.append(start_munged(root))
        wait_for(lambda: (root / "munge.socket").exists(), "munge socket", cluster, root / "munged.log")
        conf = ["-f", str(cluster.conf)]
        cluster.processes.append(subprocess.Popen(["slurmctld", "-D", "-i", *conf], env=cluster.env,
                                                  stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
        cluster.processes.append(subprocess.Popen(["slurmd", "-D", "-N", node, *conf], env=cluster.env,
                                                  stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
        wait_for(lambda: node_state(cluster) == "idle", f"idle node {node} in sinfo", cluster,
                 root / "slurmctld.log")
    except BaseException:
        cluster.stop()
        raise
    return cluster
