#!/usr/bin/env bash
# Compares the public layout (layout_printer) with the committed baseline layout.txt:
#   - every baseline field line must be present unchanged (same offset and size);
#   - a struct may grow, and a new field must start at or after the struct's old size (appended at the end);
#   - every baseline constant keeps its value; size lines of non-growing types must match.
# usage: check_layout.sh PRINTER BASELINE   (UPDATE=1 rewrites the baseline)
set -euo pipefail
printer=$1 baseline=$2
current=$("$printer")
if [[ "${UPDATE:-0}" == 1 ]]; then
    echo "$current" > "$baseline"
    echo "updated $baseline"
fi
status=0
declare -A old_size
while read -r kind name a b; do
    case $kind in
        size) old_size[$name]=$a ;;
    esac
done < "$baseline"
while read -r line; do
    [[ -z "$line" ]] && continue
    read -r kind name a b <<< "$line"
    case $kind in
        field|const)
            grep -qxF "$line" <<< "$current" || { echo "FAIL: changed or removed: '$line'"; status=1; } ;;
        size)
            now=$(awk -v n="$name" '$1=="size" && $2==n {print $3}' <<< "$current")
            if [[ -z "$now" ]]; then echo "FAIL: type $name disappeared"; status=1
            elif (( now < a )); then echo "FAIL: $name shrank from $a to $now"; status=1
            elif [[ $name != pi_*_params && $name != pi_*_info && $now != "$a" ]]; then
                echo "FAIL: $name changed size from $a to $now"; status=1
            fi ;;
    esac
done < "$baseline"
# New fields must sit past the old end of their struct.
while read -r kind name a b; do
    [[ $kind == field ]] || continue
    grep -qxF "$kind $name $a $b" "$baseline" && continue
    struct=${name%%.*}
    if [[ -n "${old_size[$struct]:-}" ]] && (( a < old_size[$struct] )); then
        echo "FAIL: new field $name at offset $a lies inside the published struct (old size ${old_size[$struct]})"
        status=1
    fi
done <<< "$current"
[[ $status == 0 ]] && echo "OK: public layouts and constants compatible with $baseline"
exit $status
