#!/usr/bin/env sh
# Rotator's AWS client against the emulator through the fault proxy: 5xx, throttling,
# connection resets, slow answers past the timeout and a skewed clock are retried or
# corrected; access and validation errors are not retried. Runs under the bed's venv.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
if ! py=$("$root/tests/bed/venv.sh"); then
  echo "1..1"
  echo "not ok 1 - test bed virtualenv (tests/bed/venv.sh failed)"
  exit 1
fi
exec "$py" "$root/tests/faults/test_faults.py"
