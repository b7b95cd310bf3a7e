#!/usr/bin/env sh
# Day-one operator errors: setup checks the topic first, replay names an unreadable file,
# a socket permission error says so (tests/firstrun/test_operator_errors.py).
root=$(cd "$(dirname "$0")/../.." && pwd)
exec "$root/tests/bed/venv-python" "$root/tests/firstrun/test_operator_errors.py"
