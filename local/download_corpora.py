#!/usr/bin/env python3
"""Stage 1 for --corpus voxceleb: download (resumably, md5-checked) and extract VoxCeleb1/2,
MUSAN, RIRS_NOISES and the trial lists, convert VoxCeleb2 to wav, and write the corpus layout.

Credentials come from $SPKID_VOX_KEY, or $SPKID_VOX_USER and $SPKID_VOX_PASSWORD (or the
--vox-* options); they are never written to disk and are hidden in every message.

  local/download_corpora.py --corpus-dir corpus/voxceleb --nj 8
  local/download_corpora.py --corpus-dir /data/voxceleb --skip-download true   # corpora already there
  local/download_corpora.py --config conf/download.conf --corpus-dir ...     # URLs, VoxSRC sources
"""

from __future__ import annotations

import sys
import traceback
from typing import Sequence

from spkid.cli import run_main
from spkid.config import parse_options, read_conf_lines
from spkid.corpora.voxceleb import ENV_KEY, ENV_PASSWORD, ENV_USER, ObtainOptions, Stage1, credentials_from_env
from spkid.corpora.download import Secrets
from spkid.errors import SpkidError


SECRET_OPTIONS = ("--vox-user", "--vox-password", "--vox-key")


def refuse_secrets_in_confs(argv: Sequence[str]) -> None:
    """Credentials in a conf file would sit on disk (and in backups, and in git): refuse them."""
    for i, arg in enumerate(argv):
        conf = argv[i + 1] if arg == "--config" and i + 1 < len(argv) else arg[9:] if arg.startswith("--config=") else None
        if conf is None:
            continue
        for opt, _value, where in read_conf_lines(conf):
            if opt in SECRET_OPTIONS:
                raise SpkidError(f"{where}: {opt} must not be in a file; remove the line and export "
                                 f"{ENV_USER}, {ENV_PASSWORD} or {ENV_KEY} instead")


def main(argv: Sequence[str]) -> int:
    refuse_secrets_in_confs(argv)
    (opts, _) = parse_options([ObtainOptions], argv, prog="download_corpora.py", description=__doc__)
    opts = credentials_from_env(opts)
    secrets = Secrets(opts.vox_user, opts.vox_password, opts.vox_key)
    try:
        Stage1(opts).run()
    except SpkidError:
        raise
    except Exception:
        # An unexpected error may carry a URL with the key in its message: hide it, keep the trace.
        print(secrets.redact(traceback.format_exc()), file=sys.stderr, end="")
        return 1
    return 0


if __name__ == "__main__":
    run_main(main)
