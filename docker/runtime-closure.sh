#!/usr/bin/env bash
# Copies programs and every shared library they load into a root directory
# for an image with nothing else in it:
#   docker/runtime-closure.sh ROOT BINARY...
# The programs go to ROOT/usr/local/bin; each library that ldd resolves, and
# the dynamic loader, go to the same path under ROOT as on this machine, as
# files (symlinks followed), so the loader finds them in its default
# directories without an ld.so.cache. The list comes from ldd alone: a
# library added to the build is carried along without naming it here.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 ROOT BINARY..." >&2
  exit 2
fi
root=$1
shift
mkdir -p "$root/usr/local/bin"
for binary in "$@"; do
  cp "$binary" "$root/usr/local/bin/"
  # Lines: "libx.so.1 => /path/libx.so.1 (0x...)", "/lib64/ld-linux-x86-64.so.2
  # (0x...)", "linux-vdso.so.1 (0x...)" (in the kernel, nothing to copy), or
  # "libx.so.1 => not found", which must stop the build.
  listing=$(ldd "$binary")
  if grep -q 'not found' <<<"$listing"; then
    echo "$binary: missing libraries:" >&2
    grep 'not found' <<<"$listing" >&2
    exit 1
  fi
  while read -r library; do
    mkdir -p "$root$(dirname "$library")"
    cp -L "$library" "$root$library"
  done < <(awk '$2 == "=>" { print $3 } $1 ~ /^\// { print $1 }' <<<"$listing")
done
