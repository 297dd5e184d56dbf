# Sourced by run.sh, test.sh and every shell step: the project's Python, PATH and locale.
SPKID_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export SPKID_ROOT
export PATH="$SPKID_ROOT/.venv/bin:$SPKID_ROOT/utils:$SPKID_ROOT/steps:$SPKID_ROOT/local:$PATH"
export PYTHONPATH="$SPKID_ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
# Kaldi's sort order for every list we write or check.
export LC_ALL=C
