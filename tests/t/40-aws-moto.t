#!/usr/bin/env sh
# aws.call against moto with signature and IAM checks on (tests/aws/test_moto.py).
root=$(cd "$(dirname "$0")/../.." && pwd)
exec "$root/tests/bed/venv-python" "$root/tests/aws/test_moto.py"
