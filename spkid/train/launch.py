"""torchrun as steps/train.sh starts it (``python -m spkid.train.launch`` takes torchrun's
arguments): PyTorch's own launcher, unchanged, except how it ends on SIGTERM or SIGINT. It passes
the signal on to its workers (which save the step they are in, spkid.train.ranks.StopSignal),
waits for them, and then ends with its own traceback; this ends with one line and the status
of a process stopped by that signal."""

from __future__ import annotations

import sys

from torch.distributed.elastic.multiprocessing.api import SignalException
from torch.distributed.run import main as torchrun


def main(argv: list[str]) -> int:
    try:
        torchrun(argv)
    except SignalException as e:
        print(f"torchrun: stopped by {e.sigval.name} (its processes were stopped first; "
              f"their lines above say where to resume)", file=sys.stderr)
        return 128 + int(e.sigval)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
