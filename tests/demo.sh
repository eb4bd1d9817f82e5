#!/usr/bin/env bash
# The demo: a real edged in a fresh network namespace with the embedded demo
# config, driven by edgectl. Everything it creates is removed on exit, on
# Ctrl-C and on error. Usage: tests/demo.sh TARGET_DIR (with edged, edgectl).
set -euo pipefail
bin=${1:-target/release}
here=$(cd "$(dirname "$0")" && pwd)
ns="edgedemo$$"
dir=$(mktemp -d /tmp/edged-demo.XXXXXX)
pid=""

cleanup() {
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
ctl() { echo "\$ edgectl $*"; "$bin/edgectl" --socket "$dir/edged.sock" "$@"; }

step "network namespace $ns (loopback only: nothing leaves this machine)"
ip netns add "$ns"
ip -n "$ns" link set lo up

sed -e "s|@STATE_DIR@|$dir/state|; s|@SOCKET@|$dir/edged.sock|" "$here/lab/demo.yaml" > "$dir/edged.yaml"
step "edged check --config edged.yaml"
"$bin/edged" check --config "$dir/edged.yaml"

step "start edged in $ns"
nsenter --net="/var/run/netns/$ns" -- "$bin/edged" --config "$dir/edged.yaml" 2>"$dir/edged.log" &
pid=$!
for _ in $(seq 100); do
  "$bin/edgectl" --socket "$dir/edged.sock" status >/dev/null 2>&1 && break
  sleep 0.1
done

step "node status"
ctl status
step "VIPs: announce decision and why"
ctl vips
step "VIP addresses edged put on lo"
ip -n "$ns" -o addr show dev lo | awk '{print $4}' | grep -v -e '^127\.' -e '^::1'
step "drain a VIP for maintenance (persisted in the state directory)"
ctl drain web
ctl vips
step "metrics (excerpt)"
nsenter --net="/var/run/netns/$ns" -- curl -s http://127.0.0.1:9180/metrics | grep -E '^edged_(vip|config_reloads)' || true
step "SIGTERM: withdraw, remove VIP addresses, exit"
kill -TERM "$pid"; wait "$pid"; pid=""
echo "edged exited; addresses left on lo:"
ip -n "$ns" -o addr show dev lo | awk '{print $4}'
echo
echo "demo done. The XDP forwarder, health checker and BGP speaker join this demo as they land."
