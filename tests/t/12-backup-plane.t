#!/usr/bin/env sh
# The bed's AWS Backup control plane (tests/bed/backup_plane.py inside the moto process):
# backup, restore and copy jobs, recovery points, SNS and EventBridge, SigV4 and IAM.
root=$(cd "$(dirname "$0")/../.." && pwd)
exec "$root/tests/bed/venv-python" "$root/tests/bed/test_backup_plane.py"
