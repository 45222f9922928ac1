#!/usr/bin/env bash
# The ResNet-20 Fashion-MNIST tables of README (all 60k training / 10k test images, seed 0):
#  1. compression: `sprig compress --recipe recipes/fashion-mnist-resnet20.toml` (the teacher,
#     the 47k student alone, 80% gradual pruning, QAT int8, KD by function matching, KD + 80%
#     pruning + int8 with KD, the 50/80/90% sparsity sweep) into out/fashion-r20;
#  2. distillation: three students (small CNNs of 47k and 25k parameters, a ResNet-8 of width 9
#     with 25k) alone, with mixup alone, and with the same soft-target loss on the plain images
#     and by function matching, at 15, 30 and 60 epochs, and by function matching from a
#     teacher trained 20 epochs on random crops and flips, and by function matching with the
#     student's blends randomly cropped and flipped, and alone on crops and flips
#     (bench/fashion_fm.py), each in out/fashion-fm/<student>-<variant>.
#
#   bench/fashion_fm.sh                                # everything (over half a day on 2 cores)
#   COMPRESS=0 RUNS="cnn25k:fm cnn25k:fm-e30" bench/fashion_fm.sh
#   COMPRESS=0 RUNS=cnn25k:fm-e30-t20aug bench/fashion_fm.sh   # the stronger teacher
#   COMPRESS=0 RUNS=cnn25k:fm-e30-aug bench/fashion_fm.sh      # crops + flips of the blends
#   COMPRESS=0 RUNS="resnet8w9:fm-e30 resnet8w9:alone-e30-aug resnet8w9:fm-e30-aug" bench/fashion_fm.sh
#   python3 bench/fashion_fm.py table out/fashion-fm   # the table of the runs done so far
#
# Every stage is checkpointed and a killed run continues where it stopped (--resume). The
# teacher (and a student alone with the same settings) is trained once and its checkpoint
# copied to each run (the stage fingerprint is checked); a finished run is not repeated.
# FASHION_DIR overrides the dataset folder.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-$(python3 bench/fashion_fm.py list)}
COMPRESS=${COMPRESS:-1}
DATA=${FASHION_DIR:-/usr/share/datasets/fashion-mnist}
OUT=${OUT:-out/fashion-fm}
R20=out/fashion-r20
cargo build --release --quiet -p sprig-compress
sprig=./target/release/sprig
mkdir -p "$R20" "$OUT"
recipe=$R20/recipe.toml
sed "s|/usr/share/datasets/fashion-mnist|$DATA|" recipes/fashion-mnist-resnet20.toml >"$recipe"
# The recipe's own teacher is trained here when a run distils from it (and the student alone).
default_teacher=$COMPRESS
for run in $RUNS; do
    [ -z "$(python3 bench/fashion_fm.py teacher "${run#*:}")" ] && default_teacher=1
done
if [ "$COMPRESS" = 1 ] || { [ "$default_teacher" = 1 ] && [ ! -f "$R20/ckpt/resnet20.ckpt.json" ]; }; then
    goal=$([ "$COMPRESS" = 1 ] && echo compress || echo train)
    echo "sprig $goal --recipe recipes/fashion-mnist-resnet20.toml ($(date +%T))" >&2
    "$sprig" "$goal" --recipe "$recipe" --out "$R20" --quiet --resume >>"$R20/$goal.log"
fi
for run in $RUNS; do
    student=${run%%:*} v=${run#*:}
    dir=$OUT/$student-$v
    [ -f "$dir/report.json" ] && continue
    mkdir -p "$dir/ckpt"
    # The teacher: the recipe's (out/fashion-r20) or a variant's, trained by its first run and
    # kept in out/fashion-r20-<key> for the next.
    tkey=$(python3 bench/fashion_fm.py teacher "$v")
    tdir=$R20${tkey:+-$tkey}
    [ -f "$tdir/ckpt/resnet20.ckpt.json" ] && cp -n "$tdir"/ckpt/resnet20.ckpt.* "$dir/ckpt/"
    # A student alone trained by another run with the same settings is reused, not retrained.
    for other in $(python3 bench/fashion_fm.py same-alone "$student" "$v" "$OUT"); do
        [ -f "$other/ckpt/student.ckpt.json" ] && cp -n "$other"/ckpt/student.ckpt.* "$dir/ckpt/" && break
    done
    echo "$student: $v ($(date +%T))" >&2
    python3 bench/fashion_fm.py variant "$student" "$v" | sed "s|/usr/share/datasets/fashion-mnist|$DATA|" >"$dir/recipe.toml"
    "$sprig" "$(python3 bench/fashion_fm.py command "$v")" --recipe "$dir/recipe.toml" --out "$dir" \
        --quiet --resume --latency-runs 20 >>"$dir/run.log"
    mkdir -p "$tdir/ckpt" && cp -n "$dir"/ckpt/resnet20.ckpt.* "$tdir/ckpt/"
done
python3 bench/fashion_fm.py table "$OUT"
