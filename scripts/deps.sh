#!/usr/bin/env bash
# Installs the Debian packages edged's build, tests, benchmarks and demo need.
# Idempotent: installs only what is missing. Run as root on Debian 12+.
set -euo pipefail

PACKAGES=(
  iproute2 util-linux procps ethtool    # ip netns, veth, nsenter, setpriv (BIRD, exec checks), ethtool -K
  clang llvm libbpf-dev bpftool          # XDP program (clang -target bpf), headers; BTF layout check
  clang-format                           # make lint: the BPF C's format
  bird2 frr                              # BGP: the managed BIRD, and BIRD/FRR top-of-rack peers in labs
  nginx-light                            # real HTTP servers as proxies in labs
  tcpdump curl                           # lab debugging, demo traffic
  systemd                                # systemd-analyze verify and security --offline of the unit
  man-db python3                         # test-deb.sh renders the man pages; build-deb.sh reads cargo metadata
  ruby                                   # ruby -c on vagrant/Vagrantfile
  pkg-config build-essential             # C parts of crates
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Daemons from the packages are started by the tests themselves, never by the
# package: stop any the package scripts started.
for svc in bird frr nginx; do
  systemctl stop "$svc" >/dev/null 2>&1 || true
done
# bpffs for pinned maps (the XDP forwarder).
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
command -v cargo >/dev/null || { echo "deps: cargo (Rust >= 1.95) is required" >&2; exit 1; }
# make lint: cargo deny (licenses, bans, sources); a compile of a few minutes, once.
command -v cargo-deny >/dev/null || cargo install cargo-deny --locked --version 0.20.2
