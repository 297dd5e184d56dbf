#!/usr/bin/env bash
# Stage 5: steps/score.sh [--option=value ...] exp/SYS data/SET
# Scores every trial list of data/SET: exp/SYS/scores/SET/<list>.{score,metrics.json,det.png}.
# Options are those of steps/score.py (see --help); the system's config.conf gives the rest.
set -euo pipefail
. "$(dirname "$0")/../path.sh"
exec python "$SPKID_ROOT/steps/score.py" "$@"
