//! Flow ownership shared with the handoff peers, so that a connection the
//! top-of-rack moves to another node (a drain, a node joining or
//! returning) goes back to the node whose proxy holds it.
//!
//! A task per node: every [`TICK`] it takes the flows the data plane
//! started serving and sends them, batched, to every peer; it records what
//! the peers send into the data plane's peer-owned table; it answers a
//! peer's full-sync request with every flow it serves; and when it starts
//! it asks every peer for theirs. UDP between the nodes' handoff
//! addresses ([`wire`]); only configured peers are heard, and with a
//! shared key only datagrams it signed.

pub mod wire;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edged_config::Config;
use edged_ebpf::Flows;
use tokio::net::UdpSocket;
use wire::{Key, Kind, Message};

/// How often new flows are sent (the batching window).
pub const TICK: Duration = Duration::from_millis(10);
/// How often a peer that has not answered a sync request is asked again,
/// and how many times.
const SYNC_RETRY: Duration = Duration::from_secs(1);
const SYNC_TRIES: u32 = 10;
/// Datagrams of a full sync sent per millisecond (640 flows).
const PACE: usize = 4;
/// Receive buffer asked for: a full sync arriving faster than it is
/// written waits here.
const RCVBUF: usize = 8 << 20;
/// Largest key file read.
const MAX_KEY: u64 = 4096;
/// A peer whose datagrams were lost is asked for a full sync again, at
/// most this often (a sync of a million flows is some 10 MB).
const REPAIR_EVERY: Duration = Duration::from_secs(10);
/// A jump in a peer's sequence larger than this is a restart of its task
/// (it starts from its clock), not a loss.
const RESTART_JUMP: u64 = 1 << 20;

/// Datagrams missing between the last sequence number heard from a peer
/// and this one (0 for the first, a repeat, one out of order, or a peer
/// that started again).
fn seq_gap(last: Option<u64>, seq: u64) -> u64 {
    match last {
        Some(l) if seq > l && seq - l <= RESTART_JUMP => seq - l - 1,
        _ => 0,
    }
}

/// What the task needs from the config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub local: IpAddr,
    pub peers: Vec<IpAddr>,
    pub port: u16,
    pub seed: u32,
    pub pin_dir: PathBuf,
    pub key_file: Option<PathBuf>,
}

impl Spec {
    /// `None` without `forwarder.handoff`.
    pub fn of(cfg: &Config) -> Option<Spec> {
        let f = cfg.forwarder.as_ref()?;
        let h = f.handoff.as_ref()?;
        Some(Spec {
            local: h.address,
            peers: h.peers.clone(),
            port: h.port,
            seed: f.hash_seed,
            pin_dir: f.pin_dir.clone(),
            key_file: h.key_file.clone(),
        })
    }
}

/// Reads a shared key file: a regular file of 16 to 4096 bytes that
/// others cannot read.
pub fn read_key(path: &std::path::Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let m = f
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if !m.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    if m.mode() & 0o004 != 0 {
        return Err(format!(
            "{} is readable by every user; chmod o-r it",
            path.display()
        ));
    }
    let mut key = Vec::new();
    f.take(MAX_KEY + 1)
        .read_to_end(&mut key)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    while key.last().is_some_and(|b| b.is_ascii_whitespace()) {
        key.pop();
    }
    if !(16..=MAX_KEY as usize).contains(&key.len()) {
        return Err(format!(
            "{}: a key is 16 to {MAX_KEY} bytes, this is {}",
            path.display(),
            key.len()
        ));
    }
    Ok(key)
}

/// What one peer exchanged with this node.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PeerStats {
    /// Flows this node told the peer it owns.
    pub flows_sent: u64,
    /// Flows the peer said it owns (recorded in the data plane).
    pub flows_received: u64,
    /// The peer answered this node's full-sync request.
    pub synced: bool,
    /// Flows in that full sync, and how long it took.
    pub sync_flows: u64,
    pub sync_ms: Option<u64>,
    /// Full syncs this node sent to the peer on its request.
    pub syncs_served: u64,
    /// Datagrams and their bytes (UDP payload) sent to the peer.
    pub datagrams_sent: u64,
    pub bytes_sent: u64,
    /// Datagrams heard from the peer, and those its sequence numbers say
    /// never arrived (each loss is repaired by a full sync, at most every
    /// 10 s).
    pub datagrams_received: u64,
    pub datagrams_lost: u64,
    /// Full syncs asked of the peer after a loss.
    pub repairs: u64,
    /// When the peer was last heard from.
    #[serde(default)]
    pub last_heard: Option<std::time::SystemTime>,
}

/// Everything the task counted, for status and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    pub peers: BTreeMap<IpAddr, PeerStats>,
    /// Datagrams refused, by reason (`not_a_peer`, `seed`, [`wire::WireError::label`]).
    pub rejected: BTreeMap<String, u64>,
    /// The last error that stopped the task (it retries).
    pub error: Option<String>,
    /// How long the latest batch of new flows could have waited before
    /// every peer was told: from the previous read of the data plane's
    /// new flows (the oldest a flow in the batch can be) to the last send.
    #[serde(default)]
    pub lag_us: u64,
}

/// The running task; stopped when dropped.
pub struct Sharing {
    spec: Spec,
    key: Option<Vec<u8>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sharing {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sharing {
    /// Starts sharing if the config has handoff peers. A key file that
    /// cannot be read is an error (and nothing runs).
    /// `stats` is reset, then kept up to date by the task.
    pub fn start(cfg: &Config, stats: &Arc<Mutex<Stats>>) -> Result<Option<Sharing>, String> {
        *stats.lock().expect("stats lock") = Stats::default();
        let Some(spec) = Spec::of(cfg) else {
            return Ok(None);
        };
        let key = spec.key_file.as_deref().map(read_key).transpose()?;
        Ok(Some(Sharing::run(spec, key, stats)))
    }

    /// Starts the task for `spec` (checked by the caller), signing with
    /// `key`; `stats` is reset, then kept up to date.
    pub fn run(spec: Spec, key: Option<Vec<u8>>, stats: &Arc<Mutex<Stats>>) -> Sharing {
        *stats.lock().expect("stats lock") = Stats {
            peers: spec
                .peers
                .iter()
                .map(|p| (*p, PeerStats::default()))
                .collect(),
            ..Stats::default()
        };
        let stats = stats.clone();
        tracing::info!(local = %spec.local, port = spec.port, peers = spec.peers.len(), "flow sharing with the handoff peers");
        let task = tokio::spawn(run(
            spec.clone(),
            key.as_deref().map(Key::new),
            stats.clone(),
        ));
        Sharing { spec, key, task }
    }

    /// Stops the task and waits until it is gone (its socket closed).
    pub async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }

    /// After a reload: restarts the task if the peers, port, seed or key
    /// changed; stops it if handoff is gone. Keeps the running task if the
    /// new key cannot be read.
    pub async fn follow(current: &mut Option<Sharing>, cfg: &Config, stats: &Arc<Mutex<Stats>>) {
        let spec = Spec::of(cfg);
        let key = match spec.as_ref().and_then(|s| s.key_file.as_deref()) {
            Some(p) => match read_key(p) {
                Ok(k) => Some(k),
                Err(e) => {
                    tracing::error!(error = %e, "forwarder.handoff.key_file: keeping the running flow sharing");
                    return;
                }
            },
            None => None,
        };
        let same = match (current.as_ref(), spec.as_ref()) {
            (Some(c), Some(s)) => c.spec == *s && c.key == key,
            (None, None) => true,
            _ => false,
        };
        if same {
            return;
        }
        // The old task's socket must be closed before the new one binds.
        if let Some(old) = current.take() {
            old.stop().await;
        }
        *current = match spec {
            Some(spec) => Some(Sharing::run(spec, key, stats)),
            None => {
                *stats.lock().expect("stats lock") = Stats::default();
                None
            }
        };
    }
}

async fn run(spec: Spec, key: Option<Key>, stats: Arc<Mutex<Stats>>) {
    loop {
        let e = serve(&spec, key.as_ref(), &stats).await;
        tracing::warn!(error = %e, local = %spec.local, port = spec.port, "flow sharing stopped; retrying in 5s");
        stats.lock().expect("stats lock").error = Some(e);
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// The task's state while it serves.
struct Node<'a> {
    spec: &'a Spec,
    key: Option<&'a Key>,
    stats: &'a Mutex<Stats>,
    sock: UdpSocket,
    flows: Flows,
    /// Per peer: the sequence of the last datagram sent to it, of the last
    /// heard from it, and when a full sync was last asked to repair a loss.
    seq: BTreeMap<IpAddr, u64>,
    start_seq: u64,
    heard: BTreeMap<IpAddr, u64>,
    repaired: BTreeMap<IpAddr, Instant>,
}

impl Node<'_> {
    async fn send(&mut self, to: IpAddr, kind: Kind) {
        let seq = self.seq.entry(to).or_insert(self.start_seq);
        *seq += 1;
        let m = Message {
            seed: self.spec.seed,
            seq: *seq,
            kind,
        };
        let b = m.encode(self.key);
        // A peer that is down or unreachable loses this message; a full
        // sync when it returns covers it.
        match self
            .sock
            .send_to(&b, SocketAddr::new(to, self.spec.port))
            .await
        {
            Ok(n) => self.peer(to, |s| {
                s.datagrams_sent += 1;
                s.bytes_sent += n as u64;
            }),
            Err(e) => tracing::debug!(peer = %to, error = %e, "flow-sharing send failed"),
        }
    }

    /// Sends `flows` to `to` in datagrams, at most [`PACE`] a millisecond,
    /// so that a full sync does not overrun the peer, which writes each
    /// flow into its data plane.
    async fn send_flows(&mut self, to: IpAddr, flows: &[u64]) {
        for (i, batch) in wire::batches(flows).enumerate() {
            self.send(to, Kind::Flows(batch.to_vec())).await;
            if i % PACE == PACE - 1 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }

    fn reject(&self, why: &'static str) {
        *self
            .stats
            .lock()
            .expect("stats lock")
            .rejected
            .entry(why.to_string())
            .or_default() += 1;
    }

    fn peer(&self, p: IpAddr, f: impl FnOnce(&mut PeerStats)) {
        if let Some(s) = self.stats.lock().expect("stats lock").peers.get_mut(&p) {
            f(s);
        }
    }

    async fn on_datagram(&mut self, b: &[u8], from: SocketAddr, asked: &BTreeMap<IpAddr, Instant>) {
        let src = from.ip().to_canonical();
        if !self.spec.peers.contains(&src) {
            return self.reject("not_a_peer");
        }
        let m = match Message::decode(b, self.key) {
            Ok(m) => m,
            Err(e) => return self.reject(e.label()),
        };
        if m.seed != self.spec.seed {
            tracing::warn!(peer = %src, their = m.seed, ours = self.spec.seed, "a peer's hash_seed differs: its flows mean nothing here");
            return self.reject("seed");
        }
        let last = self.heard.get(&src).copied();
        let lost = seq_gap(last, m.seq);
        // Newer, or far older (the peer started again with its clock set back).
        if last.is_none_or(|l| m.seq > l || l - m.seq > RESTART_JUMP) {
            self.heard.insert(src, m.seq);
        }
        let repair = lost > 0
            && self
                .repaired
                .get(&src)
                .is_none_or(|t| t.elapsed() >= REPAIR_EVERY);
        self.peer(src, |s| {
            s.datagrams_received += 1;
            s.datagrams_lost += lost;
            s.repairs += repair as u64;
            s.last_heard = Some(std::time::SystemTime::now());
        });
        if repair {
            tracing::warn!(peer = %src, lost, "flow-sharing datagrams from a peer were lost; asking it for every flow again");
            self.repaired.insert(src, Instant::now());
            self.send(src, Kind::SyncRequest).await;
        }
        match m.kind {
            Kind::Flows(fps) => match self.flows.set_owner(src, &fps) {
                Ok(Some(n)) => self.peer(src, |s| {
                    s.flows_received += n as u64;
                    if !s.synced {
                        s.sync_flows += n as u64;
                    }
                }),
                Ok(None) => self.reject("not_a_peer"),
                Err(e) => tracing::warn!(error = %e, "recording a peer's flows failed"),
            },
            Kind::SyncRequest => {
                let pins = self.spec.pin_dir.clone();
                // A walk of the whole connection table: off the runtime.
                let owned =
                    tokio::task::spawn_blocking(move || Flows::open(&pins).map(|f| f.owned()))
                        .await;
                match owned {
                    Ok(Ok(owned)) => {
                        self.send_flows(src, &owned).await;
                        self.send(src, Kind::SyncEnd).await;
                        let n = owned.len() as u64;
                        self.peer(src, |s| {
                            s.flows_sent += n;
                            s.syncs_served += 1;
                        });
                        tracing::info!(peer = %src, flows = n, "sent a full flow sync");
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "reading owned flows failed"),
                    Err(e) => tracing::warn!(error = %e, "reading owned flows failed"),
                }
            }
            Kind::SyncEnd => {
                let ms = asked.get(&src).map(|t| t.elapsed().as_millis() as u64);
                let mut flows = 0;
                self.peer(src, |s| {
                    s.synced = true;
                    s.sync_ms = ms;
                    flows = s.sync_flows;
                });
                tracing::info!(peer = %src, flows, ms, "learned the peer's flows");
            }
        }
    }
}

async fn serve(spec: &Spec, key: Option<&Key>, stats: &Mutex<Stats>) -> String {
    let flows = match Flows::open(&spec.pin_dir) {
        Ok(f) => f,
        Err(e) => return format!("open the data plane's flow maps: {e}"),
    };
    let sock = match UdpSocket::bind(SocketAddr::new(spec.local, spec.port)).await {
        Ok(s) => s,
        Err(e) => {
            return format!(
                "bind {}: {e} (forwarder.handoff.address must be on this node)",
                SocketAddr::new(spec.local, spec.port)
            );
        }
    };
    // Past net.core.rmem_max where edged may (CAP_NET_ADMIN).
    use nix::sys::socket::{setsockopt, sockopt};
    if setsockopt(&sock, sockopt::RcvBufForce, &RCVBUF).is_err() {
        let _ = setsockopt(&sock, sockopt::RcvBuf, &RCVBUF);
    }
    stats.lock().expect("stats lock").error = None;
    // From the clock: a restarted task's numbers jump ahead of its last
    // ones, which its peers take for a restart, not a loss.
    let start_seq = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut node = Node {
        spec,
        key,
        stats,
        sock,
        flows,
        seq: BTreeMap::new(),
        start_seq,
        heard: BTreeMap::new(),
        repaired: BTreeMap::new(),
    };
    let mut last_take = Instant::now();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut retry = tokio::time::interval(SYNC_RETRY);
    let mut asked: BTreeMap<IpAddr, Instant> = BTreeMap::new();
    let mut tries = 0u32;
    let mut new = Vec::new();
    let mut buf = vec![0u8; 2048];
    loop {
        tokio::select! {
            _ = tick.tick() => {
                new.clear();
                let since = std::mem::replace(&mut last_take, Instant::now());
                node.flows.take_new(&mut new);
                if new.is_empty() {
                    continue;
                }
                for p in spec.peers.clone() {
                    node.send_flows(p, &new).await;
                    let n = new.len() as u64;
                    node.peer(p, |s| s.flows_sent += n);
                }
                stats.lock().expect("stats lock").lag_us = since.elapsed().as_micros() as u64;
            }
            _ = retry.tick(), if tries < SYNC_TRIES => {
                tries += 1;
                let pending: Vec<IpAddr> = {
                    let st = stats.lock().expect("stats lock");
                    spec.peers.iter().copied().filter(|p| !st.peers.get(p).is_some_and(|s| s.synced)).collect()
                };
                for p in pending {
                    asked.entry(p).or_insert_with(Instant::now);
                    node.send(p, Kind::SyncRequest).await;
                }
            }
            r = node.sock.recv_from(&mut buf) => match r {
                Ok((n, from)) => {
                    let b = buf[..n].to_vec();
                    node.on_datagram(&b, from, &asked).await;
                }
                Err(e) => return format!("receive: {e}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_gap_in_a_peers_sequence_is_a_loss_and_nothing_else_is() {
        assert_eq!(seq_gap(None, 77), 0, "the first heard");
        assert_eq!(seq_gap(Some(10), 11), 0, "the next");
        assert_eq!(seq_gap(Some(10), 14), 3, "three missing");
        assert_eq!(seq_gap(Some(10), 10), 0, "a repeat");
        assert_eq!(seq_gap(Some(10), 8), 0, "out of order");
        assert_eq!(seq_gap(Some(10), 10 + RESTART_JUMP), RESTART_JUMP - 1);
        assert_eq!(seq_gap(Some(10), 11 + RESTART_JUMP), 0, "a restart");
    }

    #[test]
    fn a_key_file_is_private_and_long_enough() {
        let dir = edged_testlab::TempDir::new("key");
        let file = |name: &str, body: &[u8], mode: u32| {
            let p = dir.path().join(name);
            std::fs::write(&p, body).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            p
        };
        let good = file("good", b"0123456789abcdef0123\n", 0o600);
        assert_eq!(read_key(&good).unwrap(), b"0123456789abcdef0123");
        let open = file("open", b"0123456789abcdef0123", 0o644);
        assert!(
            read_key(&open)
                .unwrap_err()
                .contains("readable by every user")
        );
        let short = file("short", b"0123456789\n", 0o600);
        assert!(read_key(&short).unwrap_err().contains("16 to 4096 bytes"));
        let long = file("long", &[b'k'; 5000], 0o600);
        assert!(read_key(&long).unwrap_err().contains("16 to 4096 bytes"));
        assert!(read_key(&dir.path().join("missing")).is_err());
        assert!(read_key(dir.path()).is_err(), "a directory");
    }
}
