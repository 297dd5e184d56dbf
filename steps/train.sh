#!/usr/bin/env bash
# Train one system with torchrun: one process per GPU of this node, DDP across GPUs and nodes
# (NCCL); with --gpus 0, --cpu-procs CPU processes (gloo). One process on one node runs
# steps/train.py directly.
#
#   steps/train.sh --gpus 8 --config conf/HA4.conf --train-data data/vox2_dev --aug-data data exp/HA4
#   steps/train.sh --gpus 8 --nnodes 2 --node-rank 0 --master-addr node1 ...   (same on node1 with --node-rank 1)
#   sbatch --nodes=2 --ntasks-per-node=1 --gres=gpu:8 --wrap "steps/train.sh --gpus 8 ..."   (Slurm)
#
# The launcher options below may appear anywhere; every other argument goes to steps/train.py
# (steps/train.py --help lists them). Several nodes need exp/ on a shared file system.
# Under Slurm (docs/cluster.md), in a job's batch script (or salloc's shell) the training becomes a
# job step of one task per node of the allocation, so that sbatch --nodes=N around it (or around
# run.sh) trains on all N nodes and the job's --signal reaches it; in a step of several tasks each
# task is one node, its rendezvous read from Slurm's environment (spkid/train/slurm.py).
set -euo pipefail
. "$(cd "$(dirname "$0")/.." && pwd)/path.sh"

gpus=0             # processes, one per GPU, on this node; 0 = CPU
nnodes=1           # nodes taking part; run the same command on each node
node_rank=0        # this node's index, 0..nnodes-1
master_addr=localhost  # host name of node 0
master_port=29500  # rendezvous port on --master-addr (several nodes only; one node picks a free port)
cpu_procs=1        # with --gpus 0: CPU processes, DDP over gloo, e.g. 2 to test DDP
known_options="gpus nnodes node_rank master_addr master_port cpu_procs"
help_message="usage: steps/train.sh [--gpus N] [--nnodes N --node-rank R --master-addr HOST [--master-port P]]
                      [--cpu-procs N] [steps/train.py options] EXP_DIR
Under Slurm it takes the nodes from the job (docs/cluster.md: one task per node, started by
itself in a batch script). Other options (--config conf/SYS.conf, --train-data DIR, ...): see
steps/train.py --help"

all_args=("$@")
launch=()
rest=()
while [ $# -gt 0 ]; do
  case "$1" in
    --gpus|--nnodes|--node-rank|--master-addr|--master-port|--cpu-procs)
      [ $# -ge 2 ] || { echo "$0: option $1 needs a value" >&2; exit 1; }
      launch+=("$1" "$2"); shift 2 ;;
    --gpus=*|--nnodes=*|--node-rank=*|--master-addr=*|--master-port=*|--cpu-procs=*|--help|-h)
      launch+=("$1"); shift ;;
    *) rest+=("$1"); shift ;;
  esac
done
set -- ${launch[@]+"${launch[@]}"}
. "$SPKID_ROOT/utils/parse_options.sh"

for v in gpus nnodes node_rank cpu_procs master_port; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "$0: --${v//_/-} takes a whole number, not '${!v}'" >&2; exit 1; }
done
if [ "$gpus" -gt 0 ]; then
  nproc=$gpus; device=cuda
else
  [ "$cpu_procs" -ge 1 ] || { echo "$0: --cpu-procs must be at least 1" >&2; exit 1; }
  nproc=$cpu_procs; device=cpu
fi
if [ "$nnodes" -eq 1 ] && [ -n "${SLURM_JOB_ID:-}" ]; then
  if [ -z "${SLURM_STEP_ID:-}" ]; then
    nodes=${SLURM_JOB_NUM_NODES:-1}
    exec srun --nodes="$nodes" --ntasks="$nodes" --ntasks-per-node=1 --kill-on-bad-exit=1 "$0" ${all_args[@]+"${all_args[@]}"}
  fi
  if [ "${SLURM_STEP_NUM_TASKS:-1}" -gt 1 ]; then
    from_slurm=$(python "$SPKID_ROOT/utils/slurm_rendezvous.py" "$gpus") || exit 1
    read -r nnodes node_rank master_addr master_port <<< "$from_slurm"
  fi
fi
if [ "$nnodes" -gt 1 ]; then
  [ "$node_rank" -lt "$nnodes" ] || { echo "$0: --node-rank $node_rank is not below --nnodes $nnodes" >&2; exit 1; }
  rendezvous=(--nnodes="$nnodes" --node-rank="$node_rank" --master-addr="$master_addr" --master-port="$master_port")
else
  rendezvous=(--standalone)
fi

if [ "$nproc" -eq 1 ] && [ "$nnodes" -eq 1 ]; then
  # one process: no launcher, so an error or Ctrl-C is train.py's own one line
  exec python "$SPKID_ROOT/steps/train.py" --device "$device" ${rest[@]+"${rest[@]}"}
fi
# torchrun, ending in one line rather than its traceback when a signal stops it (spkid/train/launch.py)
exec python -m spkid.train.launch "${rendezvous[@]}" --nproc-per-node="$nproc" --max-restarts=0 \
  "$SPKID_ROOT/steps/train.py" --device "$device" ${rest[@]+"${rest[@]}"}
