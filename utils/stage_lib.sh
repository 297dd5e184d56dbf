# Helpers for run.sh's stage blocks (sourced). They keep each block to one readable call.
stage_lib_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# run_stage N MARKER CMD [ARGS...]: run CMD unless MARKER exists and the record of what made
# its folder still agrees with the disk (or --force true); write MARKER last, so an interrupted
# stage is simply run again. MARKER holds $stage_stamp (the corpus the stage was made from), so
# a stage finished for another corpus is refused rather than skipped. Output goes to the
# terminal and to exp/log/stage<N>_<dir of MARKER, / as _>.log.
run_stage() {
  local n=$1 marker=$2; shift 2
  if stage_done "$n" "$marker" "redoing it"; then
    echo "stage $n: $marker exists, skipping (--force true redoes it)"
    return 0
  fi
  local dir log held
  dir=$(dirname "$marker")
  log=exp/log/stage${n}_${dir//\//_}.log
  mkdir -p exp/log
  # one run.sh per stage output: the stage's own lock refuses a second writer, this keeps the
  # second run.sh from truncating the first one's log (released when this run.sh ends)
  exec {held}>>"$log"
  if ! flock -n "$held"; then
    echo "run.sh: another run.sh is running stage $n into $dir (it holds $log): wait for it or stop it" >&2
    exit 1
  fi
  rm -f "$marker"
  echo "stage $n: $*"
  local rc=0
  run_forwarding_signals "$log" "$@" || rc=$?
  exec {held}>&-
  stop_unless_done "$n" $rc "$log"
  mkdir -p "$dir"
  printf '%s\n' "${stage_stamp:-}" > "$marker.tmp"
  mv "$marker.tmp" "$marker"
}

# run_forwarding_signals LOG CMD [ARGS...]: run CMD, its output also to LOG, as a job of its
# own, and pass a SIGINT or SIGTERM that run.sh gets on to it, then wait until it has stopped
# (training removes the checkpoint it was writing and names the one to resume from). Run in
# the foreground, CMD would be left running under init when run.sh is killed; run in the
# background without job control, it would ignore SIGINT. Sets stage_signal to INT or TERM
# when one came.
stage_signal=
stage_leader=
forward_stage_signal() {
  [ -z "$stage_leader" ] || kill -"$stage_signal" "$stage_leader" 2>/dev/null || true
}
run_forwarding_signals() {
  local log=$1 rc
  shift
  # the traps come first: a signal that arrives while the job starts is remembered, and passed
  # on as soon as the job's leader is known
  stage_leader=
  trap 'stage_signal=INT; forward_stage_signal' INT
  trap 'stage_signal=TERM; forward_stage_signal' TERM
  set -m
  "$@" 2>&1 | tee -i "$log" &
  set +m
  stage_leader=$(jobs -p %%)  # the job's process group leader: CMD
  [ -z "$stage_signal" ] || forward_stage_signal
  while :; do
    rc=0
    wait %% || rc=$?
    [ -n "$(jobs -r)" ] || break  # a signal ended the wait, not the job
  done
  trap - INT TERM
  return $rc
}

# check_stamp MARKER N: stop when MARKER (of stage N) was made from another corpus than
# $stage_stamp names (an empty marker, written before markers named their corpus, is taken as it is).
check_stamp() {
  local made
  made=$(cat "$1")
  if [ -n "$made" ] && [ "$made" != "${stage_stamp:-}" ]; then
    echo "run.sh: $1 was made from $made, not $stage_stamp: redo stage $2 for this corpus" \
      "(./run.sh --stage $2 --stop-stage $2 --force true with the same options)" >&2
    exit 1
  fi
}

# stage_done N MARKER REDO: whether stage N's output MARKER is there to keep: not --force, made
# from this corpus (else run.sh stops), the record of its folder still agreeing with the disk
# (else it says so, then REDO: what is done instead).
stage_done() {
  [ -f "$2" ] && [ "${force:-false}" != true ] || return 1
  check_stamp "$2" "$1"
  provenance_agrees "$(dirname "$2")" && return 0
  echo "stage $1: $(dirname "$2") no longer matches what made it (above): $3"
  return 1
}

# provenance_agrees DIR: whether DIR's provenance.json (if it has one) still agrees with the
# files it names and config.conf (utils/check_provenance.py; it names what does not).
provenance_agrees() {
  local rc=0
  python "$stage_lib_dir/check_provenance.py" "$1" || rc=$?
  [ $rc -ne 3 ] || return 1
  [ $rc -eq 0 ] || { echo "run.sh: utils/check_provenance.py $1 failed" >&2; exit 1; }
}

# require MARKER N WHAT: stop with the stage to run first when an input stage is not finished,
# or its outputs no longer match what made them.
require() {
  if [ ! -f "$1" ]; then
    echo "run.sh: $1 is missing: $3 first (./run.sh --stage $2 --stop-stage $2 with the same options)" >&2
    exit 1
  fi
  check_stamp "$1" "$2"
  if ! provenance_agrees "$(dirname "$1")"; then
    echo "run.sh: $(dirname "$1") no longer matches what made it (above): $3 again first" \
      "(./run.sh --stage $2 --stop-stage $2 with the same options)" >&2
    exit 1
  fi
}

# require_file FILE HINT
require_file() {
  [ -f "$1" ] || { echo "run.sh: $1 not found: $2" >&2; exit 1; }
}

# eval_sets DATA: the data directories that hold trial lists (DATA/<set>/trials/*).
eval_sets() {
  local d
  for d in "$1"/*/trials; do
    [ -d "$d" ] && basename "$(dirname "$d")"
  done
  return 0
}

# conf_trunk FILE: the trunk a system conf trains, read as the steps read it (the default
# when the conf does not say).
conf_trunk() {
  python -c 'import sys
from spkid.config import read_resolved
from spkid.errors import SpkidError
from spkid.options import SYSTEM_OPTIONS
try:
    print(read_resolved(sys.argv[1], SYSTEM_OPTIONS)[0].trunk)
except SpkidError as e:
    sys.exit(f"run.sh: {e}")' "$1"
}

# check_training_data SYS CONF: stop, naming what to obtain, when SYS (to be trained with CONF)
# needs a data dir (its training set; MUSAN and the RIRs when it augments) that is neither in
# data/ nor, when stage 2 runs in this call, in the corpus.
check_training_data() {
  python -c 'import sys
from pathlib import Path
from spkid.config import read_resolved
from spkid.corpora.prepare import missing_training_data
from spkid.errors import SpkidError
from spkid.options import SYSTEM_OPTIONS, TrainOptions
sys_name, conf, corpus, stage2_runs = sys.argv[1:]
try:
    train = next(o for o in read_resolved(conf, SYSTEM_OPTIONS) if isinstance(o, TrainOptions))
except SpkidError as e:
    sys.exit(f"run.sh: {e}")
missing = missing_training_data(Path("data"), Path(corpus), train.augment, stage2_runs == "true")
if missing:
    sys.exit(f"run.sh: {sys_name} needs training, on data that is not there:\n  " + "\n  ".join(missing)
             + f"\nObtain it (docs/voxceleb.md) and run stages 1-2, or leave {sys_name} out of --systems "
             "(a system imported with steps/import_model.py needs no training).")' "$1" "$2" "$corpus_dir" "$([ "$stage" -le 2 ] && echo true || echo false)"
}

# set_aside DIR: move DIR out of the way (to DIR.old-<time>), so that a forced stage starts
# afresh without destroying a finished run.
set_aside() {
  [ -e "$1" ] || return 0
  if [ -f "$1/.lock" ] && ! flock -n "$1/.lock" true; then  # (spkid.fileio.writer_lock)
    echo "run.sh: --force true: $1 is in use by $(cat "$1/.lock"); not moving it: wait for that run or stop it" >&2
    exit 1
  fi
  local to
  to="$1.old-$(date +%Y%m%d-%H%M%S)"
  mv "$1" "$to"
  echo "run.sh: --force true: moved $1 to $to"
}

# run_stage_jobs N RUNNER [OPTIONS] JOB=1:M LOG CMD [ARGS...]: stage N's jobs through RUNNER
# (cmd.sh's, Kaldi's run.pl contract), the runner's report also in exp/log/stage<N>_jobs.log and
# a SIGINT or SIGTERM passed on to it; run.sh stops when a job failed (the runner names each one
# and its log; the jobs write their own markers, so the same command redoes only the rest).
run_stage_jobs() {
  local n=$1 rc=0
  shift
  mkdir -p exp/log
  echo "stage $n: $*"
  run_forwarding_signals "exp/log/stage${n}_jobs.log" "$@" || rc=$?
  stop_unless_done "$n" $rc "the jobs and logs named above, also in exp/log/stage${n}_jobs.log"
}

# stop_unless_done N RC WHERE: stop run.sh when stage N's command was stopped by a signal or
# failed (exit status RC), naming WHERE to look.
stop_unless_done() {
  if [ -n "$stage_signal" ]; then
    echo "run.sh: stage $1 stopped by SIG$stage_signal (see $3); the same command resumes it" >&2
    exit $((128 + $(kill -l "$stage_signal")))
  fi
  if [ "$2" -ne 0 ]; then
    echo "run.sh: stage $1 failed; see $3" >&2
    exit 1
  fi
}
