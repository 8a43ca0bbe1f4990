#!/usr/bin/env bash
# One command for a fresh Debian 12 machine: install what the build needs, build, and run the CLI on the built-in
# default model.  usage: tools/setup.sh [--no-run]
#   PI_BUILD_DIR (default build), PI_JOBS (default 2) may be set.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${PI_BUILD_DIR:-build}
jobs=${PI_JOBS:-2}

apt_packages=(build-essential cmake pkg-config git catch2 libdnnl-dev abigail-tools libglpk-dev libxxhash-dev clang
              libclang-rt-14-dev python3 python3-venv)
missing=()
for p in "${apt_packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "== installing Debian packages: ${missing[*]}"
    sudo=""
    [[ $(id -u) == 0 ]] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Python tools (test-model writer, numpy reference) live in a project-local virtual environment.
if [[ ! -x .venv/bin/python ]]; then
    echo "== creating .venv for the Python tools"
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r tools/requirements.txt

echo "== building in $build"
cmake -S . -B "$build" -DPython3_EXECUTABLE="$PWD/.venv/bin/python" ${PI_CMAKE_ARGS:-} >/dev/null
cmake --build "$build" -j "$jobs"

if [[ "${1:-}" != "--no-run" ]]; then
    echo "== running $build/bin/powerinfer-cli on the default model"
    "$build/bin/powerinfer-cli" -n 32
fi
