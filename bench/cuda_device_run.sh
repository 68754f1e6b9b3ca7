#!/bin/bash
# One call on the GPU machine: the CUDA tests, then the decode/prompt benchmark on
# synthetic Qwen3 0.6B and 8B shapes. Expects the binaries built here in build-cuda/bin
# (carried with the call); writes logs to $OUT (or ./cuda_out) and prints a summary last.
#   bench/cuda_device_run.sh [tests|bench|all]
# Environment: TESTS="test_cuda_ops ..." (":nofuse" runs one with HEARTH_CUDA_FUSE=0),
# PROFILE=1 (GPU time per launch first), QUICK=1 (only the 0.6B and 8B Q4_K_M runs),
# FULL=1 (also pp4096 and the runs without fusion / graphs), BINS / BASE=1 (each figure
# also from other builds carried in build-cuda/bin, see pair()), ABLATE=1 (decode without programmatic
# launch / without staged activations), NCU=1 (ncu's bandwidth figures of the products).
set -u
what=${1:-all}
out=${OUT:-./cuda_out}
mkdir -p "$out"
bin=build-cuda/bin
# The tokenizer's runtime libraries travel in bin/extra in case the machine lacks them.
export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$PWD/$bin/extra
# libcublas.so.13 is found through the RPATH (/usr/local/cuda/lib64) where the toolkit
# sits there too; otherwise take the copy that ships with PyTorch.
if ldd $bin/cuda_decode | grep -q "not found"; then
  lib=$(dirname "$(find / -name 'libcublas.so.13*' -not -path '*/proc/*' 2>/dev/null | head -1)")
  export LD_LIBRARY_PATH=$lib:${LD_LIBRARY_PATH:-}
  echo "using cuBLAS from $lib"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv | tee "$out/gpu.txt"
summary=()
if [ "$what" != bench ]; then
  for t in ${TESTS:-test_cuda_units test_cuda_ops test_cuda_model test_cuda_ops:nofuse test_cuda_model:nofuse}; do
    exe=${t%%:*}
    log="$out/${t/:/_}.log"
    if [ "$t" != "$exe" ]; then export HEARTH_CUDA_FUSE=0; fi
    timeout 120 $bin/$exe --gtest_brief=1 >"$log" 2>&1
    rc=$?
    unset HEARTH_CUDA_FUSE
    summary+=("$t: rc=$rc $(grep -E '^\[  (PASSED|FAILED|SKIPPED) ' "$log" | tr '\n' ' ')")
    grep -E "FAILED|Failure|error|elements off|max \|logprob" "$log" | head -30
  done
fi
if [ "$what" != tests ]; then
  run() {  # label, then cuda_decode flags; EXE picks another binary of $bin
    local label=$1
    shift
    echo "== $label" >>"$out/bench.log"
    timeout 100 $bin/${EXE:-cuda_decode} "$@" >>"$out/bench.log" 2>&1
    summary+=("$label: $(grep -E '^\| (pp|tg)' "$out/bench.log" | tail -2 | tr -s ' ' | tr '\n' ' ')")
  }
  # BINS="cuda_decode_base cuda_decode" (other builds carried along in $bin): each figure
  # is measured with every one of them in turn, on the same card in the same call.
  # BASE=1 is short for cuda_decode_base (an earlier build) and cuda_decode.
  [ -n "${BASE:-}" ] && BINS=${BINS:-cuda_decode_base cuda_decode}
  pair() {
    local exe
    for exe in ${BINS:-cuda_decode}; do
      if [ -x $bin/$exe ]; then EXE=$exe run "$1 [$exe]" "${@:2}"; fi
    done
  }
  if [ -n "${PROFILE:-}" ]; then  # GPU time per launch (graphs off, fusion on)
    export HEARTH_CUDA_PROFILE=1
    run "profile 0.6b q4_k_m tg32" --shape 0.6b --type q4_k_m --prompt 0 --gen 32 --reps 1
    run "profile 8b q4_k_m tg32" --shape 8b --type q4_k_m --prompt 0 --gen 32 --reps 1
    run "profile 8b q4_k_m pp512" --shape 8b --type q4_k_m --prompt 512 --gen 1 --reps 1
    unset HEARTH_CUDA_PROFILE
  fi
  pair "0.6b q4_k_m" --shape 0.6b --type q4_k_m
  pair "8b q4_k_m" --shape 8b --type q4_k_m
  if [ -n "${ABLATE:-}" ]; then  # which change gives what (decode only)
    HEARTH_CUDA_PDL=0 run "8b q4_k_m, no programmatic launch" --shape 8b --type q4_k_m --prompt 0
    HEARTH_CUDA_STAGE=0 run "8b q4_k_m, activations not staged" --shape 8b --type q4_k_m --prompt 0
  fi
  if [ -z "${QUICK:-}" ]; then
    pair "8b q4_0" --shape 8b --type q4_0
    pair "8b mlx4" --shape 8b --type mlx4
  fi
  if [ -n "${FULL:-}" ]; then
    run "8b q4_k_m pp4096" --shape 8b --type q4_k_m --prompt 4096 --gen 16 --reps 2
    export HEARTH_CUDA_FUSE=0
    run "8b q4_k_m no fusion" --shape 8b --type q4_k_m --prompt 0
    export HEARTH_CUDA_GRAPHS=0
    run "8b q4_k_m no fusion, no graphs" --shape 8b --type q4_k_m --prompt 0
    unset HEARTH_CUDA_GRAPHS HEARTH_CUDA_FUSE
  fi
  if [ -n "${NCU:-}" ] && command -v ncu >/dev/null; then  # every kernel of a decode step, one by one
    timeout 150 ncu --clock-control none --launch-skip 60 --launch-count 24 --section SpeedOfLight \
      $bin/cuda_decode --shape 8b --type q4_k_m --layers 6 --prompt 0 --gen 4 --reps 0 >"$out/ncu.log" 2>&1
    awk '/\(GemvParams\)|Params\)|, Context/{split($0, a, "(");name=a[1]} /DRAM Throughput/{d=$NF} /Duration/{printf "%-70s %8s us  DRAM %s%%\n", substr(name,1,70), $NF, d}' \
      "$out/ncu.log" | head -40
  fi
  cat "$out/bench.log"
fi
printf '%s\n' "${summary[@]}"
