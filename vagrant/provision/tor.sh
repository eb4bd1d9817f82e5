#!/bin/sh
# The lab ToR: FRR with ECMP over both edge nodes, L4 hashing.
set -eu
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq && apt-get install -y -qq frr >/dev/null
sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
  net.ipv4.fib_multipath_hash_policy=1 net.ipv6.fib_multipath_hash_policy=1
install -m 0640 -o frr -g frr /vagrant/vagrant/provision/tor-frr.conf /etc/frr/frr.conf
sed -i 's/^bgpd=no/bgpd=yes/' /etc/frr/daemons
systemctl restart frr
