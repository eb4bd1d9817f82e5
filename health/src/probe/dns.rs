//! DNS over UDP: one query, the response code compared with the expected.
//! The query and the response header are built and read here (12-byte
//! header, one question).

use std::net::{IpAddr, SocketAddr};

use tokio::net::UdpSocket;

use crate::outcome::Failure;
use crate::spec::DnsCheck;

fn io(e: std::io::Error) -> Failure {
    Failure::io(&e)
}

/// One query of `d`; passes on the expected response code.
pub(crate) async fn check(d: &DnsCheck, source: Option<IpAddr>) -> Result<(), Failure> {
    let (target, name, qtype, expect_rcode) =
        (d.target, &d.query_name, d.query_type, d.expect_rcode);
    let bind = source.unwrap_or(if target.is_ipv4() {
        IpAddr::from([0u8; 4])
    } else {
        IpAddr::from([0u16; 8])
    });
    let sock = UdpSocket::bind(SocketAddr::new(bind, 0))
        .await
        .map_err(io)?;
    sock.connect(target).await.map_err(io)?;
    let id = query_id();
    let query = encode_query(id, name, qtype).map_err(Failure::Other)?;
    sock.send(&query).await.map_err(io)?;
    let mut buf = [0u8; 1500];
    loop {
        let n = sock.recv(&mut buf).await.map_err(io)?;
        match rcode_of(&buf[..n], id) {
            Some(rc) if rc == expect_rcode => return Ok(()),
            Some(rc) => return Err(Failure::DnsRcode(rc)),
            None => continue, // not an answer to this query: keep waiting (timeout bounds it)
        }
    }
}

fn query_id() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::Instant::now()) as u16
}

/// A standard query with recursion desired for `name` (class IN).
pub fn encode_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, String> {
    let mut q = Vec::with_capacity(32 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD; QDCOUNT 1
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("bad query name {name}"));
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    Ok(q)
}

/// The response code of a response to query `id`, or `None` if `msg` is
/// not one (too short, another id, not a response).
pub fn rcode_of(msg: &[u8], id: u16) -> Option<u8> {
    if msg.len() < 12 || u16::from_be_bytes([msg[0], msg[1]]) != id || msg[2] & 0x80 == 0 {
        return None;
    }
    Some(msg[3] & 0x0f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_bytes_and_response_parsing() {
        let q = encode_query(0xabcd, "health.example.com", 1).unwrap();
        assert_eq!(&q[..4], &[0xab, 0xcd, 0x01, 0x00]);
        assert_eq!(&q[12..19], b"\x06health");
        assert_eq!(&q[q.len() - 4..], &[0, 1, 0, 1]);
        assert!(encode_query(1, "a..b", 1).is_err());
        let mut resp = q.clone();
        resp[2] |= 0x80;
        resp[3] = 0x83; // RA + NXDOMAIN
        assert_eq!(rcode_of(&resp, 0xabcd), Some(3));
        assert_eq!(rcode_of(&resp, 0x1111), None, "other id");
        assert_eq!(rcode_of(&q, 0xabcd), None, "a query, not a response");
        assert_eq!(rcode_of(&resp[..5], 0xabcd), None, "truncated");
    }
}
