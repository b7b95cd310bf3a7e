#!/usr/bin/env sh
# The test bed itself: moto emulator (IAM checking on), fixtures, notification templates,
# fault proxy. Builds or refreshes the venv first (tests/bed/venv.sh), then runs
# tests/bed/test_bed.py under it; that prints TAP.
root=$(cd "$(dirname "$0")/../.." && pwd)
exec "$root/tests/bed/venv-python" "$root/tests/bed/test_bed.py"
