#!/usr/bin/env bash
# Stage 1 for --corpus voxceleb (called by run.sh): every option goes to local/download_corpora.py
# (see its --help). Site-specific options (URL templates, VoxSRC sources, keep flags) may sit in
# conf/download.conf, read when present; options given here win. Credentials go through the
# environment only, so they stay out of files and logs:
#   export SPKID_VOX_KEY=...            (or SPKID_VOX_USER and SPKID_VOX_PASSWORD)
#   local/download_voxceleb.sh --corpus-dir corpus/voxceleb --nj 8
set -euo pipefail
. "$(dirname "$0")/../path.sh"
conf=()
if [ -f "$SPKID_ROOT/conf/download.conf" ]; then
  echo "download_voxceleb.sh: reading conf/download.conf"
  conf=(--config "$SPKID_ROOT/conf/download.conf")
fi
exec python "$SPKID_ROOT/local/download_corpora.py" ${conf[@]+"${conf[@]}"} "$@"
