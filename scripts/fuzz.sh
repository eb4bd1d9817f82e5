#!/usr/bin/env bash
# The fuzz targets (config/fuzz, health/fuzz, bgp/fuzz) on the stable
# toolchain, without cargo-fuzz:
#   fuzz.sh build          build every target (make fuzz-build; CI)
#   fuzz.sh run [SECONDS]  build, then run each for SECONDS (default 20)
#
# cargo-fuzz's default build needs nightly for -Zsanitizer=address. What it
# does besides is stable: libfuzzer-sys links libFuzzer's main, `--cfg
# fuzzing` is its cfg, and SanitizerCoverage (-Cpasses=sancov-module with
# LLVM's coverage options) gives libFuzzer its coverage guidance. So these
# builds are coverage-guided libFuzzer binaries without AddressSanitizer:
# a panic (or an assert) is a crash, memory errors in unsafe code are not
# detected (our fuzzed crates forbid unsafe). `--target` keeps the flags
# off build scripts and proc macros.
set -euo pipefail
cd "$(dirname "$0")/.."

CRATES=(config health bgp)
host=$(rustc -vV | sed -n 's/^host: //p')
out=target/fuzz
flags=(
  --cfg fuzzing
  -Cpasses=sancov-module
  -Cllvm-args=-sanitizer-coverage-level=4
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters
  -Cllvm-args=-sanitizer-coverage-pc-table
  -Cllvm-args=-sanitizer-coverage-trace-compares
  -Cdebug-assertions
  -Coverflow-checks
)

build() {
  for c in "${CRATES[@]}"; do
    RUSTFLAGS="${flags[*]}" cargo build --locked --release \
      --manifest-path "$c/fuzz/Cargo.toml" --target-dir "$out" --target "$host"
  done
}

# Every [[bin]] of a fuzz crate, as `crate target`.
targets() {
  for c in "${CRATES[@]}"; do
    sed -n 's/^name = "\(.*\)"$/\1/p' "$c/fuzz/Cargo.toml" | tail -n +2 | sed "s|^|$c |"
  done
}

run() {
  local seconds=${1:-20} log
  build
  log=$(mktemp)
  trap 'rm -f "$log"' RETURN
  while read -r c t; do
    # The corpus grows across runs (git ignores it); config's starts with
    # the example configs. A failing input is saved under artifacts/.
    local corpus="$c/fuzz/corpus/$t" artifacts="$c/fuzz/artifacts/$t/"
    mkdir -p "$corpus" "$artifacts"
    if [[ $c == config ]]; then
      for f in config/examples/*.yaml; do
        [[ -e $corpus/${f##*/} ]] || cp "$f" "$corpus/"
      done
    fi
    echo "fuzz: $c/$t for ${seconds}s"
    if ! "$out/$host/release/$t" -max_total_time="$seconds" -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$artifacts" "$corpus" >"$log" 2>&1; then
      tail -n 40 "$log" >&2
      echo "fuzz: $c/$t failed; the input is in $artifacts" >&2
      exit 1
    fi
    grep -E '^stat::(number_of_executed_units|new_units_added)' "$log" | sed 's/^/  /'
  done < <(targets)
}

case "${1:-}" in
  build) build ;;
  run) run "${2:-}" ;;
  *) echo "usage: $0 build | run [SECONDS]" >&2; exit 64 ;;
esac
