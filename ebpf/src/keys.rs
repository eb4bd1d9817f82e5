//! A VIP's keys as the program looks them up: the address words, the
//! `ed_vips` key, the 16-bit fold of `ed_vipidx`, and the port bitmaps.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::ForwarderError;
use crate::abi::*;
use crate::error::map_err;
use crate::maps::Maps;

/// Rewrites the port-bitmap words that `old` or `new` touch.
pub(crate) fn write_ports(
    maps: &mut Maps,
    id: u32,
    old: &BTreeSet<VipKey>,
    new: &BTreeSet<VipKey>,
) -> Result<(), ForwarderError> {
    let word = |k: &VipKey| {
        let port = u16::from_be(k.port) as u32;
        (
            (id * 2 + (k.proto == 17) as u32) * PORT_WORDS + (port >> 6),
            port & 63,
        )
    };
    let mut words: BTreeMap<u32, u64> = BTreeMap::new();
    for k in old.iter().filter(|k| k.proto != 0) {
        words.entry(word(k).0).or_insert(0);
    }
    for k in new.iter().filter(|k| k.proto != 0) {
        let (w, b) = word(k);
        *words.entry(w).or_insert(0) |= 1 << b;
    }
    for (w, bits) in words {
        maps.ports
            .set(w, bits, 0)
            .map_err(map_err("ed_ports", "set"))?;
    }
    Ok(())
}

/// The address words as the program reads them from the packet.
pub(crate) fn addr_words(addr: IpAddr) -> ([u32; 4], u8) {
    let w = |b: &[u8]| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
    match addr {
        IpAddr::V4(a) => ([w(&a.octets()), 0, 0, 0], FAMILY_V4),
        IpAddr::V6(a) => {
            let o = a.octets();
            (
                [w(&o[0..4]), w(&o[4..8]), w(&o[8..12]), w(&o[12..16])],
                FAMILY_V6,
            )
        }
    }
}

pub(crate) fn vip_key(addr: IpAddr, port: u16, proto: u8) -> VipKey {
    let (addr, family) = addr_words(addr);
    VipKey {
        addr,
        port: port.to_be(),
        proto,
        family,
    }
}

/// The 16-bit fold of the destination, as `vip_match` in the C.
pub(crate) fn fold16(addr: IpAddr) -> u32 {
    let (w, _) = addr_words(addr);
    let x = w[0] ^ w[1] ^ w[2] ^ w[3];
    (x ^ (x >> 16)) & 0xffff
}

/// The address of an `ed_vips` key.
pub(crate) fn key_addr(k: &VipKey) -> IpAddr {
    word_addr(&k.addr, k.family)
}

/// The address `words` hold (as [`addr_words`] wrote them).
pub(crate) fn word_addr(words: &[u32; 4], family: u8) -> IpAddr {
    let b = |w: u32| w.to_ne_bytes();
    if family == FAMILY_V4 {
        IpAddr::V4(Ipv4Addr::from(b(words[0])))
    } else {
        let mut o = [0u8; 16];
        for (i, w) in words.iter().enumerate() {
            o[i * 4..i * 4 + 4].copy_from_slice(&b(*w));
        }
        IpAddr::V6(Ipv6Addr::from(o))
    }
}
