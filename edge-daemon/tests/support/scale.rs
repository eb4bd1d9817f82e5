//! A config at fleet scale, written as an operator would write it (block
//! YAML): `vips` VIPs, IPv4 and IPv6 alternating (at most 262,144), each with two ports and
//! one HTTP check whose Host is the VIP's name, on `proxies` proxies.
//! Shared by `tests/scale.rs` and `benches/config.rs`.

use std::fmt::Write;

pub fn config(vips: usize, proxies: usize) -> String {
    let mut y = String::with_capacity(vips * 200 + 4096);
    y.push_str("node:\n  router_id: 192.0.2.10\n  asn: 65010\n");
    y.push_str("proxies:\n");
    for p in 0..proxies {
        let (hi, lo) = (p / 250, p % 250 + 1);
        writeln!(
            y,
            "  - name: px{p}\n    address: 198.51.{}.{lo}\n    delivery: host",
            100 + hi
        )
        .unwrap();
    }
    y.push_str("vips:\n");
    for v in 0..vips {
        // IPv4 from 198.18.0.0/15 (RFC 2544, benchmarking: 131,072
        // addresses), IPv6 from 2001:db8::/32.
        let n = v / 2;
        let address = if v % 2 == 0 {
            format!("198.{}.{}.{}", 18 + n / 65_536, (n / 256) % 256, n % 256)
        } else {
            format!("'2001:db8:{:x}::{:x}'", n / 65_536, n % 65_536 + 1)
        };
        writeln!(
            y,
            "  - name: v{v}\n    address: {address}\n    ports:\n      - port: 80\n      - port: 443\n    services:\n      - name: http\n        check:\n          kind: http\n          path: /healthz\n          host: v{v}.example.com"
        )
        .unwrap();
    }
    y.push_str("bgp:\n  peers:\n    - name: tor\n      address: 192.0.2.1\n      asn: 65000\n");
    y.push_str("    - name: tor6\n      address: '2001:db8:ffff::1'\n      asn: 65000\n");
    y
}
