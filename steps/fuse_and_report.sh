#!/usr/bin/env bash
# Stage 6: steps/fuse_and_report.sh --config conf/fusion.conf --systems "A B" DATA EXP
# F1 (best EER) and F2 (best MinDCF) fusion tuned on the list conf/fusion.conf names
# (VoxSRC 2020 val), applied to every list, then EXP/RESULTS.md with a DET plot per list.
# All arguments go to steps/fuse.py and steps/make_results_table.py (see their --help).
set -euo pipefail
. "$(dirname "$0")/../path.sh"
for arg in "$@"; do
  if [ "$arg" = --help ] || [ "$arg" = -h ]; then  # the two steps take the same options: list them once
    echo "usage: steps/fuse_and_report.sh [--config FILE]... [--option=value]... DATA EXP"
    echo "Stage 6: steps/fuse.py (F1 and F2 fusion) then steps/make_results_table.py (EXP/RESULTS.md)."
    python "$SPKID_ROOT/steps/fuse.py" --help | sed -n '/^Options/,$p'
    exit 0
  fi
done
python "$SPKID_ROOT/steps/fuse.py" "$@"
python "$SPKID_ROOT/steps/make_results_table.py" "$@"
