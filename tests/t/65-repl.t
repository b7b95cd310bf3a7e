#!/usr/bin/env sh
# The REPL and status against a live daemon on the emulator (real processes, real socket,
# a pty for the interactive session). Runs under the test bed's virtualenv.
root=$(cd "$(dirname "$0")/../.." && pwd)
exec "$root/tests/bed/venv-python" "$root/tests/repl/test_repl.py"
