#!/usr/bin/env bash
# Runs every check of the project. Installs what is missing first (idempotent), says what it
# installs, and stops with the exact missing piece when an install fails.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each stage line carries the time since the start, so a slow CI run shows where it went.
say() { printf '\n==> [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# --- set-up ---------------------------------------------------------------------------------
command -v cargo >/dev/null || die "cargo is not installed (install rustup from your distribution first)"

want_targets=(thumbv7em-none-eabihf aarch64-unknown-linux-gnu)
installed_targets=$(rustup target list --installed 2>/dev/null || true)
for t in "${want_targets[@]}"; do
  if ! grep -qx "$t" <<<"$installed_targets"; then
    say "installing Rust target $t"
    rustup target add "$t" || die "could not install Rust target $t (rustup target add $t)"
  fi
done
for c in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$c"; then
    say "installing Rust component $c"
    rustup component add "$c" || die "could not install Rust component $c"
  fi
done

need=()
{ command -v qemu-system-arm && command -v qemu-system-aarch64; } >/dev/null || need+=(qemu-system-arm)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v cc >/dev/null || need+=(gcc)  # builds the QEMU instruction-count plugin
[ -d /usr/share/libonnx-testdata/data/node ] || need+=(libonnx-testdata)
[ -d /usr/share/datasets/fashion-mnist ] || need+=(dataset-fashion-mnist)
if [ ${#need[@]} -gt 0 ]; then
  say "installing Debian packages: ${need[*]}"
  $SUDO apt-get update -qq || die "apt-get update failed (needed for: ${need[*]})"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null \
    || die "apt-get install failed for: ${need[*]}"
fi

# Debian's arm64 Linux kernel, booted under qemu-system-aarch64 by the test that drives a real
# GPIO character device with sprig-edge (tests/tests/integration/boards.rs). Fetched from Debian's archive
# with a private apt state (the host's apt sources, arm64 lists), so the system is not changed.
kernel=.cache/linux-arm64/vmlinuz
if [ ! -f "$kernel" ]; then
  say "fetching Debian's arm64 Linux kernel into $kernel (for the booted-kernel GPIO test)"
  apt_tmp=$(mktemp -d)
  mkdir -p "$apt_tmp/lists/partial" "$apt_tmp/cache/archives/partial"
  apt_arm64=(-o APT::Architecture=arm64 -o APT::Architectures::=arm64 -o Debug::NoLocking=1
    -o "APT::Sandbox::User=$(id -un)"
    -o "Dir::State::Lists=$apt_tmp/lists" -o "Dir::Cache=$apt_tmp/cache")
  apt-get "${apt_arm64[@]}" update -qq || die "apt-get update (arm64 lists) failed: the kernel package cannot be found"
  pkg=$(apt-cache "${apt_arm64[@]}" depends linux-image-arm64 | awk '/Depends: linux-image-/ {print $2; exit}')
  [ -n "$pkg" ] || die "no arm64 kernel package behind linux-image-arm64 in the apt sources"
  (cd "$apt_tmp" && apt-get "${apt_arm64[@]}" download -qq "$pkg:arm64" 2>/dev/null) || die "could not download $pkg:arm64"
  mkdir -p "$apt_tmp/x" "$(dirname "$kernel")"
  dpkg-deb --fsys-tarfile "$apt_tmp"/*.deb | tar -x -C "$apt_tmp/x" --wildcards './boot/vmlinuz-*' \
    || die "$pkg has no /boot/vmlinuz"
  mv "$apt_tmp"/x/boot/vmlinuz-* "$kernel"
  rm -rf "$apt_tmp"
fi

if ! command -v cargo-fuzz >/dev/null; then
  say "installing cargo-fuzz (the fuzz target of sprig-runtime runs in this test command)"
  cargo install cargo-fuzz --locked --quiet || die "could not install cargo-fuzz (cargo install cargo-fuzz --locked)"
fi

if ! .venv/bin/python -c "import onnx, onnxruntime, numpy" 2>/dev/null; then
  say "creating .venv with onnx, onnxruntime and numpy (the reference implementation in tests)"
  command -v python3 >/dev/null || { $SUDO apt-get install -y -qq python3 python3-venv >/dev/null || die "python3 is missing and could not be installed"; }
  python3 -m venv .venv 2>/dev/null || { $SUDO apt-get install -y -qq python3-venv >/dev/null && python3 -m venv .venv; } \
    || die "could not create a Python venv (install python3-venv)"
  .venv/bin/pip install -q --disable-pip-version-check onnx onnxruntime numpy \
    || die "pip could not install onnx onnxruntime numpy into .venv"
fi

# --- checks ---------------------------------------------------------------------------------
say "cargo fmt --check"
cargo fmt --all -- --check
(cd boards/cortex-m && cargo fmt -- --check)
(cd runtime/fuzz && cargo fmt -- --check)

say "cargo clippy -D warnings (workspace, firmware)"
cargo clippy --workspace --all-targets --quiet -- -D warnings
(cd boards/cortex-m && cargo clippy --release --quiet --all-features --lib --bins -- -D warnings)

say "no_std build of sprig-runtime for thumbv7em-none-eabihf"
cargo build -p sprig-runtime --no-default-features --target thumbv7em-none-eabihf --quiet
cargo build -p sprig-runtime --no-default-features --features all-ops,error-names --target thumbv7em-none-eabihf --quiet

say "sprig-runtime unit tests cross-built for aarch64, run under qemu-aarch64 (cortex-a76)"
cargo test -p sprig-runtime --target aarch64-unknown-linux-gnu --quiet

say "cargo test --workspace (unit, doc, conformance, robustness, both boards under QEMU)"
cargo test --workspace

# libFuzzer with AddressSanitizer on parse -> plan -> invoke, seeded from the checked-in corpus.
# RUSTC_BOOTSTRAP lets the stable toolchain pass -Zsanitizer (the one toolchain CI has).
# New inputs go to a scratch directory so the checked-in corpus stays as it is; a crash leaves
# its input under runtime/fuzz/artifacts/ -- copy it to runtime/fuzz/regressions/ (replayed by
# tests/tests/integration/robustness.rs) once fixed.
FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
say "fuzzing parse + plan + invoke for ${FUZZ_SECONDS} s (cargo fuzz, AddressSanitizer)"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
(cd runtime/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -s address parse_plan "$scratch" corpus/parse_plan \
  -- -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 2>&1 \
  | grep -v '^#[0-9]' | tail -n 40) \
  || die "the fuzzer found a failing input (see runtime/fuzz/artifacts/parse_plan/)"

# Frozen plans (sprig freeze) with their hashes made right, so what is fuzzed is the loader's
# checks and the kernels behind them.
FROZEN_FUZZ_SECONDS="${FROZEN_FUZZ_SECONDS:-30}"
say "fuzzing frozen-plan loading + invoke for ${FROZEN_FUZZ_SECONDS} s"
scratch2=$(mktemp -d)
trap 'rm -rf "$scratch" "$scratch2"' EXIT
(cd runtime/fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -s address frozen_plan "$scratch2" corpus/frozen_plan \
  -- -max_total_time="$FROZEN_FUZZ_SECONDS" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 2>&1 \
  | grep -v '^#[0-9]' | tail -n 12) \
  || die "the fuzzer found a failing frozen plan (see runtime/fuzz/artifacts/frozen_plan/)"

say "all checks passed"
