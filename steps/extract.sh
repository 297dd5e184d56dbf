#!/usr/bin/env bash
# Stage 4: steps/extract.sh [--nj N] [--gpus N] [--cohort-data data/vox2_dev] [--option=value ...] exp/SYS data/SET
# Ten-crop embeddings of every utterance of data/SET -> exp/SYS/embeddings/SET/embeddings.{ark,scp};
# split over --nj jobs (one per GPU with --gpus), merged and checked against wav.scp; resumable.
# Options are those of steps/extract.py (see --help).
set -euo pipefail
. "$(dirname "$0")/../path.sh"
exec python "$SPKID_ROOT/steps/extract.py" "$@"
