#!/usr/bin/env python3
"""Stage 1 for --corpus voxceleb: download (resumably, md5-checked) and extract VoxCeleb1/2,
MUSAN, RIRS_NOISES and the trial lists, convert VoxCeleb2 to wav, and write the corpus layout.

Credentials come from $SPKID_VOX_KEY, or $SPKID_VOX_USER and $SPKID_VOX_PASSWORD (or the
--vox-* options); they are never written to disk and are hidden in every message.

  local/download_corpora.py --corpus-dir corpus/voxceleb --nj 8
  local/download_corpora.py --corpus-dir /data/voxceleb --skip-download true   # corpora already there
"""

from __future__ import annotations

import sys
import traceback
from typing import Sequence

from spkid.cli import run_main
from spkid.config import parse_options
from spkid.corpora import ObtainOptions, Stage1, credentials_from_env
from spkid.download import Secrets
from spkid.errors import SpkidError


def main(argv: Sequence[str]) -> int:
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
