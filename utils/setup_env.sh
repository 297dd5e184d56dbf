#!/usr/bin/env bash
# Idempotent environment bootstrap used by run.sh and test.sh.
#  1. Debian packages the mini corpus and VoxCeleb conversion need, and Slurm with munge for the
#     tests' one-node cluster (tests/slurm_cluster.py) (apt-get, as root).
#  2. .venv from requirements.txt (one pinned set; torch and torchaudio move together).
# A second run only compares a checksum and a package list: it takes seconds.
#   --extra-voices   also enable Debian contrib/non-free and install mbrola voices
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
extra_voices=false
for arg in "$@"; do
  case $arg in
    --extra-voices) extra_voices=true ;;
    *) echo "setup_env.sh: unknown option '$arg' (known: --extra-voices)" >&2; exit 2 ;;
  esac
done

debs="espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k fluidsynth timgm6mb-soundfont ffmpeg sox libsndfile1 slurm-wlm munge"
extra_debs="mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1 mbrola-de1 mbrola-de2 mbrola-fr1 mbrola-fr4 mbrola-es1 mbrola-it3 mbrola-nl2"
want=$debs
$extra_voices && want="$want $extra_debs"

missing=""
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup_env.sh: missing Debian packages:$missing" >&2
    echo "Run as root, then re-run this command:" >&2
    $extra_voices && echo "  sed 's/^Components: .*/Components: contrib non-free/' /etc/apt/sources.list.d/debian.sources > /etc/apt/sources.list.d/debian-extra.sources" >&2
    echo "  apt-get update && apt-get install -y$missing" >&2
    exit 1
  fi
  if $extra_voices && [ ! -f /etc/apt/sources.list.d/debian-extra.sources ] && [ -f /etc/apt/sources.list.d/debian.sources ]; then
    sed 's/^Components: .*/Components: contrib non-free/' /etc/apt/sources.list.d/debian.sources \
      > /etc/apt/sources.list.d/debian-extra.sources
  fi
  echo "setup_env.sh: installing Debian packages:$missing"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

venv=$root/.venv
stamp=$venv/.requirements.sha256
want_sum=$(sha256sum "$root/requirements.txt" | cut -d' ' -f1)
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want_sum" ]; then
  exit 0
fi
echo "setup_env.sh: creating $venv from requirements.txt (torch is a large download: a few minutes)"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
log=$(mktemp)
if ! "$venv/bin/python" -m pip install -q -r "$root/requirements.txt" >"$log" 2>&1; then
  grep -v "^WARNING: Location" "$log" | tail -n 30 >&2
  echo "setup_env.sh: pip could not install requirements.txt (output above)" >&2
  rm -f "$log"; exit 1
fi
rm -f "$log"
"$venv/bin/python" -c "import torch, torchaudio, kaldiio, soundfile, sklearn, pyroomacoustics" \
  || { echo "setup_env.sh: the Python environment in $venv failed to import; delete it and re-run" >&2; exit 1; }
echo "$want_sum" > "$stamp"
