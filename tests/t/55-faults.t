#!/usr/bin/env sh
# Rotator's AWS client against the emulator through the fault proxy: 5xx, throttling,
# connection resets, slow answers past the timeout and a skewed clock are retried or
# corrected; access and validation errors are not retried. Runs under the bed's venv.
root=$(cd "$(dirname "$0")/../.." && pwd)
exec "$root/tests/bed/venv-python" "$root/tests/faults/test_faults.py"
