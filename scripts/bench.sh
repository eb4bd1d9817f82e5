#!/usr/bin/env bash
# Runs every benchmark in release mode and prints only the figures, one
# `BENCH <name> <value> <unit>` line each. Fails if any benchmark fails.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo build -q --release --workspace --bins
if ! cargo bench --workspace >"$log" 2>&1; then
  cat "$log" >&2
  echo "bench: a benchmark failed (full output above)" >&2
  exit 1
fi
grep '^BENCH ' "$log"
