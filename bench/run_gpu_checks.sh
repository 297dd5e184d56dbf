#!/usr/bin/env bash
# Every check that needs a GPU, as one script (a few minutes on one H100/H200):
#   1. the CUDA-only tests (fp32 front-end under autocast, no host-device sync in a step,
#      non-finite skip under fp16/bf16, batched augmentation against the reference on CUDA)
#   2. bench/models.py: forward+backward and inference samples/s per trunk (fp16 autocast)
#   3. bench/train_throughput.py: end-to-end utterances/s per trunk, batched device
#      augmentation (the MUSAN bank on the GPU) against per-utterance augmentation in the
#      workers (the ratios printed; the GPU figure --batched-augment=auto still lacks for the
#      bank); then H/ASP at batch 400, and with CUDA graphs (--compile-mode reduce-overhead)
#   4. steps/train.sh --gpus GPUS for two epochs: with GPUS >= 2, DDP over NCCL (torchrun); with
#      GPUS=1 it is the one-process path (no torchrun, no DDP, no NCCL)
# Each part is time-limited and logs to OUT_DIR/<part>.log; a failing part does not stop the rest.
# All of it runs for more than one 10-minute device call: name the parts to run after GPUS, in
# the order they should run (the most wanted first), e.g.
#   BUDGET_S=500 bench/run_gpu_checks.sh OUT 1 env hasp_cuda_graphs hasp_batch400 train_throughput
# BUDGET_S: seconds the whole run may take (the device call's limit less a margin for the copy
# back); each part's limit is cut to what is left of it, and a part with under 30 s left is
# skipped (its log says so), so the run ends, with every log written, before the call is killed.
#   bench/run_gpu_checks.sh OUT_DIR [GPUS [PART ...]]
#   parts: env cuda_tests augment_tests train_throughput hasp_batch400 hasp_cuda_graphs models ddp_nccl
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bench/run_gpu_checks.sh OUT_DIR [GPUS [PART ...]]}
gpus=${2:-1}
shift $(( $# < 2 ? $# : 2 ))
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(env cuda_tests augment_tests train_throughput hasp_batch400 hasp_cuda_graphs models ddp_nccl)
budget=${BUDGET_S:-0}
[[ "$budget" =~ ^[0-9]+$ ]] || { echo "$0: BUDGET_S takes whole seconds, not '$budget'" >&2; exit 1; }
mkdir -p "$out"
[ -f path.sh ] && . ./path.sh
py=$(command -v python3)
export PYTHONUNBUFFERED=1

part() {  # part NAME SECONDS CMD...
  local name=$1 secs=$2; shift 2
  if [ "$budget" -gt 0 ]; then
    local left=$((budget - SECONDS))
    if [ "$left" -lt 30 ]; then
      echo "=== $name: skipped, $left s left of BUDGET_S=$budget" | tee "$out/$name.log"
      return 0
    fi
    [ "$secs" -le "$left" ] || secs=$left
  fi
  echo "=== $name (limit $secs s): $*" | tee "$out/$name.log"
  local t0=$SECONDS
  timeout -k 10 "$secs" "$@" >>"$out/$name.log" 2>&1
  local rc=$?
  echo "=== $name: exit $rc$( ( [ $rc -eq 124 ] || [ $rc -eq 137 ] ) && echo ' (time limit)') after $((SECONDS - t0)) s" | tee -a "$out/$name.log"
  tail -n 25 "$out/$name.log"
}

throughput=("$py" bench/train_throughput.py --device=cuda --workers=14)
for name in "${parts[@]}"; do
  case "$name" in
    env)
      part env 30 bash -c "nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc; \
        $py -c 'import torch, torchaudio; print(torch.__version__, torchaudio.__version__, torch.cuda.get_device_name())'" ;;
    cuda_tests)
      part cuda_tests 240 "$py" -m pytest -q -p no:cacheprovider -k "cuda or CUDA or nonfinite" \
        tests/test_models.py tests/test_features.py tests/test_trainer.py tests/test_dataset.py ;;
    augment_tests)
      part augment_tests 120 "$py" -m pytest -q -p no:cacheprovider tests/test_augment.py ;;
    train_throughput)
      part train_throughput 300 "${throughput[@]}" --steps=20 --warmup=5 ;;
    hasp_batch400)
      part hasp_batch400 150 "${throughput[@]}" --trunks=H_ASP --batch-size=400 --placements=worker,bank \
        --steps=20 --warmup=3 ;;
    hasp_cuda_graphs)
      part hasp_cuda_graphs 300 "${throughput[@]}" --trunks=H_ASP --compile=true --compile-mode=reduce-overhead \
        --placements=worker,bank --steps=40 --warmup=5 ;;
    models)
      part models 150 "$py" bench/models.py --device=cuda ;;
    ddp_nccl)
      ddp=$(mktemp -d)
      [ "$gpus" -ge 2 ] || echo "=== ddp_nccl: GPUS=$gpus: one process, so neither torchrun nor DDP nor NCCL is exercised"
      part ddp_nccl 180 bash -c "$py -c \"
from pathlib import Path
from spkid.data.synthetic import make_train_dir, make_aug_dirs
make_train_dir(Path('$ddp'), num_speakers=200, utts_per_speaker=4)
make_aug_dirs(Path('$ddp'))
\" && steps/train.sh --gpus $gpus --trunk H_ASP --loss ap_softmax --batch-size 400 --epochs 2 \
  --augment true --num-workers 8 --amp fp16 --train-data $ddp/data/train --aug-data $ddp/data \
  --quiet true $ddp/exp && ls -la $ddp/exp $ddp/exp/checkpoints && tail -n 5 $ddp/exp/log/train.log"
      rm -rf "$ddp" ;;
    *)
      echo "=== $name: no such part (parts: env cuda_tests augment_tests train_throughput hasp_batch400" \
        "hasp_cuda_graphs models ddp_nccl)" | tee "$out/$name.log" ;;
  esac
done
