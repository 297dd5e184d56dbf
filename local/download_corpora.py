#!/usr/bin/env python3
"""Stage 1 for --corpus voxceleb: download (resumably, md5-checked) and extract VoxCeleb1/2,
MUSAN, RIRS_NOISES and the trial lists, convert VoxCeleb2 to wav, and write the corpus layout.

Credentials come from $SPKID_VOX_KEY, or $SPKID_VOX_USER and $SPKID_VOX_PASSWORD, in the
environment or in a --vox-credentials-file readable by you alone (chmod 600); never from the
command line, where every user of the machine sees them, nor a conf file. They are hidden in
every message.

  local/download_corpora.py --corpus-dir corpus/voxceleb --nj 8
  local/download_corpora.py --corpus-dir /data/voxceleb --skip-download true   # corpora already there
  local/download_corpora.py --config conf/download.conf --corpus-dir ...     # URLs, VoxSRC sources
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Sequence

from spkid.cli import run_main
from spkid.config import parse_options, read_conf_lines
from spkid.corpora.credentials import ENV_KEY, ENV_PASSWORD, ENV_USER, read_credentials
from spkid.corpora.download import Secrets
from spkid.corpora.voxceleb import ObtainOptions, CorpusObtainer
from spkid.errors import SpkidError


SECRET_OPTIONS = ("--vox-user", "--vox-password", "--vox-key")
CONVERT_JOB = [sys.executable, str(Path(__file__).resolve().parent / "convert_m4a.py")]  # one job of --cmd


def refuse_secrets(argv: Sequence[str]) -> None:
    """Credentials on the command line are visible to every user of the machine (``ps``), and in a
    conf file they would sit on disk (and in backups, and in git): refuse both, by name."""
    for i, arg in enumerate(argv):
        if arg.split("=", 1)[0] in SECRET_OPTIONS:
            raise SpkidError(f"{arg.split('=', 1)[0]}: credentials on the command line can be read by every user of "
                             f"this machine (ps); export {ENV_KEY} (or {ENV_USER} and {ENV_PASSWORD}) instead, or "
                             f"put them in a --vox-credentials-file only you can read (chmod 600)")
        conf = argv[i + 1] if arg == "--config" and i + 1 < len(argv) else arg[9:] if arg.startswith("--config=") else None
        if conf is None:
            continue
        for opt, _value, where in read_conf_lines(conf):
            if opt in SECRET_OPTIONS:
                raise SpkidError(f"{where}: {opt} must not be in a conf file; remove the line and export "
                                 f"{ENV_USER}, {ENV_PASSWORD} or {ENV_KEY} instead (or use --vox-credentials-file)")


def main(argv: Sequence[str]) -> int:
    refuse_secrets(argv)
    opts = parse_options([ObtainOptions], argv, prog="local/download_corpora.py", description=__doc__)[ObtainOptions]
    cred = read_credentials(opts.vox_credentials_file)
    secrets = Secrets(cred.user, cred.password, cred.key)
    try:
        CorpusObtainer(opts, credentials=cred, convert_command=CONVERT_JOB).run()
    except SpkidError:
        raise
    except Exception:
        # An unexpected error may carry a URL with the key in its message: hide it, keep the trace.
        print(secrets.redact(traceback.format_exc()), file=sys.stderr, end="")
        return 1
    return 0


if __name__ == "__main__":
    run_main(main)
