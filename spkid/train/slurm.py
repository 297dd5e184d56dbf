"""Training on several nodes under Slurm: the rendezvous of one torchrun per task of a Slurm job
step (one task per node), read from Slurm's environment, so that no command is typed per node.

The nodes are the step's tasks (SLURM_STEP_NUM_TASKS), this node's rank is its task's rank
(SLURM_PROCID; with one task per node that is SLURM_NODEID), node 0 is the first host of the
step's node list (SLURM_STEP_NODELIST, in Slurm's hostlist syntax, expanded here so that no
``scontrol`` is needed, e.g. inside a container), and the port is MASTER_PORT when set, else
derived from the job id, so that two jobs whose first node is the same do not meet on one port.
steps/train.sh asks for it (utils/slurm_rendezvous.py) inside a step of several tasks.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Mapping

from spkid.errors import SpkidError

#: the rendezvous port is FIRST_PORT + job id mod PORTS: below Linux's ephemeral ports (32768-)
FIRST_PORT = 15000
PORTS = 10000

_RANGE = re.compile(r"(\d+)(?:-(\d+))?")
_HOST = re.compile(r"[A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Rendezvous:
    nnodes: int
    node_rank: int
    master_addr: str
    master_port: int


def expand_hostlist(hostlist: str) -> list[str]:
    """Slurm's hostlist syntax, expanded in Slurm's order (as ``scontrol show hostnames`` does):
    ``node[01-03,07],gpu5`` is node01 node02 node03 node07 gpu5; a range keeps the zero padding of
    its first number; several bracket groups in one name (``r[1-2]n[1-2]``) give every
    combination, the last group varying fastest."""
    hosts: list[str] = []
    for name in _split_top_level(hostlist):
        parts = re.split(r"(\[[^\[\]]*\])", name)
        choices = [_bracket(p, hostlist) if p.startswith("[") else [p] for p in parts]
        for combo in itertools.product(*choices):
            host = "".join(combo)
            if not _HOST.fullmatch(host):
                raise SpkidError(f"node list '{hostlist}': '{host}' is not a host name (Slurm's hostlist "
                                 f"syntax is e.g. node[01-03,07],gpu5)")
            hosts.append(host)
    if not hosts:
        raise SpkidError(f"node list '{hostlist}' names no host")
    return hosts


def _split_top_level(hostlist: str) -> list[str]:
    """The comma-separated names of ``hostlist``, commas inside brackets kept."""
    names, depth, current = [], 0, ""
    for ch in hostlist.strip():
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if depth not in (0, 1):
            raise SpkidError(f"node list '{hostlist}': unbalanced brackets")
        if ch == "," and depth == 0:
            names.append(current)
            current = ""
        else:
            current += ch
    if depth:
        raise SpkidError(f"node list '{hostlist}': unbalanced brackets")
    return [n for n in [*names, current] if n]


def _bracket(group: str, hostlist: str) -> list[str]:
    """``[01-03,07]`` -> 01 02 03 07."""
    out = []
    for item in group[1:-1].split(","):
        m = _RANGE.fullmatch(item)
        if not m or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
            raise SpkidError(f"node list '{hostlist}': '{item}' in {group} is not a number or a rising range")
        first, last = m.group(1), m.group(2) or m.group(1)
        out += [str(i).zfill(len(first)) for i in range(int(first), int(last) + 1)]
    return out


def slurm_rendezvous(env: Mapping[str, str], gpus: int) -> Rendezvous:
    """The rendezvous of this task's torchrun in the Slurm step ``env`` describes; ``gpus`` per node
    (0: CPU processes, where several tasks on one node may stand in for nodes, as in the tests)."""
    missing = [k for k in ("SLURM_JOB_ID", "SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_NUM_NODES",
                           "SLURM_STEP_NODELIST") if not env.get(k)]
    if missing:
        raise SpkidError(f"not inside a Slurm job step ({', '.join(missing)} unset): start it with srun, "
                         f"or give --nnodes N --node-rank R --master-addr HOST yourself")
    tasks, nodes = int(env["SLURM_STEP_NUM_TASKS"]), int(env["SLURM_STEP_NUM_NODES"])
    if gpus > 0 and tasks != nodes:
        raise SpkidError(f"the Slurm step has {tasks} tasks on {nodes} node(s): training needs one task per "
                         f"node (torchrun starts the --gpus {gpus} processes of its node); submit with "
                         f"--ntasks-per-node=1, or run ./run.sh (or steps/train.sh) in the batch script "
                         f"without srun: it starts the step itself")
    hosts = expand_hostlist(env["SLURM_STEP_NODELIST"])
    port = env.get("MASTER_PORT") or str(FIRST_PORT + int(env["SLURM_JOB_ID"]) % PORTS)
    if not port.isdigit():
        raise SpkidError(f"MASTER_PORT={port} is not a port number")
    return Rendezvous(tasks, int(env["SLURM_PROCID"]), hosts[0], int(port))
