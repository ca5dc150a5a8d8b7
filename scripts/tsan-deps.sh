#!/usr/bin/env bash
# Prepares what the tsan preset builds against, in build/tsan-deps/:
#   absl/     Abseil built with ThreadSanitizer (the slow part, cached)
#   include/  a header that keeps protobuf's ABI under -fsanitize=thread
#   lib/      the gRPC call ordering that TSAN cannot see (an object file)
# scripts/test.sh tsan runs it first. Each part is explained below.
#
# Abseil: Debian's libabsl is not built with -fsanitize=thread, so
# ThreadSanitizer cannot see absl::Mutex (nor gRPC's mutexes, which are
# absl::Mutex underneath) and reports a race on every guarded field. This
# rebuilds the very source of the installed libabsl-dev (Debian's source
# package with Debian's patches: same options.h, same inline namespace, same
# SONAMEs libabsl_*.so.20220623) with -fsanitize=thread, as shared libraries.
# The tsan preset links against it and writes the directory into its
# binaries' DT_RPATH, which the loader also follows for the libabsl that
# Debian's libgrpc loads: one instrumented Abseil per process. Nothing else
# changes (Python's grpcio and the system keep Debian's libabsl; an
# instrumented libabsl cannot load into a process without the TSAN runtime,
# which is why this is not done with LD_LIBRARY_PATH). It is reused while
# its stamp matches the installed libabsl-dev, the compiler and this recipe.
#
# The source comes through apt with a private configuration (deb-src twins
# of the system's Debian entries, lists under build/tsan-deps/work): the
# system's apt sources are not touched. Needs dpkg-dev
# (scripts/tsan-packages.txt). About 6 minutes on 2 cores the first time.
#
#   scripts/tsan-deps.sh           build Abseil unless it is current
#   scripts/tsan-deps.sh --force   build it again
set -euo pipefail
cd "$(dirname "$0")/.."

# Bump when the way the libraries are built changes.
readonly kRecipe=1
readonly kFlags="-g -O2 -fsanitize=thread -fno-omit-frame-pointer"

mkdir -p build/tsan-deps
deps=$(cd build/tsan-deps && pwd)
prefix=$deps/absl
stamp=$prefix/seqserve-tsan.stamp

version=$(dpkg-query -W -f='${source:Version}' libabsl-dev)
source_package=$(dpkg-query -W -f='${source:Package}' libabsl-dev)
wanted="$source_package $version, g++ $(g++ -dumpfullversion), $kFlags, recipe $kRecipe"

# One build at a time (CI jobs or terminals sharing the checkout).
exec 9>"$deps/lock"
flock 9

# Protobuf's map_field.h gives MapFieldBase two more fields when it sees
# __SANITIZE_THREAD__: code compiled with -fsanitize=thread would disagree
# with Debian's libprotobuf about the layout of every map field (it crashes
# in Map::find on google.protobuf.Struct). The tsan preset force-includes
# this header first in every file: map_field.h is read once, as
# libprotobuf was built. Only that header is affected: libstdc++'s
# configuration (_GLIBCXX_TSAN) is read before, and protobuf 3.21's headers
# include no Abseil or gRPC header.
abi_header=$deps/include/seqserve/tsan_protobuf_abi.h
abi_text='// Written by scripts/tsan-deps.sh for the tsan preset (-include): reads
// protobuf'"'"'s map_field.h with the layout Debian'"'"'s libprotobuf was built with.
#pragma once
#ifdef __cplusplus
#include <cstddef>  // libstdc++'"'"'s c++config.h first, while it sees TSAN
#pragma push_macro("__SANITIZE_THREAD__")
#undef __SANITIZE_THREAD__
#include <google/protobuf/map_field.h>
#pragma pop_macro("__SANITIZE_THREAD__")
#endif'
# Written only when it changes: it is a dependency of every object file.
write_if_changed() {  # file text
  if [[ ! -f "$1" || "$(cat "$1")" != "$2" ]]; then
    mkdir -p "$(dirname "$1")"
    printf '%s\n' "$2" >"$1"
  fi
}
write_if_changed "$abi_header" "$abi_text"

# The one ordering of gRPC's that seqserve relies on and TSAN cannot see
# through Debian's uninstrumented libgrpc: what a thread did before starting
# a batch of operations on a call happens before the batch's completion is
# handled. The tsan preset links this object into every executable, where
# it interposes the two C functions that libgrpc++ calls at those points
# (through the PLT): a release on the call when a batch starts, an acquire
# when the completion drops its reference (CallOpSet::FinalizeResult, before
# the callback or reactor runs). Without it every async call is reported:
# the request, response and context handed to gRPC look raced by the
# completion callback. Compiled without TSAN: its own code adds no edges.
edges_source=$deps/src/tsan_grpc_order.cc
edges_object=$deps/lib/tsan_grpc_order.o
edges_text='// Written by scripts/tsan-deps.sh; see the comment there.
#include <dlfcn.h>
#include <cstddef>
extern "C" {
// Weak: CMake links its configure-time test programs with these flags too,
// without the TSAN runtime.
void __tsan_acquire(void* addr) __attribute__((weak));
void __tsan_release(void* addr) __attribute__((weak));
struct grpc_call;
struct grpc_op;
using StartBatch = int (*)(grpc_call*, const grpc_op*, size_t, void*, void*);
using Unref = void (*)(grpc_call*);
static StartBatch real_start_batch;
static Unref real_unref;
__attribute__((constructor)) static void FindTheRealOnes() {
  real_start_batch = reinterpret_cast<StartBatch>(dlsym(RTLD_NEXT, "grpc_call_start_batch"));
  real_unref = reinterpret_cast<Unref>(dlsym(RTLD_NEXT, "grpc_call_unref"));
}
int grpc_call_start_batch(grpc_call* call, const grpc_op* ops, size_t nops,
                          void* tag, void* reserved) {
  if (__tsan_release) __tsan_release(call);
  return real_start_batch(call, ops, nops, tag, reserved);
}
void grpc_call_unref(grpc_call* call) {
  if (__tsan_acquire) __tsan_acquire(call);
  real_unref(call);
}
}'
write_if_changed "$edges_source" "$edges_text"
if [[ ! -f "$edges_object" || "$edges_source" -nt "$edges_object" ]]; then
  mkdir -p "$(dirname "$edges_object")"
  g++ -std=c++17 -O2 -c "$edges_source" -o "$edges_object"
fi

if [[ "${1:-}" != --force && -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]]; then
  echo "tsan-deps: $prefix is current ($wanted)"
  exit 0
fi
echo "tsan-deps: building $wanted into $prefix"
start=$SECONDS

work=$deps/work
rm -rf "$work" "$prefix.new"
mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" \
         "$work/apt/sources.list.d"

# deb-src twins of the system's entries for this release (bookworm,
# bookworm-updates, bookworm-security), one-line and deb822 alike.
codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
suite_re="^$codename(-[a-z]+)?\$"
for list in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
  [ -f "$list" ] || continue
  awk -v re="$suite_re" '
    $1 == "deb" {
      i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
      if ($(i + 1) ~ re) { $1 = "deb-src"; print }
    }' "$list"
done > "$work/apt/sources.list"
for sources in /etc/apt/sources.list.d/*.sources; do
  [ -f "$sources" ] || continue
  awk -v re="$suite_re" '
    function flush() {
      if (types && suites) printf "%s\n", stanza
      stanza = ""; types = suites = 0
    }
    /^[ \t]*$/ { flush(); next }
    /^Types:/ {
      for (i = 2; i <= NF; i++) if ($i == "deb") types = 1
      stanza = stanza "Types: deb-src\n"; next
    }
    /^Suites:/ { for (i = 2; i <= NF; i++) if ($i ~ re) suites = 1 }
    /^Enabled: *no/ { types = 0 }
    { stanza = stanza $0 "\n" }
    END { flush() }' "$sources"
done > "$work/apt/sources.list.d/debian-src.sources"
if ! grep -q . "$work/apt/sources.list" "$work/apt/sources.list.d/debian-src.sources"; then
  echo "tsan-deps: no Debian $codename entry in /etc/apt to fetch $source_package from" >&2
  exit 1
fi
apt_options=(
  -o "Dir::Etc::SourceList=$work/apt/sources.list"
  -o "Dir::Etc::SourceParts=$work/apt/sources.list.d"
  -o "Dir::State::Lists=$work/apt/lists"
  -o "Dir::Cache=$work/apt/cache"
)
# As root, apt hands downloads to the _apt user, who cannot write here.
if [ "$(id -u)" -eq 0 ]; then apt_options+=(-o APT::Sandbox::User=root); fi
apt-get "${apt_options[@]}" -qq update
(cd "$work" && apt-get "${apt_options[@]}" -q source "$source_package=$version")
src=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name "$source_package-*")

# Debian's own configuration (debian/rules: CMAKE_CXX_STANDARD=17, shared,
# no NDEBUG, -O2 -g), plus ThreadSanitizer.
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
log=$deps/build.log
if ! {
  cmake -S "$src" -B "$work/build" "${launcher[@]}" \
    -DCMAKE_BUILD_TYPE=None \
    -DCMAKE_CXX_FLAGS="$kFlags" \
    -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread \
    -DCMAKE_CXX_STANDARD=17 \
    -DBUILD_SHARED_LIBS=ON \
    -DBUILD_TESTING=OFF \
    -DCMAKE_INSTALL_PREFIX="$prefix.new" \
    -DCMAKE_INSTALL_LIBDIR=lib &&
  cmake --build "$work/build" -j "$(nproc)" &&
  cmake --install "$work/build"
} >"$log" 2>&1; then
  tail -n 40 "$log" >&2
  echo "tsan-deps: the Abseil build failed; whole log in $log" >&2
  exit 1
fi

# The copy must stand in for Debian's: every SONAME of libabsl-dev, and
# every libabsl symbol that Debian's gRPC libraries import.
missing=0
for link in $(dpkg -L libabsl-dev | grep '/libabsl_.*\.so$'); do
  soname=$(objdump -p "$(readlink -f "$link")" | awk '$1 == "SONAME" {print $2}')
  if [ ! -e "$prefix.new/lib/$soname" ]; then
    echo "tsan-deps: $soname missing from the build" >&2
    missing=1
  fi
done
debian_libs=$(for link in $(dpkg -L libabsl-dev | grep '/libabsl_.*\.so$'); do
                readlink -f "$link"; done)
nm -D --defined-only $debian_libs | awk 'NF == 3 {print $3}' | sort -u >"$work/debian.syms"
nm -D --defined-only "$prefix.new"/lib/libabsl_*.so.* | awk 'NF == 3 {print $3}' |
  sort -u >"$work/instrumented.syms"
grpc_libs=$(dpkg -L libgrpc29 'libgrpc++1.51' 2>/dev/null | grep '\.so\.[0-9.]*$' |
            while read -r lib; do [ -L "$lib" ] || echo "$lib"; done)
nm -D --undefined-only $grpc_libs | awk '{print $2}' | sed 's/@.*//' | sort -u |
  comm -12 - "$work/debian.syms" >"$work/imported.syms"
if comm -23 "$work/imported.syms" "$work/instrumented.syms" | grep .; then
  echo "tsan-deps: the symbols above, which gRPC imports, are missing" >&2
  missing=1
fi
if [ "$missing" -ne 0 ]; then exit 1; fi

libraries=$(find "$prefix.new/lib" -name 'libabsl_*.so.*' -type l | grep -c '\.so\.[0-9]*$')
imported=$(wc -l <"$work/imported.syms")
echo "$wanted" >"$prefix.new/seqserve-tsan.stamp"
rm -rf "$prefix"
mv "$prefix.new" "$prefix"
rm -rf "$work"
echo "tsan-deps: $prefix ready in $((SECONDS - start)) s: $libraries libraries," \
     "all $imported libabsl symbols that gRPC imports present (log: $log)"
