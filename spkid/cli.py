"""Entry-point wrapper for steps/: a SpkidError becomes one clear line and exit status 1."""

from __future__ import annotations

import os
import sys
from typing import Callable, Sequence

from spkid.errors import SpkidError, error_message


def run_main(main: Callable[[Sequence[str]], int | None], argv: Sequence[str] | None = None) -> None:
    prog = os.path.basename(sys.argv[0])
    try:
        rc = main(list(sys.argv[1:] if argv is None else argv))
    except SpkidError as e:
        print(f"{prog}: error: {error_message(e)}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(rc or 0)
