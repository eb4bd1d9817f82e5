#!/bin/sh
# Configure the lab NICs of this VM. Each argument: MAC,IPv4/len,IPv6/len.
# The interface is found by its MAC (names differ between providers);
# /run/edged-lab/if-<MAC> records its name for the other scripts.
set -eu
mkdir -p /run/edged-lab
for spec in "$@"; do
  mac=${spec%%,*}; rest=${spec#*,}; v4=${rest%%,*}; v6=${rest#*,}
  ifname=""
  for d in /sys/class/net/*; do
    [ "$(cat "$d/address")" = "$mac" ] && ifname=$(basename "$d")
  done
  [ -n "$ifname" ] || { echo "no interface with MAC $mac" >&2; exit 1; }
  echo "$ifname" > "/run/edged-lab/if-$mac"
  sysctl -qw "net.ipv6.conf.$ifname.accept_dad=0"
  ip link set "$ifname" up
  ip addr replace "$v4" dev "$ifname"
  ip addr replace "$v6" dev "$ifname" nodad
done
