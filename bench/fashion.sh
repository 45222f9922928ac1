#!/usr/bin/env bash
# The Fashion-MNIST tables of README (all 60k training / 10k test images):
#  1. distillation: the ResNet-8 teacher, the student alone, the student with each distillation
#     loss, and the combination the recipe uses — per seed, then mean ± std over the seeds;
#  2. compression: `sprig compress --recipe recipes/fashion-mnist.toml` (KD + 80% gradual
#     pruning + QAT int8, the 50/80/90% sparsity sweep) on the first seed.
#
#   bench/fashion.sh                       # seeds 0 1 2, every method, then compress
#   SEEDS=0 METHODS="hinton combined" COMPRESS=0 bench/fashion.sh
#   STUDENT_EPOCHS=5 COMPRESS=0 bench/fashion.sh   # the methods on a shorter student budget
#                                          # (its own student-alone baseline; out/fashion/e5-seedN)
#
# Every stage is checkpointed under out/fashion/seedN and a finished run is not repeated: run it
# again after an interruption and it continues. FASHION_DIR overrides the dataset folder.
set -euo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-"0 1 2"}
METHODS=${METHODS:-$(python3 bench/fashion.py methods)}
COMPRESS=${COMPRESS:-1}
STUDENT_EPOCHS=${STUDENT_EPOCHS:-}
OUT=${OUT:-out/fashion}
DATA=${FASHION_DIR:-/usr/share/datasets/fashion-mnist}
cargo build --release --quiet -p sprig-compress
sprig=./target/release/sprig
for seed in $SEEDS; do
    dir=$OUT/${STUDENT_EPOCHS:+e$STUDENT_EPOCHS-}seed$seed
    mkdir -p "$dir/ckpt"
    # Same teacher settings, same teacher: reuse its checkpoint (the fingerprint is checked).
    if [ -n "$STUDENT_EPOCHS" ] && [ -f "$OUT/seed$seed/ckpt/resnet8.ckpt.json" ]; then
        cp -n "$OUT/seed$seed"/ckpt/resnet8.ckpt.* "$dir/ckpt/"
    fi
    for m in $METHODS; do
        [ -f "$dir/kd-$m.json" ] && continue
        echo "seed $seed: student + $m ($(date +%T))" >&2
        python3 bench/fashion.py variant "$seed" "$m" "$STUDENT_EPOCHS" | sed "s|/usr/share/datasets/fashion-mnist|$DATA|" >"$dir/kd-$m.toml"
        "$sprig" distill --recipe "$dir/kd-$m.toml" --out "$dir" --quiet --latency-runs 20 >"$dir/kd-$m.log"
        cp "$dir/report.json" "$dir/kd-$m.json"
    done
done
python3 bench/fashion.py table "$OUT" "${STUDENT_EPOCHS:+e$STUDENT_EPOCHS-}seed"
if [ "$COMPRESS" = 1 ]; then
    seed=${SEEDS%% *}
    dir=$OUT/seed$seed
    echo "seed $seed: sprig compress ($(date +%T))" >&2
    python3 bench/fashion.py variant "$seed" combined | sed "s|/usr/share/datasets/fashion-mnist|$DATA|" >"$dir/compress.toml"
    "$sprig" compress --recipe "$dir/compress.toml" --out "$dir" --quiet
fi
