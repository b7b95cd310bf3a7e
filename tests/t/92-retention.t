#!/usr/bin/env sh
# Retention on the moto emulator (IAM checked): the dry run plans exactly the deletions
# of the run; partly tagged, foreign-backup and unreadable look-alikes survive; the
# per-run cap holds; `rotator retention --explain` gives each table with its reason.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
export ROTATOR_ROOT="$root" ROTATOR="${ROTATOR:-$root/rotator}"
exec "$root/tests/bed/venv-python" "$root/tests/beyond/test_retention.py"
