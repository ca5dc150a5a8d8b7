#!/usr/bin/env bash
# Installs the Debian packages named in the given lists (default:
# scripts/debian-packages.txt) that are missing. Needs root (or sudo).
# Safe to run again: it installs nothing twice.
set -euo pipefail
cd "$(dirname "$0")/.."

lists=("$@")
if [ ${#lists[@]} -eq 0 ]; then lists=(scripts/debian-packages.txt); fi
mapfile -t packages < <(cat "${lists[@]}" | grep -v '^\s*#' | grep -v '^\s*$')
missing=()
for package in "${packages[@]}"; do
  # A Node.js installed outside Debian's packages (with its npm) will do.
  if [[ "$package" == nodejs || "$package" == npm ]] && command -v node >/dev/null &&
     command -v npm >/dev/null; then
    continue
  fi
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "Installing: ${missing[*]}"
as_root=()
if [ "$(id -u)" -ne 0 ]; then as_root=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get update -q
"${as_root[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
