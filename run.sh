#!/usr/bin/env bash
# spkid recipe: Clova AI's VoxSRC 2020 systems (Q/SAP, H/ASP, ECAPA-TDNN) end to end.
#
#   ./run.sh                                    whole pipeline on the generated mini corpus (CPU)
#   ./run.sh --corpus voxceleb --stage 3 --systems "HA4 EA4" --gpus 8
#
# Stages (--stage N --stop-stage M):
#   1 obtain corpora        2 prepare data dirs     3 train systems
#   4 extract embeddings    5 score and metrics     6 fuse and write exp/RESULTS.md
# A finished stage is skipped (its marker file is written last); --force true redoes it.
set -euo pipefail
cd "$(dirname "$0")"

stage=1                # first stage to run (table above)
stop_stage=6           # last stage to run
corpus=mini            # mini | voxceleb
corpus_dir=            # default: corpus/<corpus>
systems=               # default: "QA4 HA2 EA4" on mini, "HA4 EA4 EA5 HA6" on voxceleb
mini_systems="QA4 HA2 EA4"
voxceleb_systems="HA4 EA4 EA5 HA6"
nj=2                   # parallel jobs for generation, conversion and extraction (run as cmd.sh says)
gpus=0                 # GPUs per node for training and extraction (0 = CPU)
nnodes=1               # training nodes; run the same command on each (Slurm: docs/cluster.md)
node_rank=0            # this node's index, 0..nnodes-1
master_addr=localhost  # host name of node 0
seed=1                 # mini corpus generation seed
extra_voices=false     # mini corpus: add mbrola voices (Debian contrib/non-free)
force=false            # redo finished stages (a forced stage 3 sets the old run aside)
backend=none           # full: also each back-end part, applied to $backend_base, as a system <base>_<part>
backend_base=EA4       # the trained system the back-end parts start from
fusion_tune=           # SET/LIST tuning the fusion weights (default: conf/fusion.conf's, VoxSRC 2020 val)
# stage 1 of --corpus voxceleb: corpora already on disk, linked in (docs/voxceleb.md)
vox1_dir=              # VoxCeleb1 as extracted (vox1_dev_wav vox1_test_wav), space-separated
vox2_dir=              # VoxCeleb2 dev as extracted (dev/aac/idNNNNN/...), m4a converted
musan_dir=             # MUSAN (noise/ music/ speech/)
rirs_dir=              # RIRS_NOISES (simulated_rirs/)
lists_dir=             # a folder with veri_test2.txt, list_test_all2.txt, list_test_hard2.txt
voxsrc19_list=         # VoxSRC 2019 test list (file or URL)
voxsrc19_audio=        # its audio (zip, tar or folder)
voxsrc20_list=         # VoxSRC 2020 validation list as published (file or URL)
voxsrc20_audio=        # its audio: voxceleb1_cd.zip or a folder
skip_download=false    # true: download nothing; what is not on disk is skipped, named
on_disk_options="vox1_dir vox2_dir musan_dir rirs_dir lists_dir voxsrc19_list voxsrc19_audio voxsrc20_list voxsrc20_audio skip_download"
known_options="stage stop_stage corpus corpus_dir systems nj gpus nnodes node_rank master_addr seed extra_voices force backend backend_base fusion_tune $on_disk_options"
help_message="usage: ./run.sh [--stage N] [--stop-stage M] [--corpus mini|voxceleb] [--corpus-dir DIR]
       [--systems \"HA4 EA4\"] [--nj N] [--gpus N] [--nnodes N --node-rank R --master-addr HOST]
       [--seed S] [--extra-voices true] [--force true] [--backend none|full [--backend-base SYS]] [--config FILE]
       [--fusion-tune SET/LIST] [--vox1-dir DIRS] [--vox2-dir DIR] [--musan-dir DIR] [--rirs-dir DIR] [--lists-dir DIR]
       [--voxsrc20-list FILE --voxsrc20-audio DIR|ZIP] [--voxsrc19-list ... --voxsrc19-audio ...] [--skip-download true]
  --config FILE: these options, one --option=value per line, # comments (the command line wins)

Stages (--stage N --stop-stage M; a finished stage is skipped, --force true redoes it):
  1  obtain corpora: mini generates them, voxceleb downloads  corpus/<corpus>/
  2  prepare and validate Kaldi data dirs                      data/
  3  train each system of --systems (conf/<SYS>.conf)          exp/<SYS>/final.pt
  4  extract ten-crop embeddings of every set                  exp/<SYS>/embeddings/<set>/
  5  score every trial list: EER, MinDCF, DET                  exp/<SYS>/scores/<set>/
  6  fuse the systems and write the results table              exp/RESULTS.md
Stages 1 (VoxCeleb2 conversion), 4 and 5 run their jobs as cmd.sh says: here, or on a Slurm
cluster (docs/cluster.md).
"

. utils/parse_options.sh
[ $# -eq 0 ] || { echo "run.sh: unexpected argument '$1' (see --help)" >&2; exit 1; }
case $corpus in
  mini|voxceleb) ;;
  *) echo "run.sh: --corpus must be mini or voxceleb, not '$corpus'" >&2; exit 1 ;;
esac
case $backend in
  none|full) ;;
  *) echo "run.sh: --backend must be none or full, not '$backend'" >&2; exit 1 ;;
esac
for v in stage stop_stage; do
  [[ "${!v}" =~ ^[1-6]$ ]] || { echo "run.sh: --${v//_/-} must be a stage number, 1 to 6, not '${!v}'" >&2; exit 1; }
done
for v in nj gpus nnodes node_rank; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "run.sh: --${v//_/-} takes a whole number, not '${!v}'" >&2; exit 1; }
done
[ "$nj" -ge 1 ] && [ "$nnodes" -ge 1 ] || { echo "run.sh: --nj and --nnodes must be at least 1" >&2; exit 1; }
[ "$stage" -le "$stop_stage" ] || { echo "run.sh: --stage $stage comes after --stop-stage $stop_stage" >&2; exit 1; }

setup_opts=""; $extra_voices && setup_opts="--extra-voices"
utils/setup_env.sh $setup_opts
. ./path.sh
. ./cmd.sh  # how the stages run their jobs: this machine or a Slurm cluster (docs/cluster.md)
. utils/stage_lib.sh

corpus_dir=${corpus_dir:-corpus/$corpus}
if [ -z "$systems" ]; then
  if [ "$corpus" = mini ]; then systems=$mini_systems; else systems=$voxceleb_systems; fi
fi
# --backend full: checkpoint averaging (avg), mean subtraction (ms), large-margin fine-tuning
# (lm), QMF calibration (qmf) and PLDA (plda), each a system <base>_<part> of its own
# (conf/backend/<part>.conf, conf/lm.conf) that stages 4-6 take like any other.
backend_parts=; backend_systems=
if [ "$backend" = full ]; then
  backend_parts="avg ms lm qmf plda"
  backend_systems=$(for part in $backend_parts; do printf '%s ' "${backend_base}_$part"; done)
fi
all_systems=$(echo $systems $backend_systems)
# the systems stage 3 trains: those not trained (or imported) yet; --force true trains them all again
to_train=
for sys in $systems; do
  if $force || [ ! -f exp/$sys/.done.train ]; then to_train="$to_train $sys"; fi
done
if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then  # every conf and training set before any work
  for sys in $to_train ${backend_parts:+$backend_base}; do
    require_file conf/$sys.conf "a conf per system: see conf/ and the README's system table"
  done
  # what stage 1 obtains is not there yet: with stage 1 in this call, checked before stage 3
  [ "$stage" -le 1 ] || for sys in $to_train; do check_training_data $sys conf/$sys.conf; done
fi
# A system's confs: conf/<SYS>.conf; the mini corpus shrinks it to fit a CPU with conf/mini.conf,
# then conf/mini_<trunk>.conf.
system_confs() {
  local trunk
  if [ $corpus = mini ]; then
    trunk=$(conf_trunk conf/$1.conf) || exit 1
    echo "--config conf/$1.conf --config conf/mini.conf --config conf/mini_$trunk.conf"
  else
    echo "--config conf/$1.conf"
  fi
}
train_set=data/vox2_dev
launch_opts="--gpus $gpus --nnodes $nnodes --node-rank $node_rank --master-addr $master_addr"

if [ $stage -le 1 ] && [ $stop_stage -ge 1 ]; then
  if [ "$corpus" = mini ]; then
    run_stage 1 "$corpus_dir/.done" \
      local/make_mini_corpus.py --out "$corpus_dir" --nj $nj --seed $seed --extra-voices $extra_voices
  else
    on_disk=()
    for v in $on_disk_options; do
      [ -z "${!v}" ] || on_disk+=("--${v//_/-}" "${!v}")
    done
    run_stage 1 "$corpus_dir/.done" \
      local/download_voxceleb.sh --corpus-dir "$corpus_dir" --nj $nj --cmd "$cpu_cmd" ${on_disk[@]+"${on_disk[@]}"}
  fi
fi

# stages 2-6 write into their markers the corpus they were made from (see run_stage): its
# name, not its path, so that a moved checkout or another node's mount point is the same corpus
stage_stamp="the $corpus corpus"

if [ $stage -le 2 ] && [ $stop_stage -ge 2 ]; then
  require "$corpus_dir/.done" 1 "obtain the $corpus corpus"
  run_stage 2 data/.done \
    local/prepare_data.py --corpus-dir "$corpus_dir" --data data
fi

if [ $stage -le 3 ] && [ $stop_stage -ge 3 ]; then
  require data/.done 2 "prepare the data directories"
  [ "$stage" -gt 1 ] || for sys in $to_train; do check_training_data $sys conf/$sys.conf; done
  for sys in $systems; do
    if [[ " $to_train " != *" $sys "* ]]; then  # trained or imported: its corpus and training lists checked
      require exp/$sys/.done.train 3 "train $sys afresh (--force true)"
      echo "stage 3: exp/$sys/.done.train exists, skipping (--force true redoes it)"
      continue
    fi
    confs=$(system_confs $sys)
    $force && set_aside exp/$sys  # a forced stage 3 trains from scratch; the old run is kept
    run_stage 3 exp/$sys/.done.train \
      steps/train.sh $launch_opts $confs --train-data $train_set --aug-data data exp/$sys
  done
  [ -z "$backend_parts" ] || require exp/$backend_base/.done.train 3 "train $backend_base"
  for part in $backend_parts; do
    sys=${backend_base}_$part
    $force && set_aside exp/$sys
    if [ $part = lm ]; then  # stage 3 continued from the base system: conf/lm.conf after its confs
      confs="$(system_confs $backend_base) --config conf/lm.conf"
      [ $corpus = mini ] && confs="$confs --config conf/mini_lm.conf"
      run_stage 3 exp/$sys/.done.train \
        steps/train.sh $launch_opts $confs --init-from exp/$backend_base --train-data $train_set --aug-data data exp/$sys
    else
      run_stage 3 exp/$sys/.done.train \
        steps/derive_system.py --config conf/backend/$part.conf exp/$backend_base exp/$sys
    fi
  done
fi

if [ $stage -le 4 ] && [ $stop_stage -ge 4 ]; then
  for sys in $all_systems; do
    require exp/$sys/.done.train 3 "train $sys"
    for set in $(eval_sets data); do
      $force && rm -rf exp/$sys/embeddings/$set
      run_stage 4 exp/$sys/embeddings/$set/.done \
        steps/extract.sh --nj $nj --gpus $gpus --cmd "$extract_cmd" --cohort-data $train_set exp/$sys data/$set
    done
  done
fi

if [ $stage -le 5 ] && [ $stop_stage -ge 5 ]; then
  sets=$(echo $(eval_sets data))
  score_systems=  # those with a set still to score: one job each (score_cmd)
  for sys in $all_systems; do
    for set in $sets; do
      require exp/$sys/embeddings/$set/.done 4 "extract $sys embeddings of data/$set"
      stage_done 5 exp/$sys/scores/$set/.done "scoring it again" || score_systems="$score_systems $sys"
    done
  done
  score_systems=$(echo $(printf '%s\n' $score_systems | uniq))
  if [ -z "$score_systems" ]; then
    echo "stage 5: every system's scores exist, skipping (--force true redoes them)"
  else
    run_stage_jobs 5 $score_cmd JOB=1:$(echo $score_systems | wc -w) exp/log/score.JOB.log \
      steps/score_sets.sh --job JOB --systems "$score_systems" --sets "$sets" --force $force --stamp "$stage_stamp"
  fi
fi

if [ $stage -le 6 ] && [ $stop_stage -ge 6 ]; then
  for sys in $all_systems; do
    for set in $(eval_sets data); do
      require exp/$sys/scores/$set/.done 5 "score $sys on data/$set"
    done
  done
  # exp/RESULTS.md belongs to one set of systems: writing it for another retires the old marker
  marker="exp/.done.results.${all_systems// /_}${fusion_tune:+.tuned_on.${fusion_tune//\//.}}"
  { [ -f "$marker" ] && ! $force; } || rm -f exp/.done.results.*
  floor=""  # the mini corpus's table starts with a floor: cosine of MFCC statistics, no training
  if [ $corpus = mini ]; then
    floor="--floor exp/mfcc_baseline"
    run_stage 6 exp/mfcc_baseline/.done \
      local/mfcc_baseline.py --data data --scores-dir exp/mfcc_baseline --quiet true
  fi
  tune=""  # --fusion-tune SET/LIST: another list than conf/fusion.conf's tunes the weights
  if [ -n "$fusion_tune" ]; then
    require_file "data/${fusion_tune%%/*}/trials/${fusion_tune#*/}" "--fusion-tune names a trial list as SET/LIST (data/SET/trials/LIST)"
    tune="--tune-set=${fusion_tune%%/*} --tune-list=${fusion_tune#*/}"
  fi
  run_stage 6 "$marker" \
    steps/fuse_and_report.sh --config conf/fusion.conf $tune --systems "$all_systems" --corpus $corpus $floor data exp
  echo "run.sh: results in exp/RESULTS.md"
fi
