#!/usr/bin/env bash
# Installs the Debian 12 packages hdbrepl needs, only those that are missing.
# Used by every Makefile target, so a fresh machine needs nothing else.
set -euo pipefail
# Extra packages a target needs can be given as arguments (make fuzz: clang libclang-rt-dev).
pkgs=(libsqlite3-dev sqlite3 libboost1.81-dev libboost-json1.81-dev libssl-dev libyaml-cpp-dev catch2 cmake ninja-build g++ make pkg-config python3 "$@")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
