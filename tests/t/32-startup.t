#!/usr/bin/env sh
# Start-up checks: fail fast on no region / no credentials / missing queue / access denied,
# retry network errors and 5xx, READY=1 after the queue answered, --preflight
# (tests/firstrun/test_startup.py).
root=$(cd "$(dirname "$0")/../.." && pwd)
exec "$root/tests/bed/venv-python" "$root/tests/firstrun/test_startup.py"
