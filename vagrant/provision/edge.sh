#!/bin/sh
# Lab edge node N: two nginx proxies in network namespaces behind veths,
# then edged (from the package built on the host with `make deb`).
set -eu
n=$1
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq && apt-get install -y -qq bird2 nginx-light >/dev/null
systemctl disable --now bird nginx >/dev/null 2>&1 || true
dpkg -i /vagrant/target/debian/edged_*.deb
sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
uplink=$(cat /run/edged-lab/if-02:00:5e:00:e$n:02)
ip route replace default via "192.0.2.$(( 4 * (n - 1) + 1 ))" dev "$uplink"
for j in 1 2; do
  k=$(( (n - 1) * 2 + j - 1 ))
  ns="px$j"
  ip netns add "$ns" 2>/dev/null || true
  ip link add "p$j" type veth peer name eth0 netns "$ns" 2>/dev/null || true
  ip netns exec "$ns" ip link set eth0 address "02:00:5e:00:53:$n$j"
  ip link set "p$j" up && ip netns exec "$ns" ip link set eth0 up && ip netns exec "$ns" ip link set lo up
  ip netns exec "$ns" ethtool -K eth0 gro on >/dev/null 2>&1 || true
  ip addr replace "192.0.2.$(( 128 + 4 * k + 1 ))/30" dev "p$j"
  ip netns exec "$ns" ip addr replace "192.0.2.$(( 128 + 4 * k + 2 ))/30" dev eth0
  ip netns exec "$ns" ip route replace default via "192.0.2.$(( 128 + 4 * k + 1 ))"
  ip netns exec "$ns" ip addr replace 203.0.113.10/32 dev lo
  ip netns exec "$ns" ip addr replace 2001:db8:100::10/128 dev lo
  mkdir -p "/srv/$ns"
  echo "edge$n-px$j" > "/srv/$ns/index.html"
  cat > "/etc/nginx/$ns.conf" <<CONF
events {}
pid /run/nginx-$ns.pid;
http { access_log off; server { listen 80; listen [::]:80; root /srv/$ns; } }
CONF
  ip netns exec "$ns" nginx -c "/etc/nginx/$ns.conf"
done
sed -e "s/\[eth1\]/[$uplink]/; s/interface: eth2/interface: p1/; s/interface: eth3/interface: p2/; s/xdp_mode: generic/xdp_mode: native/" \
  "/vagrant/vagrant/provision/edge$n.yaml" > /etc/edged/edged.yaml
edged check --config /etc/edged/edged.yaml
systemctl enable --now edged
