"""Entry-point wrapper for steps/: a SpkidError, or an OSError, becomes one clear line and exit status 1."""

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
    except OSError as e:
        print(f"{prog}: error: {os_error_message(e)}", file=sys.stderr)
        sys.exit(1)
    sys.exit(rc or 0)


def os_error_message(e: OSError) -> str:
    """'<path>: <strerror>' (both paths for a rename), or the error's own text when it names none."""
    names = [str(n) for n in (e.filename, e.filename2) if n is not None]
    if not names or not e.strerror:
        return str(e)
    return f"{' -> '.join(names)}: {e.strerror}"
