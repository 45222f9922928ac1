#!/usr/bin/env bash
# Training-step time, sprig vs candle's own ops vs PyTorch (CPU), same machine, same thread
# count, same models and step (forward, cross-entropy, backward, SGD-momentum update).
#
#   bench/train_speed.sh            # 3 interleaved rounds, batch 64, 2 threads
#   ROUNDS=5 THREADS=4 bench/train_speed.sh
#
# PyTorch comes from PyPI into a throwaway venv (TORCH_VENV, default target/torch-venv; about
# 5 GB with its CUDA wheels) and is used for this comparison only. Prints one table: median of
# the rounds' median step times, and each framework's time as a multiple of PyTorch's.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
STEPS=${STEPS:-20}
VENV=${TORCH_VENV:-target/torch-venv}
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    echo "installing PyTorch into $VENV (comparison only)..." >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet torch numpy
fi
cargo build --release --quiet -p sprig-compress --example train_speed
out=$(mktemp)
for r in $(seq "$ROUNDS"); do
    echo "round $r/$ROUNDS" >&2
    RAYON_NUM_THREADS=$THREADS ./target/release/examples/train_speed --steps "$STEPS" >>"$out"
    "$VENV/bin/python" bench/train_speed.py --steps "$STEPS" --threads "$THREADS" 2>/dev/null >>"$out"
done
python3 - "$out" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
ms = {}
for r in rows:
    ms.setdefault((r["model"], r["framework"]), []).append(r["step_ms"])
med = {k: statistics.median(v) for k, v in ms.items()}
threads, batch = rows[0]["threads"], rows[0]["batch"]
print(f"training step, batch {batch}, {threads} threads (median of {len(ms[next(iter(ms))])} rounds)\n")
print("| model | sprig ms | candle ms | PyTorch ms | sprig img/s | PyTorch img/s | sprig / PyTorch | candle / PyTorch |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for model in ["cnn", "resnet20"]:
    s, c, p = (med[(model, f)] for f in ["sprig", "candle", "pytorch"])
    print(f"| {model} | {s:.1f} | {c:.1f} | {p:.1f} | {batch / s * 1e3:.0f} | {batch / p * 1e3:.0f} "
          f"| {s / p:.2f}× | {c / p:.2f}× |")
EOF
rm -f "$out"
