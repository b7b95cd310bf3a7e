#!/usr/bin/env sh
# Issue 7 end to end on the moto emulator (IAM checked): tags + TTL + PITR after ACTIVE,
# retention keep-2 (oldest Rotator copy deleted; SSM target and an untagged look-alike
# untouched), a validation failure keeps the previous copy in SSM and publishes one alert,
# `run --dry-run` plans DeleteTable with a reason, `rotator setup` twice changes nothing.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
export ROTATOR_ROOT="$root" ROTATOR="${ROTATOR:-$root/rotator}"
exec "$root/tests/bed/venv-python" "$root/tests/beyond/test_beyond.py"
