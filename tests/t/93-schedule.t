#!/usr/bin/env sh
# Scheduled restore tests on the bed (moto + the AWS Backup control plane): a
# rate(1 minute) schedule restores the newest point of both kinds, validates, deletes
# after keep_for; SIGKILL and restart neither skip nor double a firing (~4 minutes).
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
export ROTATOR_ROOT="$root" ROTATOR="${ROTATOR:-$root/rotator}"
exec "$root/tests/bed/venv-python" "$root/tests/beyond/test_schedule.py"
