#!/usr/bin/env bash
# Stage 1 for --corpus voxceleb (called by run.sh): every option goes to local/download_corpora.py
# (see its --help). Give credentials through the environment so they stay out of logs:
#   export SPKID_VOX_KEY=...            (or SPKID_VOX_USER and SPKID_VOX_PASSWORD)
#   local/download_voxceleb.sh --corpus-dir corpus/voxceleb --nj 8
set -euo pipefail
. "$(dirname "$0")/../path.sh"
exec python "$SPKID_ROOT/local/download_corpora.py" "$@"
