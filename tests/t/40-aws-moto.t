#!/usr/bin/env sh
# aws.call against moto with signature and IAM checks on (tests/aws/test_moto.py).
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
if ! py=$("$root/tests/bed/venv.sh"); then
  echo "1..1"
  echo "not ok 1 - test bed virtualenv (tests/bed/venv.sh failed)"
  exit 1
fi
exec "$py" "$root/tests/aws/test_moto.py"
