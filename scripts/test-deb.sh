#!/usr/bin/env bash
# Builds the Debian package, installs it on this machine, checks what it
# installed (config validates, man pages render, completions load, the
# daemon was not started), then removes and purges it. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "test-deb: FAIL: $*" >&2; exit 1; }
if dpkg-query -W -f='${Status}' edged 2>/dev/null | grep -q "install ok installed"; then
  fail "a package named edged is already installed here; refusing to touch it"
fi
deb=$(bash scripts/build-deb.sh)
cleanup() { dpkg -P edged >/dev/null 2>&1 || true; }
trap cleanup EXIT

dpkg -i "$deb" >/dev/null
for f in /usr/sbin/edged /usr/bin/edgectl /lib/systemd/system/edged.service /etc/edged/edged.yaml \
         /usr/share/man/man8/edged.8.gz /usr/share/man/man8/edgectl.8.gz \
         /usr/share/bash-completion/completions/edgectl /usr/share/doc/edged/examples/full.yaml; do
  [ -e "$f" ] || fail "$f not installed"
done
grep -qx /etc/edged/edged.yaml /var/lib/dpkg/info/edged.conffiles || fail "edged.yaml is not a conffile"
/usr/sbin/edged check --config /etc/edged/edged.yaml >/dev/null || fail "shipped config does not validate"
pgrep -x edged >/dev/null && fail "installing the package started edged"
MANWIDTH=80 man -l /usr/share/man/man8/edgectl.8.gz 2>/dev/null | grep -q "maintenance" || fail "edgectl(8) does not render"
MANWIDTH=80 man -l /usr/share/man/man8/edged.8.gz 2>/dev/null | grep -q "check" || fail "edged(8) does not render"
bash -c 'source /usr/share/bash-completion/completions/edgectl && complete -p edgectl' >/dev/null || fail "bash completion does not load"
words=$(bash -c 'source /usr/share/bash-completion/completions/edgectl; COMP_WORDS=(edgectl dr); COMP_CWORD=1; COMP_LINE="edgectl dr"; COMP_POINT=10; _edgectl edgectl dr edgectl; echo "${COMPREPLY[*]}"')
[[ " $words " == *" drain "* ]] || fail "bash completion of 'edgectl dr' gave: $words"

dpkg -r edged >/dev/null
[ -e /usr/sbin/edged ] && fail "remove left /usr/sbin/edged"
[ -e /etc/edged/edged.yaml ] || fail "remove must keep the conffile until purge"
dpkg -P edged >/dev/null
[ -e /etc/edged ] && fail "purge left /etc/edged"
[ -e /var/lib/edged ] && fail "purge left /var/lib/edged"
echo "test-deb: 1 passed, 0 failed"
