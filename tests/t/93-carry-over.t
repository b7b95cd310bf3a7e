#!/usr/bin/env sh
# What no restore carries over, end to end on moto (IAM checked): stream, Application
# Auto Scaling targets and policies, contributor insights and the resource policy copied
# onto the restored table, each a step in the history; a crash and restart, and a
# redelivery, double nothing.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
export ROTATOR_ROOT="$root" ROTATOR="${ROTATOR:-$root/rotator}"
exec "$root/tests/bed/venv-python" "$root/tests/beyond/test_carry_over.py"
