//! Input types the daemon maps its configuration onto, and their validation.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use thiserror::Error;

/// Everything needed to generate BIRD's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpSpec {
    /// BGP router id (managed mode only; an external BIRD keeps its own).
    pub router_id: Ipv4Addr,
    pub local_asn: u32,
    pub peers: Vec<PeerSpec>,
    pub vips: Vec<VipRoute>,
    /// Extra attributes while a VIP is draining (on top of 65535:0).
    pub drain: DrainPolicy,
    pub mode: BirdMode,
}

/// One BGP session. The session's address family decides which VIPs it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSpec {
    /// `[a-z0-9_]{1,40}`; becomes BIRD protocol `edged_p_<name>`.
    pub name: String,
    pub address: IpAddr,
    pub asn: u32,
    pub source_address: Option<IpAddr>,
    /// Seconds; BIRD accepts 0 or 3..=65535 and rejects the rest.
    pub hold_time: u16,
    pub keepalive: Option<u16>,
    pub bfd: bool,
    /// File holding the TCP MD5 password (trailing newline ignored).
    pub password_file: Option<PathBuf>,
    pub multihop: Option<u8>,
    pub ttl_security: bool,
}

/// One VIP, announced as a host route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipRoute {
    /// `[a-z0-9_]{1,40}`; becomes BIRD protocols `edged_a_<name>` / `edged_d_<name>`.
    pub name: String,
    /// Announced as /32 (IPv4) or /128 (IPv6).
    pub prefix: IpAddr,
    pub communities: Vec<(u16, u16)>,
    pub large_communities: Vec<(u32, u32, u32)>,
}

/// Lower preference added while draining (RFC 8326 community always added).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrainPolicy {
    pub med: Option<u32>,
    /// How many extra times the local ASN is prepended.
    pub prepend: u8,
}

/// Who runs BIRD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BirdMode {
    /// edged starts `bird` itself; `bird.conf`, `bird.ctl`, `bird.pid` live in `state_dir`.
    Managed {
        bird_binary: PathBuf,
        state_dir: PathBuf,
        /// The [keeper](crate::keeper) that holds BIRD for edged.
        keeper: KeeperCommand,
        /// How long the keeper holds BIRD (and the routes) after a planned
        /// exit of edged, waiting for the next one.
        handover_grace: std::time::Duration,
    },
    /// An operator's BIRD includes `include_file`; edged talks to `socket`.
    External {
        socket: PathBuf,
        include_file: PathBuf,
    },
}

/// How to start the keeper: `program args... --socket .. --grace-ms .. -- bird ...`.
/// edged runs itself (`/proc/self/exe bird-keeper`); tests run the
/// `edged-bird-keeper` binary of this crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeeperCommand {
    pub program: PathBuf,
    pub args: Vec<String>,
}

impl KeeperCommand {
    /// The `edged-bird-keeper` binary of this workspace's build, found from
    /// the running binary (a sibling, or one level up from `deps/`).
    pub fn from_build_dir() -> KeeperCommand {
        let exe = std::env::current_exe().unwrap_or_default();
        let dir = exe
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        let candidates = [
            dir.join("edged-bird-keeper"),
            dir.join("../edged-bird-keeper"),
        ];
        let program = candidates
            .iter()
            .find(|p| p.exists())
            .cloned()
            .unwrap_or_else(|| candidates[0].clone());
        KeeperCommand {
            program,
            args: Vec::new(),
        }
    }
}

/// What a VIP's route looks like to the peers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteState {
    #[default]
    Withdrawn,
    Announced,
    /// Announced with GRACEFUL_SHUTDOWN 65535:0 (+ MED / prepend from [`DrainPolicy`]).
    Draining,
}

/// A spec that cannot be turned into a BIRD configuration.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SpecError {
    #[error("{what} name {name:?} is invalid: use 1-40 characters from [a-z0-9_]")]
    BadName { what: &'static str, name: String },
    #[error("{what} name {name:?} is used twice; names must be unique")]
    DuplicateName { what: &'static str, name: String },
    #[error("VIP {vip} prefix {prefix} is used twice; each address may be announced by one VIP")]
    DuplicatePrefix { vip: String, prefix: IpAddr },
    #[error("peer {peer}: source address {source_address} is not the same family as {address}")]
    FamilyMismatch {
        peer: String,
        source_address: IpAddr,
        address: IpAddr,
    },
    #[error("peer {peer}: multihop and ttl_security cannot both be set; choose one")]
    MultihopAndTtl { peer: String },
    #[error(
        "VIP {vip}: prefix {prefix} is unspecified, loopback or multicast; use a routable address"
    )]
    BadPrefix { vip: String, prefix: IpAddr },
    #[error("local ASN 0 is reserved; set a real ASN")]
    ZeroAsn,
}

// === impl BgpSpec ===

fn check_name(what: &'static str, name: &str) -> Result<(), SpecError> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(SpecError::BadName {
            what,
            name: name.to_string(),
        })
    }
}

impl BgpSpec {
    /// Check what BIRD would reject late or what would make the config unsafe.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.local_asn == 0 {
            return Err(SpecError::ZeroAsn);
        }
        let mut names = std::collections::BTreeSet::new();
        for p in &self.peers {
            check_name("peer", &p.name)?;
            if !names.insert(&p.name) {
                return Err(SpecError::DuplicateName {
                    what: "peer",
                    name: p.name.clone(),
                });
            }
            if let Some(src) = p.source_address
                && src.is_ipv4() != p.address.is_ipv4()
            {
                let (peer, address) = (p.name.clone(), p.address);
                return Err(SpecError::FamilyMismatch {
                    peer,
                    source_address: src,
                    address,
                });
            }
            if p.multihop.is_some() && p.ttl_security {
                return Err(SpecError::MultihopAndTtl {
                    peer: p.name.clone(),
                });
            }
        }
        let (mut names, mut prefixes) = (
            std::collections::BTreeSet::new(),
            std::collections::BTreeSet::new(),
        );
        for v in &self.vips {
            check_name("VIP", &v.name)?;
            if !names.insert(&v.name) {
                return Err(SpecError::DuplicateName {
                    what: "VIP",
                    name: v.name.clone(),
                });
            }
            let p = v.prefix;
            if p.is_unspecified() || p.is_loopback() || p.is_multicast() {
                return Err(SpecError::BadPrefix {
                    vip: v.name.clone(),
                    prefix: p,
                });
            }
            if !prefixes.insert(p) {
                return Err(SpecError::DuplicatePrefix {
                    vip: v.name.clone(),
                    prefix: p,
                });
            }
        }
        Ok(())
    }

    /// The VIP called `name`.
    pub fn vip(&self, name: &str) -> Option<&VipRoute> {
        self.vips.iter().find(|v| v.name == name)
    }
}

/// BIRD protocol name of a VIP's normal route.
pub fn announce_proto(vip: &str) -> String {
    format!("edged_a_{vip}")
}

/// BIRD protocol name of a VIP's draining route.
pub fn drain_proto(vip: &str) -> String {
    format!("edged_d_{vip}")
}

/// BIRD protocol name of a peer session.
pub fn peer_proto(peer: &str) -> String {
    format!("edged_p_{peer}")
}
