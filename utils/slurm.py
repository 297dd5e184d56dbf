#!/usr/bin/env python3
"""Run jobs on a Slurm cluster, by Kaldi's utils/run.pl contract (see spkid/jobs.py), one `srun`
per job (a job of its own, or a step of the allocation when called inside an sbatch job):

    utils/slurm.py [SRUN_OPTIONS] [--max-jobs-run=N] [JOB=1:N] LOG COMMAND [ARGS...]
    utils/slurm.py --partition=gpu --gres=gpu:1 --mem=16G --time=4:00:00 \\
        JOB=1:8 exp/HA4/log/extract.vox1.JOB.log steps/extract.py ... --job=JOB

SRUN_OPTIONS are srun's own, written --name=value. Every job's output goes to its own log
(written here, on the submitting machine); the exit status is non-zero when one failed, and the
failed jobs and their logs are named on stderr. A SIGTERM or SIGINT goes on to the jobs.
"""

import sys

from spkid.cli import run_main
from spkid.jobs import parse_args, run_all, slurm_launcher


def main(argv) -> int:
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    spec = parse_args("slurm.py", argv)
    return run_all("slurm.py", spec, slurm_launcher(spec))


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
