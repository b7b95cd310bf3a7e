#!/usr/bin/env sh
# aws.call retries, backoff, skew and error parsing against a local scripted server.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
exec python3 "$root/tests/aws/test_retries.py"
