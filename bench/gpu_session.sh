#!/bin/bash
# One call on the GPU machine for the issues that need GPU figures besides the kernels:
# the CUDA tests, `hearth bench model --out` and `hearth bench endpoint --spawn` on a
# synthetic Qwen3-8B-shaped model (the seed report's model size), their `bench report`,
# and the prefix-cache agent session (bench/agent_cache.mjs --suite-out) replayed with and
# without the cache. Expects the binaries built here (build-cuda/bin, runtime libraries in
# build-cuda/bin/extra) and the Qwen3 tokenizer folder; everything lands in $OUT.
#   bench/gpu_session.sh TOKENIZER_DIR AGENT_SUITE [TYPE]
# TYPE is the GGUF type of the synthetic model (default q4_0: the writer quantizes random
# weights, and Q4_K's scale search makes an 8B file take minutes to write).
set -u
tok=$1
suite=$2
type=${3:-q4_0}
out=${OUT:-./gpu_out}
mkdir -p "$out/r"
bin=$PWD/build-cuda/bin
export LD_LIBRARY_PATH=$bin/extra${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
if ldd "$bin/hearth" | grep -q "not found"; then
  lib=$(dirname "$(find / -name 'libcublas.so.13*' -not -path '/proc/*' 2>/dev/null | head -1)")
  export LD_LIBRARY_PATH=$lib:$LD_LIBRARY_PATH
fi
ldd "$bin/hearth" | grep "not found"
log=$out/summary.log
note() { echo "$*" | tee -a "$log"; }
card=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)
note "card: $card; $(date -u +%FT%TZ)"

for t in test_cuda_units test_cuda_ops test_cuda_model test_cuda_kv; do
  timeout 150 "$bin/$t" --gtest_brief=1 >"$out/r/$t.log" 2>&1
  note "$t rc=$? $(grep -E '^\[  (PASSED|FAILED) ' "$out/r/$t.log" | tr '\n' ' ')"
  grep -E "Failure|FAILED" "$out/r/$t.log" | head -5 | tee -a "$log"
done

model=/tmp/qwen3-8b-$type.gguf
start=$(date +%s)
timeout 240 "$bin/hearth" make-model --shape 8b --type "$type" --tokenizer "$tok" -o "$model" >"$out/r/make_model.log" 2>&1
note "make-model 8b $type rc=$? in $(( $(date +%s) - start )) s, $(stat -c %s "$model" 2>/dev/null) bytes"

machine="$card, 16-core host; synthetic Qwen3-8B-shaped $type (random weights)"
timeout 150 "$bin/hearth" bench model -m "$model" --device cuda -p 512 -n 128 -r 3 --out "$out/r/direct.json" \
  --label "hearth (Direct, GPU)" --note "$machine" >"$out/r/bench_model.log" 2>&1
note "bench model rc=$?"
grep -E "^\|" "$out/r/bench_model.log" | tee -a "$log"

serve="$bin/hearth serve -m $model --device cuda --port 18080 --alias qwen3-8b -c 16384 --parallel 32"
timeout 240 "$bin/hearth" bench endpoint --url http://127.0.0.1:18080/v1 --model qwen3-8b --label "hearth (Server, GPU)" \
  --spawn "$serve" --reps 3 --concurrency 1,2,4,8,16,32 --timeout 60 --note "$machine" --out "$out/r/server.json" \
  >"$out/r/bench_endpoint.log" 2>&1
note "bench endpoint rc=$?"
tail -3 "$out/r/bench_endpoint.log" | tee -a "$log"

for mode in cache nocache; do
  extra=""
  [ "$mode" = nocache ] && extra="--no-prefix-cache"
  timeout 150 "$bin/hearth" bench endpoint --url http://127.0.0.1:18081/v1 --model qwen3-8b --label "agent $mode" \
    --spawn "$bin/hearth serve -m $model --device cuda --port 18081 --alias qwen3-8b -c 16384 --parallel 2 $extra" \
    --suite "$suite" --reps 1 --warmup 0 --concurrency "" --no-probe --timeout 60 --out "$out/r/agent_$mode.json" \
    >"$out/r/agent_$mode.log" 2>&1
  note "agent $mode rc=$?"
done
python3 - "$out/r" <<'EOF' | tee -a "$log"
import json, sys
d = sys.argv[1]
rows = {}
for mode in ("cache", "nocache"):
    try:
        r = json.load(open(f"{d}/agent_{mode}.json"))
    except Exception as e:
        print(mode, "no results:", e)
        continue
    for c in r["cases"]:
        for q in c["requests"]:
            rows.setdefault(c["name"], {})[mode] = (q.get("prompt_tokens"), q.get("ttft_s"), q.get("outcome"))
print("| turn | prompt tokens | TTFT cache (ms) | TTFT no cache (ms) |")
for name, m in rows.items():
    c, n = m.get("cache", (None, None, None)), m.get("nocache", (None, None, None))
    f = lambda x: "" if x is None else f"{x * 1000:.0f}"
    print(f"| {name} | {c[0] or n[0]} | {f(c[1])} | {f(n[1])} | {c[2]} {n[2]}")
EOF

"$bin/hearth" bench report "$out/r/server.json" "$out/r/direct.json" --out "$out/r/report.md" >"$out/r/report.log" 2>&1
note "bench report rc=$?"
cp "$out/r/report.md" "$out/report.md" 2>/dev/null
tar -C "$out" -czf "$out/gpu_results.tgz" r && rm -rf "$out/r"
