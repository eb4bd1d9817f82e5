#!/usr/bin/env bash
# Builds the Debian package, installs it on this machine, checks what it
# installed and what its maintainer scripts do (group, config, unit, man
# pages, completions; removal tears down a real edged's XDP data plane;
# purge keeps an operator's files), then purges it. Needs root.
#
# Each check is a function that passes (status 0) or fails (non-zero, with
# what it saw); the summary counts them and the script exits non-zero when
# any failed. Everything it makes is removed on exit, also on failure.
# Other edged processes on this host (parallel lab tests) are none of its
# business: it looks only at the package's own unit, socket and files.
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0
failed=0
failures=()
# check NAME FUNCTION [ARGS...]: runs FUNCTION in this shell (it may wait
# for this shell's children), its output kept for the report.
check() {
  local name=$1 out rc
  shift
  "$@" >"$WORK/check.out" 2>&1
  rc=$?
  out=$(cat "$WORK/check.out")
  if ((rc == 0)); then
    passed=$((passed + 1))
    echo "test-deb: ok   $name${out:+: $out}"
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "test-deb: FAIL $name"
    [ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/    /'
  fi
  return 0
}
# A setup step whose failure makes the rest meaningless.
fatal() { echo "test-deb: FATAL: $*" >&2; exit 1; }

# --- preconditions: this host has no edged package, socket or config of its own

# One test-deb at a time on this host (worktrees share dpkg and /etc).
exec 9>/run/lock/edged-test-deb.lock
flock 9
SOCK=/run/edged/edged.sock
if dpkg-query -W -f='${Status}' edged 2>/dev/null | grep -q "ok installed"; then
  fatal "a package named edged is already installed here; refusing to touch it"
fi
for p in /etc/edged /var/lib/edged /usr/lib/edged; do
  [ -e "$p" ] && fatal "$p exists without the package; refusing to touch it"
done
[ -S "$SOCK" ] && fatal "$SOCK exists: an edged of this host's own; refusing to touch it"
group_before=$(getent group edged || true)

# --- what the removal check runs: a real edged with an XDP data plane

ID=edtd$$
WORK=$(mktemp -d /tmp/edged-test-deb.XXXXXX)
PINS=/sys/fs/bpf/$ID
NS=$ID
EDGED_PID=
cleanup() {
  [ -n "$EDGED_PID" ] && kill -KILL "$EDGED_PID" 2>/dev/null
  ip netns del "$NS" 2>/dev/null
  rm -rf "$PINS"
  dpkg -P edged >/dev/null 2>&1
  rm -f /etc/edged/bgp-password
  rmdir /etc/edged 2>/dev/null
  [ -z "$group_before" ] && getent group edged >/dev/null && groupdel edged
  rm -rf "$WORK"
}
trap cleanup EXIT

deb=$(bash scripts/build-deb.sh) || fatal "build-deb.sh failed"

# --- install

dpkg -i "$deb" >"$WORK/install.log" 2>&1 || { cat "$WORK/install.log"; fatal "dpkg -i failed"; }

files_installed() {
  local f bad=0
  for f in /usr/sbin/edged /usr/bin/edgectl /lib/systemd/system/edged.service /etc/edged/edged.yaml \
    /usr/lib/edged/edged-stop /usr/lib/sysusers.d/edged.conf \
    /usr/share/man/man8/edged.8.gz /usr/share/man/man8/edgectl.8.gz \
    /usr/share/bash-completion/completions/edgectl /usr/share/doc/edged/examples/full.yaml \
    /usr/share/doc/edged/operator-guide.md; do
    [ -e "$f" ] || { echo "$f not installed"; bad=1; }
  done
  [ -x /usr/lib/edged/edged-stop ] || { echo "edged-stop is not executable"; bad=1; }
  grep -q '^ExecStop=/usr/lib/edged/edged-stop ' /lib/systemd/system/edged.service ||
    { echo "the unit does not run edged-stop"; bad=1; }
  return $bad
}

conffile() {
  grep -qx /etc/edged/edged.yaml /var/lib/dpkg/info/edged.conffiles || { echo "not a conffile"; return 1; }
}

group_exists() {
  getent group edged || { echo "no group edged after install"; return 1; }
  grep -q '^g edged ' /usr/lib/sysusers.d/edged.conf || { echo "sysusers file lacks the group"; return 1; }
}

# With host checks: the group the shipped config names must exist.
shipped_config_validates() {
  grep -q 'control_group: edged' /etc/edged/edged.yaml || { echo "shipped config has no control_group"; return 1; }
  /usr/sbin/edged check --config /etc/edged/edged.yaml
}

# The package's own daemon: its unit and its socket; not any edged process.
not_started() {
  if [ -d /run/systemd/system ] && systemctl is-active --quiet edged; then
    echo "edged.service is active after install"
    return 1
  fi
  if [ -e "$SOCK" ]; then
    echo "$SOCK exists after install"
    return 1
  fi
  if /usr/bin/edgectl --socket "$SOCK" status >/dev/null 2>&1; then
    echo "an edged answers on $SOCK"
    return 1
  fi
}

man_text() { MANWIDTH=200 man -l "/usr/share/man/man8/$1.8.gz" 2>/dev/null; }
# The long options a program's --help lists as its own flags.
flags_of() {
  "$@" --help | awk '/^Options:/ {on=1; next} /^[A-Z][a-z ]*:/ {on=0} on && /^ +-/' |
    sed -E 's/^ +((-[a-zA-Z], )?--[a-z][a-z-]*).*/\1/' | grep -Eo -- '--[a-z][a-z-]*' | sort -u
}

# Every subcommand and every long option (from the installed programs'
# own --help) is in its page, with EXAMPLES and FILES, and no reference to
# a page the package does not ship.
man_pages_complete() {
  local prog bin sub opt text globals bad=0
  for prog in edged edgectl; do
    bin=/usr/sbin/edged
    [ "$prog" = edgectl ] && bin=/usr/bin/edgectl
    text=$(man_text "$prog")
    [ -n "$text" ] || { echo "$prog(8) does not render"; bad=1; continue; }
    for section in COMMANDS EXAMPLES FILES "EXIT STATUS"; do
      grep -q "^$section" <<<"$text" || { echo "$prog(8) has no $section"; bad=1; }
    done
    if grep -Eq "$prog-[a-z]+\(8\)" <<<"$text"; then
      echo "$prog(8) points at pages nobody ships: $(grep -Eo "$prog-[a-z]+\(8\)" <<<"$text" | sort -u | tr '\n' ' ')"
      bad=1
    fi
    globals=$(flags_of "$bin")
    for opt in $globals; do
      grep -qe "$opt" <<<"$text" || { echo "$prog(8) lacks $opt"; bad=1; }
    done
    for sub in $("$bin" --help | awk '/^Commands:/ {on=1; next} on && /^  [a-z]/ {print $1} on && /^$/ {on=0}'); do
      [ "$sub" = help ] && continue
      grep -Eq "^   $sub\$" <<<"$text" || { echo "$prog(8) has no section for $sub"; bad=1; }
      for opt in $(flags_of "$bin" "$sub"); do
        grep -qxF -- "$opt" <<<"$globals" && continue
        grep -qe "$prog $sub .*$opt" <<<"$text" || { echo "$prog(8): $sub lacks $opt"; bad=1; }
      done
    done
  done
  # The options of the stop/restart design by name.
  for want in "edged check [--no-host-checks] [--diff]" "edgectl stop [--restart] [--fast]" \
    "edgectl reload [--dry-run]" "--fast-stop" "edged teardown"; do
    man_text edged | grep -qF -- "$want" || man_text edgectl | grep -qF -- "$want" ||
      { echo "no \"$want\" in the pages"; bad=1; }
  done
  return $bad
}

bash_completion() {
  bash -c 'source /usr/share/bash-completion/completions/edgectl && complete -p edgectl' >/dev/null ||
    { echo "does not load"; return 1; }
  local words
  words=$(bash -c 'source /usr/share/bash-completion/completions/edgectl; COMP_WORDS=(edgectl dr); COMP_CWORD=1; COMP_LINE="edgectl dr"; COMP_POINT=10; _edgectl edgectl dr edgectl; echo "${COMPREPLY[*]}"')
  [[ " $words " == *" drain "* ]] || { echo "'edgectl dr' gave: $words"; return 1; }
}

# With the man pages installed, Documentation=man:... resolves too.
unit_verifies() {
  local err
  err=$(systemd-analyze verify /lib/systemd/system/edged.service 2>&1)
  [ -z "$err" ] || { echo "$err"; return 1; }
}

security_score() {
  local line score
  line=$(systemd-analyze security --offline=yes --no-pager /lib/systemd/system/edged.service | grep 'Overall exposure level') ||
    { echo "no score"; return 1; }
  score=$(sed -E 's/.*: ([0-9.]+) .*/\1/' <<<"$line")
  echo "$line"
  awk -v s="$score" 'BEGIN { exit !(s <= 3.0) }' || { echo "exposure $score > 3.0"; return 1; }
}

# ExecStop with edged already gone does nothing and succeeds.
stop_script_without_edged() {
  env -u MAINPID /usr/lib/edged/edged-stop edged.service /etc/edged/edged.yaml 2>&1 | grep -q "not running" ||
    { echo "did not say edged is not running"; return 1; }
}

check "files installed (unit, ExecStop script, sysusers, man pages, docs)" files_installed
check "edged.yaml is a conffile" conffile
check "group edged exists after install" group_exists
check "shipped config validates with host checks" shipped_config_validates
check "installing did not start the package's edged" not_started
check "man pages: every subcommand and option, EXAMPLES, FILES" man_pages_complete
check "bash completion" bash_completion
check "systemd-analyze verify of the installed unit" unit_verifies
check "systemd-analyze security --offline=yes <= 3.0" security_score
check "edged-stop with edged gone exits 0" stop_script_without_edged

# --- removal: a real edged (the installed one) leaves its XDP program
# attached and pinned after a graceful stop; dpkg -r must detach and unpin.

ip netns add "$NS" || fatal "ip netns add"
nsx() { nsenter --net="/var/run/netns/$NS" -- "$@"; }
nsx ip link set lo up
nsx ip link add up0 type veth peer name up1 && nsx ip link set up0 up && nsx ip link set up1 up ||
  fatal "veth in $NS"
mkdir -m 0750 "$WORK/state"
cat >/etc/edged/edged.yaml <<EOF
# test-deb: a node in network namespace $NS, pins under $PINS
node:
  router_id: 192.0.2.10
  asn: 65010
  state_dir: $WORK/state
  control_socket: $WORK/edged.sock
  vip_interface: null
  drain_time: 1s
  stop_timeout: 5s
forwarder:
  uplinks: [up0]
  xdp_mode: generic
  pin_dir: $PINS
proxies:
  - {name: px1, address: 198.51.100.11, delivery: host}
vips:
  - name: web
    address: 203.0.113.10
    ports: [{port: 80}]
    services: [{name: tcp, check: {kind: tcp, port: 80}}]
bgp:
  peers: [{name: tor1, address: 192.0.2.1, asn: 65000}]
EOF
ctl() { /usr/bin/edgectl --socket "$WORK/edged.sock" "$@"; }
nsx /usr/sbin/edged --config /etc/edged/edged.yaml 2>"$WORK/edged.log" &
EDGED_PID=$!
for _ in $(seq 200); do ctl status >/dev/null 2>&1 && break; sleep 0.05; done

xdp_attached() { nsx ip -d link show dev up0 | grep -q xdp; }
graceful_stop_keeps_the_data_plane() {
  ctl status >/dev/null || { echo "edged did not come up:"; tail -5 "$WORK/edged.log"; return 1; }
  xdp_attached || { echo "XDP not attached to up0"; return 1; }
  ctl stop || { echo "edgectl stop failed"; return 1; }
  wait "$EDGED_PID" || { echo "edged exited $?"; tail -5 "$WORK/edged.log"; return 1; }
  EDGED_PID=
  xdp_attached && [ -e "$PINS/link_skb_up0" ] || { echo "no XDP left after a graceful stop"; return 1; }
  echo "$(find "$PINS" -mindepth 1 | wc -l) pins"
}
check "a graceful stop of the installed edged keeps XDP attached and pinned" graceful_stop_keeps_the_data_plane

# An operator's own file, which purge must keep.
echo "secret" >/etc/edged/bgp-password
dpkg -r edged >"$WORK/remove.log" 2>&1 || { cat "$WORK/remove.log"; fatal "dpkg -r failed"; }

removal_tears_down() {
  local bad=0
  [ -e "$PINS" ] && { echo "pins left in $PINS: $(ls "$PINS" | head -3 | tr '\n' ' ')"; bad=1; }
  xdp_attached && { echo "XDP still attached to up0"; bad=1; }
  grep -q "edged teardown: detached XDP" "$WORK/remove.log" || { echo "prerm did not run teardown:"; cat "$WORK/remove.log"; bad=1; }
  return $bad
}
removed_binaries_kept_conffile() {
  local bad=0
  [ -e /usr/sbin/edged ] && { echo "remove left /usr/sbin/edged"; bad=1; }
  [ -e /usr/lib/edged/edged-stop ] && { echo "remove left edged-stop"; bad=1; }
  [ -e /etc/edged/edged.yaml ] || { echo "remove must keep the conffile until purge"; bad=1; }
  return $bad
}
check "dpkg -r detaches XDP and removes the pins" removal_tears_down
check "dpkg -r removes the programs and keeps the conffile" removed_binaries_kept_conffile

dpkg -P edged >/dev/null 2>&1 || fatal "dpkg -P failed"
purge_keeps_operator_files() {
  local bad=0
  [ -e /etc/edged/edged.yaml ] && { echo "purge left the conffile"; bad=1; }
  [ -e /var/lib/edged ] && { echo "purge left /var/lib/edged"; bad=1; }
  [ -f /etc/edged/bgp-password ] || { echo "purge removed the operator's /etc/edged/bgp-password"; bad=1; }
  return $bad
}
check "purge removes the conffile and state, keeps an operator's file and /etc/edged" purge_keeps_operator_files

# Without the operator's file, purge leaves no /etc/edged.
rm -f /etc/edged/bgp-password
dpkg -i "$deb" >/dev/null 2>&1 || fatal "second dpkg -i failed"
dpkg -P edged >/dev/null 2>&1 || fatal "second dpkg -P failed"
purge_removes_empty_dir() {
  [ -e /etc/edged ] && { echo "purge left an empty /etc/edged: $(ls -A /etc/edged)"; return 1; }
  return 0
}
check "purge removes /etc/edged once it is empty" purge_removes_empty_dir

echo "test-deb: $passed passed, $failed failed"
if ((failed)); then
  printf 'test-deb: failed: %s\n' "${failures[@]}"
  exit 1
fi
