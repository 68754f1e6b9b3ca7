#!/usr/bin/env bash
# Runs the whole test suite: sets up and builds (scripts/setup.sh), then CTest.
# Exits non-zero when any test fails. GPU tests skip themselves without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
build_dir=${HEARTH_BUILD_DIR:-build}
ctest --test-dir "$build_dir" --output-on-failure -j "$(nproc)" "$@"
