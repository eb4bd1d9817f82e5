#!/bin/sh
# Addresses and routes of lab edge node N (1 or 2), then start edged.
set -e
n=$1
k1=$(( (n - 1) * 2 )); k2=$(( k1 + 1 ))
sysctl -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 >/dev/null
ip addr add 192.0.2.$(( 4 * (n - 1) + 2 ))/30 dev eth1
ip addr add 2001:db8:0:1$(( n - 1 ))::2/64 dev eth1
ip route replace default via 192.0.2.$(( 4 * (n - 1) + 1 ))
ip addr add 192.0.2.$(( 128 + 4 * k1 + 1 ))/30 dev eth2
ip addr add 192.0.2.$(( 128 + 4 * k2 + 1 ))/30 dev eth3
edged check --config /etc/edged/edged.yaml
edged --config /etc/edged/edged.yaml >/var/log/edged.log 2>&1 &
