#!/usr/bin/env python3
"""Run jobs on this machine, by Kaldi's utils/run.pl contract (see spkid/jobs.py):

    utils/run.py [--max-jobs-run=N] [JOB=1:N] LOG COMMAND [ARGS...]
    utils/run.py JOB=1:4 exp/log/hello.JOB.log echo job JOB

Every job's output goes to its own log (JOB replaced by the index); all run at once unless
--max-jobs-run limits them; the exit status is non-zero when one failed, and the failed jobs and
their logs are named on stderr.
"""

import sys

from spkid.cli import run_main
from spkid.jobs import parse_args, run_all


def main(argv) -> int:
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    return run_all("run.py", parse_args("run.py", argv), [])


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
