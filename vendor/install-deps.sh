#!/bin/sh
# Installs the Debian packages listed in vendor/debian-packages.txt that are missing.
# Idempotent: with everything present it changes nothing and runs no apt-get.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
manifest="$here/debian-packages.txt"
missing=""
for pkg in $(sed -e 's/#.*//' "$manifest"); do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    missing="$missing $pkg"
  fi
done
if [ -z "$missing" ]; then
  echo "deps: all Debian packages present ($manifest)"
  exit 0
fi
echo "deps: installing:$missing"
sudo=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "deps: need root or sudo to install:$missing" >&2; exit 1; }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing
