#!/bin/sh
# Creates or refreshes the test bed's virtualenv at <repo>/.venv with the packages pinned in
# vendor/python-requirements.txt, then prints the venv's python path on stdout (and nothing
# else there: progress goes to stderr).
#
# Idempotent and fast when up to date: the venv holds a stamp with the SHA-256 of the
# requirements file plus the interpreter's version; when it matches, nothing runs. When it
# does not (first run, requirements edited, python upgraded, a half-built venv) the venv is
# rebuilt from scratch. Concurrent callers (prove -j) serialise on a lock file.
#
# Environment: PYTHON (default python3) picks the interpreter that builds the venv;
# ROTATOR_VENV overrides the venv folder.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
req="$root/vendor/python-requirements.txt"
venv="${ROTATOR_VENV:-$root/.venv}"
py="${PYTHON:-python3}"
stamp="$venv/.rotator-requirements.stamp"

[ -f "$req" ] || { echo "venv: missing $req" >&2; exit 1; }
command -v "$py" >/dev/null 2>&1 || { echo "venv: $py not found (install python3 and python3-venv)" >&2; exit 1; }

want() {
  { cat "$req"; "$py" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1
}

up_to_date() {
  [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$1" ]
}

hash=$(want)
if up_to_date "$hash"; then
  echo "$venv/bin/python"
  exit 0
fi

# The lock lives inside the venv folder (git-ignored) and survives rebuilds.
mkdir -p "$venv"
lock="$venv/.rotator-build.lock"
build() {
  # Re-check under the lock: another caller may have built it meanwhile.
  if up_to_date "$hash"; then
    return 0
  fi
  echo "venv: building $venv from $req" >&2
  start=$(date +%s)
  find "$venv" -mindepth 1 -maxdepth 1 ! -name "$(basename "$lock")*" -exec rm -rf {} +
  "$py" -m venv "$venv" >&2
  # Quiet, no version-check chatter, no user config leaking in.
  PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_CONFIG_FILE=/dev/null \
    "$venv/bin/python" -m pip install -q -r "$req" >&2
  "$venv/bin/python" -c 'import moto, boto3' >&2
  echo "$hash" >"$stamp"
  echo "venv: ready in $(( $(date +%s) - start ))s" >&2
}

if command -v flock >/dev/null 2>&1; then
  exec 9>"$lock"
  flock 9
  build
  flock -u 9
else
  # No flock: a mkdir lock, waiting up to 15 minutes for another builder.
  n=0
  while ! mkdir "$lock.d" 2>/dev/null; do
    n=$((n + 1))
    [ $n -lt 900 ] || { echo "venv: timed out waiting for $lock.d" >&2; exit 1; }
    sleep 1
  done
  trap 'rmdir "$lock.d" 2>/dev/null || true' EXIT INT TERM
  build
fi
echo "$venv/bin/python"
