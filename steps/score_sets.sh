#!/usr/bin/env bash
# Stage 5 as one job of run.sh's score_cmd: system number JOB of --systems scores each of --sets
# in turn (the first set it scores fits the system's back-end, the others load it), each set
# skipped when its marker exp/SYS/scores/SET/.done is there, and the marker written when it is
# done (run_stage), so a re-run redoes only what is unfinished. Run from the recipe directory.
#   steps/score_sets.sh --job 2 --systems "QA4 EA4" --sets "vox1 voxsrc20_val" [--force true] [--stamp TEXT]
set -euo pipefail
job=          # which system of --systems this job scores, 1-based (the runner's JOB)
systems=      # the systems with sets still to score, as run.sh lists them
sets=         # the evaluation sets (data/<set>), scored in this order
force=false   # true: score again even where the marker is there
stamp=        # what the markers record (run.sh's corpus stamp)
known_options="job systems sets force stamp"
help_message="usage: steps/score_sets.sh --job K --systems \"A B\" --sets \"vox1 ...\" [--force true] [--stamp TEXT]"
. "$(dirname "$0")/../utils/parse_options.sh"
[ $# -eq 0 ] || { echo "score_sets.sh: unexpected argument '$1' (see --help)" >&2; exit 1; }
. "$(dirname "$0")/../path.sh"
. "$SPKID_ROOT/utils/stage_lib.sh"
read -r -a all <<< "$systems"
[[ "$job" =~ ^[0-9]+$ ]] && [ "$job" -ge 1 ] && [ "$job" -le ${#all[@]} ] \
  || { echo "score_sets.sh: --job must be 1 to ${#all[@]} (one per system of --systems), not '$job'" >&2; exit 1; }
sys=${all[$((job - 1))]}
stage_stamp=$stamp
for set in $sets; do
  run_stage 5 exp/$sys/scores/$set/.done steps/score.sh exp/$sys data/$set
done
