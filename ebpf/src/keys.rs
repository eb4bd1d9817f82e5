//! A VIP's keys as the program looks them up: the address words, the
//! `ed_vips` key, the `ed_vipidx` slot, and the inline ports.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::abi::*;

/// The inline ports of a VIP's `ed_vipinfo` entry (`proto << 16 | port`,
/// network order), the first `VIP_PORTS` of `keys` by order, and whether
/// it has more (then only in `ed_vips`).
pub(crate) fn inline_ports(keys: &BTreeSet<VipKey>) -> ([u32; VIP_PORTS], u32) {
    let mut out = [0u32; VIP_PORTS];
    let ports: Vec<u32> = keys
        .iter()
        .filter(|k| k.proto != 0)
        .map(|k| (k.proto as u32) << 16 | k.port as u32)
        .collect();
    for (slot, p) in out.iter_mut().zip(&ports) {
        *slot = *p;
    }
    let flags = if ports.len() > VIP_PORTS {
        VIP_MANY_PORTS
    } else {
        0
    };
    (out, flags)
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

/// The `ed_vipidx` slot of the destination, as `vip_index` in the C: the
/// address's 32-bit words (host order) times odd constants, summed, the
/// top `bits` bits.
pub(crate) fn index_slot(addr: IpAddr, bits: u32) -> u32 {
    const K: [u32; 4] = [0x9e37_79b1, 0x85eb_ca77, 0xc2b2_ae3d, 0x27d4_eb2f];
    let octets: Vec<u8> = match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let h = octets.chunks(4).zip(K).fold(0u32, |h, (w, k)| {
        h.wrapping_add(u32::from_be_bytes([w[0], w[1], w[2], w[3]]).wrapping_mul(k))
    });
    if bits == 0 { 0 } else { h >> (32 - bits) }
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
