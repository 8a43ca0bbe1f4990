#!/usr/bin/env bash
# Installs the build into a temporary prefix, then builds and runs two clients against it: one with pkg-config,
# one with find_package(powerinfer). usage: check_install.sh BUILD_DIR ABI_TEST_DIR CC CMAKE
set -euo pipefail
build=$1 here=$2 cc=$3 cmake=$4
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix

"$cmake" --install "$build" --prefix "$prefix" >/dev/null
libdir=$(dirname "$(find "$prefix" -name 'libpowerinfer.so' | head -n 1)")
[[ -f "$libdir/libpowerinfer.so" ]] || { echo "FAIL: libpowerinfer.so not installed"; exit 1; }

# pkg-config client (the installed .pc has the real prefix baked in, so point pkg-config at it).
export PKG_CONFIG_PATH=$libdir/pkgconfig
flags=$(pkg-config --cflags --libs powerinfer)
"$cc" -std=c99 -pedantic -Wall -Werror "$here/c_client.c" $flags -o "$work/pkgconfig_client"
LD_LIBRARY_PATH=$libdir "$work/pkgconfig_client"

# CMake client.
"$cmake" -S "$here/consumer" -B "$work/consumer-build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
"$cmake" --build "$work/consumer-build" >/dev/null
LD_LIBRARY_PATH=$libdir "$work/consumer-build/consumer"
echo "OK: pkg-config and find_package clients built and ran against $prefix"
