#!/usr/bin/env bash
# Compares the built library with the committed ABI baseline. Only new functions and fields appended at the end of
# pi_*_params / pi_*_info structs are allowed (abi.suppr); anything else — including a layout break, which abidiff
# reports as exit 4 — fails. usage: check_abidiff.sh LIB ABI_DIR HEADERS_DIR   (UPDATE=1 rewrites the baseline)
set -euo pipefail
lib=$1 dir=$2 headers=$3
if [[ "${UPDATE:-0}" == 1 ]]; then
    # Only the types of the public header are part of the ABI; internal C++ types are dropped.
    abidw --headers-dir "$headers" --drop-private-types --exported-interfaces-only --no-corpus-path --no-comp-dir-path --short-locs --out-file "$dir/libpowerinfer.abi" "$lib"
    echo "updated $dir/libpowerinfer.abi"
fi
set +e
abidiff --suppressions "$dir/abi.suppr" --headers-dir2 "$headers" --drop-private-types --exported-interfaces-only "$dir/libpowerinfer.abi" "$lib"
rc=$?
set -e
if [[ $rc != 0 ]]; then
    echo "FAIL: abidiff exit $rc (bit 4 = ABI change, bit 8 = incompatible change) against $dir/libpowerinfer.abi"
    exit 1
fi
echo "OK: ABI compatible with the baseline"
