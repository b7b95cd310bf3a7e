#!/bin/sh
# Every tests/lua/*_test.lua, run inside the real host binary, as one TAP stream.
# Many tests provoke errors on purpose; their log lines are kept and shown only when the
# run fails, so a green run reads cleanly.
cd "$(dirname "$0")/../.." || exit 1
log=$(mktemp "${TMPDIR:-/tmp}/rotator-lua-tests.XXXXXX") || exit 1
"${ROTATOR:-./rotator}" test tests/lua/*_test.lua 2>"$log"
rc=$?
if [ "$rc" -ne 0 ]; then
  echo "# daemon log of the Lua tests:" >&2
  sed 's/^/# /' "$log" >&2
fi
rm -f "$log"
exit "$rc"
