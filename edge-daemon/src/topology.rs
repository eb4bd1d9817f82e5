//! The topology rules the daemon's parts share, in one place: which
//! proxies serve a VIP, the weight in force, the names BIRD takes.

use std::collections::BTreeMap;

use edged_config::{Config, Proxy, Vip};

/// Whether `proxy` serves `vip`: every proxy, unless the VIP lists its own.
pub fn serves(vip: &Vip, proxy: &Proxy) -> bool {
    vip.proxies.as_ref().is_none_or(|l| l.contains(&proxy.name))
}

/// The proxies serving `vip`, in config order.
pub fn members<'a>(cfg: &'a Config, vip: &Vip) -> impl Iterator<Item = &'a Proxy> {
    cfg.proxies.iter().filter(move |p| serves(vip, p))
}

/// The VIPs `proxy` serves, in config order.
pub fn vips_of<'a>(cfg: &'a Config, proxy: &'a Proxy) -> impl Iterator<Item = &'a Vip> {
    cfg.vips.iter().filter(move |v| serves(v, proxy))
}

/// The weight in force for `proxy`: a runtime override (`edgectl
/// weight`), else the config's.
pub fn weight(proxy: &Proxy, overrides: &BTreeMap<String, u32>) -> u32 {
    overrides.get(&proxy.name).copied().unwrap_or(proxy.weight)
}

/// A config name as BIRD takes it (`[a-z0-9_]`; the config allows `-`,
/// and validation keeps the mapped names unique).
pub fn bird_name(name: &str) -> String {
    name.replace('-', "_")
}
