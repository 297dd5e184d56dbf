#!/usr/bin/env bash
# The whole test suite, from a fresh machine: sets up the environment first if needed.
#   ./test.sh                 all tests (the slow end-to-end ones included)
#   ./test.sh -m "not slow"   the quick ones; any other arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")"
utils/setup_env.sh
. ./path.sh
exec python -m pytest -q "$@" tests
