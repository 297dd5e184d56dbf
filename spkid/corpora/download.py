"""Resumable HTTP downloads with md5 checks, concatenation of split archives, and extraction.

The mechanism only; what to fetch and where it goes is :mod:`spkid.corpora.voxceleb`; archives
are :mod:`spkid.corpora.archives`.

- A download goes to ``<dest>.part`` and is renamed onto ``<dest>`` only when complete and
  its md5 matches; an interrupted transfer is resumed with an HTTP ``Range`` request (by the
  retries of the same call, or by running the command again).
- A file whose md5 does not match is moved aside to ``<dest>.bad`` and the error names it.
- A verified file gets a ``<dest>.md5`` sidecar, so a re-run does not hash 70 GB again.
- Credentials never appear in a message: every text that leaves this module goes through
  :meth:`Secrets.redact`, and sources carry a display URL without the key.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from spkid import console
from spkid.errors import SpkidError
from spkid.fileio import atomic_write

CHUNK = 1 << 20
MD5_RE = re.compile(r"^[0-9a-fA-F]{32}$")


class DownloadError(SpkidError):
    pass


class Secrets:
    """The credential strings of a run; :meth:`redact` hides them (raw and URL-quoted) in any text."""

    def __init__(self, *values: str) -> None:
        forms = set()
        for v in values:
            if v:
                forms.update({v, urllib.parse.quote(v, safe=""), urllib.parse.quote_plus(v)})
        self._forms = sorted(forms, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for form in self._forms:
            text = text.replace(form, "***")
        return text


@dataclass(frozen=True)
class Source:
    """Where one file comes from. ``url`` may hold a key; messages only ever show ``display``."""

    url: str
    display: str
    authorization: str | None = None  # an HTTP Authorization header value, sent to this URL only

    @staticmethod
    def basic_auth(user: str, password: str) -> str:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return f"Basic {token}"


def is_url(text: str) -> bool:
    return urllib.parse.urlsplit(text).scheme in ("http", "https")


def fill_template(template: str, file: str, key: str = "") -> tuple[str, str]:
    """``(url, display)`` for ``file`` from a URL template with ``{file}`` and optionally ``{key}``;
    the display form shows the key as ``***`` and drops any ``user:password@``."""
    quoted = urllib.parse.quote(file)
    url = template.replace("{file}", quoted).replace("{key}", urllib.parse.quote(key, safe=""))
    display = template.replace("{file}", quoted).replace("{key}", "***")
    parts = urllib.parse.urlsplit(display)
    if parts.username or parts.password:
        display = urllib.parse.urlunsplit(parts._replace(netloc=parts.hostname or ""))
    return url, display


# --------------------------------------------------------------------------- md5


def md5sum(path: str | os.PathLike, progress: bool = False) -> str:
    path = Path(path)
    h = hashlib.md5()
    with open(path, "rb") as f, console.progress(total=path.stat().st_size, unit="B", unit_scale=True,
                                                 desc=f"md5 {path.name}", quiet=not progress, leave=False) as bar:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
            bar.update(len(block))
    return h.hexdigest()


def read_md5_list(path: str | os.PathLike) -> dict[str, str]:
    """``<name> <md5>`` (VoxCeleb's fileparts.txt) or ``<md5>  <name>`` (md5sum output) per line;
    a name keeps only its base name. Blank lines and ``#`` comments are skipped."""
    path = Path(path)
    out: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            fields = line.split()
            md5s = [x for x in fields if MD5_RE.match(x)]
            names = [x for x in fields if not MD5_RE.match(x)]
            if len(fields) < 2 or len(md5s) != 1 or not names:
                raise DownloadError(f"{path}:{lineno}: expected '<file> <md5>' or '<md5>  <file>', got '{line}'")
            out[os.path.basename(names[-1].lstrip("*"))] = md5s[0].lower()
    return out


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".md5")


def is_verified(path: Path, md5: str | None) -> bool:
    """True when ``path`` exists and its sidecar records ``md5`` (or any md5 when none is known)
    for its current size."""
    side = _sidecar(path)
    if not path.is_file() or not side.is_file():
        return False
    fields = side.read_text().split()
    if len(fields) != 3:
        return False
    got, size, _name = fields
    return int(size) == path.stat().st_size and (md5 is None or got == md5)


def mark_verified(path: Path, md5: str) -> None:
    with atomic_write(_sidecar(path)) as f:
        f.write(f"{md5} {path.stat().st_size} {path.name}\n")


def check_md5(path: Path, md5: str | None, what: str, progress: bool, hint: str, final: Path | None = None) -> str:
    """Hash ``path``; on a mismatch move it to ``<final>.bad`` and raise. ``final``: the name
    ``path`` is to get when it checks (a download's ``.part``, a temporary file), if not its own."""
    got = md5sum(path, progress=progress)
    if md5 is not None and got != md5:
        final = final or path
        bad = final.with_name(final.name + ".bad")
        os.replace(path, bad)  # kept for the user to look at, not an output: no atomic write
        raise DownloadError(
            f"md5 mismatch for {final.name} ({what}): expected {md5}, got {got}. The file was moved "
            f"aside to {bad} ({bad.stat().st_size} bytes). {hint}")
    return got


def verify_existing(path: Path, md5: str | None, progress: bool) -> bool:
    """For a file already at ``path`` (downloaded earlier or put there by the user): True when
    it is verified (hashing it once if needed); a mismatch raises as :func:`check_md5`."""
    if not path.is_file():
        return False
    if is_verified(path, md5):
        return True
    got = check_md5(path, md5, "a file already present", progress,
                    "Delete it (or the .bad file) and run again to download it anew.")
    mark_verified(path, got)
    return True


# --------------------------------------------------------------------------- HTTP


class _Retry(Exception):
    """A transient failure: the transfer may be resumed."""


def _open(src: Source, offset: int, timeout: float):
    req = urllib.request.Request(src.url, headers={"User-Agent": "spkid-download/1"})
    if offset:
        req.add_header("Range", f"bytes={offset}-")
    if src.authorization:
        # Unredirected: a redirect to another host must not receive the credentials.
        req.add_unredirected_header("Authorization", src.authorization)
    return urllib.request.urlopen(req, timeout=timeout)


def _http_error(e: urllib.error.HTTPError, src: Source, dest: Path, auth_hint: str) -> Exception:
    if e.code in (401, 403):
        return DownloadError(f"{src.display} refused access (HTTP {e.code}) while fetching {dest.name}: "
                             f"{auth_hint}")
    if e.code == 404:
        return DownloadError(f"{src.display} not found (HTTP 404) while fetching {dest.name}: check the "
                             f"base URL option for this file (the file name is appended as {{file}})")
    return _Retry(f"HTTP {e.code} {e.reason}")


def _content_range_start(value: str | None) -> int | None:
    m = re.match(r"bytes (\d+)-\d+/(\d+|\*)", value or "")
    return int(m.group(1)) if m else None


def _transfer(src: Source, part: Path, timeout: float, expect_binary: bool, progress: bool,
              auth_hint: str, dest: Path) -> None:
    """One attempt: append to ``part`` from where it stops. Raises _Retry on a transient failure."""
    offset = part.stat().st_size if part.exists() else 0
    try:
        resp = _open(src, offset, timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset > 0:
            return  # the part is already complete: nothing left to send
        raise _http_error(e, src, dest, auth_hint) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)
        raise _Retry(f"cannot connect ({reason})") from None
    with resp:
        mode = "ab"
        if resp.status == 206:
            if _content_range_start(resp.headers.get("Content-Range")) != offset:
                part.unlink(missing_ok=True)
                raise _Retry("the server answered the range request with another range; starting over")
        else:
            mode, offset = "wb", 0  # the server ignored Range: start over
        ctype = resp.headers.get("Content-Type", "")
        if expect_binary and ctype.startswith("text/html"):
            raise DownloadError(f"{src.display} sent an HTML page instead of {dest.name}: the key or "
                                f"credentials are probably wrong or expired ({auth_hint})")
        length = resp.headers.get("Content-Length")
        remaining = int(length) if length is not None else None
        total = offset + remaining if remaining is not None else None
        got = 0
        with open(part, mode) as out, console.progress(total=total, initial=offset, unit="B", unit_scale=True,
                                                      desc=dest.name, quiet=not progress, leave=False) as bar:
            while True:
                try:
                    block = resp.read(CHUNK)
                except (OSError, http.client.HTTPException) as e:
                    raise _Retry(f"transfer interrupted ({type(e).__name__}: {e})") from None
                if not block:
                    break
                try:
                    out.write(block)
                except OSError as e:  # the disk, not the network: retrying cannot help
                    raise DownloadError(f"cannot write {part}: {e.strerror or e}; free space in {part.parent} "
                                        f"and run again (the transfer resumes from {offset + got} bytes)") from None
                got += len(block)
                bar.update(len(block))
        if remaining is not None and got < remaining:
            raise _Retry(f"transfer interrupted after {offset + got} of {total} bytes")


def fetch(src: Source, dest: str | os.PathLike, md5: str | None, *, secrets: Secrets,
          retries: int = 5, timeout: float = 60.0, backoff: float = 2.0, expect_binary: bool = True,
          progress: bool = True, auth_hint: str = "check the credentials", log: Callable[[str], None] = print) -> Path:
    """Download ``src`` to ``dest`` (resuming ``dest.part``), check its md5, return ``dest``.

    A file already verified at ``dest`` is kept. ``md5=None``: not verified (said in the log)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        if verify_existing(dest, md5, progress):
            return dest
        part = dest.with_name(dest.name + ".part")
        attempt = 0
        while True:
            try:
                _transfer(src, part, timeout, expect_binary, progress, auth_hint, dest)
                break
            except _Retry as e:
                attempt += 1
                have = part.stat().st_size if part.exists() else 0
                if attempt > retries:
                    raise DownloadError(
                        f"download of {dest.name} from {src.display} failed: {e}; {have} bytes are kept in "
                        f"{part}: run the same command again to resume") from None
                log(f"{dest.name}: {e}; retry {attempt}/{retries} from byte {have}")
                time.sleep(backoff * 2 ** (attempt - 1))
        got = check_md5(part, md5, f"downloaded from {src.display}", progress,
                        "A small file is usually an error page from the server (look at it). Delete the "
                        ".bad file and run again to download it anew; if it fails again, check the md5 "
                        "list and the base URL.", final=dest)
        # not fileio.atomic_paths: that removes its temporary file when interrupted, and this
        # .part must survive an interrupted transfer for the next run to resume it
        os.replace(part, dest)
        mark_verified(dest, got)
        if md5 is None:
            log(f"note: no published md5 for {dest.name}; downloaded but not verified (md5 {got})")
        return dest
    except SpkidError as e:
        raise type(e)(secrets.redact(str(e))) from None


def fetch_first(sources: Sequence[Source], dest: str | os.PathLike, md5: str | None, *, secrets: Secrets,
                by_hand: str, **kw) -> tuple[Path, Source]:
    """:func:`fetch` from the first of ``sources`` (mirrors of one file, in order of preference) that
    delivers it with the right md5; returns the file and the source that gave it. When every one
    fails, the error lists each URL tried with its failure, then ``by_hand``: how to give the file
    yourself."""
    failures = []
    for src in sources:
        try:
            return fetch(src, dest, md5, secrets=secrets, **kw), src
        except DownloadError as e:
            failures.append(f"  {src.display}: {e}")
    raise DownloadError(secrets.redact(f"no URL delivered {Path(dest).name}; tried, in order:\n" + "\n".join(failures)
                                       + f"\n{by_hand}"))


def fetch_text(src: Source, *, secrets: Secrets, timeout: float = 60.0) -> str:
    """A small text file (an md5 list) into memory."""
    try:
        with _open(src, 0, timeout) as resp:
            return resp.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        err = _http_error(e, src, Path(urllib.parse.urlsplit(src.display).path), "check the credentials")
        raise DownloadError(secrets.redact(str(err))) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        raise DownloadError(secrets.redact(f"cannot fetch {src.display}: {getattr(e, 'reason', e)}")) from None
