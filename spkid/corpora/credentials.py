"""VoxCeleb access credentials: from the environment, or a file readable by its owner alone.

Never options: a command line is visible to every user of the machine (``ps``), and a conf file
sits in backups and git. Messages never quote a value.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from spkid.errors import SpkidError

ENV_USER, ENV_PASSWORD, ENV_KEY = "SPKID_VOX_USER", "SPKID_VOX_PASSWORD", "SPKID_VOX_KEY"


@dataclass(frozen=True)
class Credentials:
    """A key for the URL template's {key}, or an HTTP basic-auth user and password."""

    user: str = ""
    password: str = ""
    key: str = ""


def read_credentials(credentials_file: str = "", environ: Mapping[str, str] = os.environ) -> Credentials:
    """The credentials of the environment, completed from ``credentials_file`` (``NAME=value``
    lines, ``#`` comments), which must be readable by its owner alone. Messages never quote a value."""
    given = {name: environ.get(name, "") for name in (ENV_USER, ENV_PASSWORD, ENV_KEY)}
    if credentials_file:
        path = Path(credentials_file)
        try:
            mode = path.stat().st_mode
        except OSError as e:
            raise SpkidError(f"--vox-credentials-file={path}: {e.strerror}") from None
        if mode & 0o077:
            raise SpkidError(f"--vox-credentials-file={path} is open to other users (mode {mode & 0o777:o}): "
                             f"make it yours alone (chmod 600 {path}), and change the credentials if others have read them")
        with open(path, encoding="utf-8-sig") as f:
            for lineno, raw in enumerate(f, 1):
                line = raw.strip()
                if not line or line.startswith("#"):
                    continue
                name, eq, value = line.partition("=")
                name = name.strip().removeprefix("export ").strip()
                if not eq or name not in given:
                    raise SpkidError(f"{path}:{lineno}: expected {ENV_KEY}=..., {ENV_USER}=... or {ENV_PASSWORD}=...")
                given[name] = given[name] or value.strip().strip("'\"")
    return Credentials(given[ENV_USER], given[ENV_PASSWORD], given[ENV_KEY])
