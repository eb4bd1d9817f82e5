#!/usr/bin/env bash
# Runs every benchmark in release mode and prints only the figures, one
# `BENCH <name> <value> <unit>` line each. Fails if a benchmark fails, if
# a figure named in scripts/bench-figures.txt is missing or is not a
# number, or if a benchmark prints a figure that list does not name.
# BENCH_SMOKE=1 (`make bench-smoke`, CI): each bench once at small sizes,
# to prove that every bench runs and prints every figure, not to compare.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo build -q --locked --release --workspace --bins
if ! cargo bench --locked --workspace >"$log" 2>&1; then
  cat "$log" >&2
  echo "bench: a benchmark failed (full output above)" >&2
  exit 1
fi
grep '^BENCH ' "$log" || true

vips=10k
if [[ -n "${BENCH_SMOKE:-}" && "${BENCH_SMOKE}" != 0 ]]; then
  vips=1k
fi
expected=()
while read -r line; do
  [[ -z "$line" || "$line" == \#* ]] && continue
  expected+=("${line//\{vips\}/$vips}")
done <scripts/bench-figures.txt

failed=0
for name in "${expected[@]}"; do
  value=$(awk -v n="$name" '$1 == "BENCH" && $2 == n { print $3; exit }' "$log")
  if [[ -z "$value" ]]; then
    echo "bench: figure $name missing" >&2
    failed=1
  elif ! [[ "$value" =~ ^-?[0-9]+(\.[0-9]+)?$ ]]; then
    echo "bench: figure $name is not a number: $value" >&2
    failed=1
  fi
done
while read -r _ name _; do
  if ! printf '%s\n' "${expected[@]}" | grep -qxF "$name"; then
    echo "bench: figure $name is not in scripts/bench-figures.txt" >&2
    failed=1
  fi
done < <(grep '^BENCH ' "$log")
if ((failed)); then
  echo "bench: full output:" >&2
  cat "$log" >&2
  exit 1
fi
