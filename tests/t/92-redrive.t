#!/usr/bin/env sh
# rotator redrive end to end on the moto emulator (IAM checked): broken policy -> DLQ,
# fix, check, HUP, a redrive killed halfway, a second one; exactly once, DLQ empty.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
export ROTATOR_ROOT="$root" ROTATOR="${ROTATOR:-$root/rotator}"
exec "$root/tests/bed/venv-python" "$root/tests/redrive/test_redrive.py"
