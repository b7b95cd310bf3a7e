#!/usr/bin/env sh
# The test bed itself: moto emulator (IAM checking on), fixtures, notification templates,
# fault proxy. Builds or refreshes the venv first (tests/bed/venv.sh), then runs
# tests/bed/test_bed.py under it; that prints TAP.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
if ! py=$("$root/tests/bed/venv.sh"); then
  echo "1..1"
  echo "not ok 1 - test bed virtualenv (tests/bed/venv.sh failed)"
  exit 1
fi
exec "$py" "$root/tests/bed/test_bed.py"
