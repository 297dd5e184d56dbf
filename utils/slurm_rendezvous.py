#!/usr/bin/env python3
"""Print the torchrun rendezvous of this task of a Slurm job step as 'NNODES NODE_RANK MASTER_ADDR
MASTER_PORT' (spkid/train/slurm.py); steps/train.sh reads it in a step of several tasks.

    utils/slurm_rendezvous.py GPUS_PER_NODE
"""
import os
import sys

from spkid.cli import run_main
from spkid.train.slurm import slurm_rendezvous


def main(argv):
    if len(argv) != 1 or not argv[0].isdigit():
        print(f"usage: slurm_rendezvous.py GPUS_PER_NODE\n\n{__doc__.strip()}", file=sys.stderr)
        return 2
    r = slurm_rendezvous(os.environ, int(argv[0]))
    print(r.nnodes, r.node_rank, r.master_addr, r.master_port)
    return 0


if __name__ == "__main__":
    run_main(main)
