//! The `#[repr(C)]` structs of `edged_ebpf::abi` against the C layout as
//! clang recorded it in the object's BTF (read with bpftool).

use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};

use edged_ebpf::abi::*;

/// struct name -> (size, member name -> byte offset)
fn btf_structs() -> BTreeMap<String, (usize, BTreeMap<String, usize>)> {
    let path = std::env::temp_dir().join(format!("edged-abi-{}.o", std::process::id()));
    std::fs::write(&path, edged_ebpf::bench::object()).unwrap();
    let out = std::process::Command::new("bpftool")
        .args(["btf", "dump", "file"])
        .arg(&path)
        .args(["format", "raw"])
        .output()
        .expect("bpftool (apt-get install bpftool)");
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut structs = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some(rest) = line.split("] STRUCT '").nth(1) {
            let name = rest.split('\'').next().unwrap().to_string();
            let size = rest
                .split("size=")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap();
            structs.insert(name.clone(), (size.parse().unwrap(), BTreeMap::new()));
            current = Some(name);
        } else if line.starts_with('\t') {
            if let Some(name) = &current {
                let member = line.trim().split('\'').nth(1).unwrap().to_string();
                let bits: usize = line.split("bits_offset=").nth(1).unwrap().parse().unwrap();
                structs.get_mut(name).unwrap().1.insert(member, bits / 8);
            }
        } else {
            current = None;
        }
    }
    structs
}

macro_rules! check {
    ($btf:expr, $c:literal, $t:ty, [$($f:ident),*]) => {{
        let (size, members) = $btf.get($c).unwrap_or_else(|| panic!("no struct {} in BTF", $c));
        assert_eq!(*size, size_of::<$t>(), "size of {}", $c);
        $(assert_eq!(members[stringify!($f)], offset_of!($t, $f), "{}.{}", $c, stringify!($f));)*
    }};
}

#[test]
fn rust_structs_match_the_c_layout() {
    let btf = btf_structs();
    check!(
        btf,
        "edged_cfg",
        EdgedCfg,
        [
            version,
            table_size,
            hash_seed,
            max_vips,
            udp_timeout_ns,
            conntrack_entries,
            no_healthy,
            ct_buckets,
            peer_flows,
            vip_index_bits,
            max_pools,
            max_vip_keys
        ]
    );
    check!(btf, "vip_key", VipKey, [addr, port, proto, family]);
    check!(btf, "vip_val", VipVal, [vip_id, flags]);
    check!(btf, "vip_info", VipInfo, [addr, family, port, flags]);
    check!(btf, "vip_state", VipState, [pool, no_healthy]);
    check!(btf, "pool_state", PoolState, [active, count]);
    check!(btf, "proxy", Proxy, [mac, src_mac, ifindex, kind]);
    check!(btf, "proxy_name", ProxyName, [name]);
    check!(btf, "ct_bucket", CtBucket, [way]);
    check!(
        btf,
        "vip_counters",
        VipCountersRaw,
        [
            packets,
            bytes,
            new_flows,
            nonsyn_miss,
            drop_no_healthy,
            pass_no_healthy,
            frag_pass,
            icmp_fwd,
            ext_pass,
            bad_tcp_flags
        ]
    );
    check!(
        btf,
        "proxy_counters",
        ProxyCountersRaw,
        [packets, bytes, new_flows]
    );
}
