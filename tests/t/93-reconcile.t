#!/usr/bin/env sh
# Reconcile on the moto emulator with the AWS Backup control plane (IAM checked): three
# backups whose notifications were lost give ONE restore of the newest, the dry run prints
# exactly that plan, a late notification attaches to the reconciled workflow, a SIGKILL
# mid-restore neither skips nor doubles it, plain DynamoDB backups and tag selection.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
export ROTATOR_ROOT="$root" ROTATOR="${ROTATOR:-$root/rotator}"
exec "$root/tests/bed/venv-python" "$root/tests/reconcile/test_reconcile.py"
