#!/usr/bin/env bash
# Runs the demo-model training on the GPU machine and packs what comes back into $OUT:
# train.log, and demo.tgz.part-* (hf/, heldout.txt, reference.json, train_log.json; split
# in 15 MB pieces: cat demo.tgz.part-* | tar xz). With --quick it also checks that a run
# stopped by --until-step and resumed with --resume finishes.
#   scripts/train_demo/run_device.sh [--quick]
set -euo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/demo_out}
WORK=${WORK:-/tmp/demo_train}
mkdir -p "$OUT"
rm -rf "$WORK"  # a warm machine keeps /tmp: never resume from an earlier run
here=$(dirname "$0")
{
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
  python3 -c "import sys, torch, transformers, tokenizers; print(sys.version.split()[0], torch.__version__, transformers.__version__, tokenizers.__version__)"
  if [ "${1:-}" = "--quick" ]; then
    python3 "$here/train.py" --out "$WORK" --quick --until-step 15
    python3 "$here/train.py" --out "$WORK" --quick --resume
  else
    python3 "$here/train.py" --out "$WORK" "$@"
  fi
} 2>&1 | tee "$OUT/train.log"
(cd "$WORK" && tar czf /tmp/demo.tgz hf heldout.txt reference.json train_log.json)
split -b 15M /tmp/demo.tgz "$OUT/demo.tgz.part-"
ls -l "$OUT"
