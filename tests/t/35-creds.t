#!/usr/bin/env sh
# The credential chain (host/creds*.c) against local IMDSv2/ECS/STS stand-ins, real config
# files and a real credential_process (tests/creds/). Stdlib python only.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
: "${ROTATOR_BUILD:=$root/build}"
if [ ! -x "$ROTATOR_BUILD/tests/test_creds_chain" ]; then
  echo "1..1"; echo "not ok 1 - $ROTATOR_BUILD/tests/test_creds_chain is not built"; exit 1
fi
ROTATOR_ROOT=$root ROTATOR_BUILD=$ROTATOR_BUILD exec python3 "$root/tests/creds/test_creds.py"
