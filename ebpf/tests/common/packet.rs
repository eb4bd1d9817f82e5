//! Crafted frames for BPF_PROG_TEST_RUN (checksums are not checked by the
//! program, so they are left zero).

use std::net::IpAddr;

pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xc1];
pub const EDGE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xe1];
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const ACK: u8 = 0x10;
/// ECN setup on a SYN (RFC 3168): ECE and CWR.
pub const ECE_CWR: u8 = 0xc0;

#[derive(Clone)]
pub struct Frame {
    pub vlans: Vec<u16>,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IPv4 options (multiple of 4 bytes).
    pub options: Vec<u8>,
    /// IPv4 frag_off field (flags + offset), host order.
    pub frag: u16,
    pub l4: L4,
}

#[derive(Clone)]
pub enum L4 {
    Tcp {
        sport: u16,
        dport: u16,
        flags: u8,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
    /// ICMP frag-needed / ICMPv6 packet-too-big quoting `inner`, cut to
    /// `inner_l4_len` bytes of its L4 header.
    IcmpTooBig {
        inner: Box<Frame>,
        inner_l4_len: usize,
    },
    Raw {
        proto: u8,
        bytes: Vec<u8>,
    },
}

impl Frame {
    pub fn tcp(src: &str, dst: &str, sport: u16, dport: u16, flags: u8) -> Frame {
        Frame {
            vlans: vec![],
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            options: vec![],
            frag: 0,
            l4: L4::Tcp {
                sport,
                dport,
                flags,
            },
        }
    }

    pub fn udp(src: &str, dst: &str, sport: u16, dport: u16) -> Frame {
        Frame {
            l4: L4::Udp { sport, dport },
            ..Frame::tcp(src, dst, 0, 0, 0)
        }
    }

    /// Ethernet frame bytes.
    pub fn bytes(&self) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&EDGE_MAC);
        f.extend_from_slice(&CLIENT_MAC);
        for (i, v) in self.vlans.iter().enumerate() {
            let tpid: u16 = if i == 0 && self.vlans.len() > 1 {
                0x88a8
            } else {
                0x8100
            };
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&v.to_be_bytes());
        }
        let ethertype: u16 = if self.src.is_ipv4() { 0x0800 } else { 0x86dd };
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(&self.ip());
        f
    }

    /// The IP packet (header + L4).
    pub fn ip(&self) -> Vec<u8> {
        let (proto, l4) = self.l4_bytes();
        let mut p = Vec::new();
        match (self.src, self.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let ihl = 5 + self.options.len() / 4;
                let total = (ihl * 4 + l4.len()) as u16;
                p.push(0x40 | ihl as u8);
                p.push(0);
                p.extend_from_slice(&total.to_be_bytes());
                p.extend_from_slice(&[0x12, 0x34]);
                p.extend_from_slice(&self.frag.to_be_bytes());
                p.extend_from_slice(&[64, proto, 0, 0]);
                p.extend_from_slice(&s.octets());
                p.extend_from_slice(&d.octets());
                p.extend_from_slice(&self.options);
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                p.extend_from_slice(&[0x60, 0, 0, 0]);
                p.extend_from_slice(&(l4.len() as u16).to_be_bytes());
                p.extend_from_slice(&[proto, 64]);
                p.extend_from_slice(&s.octets());
                p.extend_from_slice(&d.octets());
            }
            _ => panic!("mixed families"),
        }
        p.extend_from_slice(&l4);
        p
    }

    fn l4_bytes(&self) -> (u8, Vec<u8>) {
        let v6 = self.src.is_ipv6();
        match &self.l4 {
            L4::Tcp {
                sport,
                dport,
                flags,
            } => {
                let mut t = Vec::new();
                t.extend_from_slice(&sport.to_be_bytes());
                t.extend_from_slice(&dport.to_be_bytes());
                t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
                t.extend_from_slice(&[0x50, *flags, 0xff, 0xff, 0, 0, 0, 0]);
                (6, t)
            }
            L4::Udp { sport, dport } => {
                let mut u = Vec::new();
                u.extend_from_slice(&sport.to_be_bytes());
                u.extend_from_slice(&dport.to_be_bytes());
                u.extend_from_slice(&[0, 12, 0, 0, b'p', b'i', b'n', b'g']);
                (17, u)
            }
            L4::IcmpTooBig {
                inner,
                inner_l4_len,
            } => {
                let mut q = inner.ip();
                let hdr = if v6 { 40 } else { 20 + inner.options.len() };
                q.truncate(hdr + inner_l4_len);
                let mut i = if v6 {
                    vec![2, 0, 0, 0, 0, 0, 0x05, 0x00]
                } else {
                    vec![3, 4, 0, 0, 0, 0, 0x05, 0x00]
                };
                i.extend_from_slice(&q);
                (if v6 { 58 } else { 1 }, i)
            }
            L4::Raw { proto, bytes } => (*proto, bytes.clone()),
        }
    }
}
