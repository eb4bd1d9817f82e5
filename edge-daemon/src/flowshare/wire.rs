//! The flow-sharing messages between edge nodes: one UDP datagram each,
//! from a node's handoff address to a peer's.
//!
//! ```text
//! 0       4     5      6       8        12       20
//! | "EDF1" | kind | 0 | count | seed  | seq    | fingerprints (8 each) | tag? |
//! ```
//! All integers big-endian. `kind` 1 = flows the sender owns, 2 = a request
//! for every flow the receiver owns, 3 = the end of such a full sync.
//! `seed` is the sender's `hash_seed` (fingerprints mean the same flow only
//! between nodes with the same seed). `seq` counts the sender's messages.
//! With a shared key, a 16-byte HMAC-SHA256 tag over everything before it
//! ends the datagram, and a datagram without a valid one is refused.

use ring::hmac;

/// Leading bytes of every message (and its version).
pub const MAGIC: &[u8; 4] = b"EDF1";
const HEADER: usize = 20;
const TAG: usize = 16;
/// Fingerprints per datagram: 20 + 160 × 8 + 16 = 1316 bytes, under any
/// fabric MTU after IPv6 and UDP headers.
pub const MAX_FLOWS: usize = 160;

/// What a message says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The sender owns these flows.
    Flows(Vec<u64>),
    /// Send me every flow you own, then [`Kind::SyncEnd`].
    SyncRequest,
    /// The full sync you asked for is complete.
    SyncEnd,
}

/// One message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub seed: u32,
    pub seq: u64,
    pub kind: Kind,
}

/// Why a datagram was refused (a metric label each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("shorter than a header")]
    Short,
    #[error("not a flow-sharing message (magic)")]
    Magic,
    #[error("unknown kind")]
    Kind,
    #[error("length does not match the count")]
    Length,
    #[error("tag missing or wrong (shared key)")]
    Tag,
}

impl WireError {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            WireError::Short => "short",
            WireError::Magic => "magic",
            WireError::Kind => "kind",
            WireError::Length => "length",
            WireError::Tag => "tag",
        }
    }
}

/// The shared key, if one is configured.
pub struct Key(hmac::Key);

impl Key {
    pub fn new(secret: &[u8]) -> Key {
        Key(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }
}

impl Message {
    /// The datagram. `Flows` with more than [`MAX_FLOWS`] is the caller's
    /// bug (see [`batches`]).
    pub fn encode(&self, key: Option<&Key>) -> Vec<u8> {
        let (kind, flows): (u8, &[u64]) = match &self.kind {
            Kind::Flows(f) => (1, f),
            Kind::SyncRequest => (2, &[]),
            Kind::SyncEnd => (3, &[]),
        };
        assert!(flows.len() <= MAX_FLOWS, "one datagram holds {MAX_FLOWS}");
        let mut b = Vec::with_capacity(HEADER + flows.len() * 8 + TAG);
        b.extend_from_slice(MAGIC);
        b.push(kind);
        b.push(0);
        b.extend_from_slice(&(flows.len() as u16).to_be_bytes());
        b.extend_from_slice(&self.seed.to_be_bytes());
        b.extend_from_slice(&self.seq.to_be_bytes());
        for f in flows {
            b.extend_from_slice(&f.to_be_bytes());
        }
        if let Some(k) = key {
            let tag = hmac::sign(&k.0, &b);
            b.extend_from_slice(&tag.as_ref()[..TAG]);
        }
        b
    }

    /// Parses a datagram; with `key`, only one whose tag verifies.
    pub fn decode(b: &[u8], key: Option<&Key>) -> Result<Message, WireError> {
        if b.len() < HEADER {
            return Err(WireError::Short);
        }
        if &b[..4] != MAGIC {
            return Err(WireError::Magic);
        }
        let count = u16::from_be_bytes([b[6], b[7]]) as usize;
        let body = HEADER + count * 8;
        let want = body + if key.is_some() { TAG } else { 0 };
        if count > MAX_FLOWS || b.len() != want {
            // A keyed datagram at a node without the key, or the reverse,
            // lands here too.
            return Err(if key.is_some() && b.len() == body {
                WireError::Tag
            } else {
                WireError::Length
            });
        }
        if let Some(k) = key {
            let tag = hmac::sign(&k.0, &b[..body]);
            if !constant_time_eq(&tag.as_ref()[..TAG], &b[body..]) {
                return Err(WireError::Tag);
            }
        }
        let seed = u32::from_be_bytes(b[8..12].try_into().expect("4 bytes"));
        let seq = u64::from_be_bytes(b[12..20].try_into().expect("8 bytes"));
        let kind = match b[4] {
            1 => Kind::Flows(
                b[HEADER..body]
                    .chunks_exact(8)
                    .map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes")))
                    .collect(),
            ),
            2 if count == 0 => Kind::SyncRequest,
            3 if count == 0 => Kind::SyncEnd,
            2 | 3 => return Err(WireError::Length),
            _ => return Err(WireError::Kind),
        };
        Ok(Message { seed, seq, kind })
    }
}

/// `flows` in datagram-sized pieces.
pub fn batches(flows: &[u64]) -> impl Iterator<Item = &[u64]> {
    flows.chunks(MAX_FLOWS)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flows(n: usize) -> Message {
        Message {
            seed: 0x5eed_0001,
            seq: 7,
            kind: Kind::Flows((0..n as u64).map(|i| (1 << 63) | (i << 9)).collect()),
        }
    }

    #[test]
    fn every_kind_round_trips_with_and_without_a_key() {
        let key = Key::new(b"a shared secret of the fleet");
        for m in [
            flows(0),
            flows(1),
            flows(MAX_FLOWS),
            Message {
                seed: 1,
                seq: u64::MAX,
                kind: Kind::SyncRequest,
            },
            Message {
                seed: 2,
                seq: 0,
                kind: Kind::SyncEnd,
            },
        ] {
            assert_eq!(Message::decode(&m.encode(None), None), Ok(m.clone()));
            let keyed = m.encode(Some(&key));
            assert_eq!(keyed.len(), m.encode(None).len() + TAG);
            assert_eq!(Message::decode(&keyed, Some(&key)), Ok(m));
        }
        assert!(flows(MAX_FLOWS).encode(Some(&key)).len() <= 1316);
    }

    #[test]
    fn a_wrong_or_missing_key_is_refused() {
        let key = Key::new(b"the fleet's key");
        let other = Key::new(b"another key");
        let m = flows(3);
        assert_eq!(
            Message::decode(&m.encode(Some(&other)), Some(&key)),
            Err(WireError::Tag)
        );
        assert_eq!(
            Message::decode(&m.encode(None), Some(&key)),
            Err(WireError::Tag)
        );
        // Keyed at a node without the key: the length does not match.
        assert_eq!(
            Message::decode(&m.encode(Some(&key)), None),
            Err(WireError::Length)
        );
        // One flipped bit anywhere fails the tag.
        let good = m.encode(Some(&key));
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 1;
            assert!(Message::decode(&bad, Some(&key)).is_err(), "byte {i}");
        }
    }

    #[test]
    fn malformed_datagrams_are_typed_errors() {
        let good = flows(2).encode(None);
        assert_eq!(Message::decode(&good[..19], None), Err(WireError::Short));
        let mut bad = good.clone();
        bad[0] = b'X';
        assert_eq!(Message::decode(&bad, None), Err(WireError::Magic));
        let mut bad = good.clone();
        bad[4] = 9;
        assert_eq!(Message::decode(&bad, None), Err(WireError::Kind));
        let mut bad = good.clone();
        bad[4] = 2; // a sync request carrying flows
        assert_eq!(Message::decode(&bad, None), Err(WireError::Length));
        assert_eq!(
            Message::decode(&good[..good.len() - 1], None),
            Err(WireError::Length)
        );
        let mut long = good.clone();
        long.push(0);
        assert_eq!(Message::decode(&long, None), Err(WireError::Length));
        let mut huge = good.clone();
        huge[6..8].copy_from_slice(&1000u16.to_be_bytes());
        assert_eq!(Message::decode(&huge, None), Err(WireError::Length));
    }

    #[test]
    fn seeded_random_datagrams_never_panic() {
        let key = Key::new(b"k");
        let mut rng = edged_testlab::Rng(17);
        let base = flows(4).encode(Some(&key));
        for _ in 0..20_000 {
            let mut b = base.clone();
            let n = rng.below(4) + 1;
            for _ in 0..n {
                match rng.below(3) {
                    0 if !b.is_empty() => {
                        let i = rng.below(b.len());
                        b[i] = rng.below(256) as u8;
                    }
                    1 => b.truncate(rng.below(b.len() + 1)),
                    _ => b.push(rng.below(256) as u8),
                }
            }
            let _ = Message::decode(&b, Some(&key));
            let _ = Message::decode(&b, None);
        }
    }
}
