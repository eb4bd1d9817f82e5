//! Facts and settings of the host that edged checks or sets at start and
//! on every observation: the descriptor limit, a private bpffs, and the
//! kernel settings replies need when VIPs sit on the node itself.

/// Raises the soft descriptor limit to the hard one; returns the limit in
/// force. Control clients are capped far below it, so health checks keep
/// their descriptors whatever the clients do.
pub fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(_) => soft,
        },
        Ok((soft, _)) => soft,
        Err(_) => 0,
    }
}

/// Why edged's bpffs pins would be private, if they would: under
/// `ip netns exec`, whose /sys is the network namespace's own sysfs, no
/// bpffs is mounted at /sys/fs/bpf and the one edged mounts lives and dies
/// with edged's mount namespace, so a restart cannot re-adopt the data
/// plane. (A private mount namespace as such is fine: systemd's sandboxing
/// gives edged one, with the host's bpffs bound in.)
pub fn bpffs_is_private() -> Option<String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let mut bpffs = false;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(dash) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let (point, fstype, source) = (
            fields.get(4).copied(),
            fields.get(dash + 1).copied(),
            fields.get(dash + 2).copied(),
        );
        // iproute2 mounts the namespace's sysfs with the namespace's name.
        if point == Some("/sys") && fstype == Some("sysfs") && source.is_some_and(|s| s != "sysfs")
        {
            return Some(format!(
                "/sys is the sysfs of network namespace `{}` (ip netns exec)",
                source.unwrap_or("")
            ));
        }
        bpffs |= point == Some("/sys/fs/bpf") && fstype == Some("bpf");
    }
    (!bpffs).then(|| "no bpffs is mounted at /sys/fs/bpf; edged mounts its own".into())
}

fn sysctl_path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

fn read(key: &str) -> Option<u32> {
    std::fs::read_to_string(sysctl_path(key))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn write(key: &str, value: u32) -> Result<(), String> {
    std::fs::write(sysctl_path(key), value.to_string())
        .map_err(|e| format!("set {key}={value}: {e}"))
}

/// With the VIPs on the node itself (`node.vip_interface`), the replies
/// that L2 proxies route back through the node carry a VIP, a local
/// address, as their source; IPv4 drops them as martians unless
/// `accept_local` is on for the interface they arrive on, and strict
/// reverse-path filtering drops them anyway (IPv6 needs nothing). Sets
/// `accept_local=1` and a strict per-interface `rp_filter` to loose on
/// each proxy interface; returns the settings it changed. An error names
/// a host-wide setting edged will not change for the operator.
pub fn reply_path_sysctls(ifaces: &[String]) -> Result<Vec<String>, String> {
    if read("net.ipv4.conf.all.rp_filter") == Some(1) {
        return Err(
            "net.ipv4.conf.all.rp_filter is 1 (strict): replies of L2 proxies routed through \
             this node, with a VIP on node.vip_interface, would be dropped; set it to 2 \
             (loose) or 0, or set node.vip_interface: null"
                .into(),
        );
    }
    let mut changed = Vec::new();
    for i in ifaces {
        let local = format!("net.ipv4.conf.{i}.accept_local");
        if read(&local) != Some(1) {
            write(&local, 1)?;
            changed.push(format!("{local}=1"));
        }
        let rp = format!("net.ipv4.conf.{i}.rp_filter");
        if read(&rp) == Some(1) {
            write(&rp, 2)?;
            changed.push(format!("{rp}=2"));
        }
    }
    Ok(changed)
}
