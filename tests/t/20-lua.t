#!/bin/sh
# Every tests/lua/*_test.lua, run inside the real host binary, as one TAP stream.
cd "$(dirname "$0")/../.." || exit 1
exec "${ROTATOR:-./rotator}" --log-level error test tests/lua/*_test.lua
