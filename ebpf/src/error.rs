//! Errors of the forwarder; each says what to do about it.

use std::io;
use std::path::PathBuf;

use aya::maps::MapError;
use aya::programs::ProgramError;

#[derive(Debug, thiserror::Error)]
pub enum ForwarderError {
    #[error("forwarder spec: {field} = {value}: {reason}")]
    InvalidSpec {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error(
        "bpffs is not usable at {path}: {source}; mount it (`mount -t bpf bpf /sys/fs/bpf`) \
         and keep pin_dir under it"
    )]
    Bpffs { path: PathBuf, source: io::Error },
    #[error("{op} {path}: {source}")]
    Pin {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("loading the XDP program failed (kernel too old or not root?): {source}")]
    Load {
        #[source]
        source: Box<aya::EbpfError>,
    },
    #[error(
        "failed to attach XDP in native mode to {iface}: {source}; the driver may not \
         support native XDP: set `xdp_mode: generic`"
    )]
    AttachNative {
        iface: String,
        source: Box<ProgramError>,
    },
    #[error("failed to attach XDP ({mode}) to {iface}: {source}; check that the interface exists")]
    Attach {
        iface: String,
        mode: &'static str,
        source: Box<ProgramError>,
    },
    #[error("the embedded object has no program {0}; rebuild edged-ebpf")]
    MissingProgram(&'static str),
    #[error("{op}: {source}")]
    Program {
        op: &'static str,
        source: Box<ProgramError>,
    },
    #[error("map {map}: {op} failed: {source}")]
    Map {
        map: &'static str,
        op: String,
        source: Box<MapError>,
    },
    #[error("devmap ed_tx: {op} failed: {source}")]
    Devmap {
        op: String,
        source: Box<aya::maps::xdp::XdpMapError>,
    },
    #[error("cannot size per-CPU values: {source}")]
    Cpus { source: io::Error },
    #[error("interface {ifname}: {source}; create it or fix the proxy's delivery")]
    Interface { ifname: String, source: io::Error },
    #[error("proxy {proxy} is unknown to the forwarder; pass it to set_proxies first")]
    UnknownProxy { proxy: String },
    #[error("proxy name {proxy:?} is longer than 63 bytes; shorten it")]
    ProxyName { proxy: String },
    #[error("too many {what} (at most {max}); remove some first")]
    Full { what: &'static str, max: u32 },
}

/// Shorthand for a map error with its context.
pub(crate) fn map_err(
    map: &'static str,
    op: impl Into<String>,
) -> impl FnOnce(MapError) -> ForwarderError {
    let op = op.into();
    move |source| ForwarderError::Map {
        map,
        op,
        source: Box::new(source),
    }
}
