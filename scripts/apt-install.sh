#!/usr/bin/env bash
# Installs Debian packages the project needs, if they are missing:
#   apt-install.sh COMMAND PACKAGE [COMMAND PACKAGE ...]
# Installs with apt-get as root; otherwise says which command would.
set -euo pipefail
missing=()
while [ $# -ge 2 ]; do
  # Debian puts daemons (nginx) in sbin, on root's PATH only.
  command -v "$1" >/dev/null 2>&1 || [ -x "/usr/local/sbin/$1" ] || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ] || missing+=("$2")
  shift 2
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "apt: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
else
  echo "missing: ${missing[*]}. Install with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
