#!/usr/bin/env sh
# The REPL and status against a live daemon on the emulator (real processes, real socket,
# a pty for the interactive session). Runs under the test bed's virtualenv.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
if ! py=$("$root/tests/bed/venv.sh"); then
  echo "1..1"
  echo "not ok 1 - test bed virtualenv (tests/bed/venv.sh failed)"
  exit 1
fi
exec "$py" "$root/tests/repl/test_repl.py"
