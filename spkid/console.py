"""What a step shows while it works: a progress bar on a terminal, plain lines in a log, and a
copy of its output in the system's log.

:func:`progress` follows tqdm's own rule (``disable=None``): a bar only when its stream is a
terminal, and none when ``TQDM_DISABLE`` is set (to anything but 0/false). Without a bar, a
:class:`PlainProgress` writes one line per tenth of the work (no more often than every
``PLAIN_MIN_SECONDS``; every ``PLAIN_UNKNOWN_SECONDS`` when the total is unknown) and one at the
end, each with the time since the start and the rate, and never a carriage return, so that
run.sh's stage logs and the steps' ``exp/<SYS>/log/<step>.log`` read line by line.
:func:`step_log` copies a step's stdout and stderr into such a log (a bar's redraws left out).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Iterable, Iterator, Sequence, TextIO

from tqdm import tqdm

from spkid.errors import SpkidError, error_message

PLAIN_LINES = 10  # lines over a known total
PLAIN_MIN_SECONDS = 10.0
PLAIN_UNKNOWN_SECONDS = 60.0


def bars_disabled() -> bool:
    """``TQDM_DISABLE`` set to a true value (tqdm reads it only where ``disable`` is not passed)."""
    return os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false", "no")


def on_terminal(stream: TextIO) -> bool:
    """tqdm's ``disable=None`` test: the stream is a terminal."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def progress(iterable: Iterable | None = None, *, total: float | None = None, desc: str = "", unit: str = "it",
             quiet: bool = False, file: TextIO | None = None, initial: int = 0, unit_scale: bool = False,
             final_line: bool = True, **bar_options):
    """A tqdm bar on a terminal, else a :class:`PlainProgress` with the same interface (iterate,
    ``update``, ``set_postfix``, ``close``, context manager); nothing at all when ``quiet``.
    ``final_line=False``: no closing line (the caller prints its own summary)."""
    stream = file or sys.stderr
    if quiet:
        return tqdm(iterable, total=total, disable=True)
    if on_terminal(stream) and not bars_disabled():
        return tqdm(iterable, total=total, desc=desc, unit=unit, file=stream, initial=initial, unit_scale=unit_scale,
                    **bar_options)
    return PlainProgress(iterable, total, desc, unit, stream, initial, unit_scale, final_line)


class PlainProgress:
    """Progress as plain lines: ``<desc>: 40% (4/10 utt), 00:12, 0.33 utt/s[, postfix]``."""

    def __init__(self, iterable, total, desc: str, unit: str, file: TextIO, initial: int = 0,
                 unit_scale: bool = False, final_line: bool = True):
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.file, self.unit_scale, self.final_line = file, unit_scale, final_line
        self.n = self.initial = self.shown = initial
        self.start = self.last = time.monotonic()
        self.postfix = ""
        self.closed = False

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        self.n += n
        now = time.monotonic()
        if self.total:
            tenth = int(PLAIN_LINES * self.n / self.total)
            due = tenth > int(PLAIN_LINES * self.shown / self.total) and now - self.last >= PLAIN_MIN_SECONDS
        else:
            due = now - self.last >= PLAIN_UNKNOWN_SECONDS
        if due:
            self._line(now)

    def set_postfix(self, ordered_dict=None, refresh: bool = True, **kwargs) -> None:
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.final_line and self.n != self.shown:
            self._line(time.monotonic())

    def _amount(self, x: float, unit: bool = True) -> str:
        """``x`` as tqdm shows it: 2.10MB with unit_scale, else 0.333 utt or 1200 utt."""
        number = tqdm.format_sizeof(x) if self.unit_scale else f"{x:.3g}" if x < 100 else f"{x:.0f}"
        if not unit:
            return number
        return number + self.unit if self.unit_scale else f"{number} {self.unit}"

    def _line(self, now: float) -> None:
        elapsed = now - self.start
        if self.total:
            where = f"{100 * self.n / self.total:.0f}% ({self._amount(self.n, False)}/{self._amount(self.total)})"
        else:
            where = self._amount(self.n)
        rate = (self.n - self.initial) / elapsed if elapsed > 0 else 0.0
        text = f"{self.desc}: {where}, {tqdm.format_interval(elapsed)}, {self._amount(rate)}/s"
        print(text + (f", {self.postfix}" if self.postfix else ""), file=self.file, flush=True)
        self.shown, self.last = self.n, now


#: what :func:`progress` returns
Progress = tqdm | PlainProgress


class _Copy:
    """A text stream that also appends what is written to a log file, a bar's redraws (any
    write holding a carriage return) excepted."""

    def __init__(self, stream: TextIO, log: TextIO):
        self.stream, self.log = stream, log

    def write(self, text: str) -> int:
        if "\r" not in text:
            self.log.write(text)
            self.log.flush()
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


@contextlib.contextmanager
def step_log(path: str | os.PathLike, argv: Sequence[str]) -> Iterator[Path]:
    """Within the block, stdout and stderr also go to ``path`` (appended, after a line naming the
    command and its start time), as Kaldi's steps log under ``exp/<SYS>/log/``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(path, "a", encoding="utf-8") as log:
        log.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} {Path(sys.argv[0]).name} {' '.join(argv)}\n")
        out, err = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Copy(out, log), _Copy(err, log)
        try:
            yield path
        except BaseException as e:
            what = error_message(e) if isinstance(e, SpkidError) else f"{type(e).__name__}: {e}"
            log.write(f"# failed after {time.monotonic() - start:.1f} s: {what}\n")
            raise
        else:
            log.write(f"# done in {time.monotonic() - start:.1f} s\n")
        finally:
            sys.stdout, sys.stderr = out, err
