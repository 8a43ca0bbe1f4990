#!/usr/bin/env bash
# The library exports exactly the committed list of pi_* symbols, carries the SONAME libpowerinfer.so.<abi>, and
# needs no CUDA/HIP library (GPU backends are dlopen'ed plug-ins).
# usage: check_exports.sh LIB EXPECTED_LIST ABI_MAJOR   (UPDATE=1 rewrites the list)
set -euo pipefail
lib=$1 expected=$2 abi=$3
actual=$(nm -D --defined-only "$lib" | awk '{print $NF}' | sort -u)
if [[ "${UPDATE:-0}" == 1 ]]; then
    echo "$actual" > "$expected"
    echo "updated $expected"
fi
status=0
if ! diff -u "$expected" <(echo "$actual"); then
    echo "FAIL: exported symbols differ from $expected (lines with + are exported but not listed)"
    status=1
fi
stray=$(echo "$actual" | grep -v '^pi_' || true)
if [[ -n "$stray" ]]; then
    echo "FAIL: symbols outside the pi_ prefix are exported:"
    echo "$stray"
    status=1
fi
soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
if [[ "$soname" != "libpowerinfer.so.$abi" ]]; then
    echo "FAIL: SONAME is '$soname', expected libpowerinfer.so.$abi"
    status=1
fi
gpu=$(readelf -d "$lib" | grep NEEDED | grep -Ei 'cuda|cublas|hip|amdhip|rocm' || true)
if [[ -n "$gpu" ]]; then
    echo "FAIL: the core library links a GPU runtime:"
    echo "$gpu"
    status=1
fi
[[ $status == 0 ]] && echo "OK: $(echo "$actual" | wc -l) pi_* symbols, SONAME $soname, no GPU library"
exit $status
