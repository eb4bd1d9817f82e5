//! Hooks for `benches/xdp.rs` and tests (not a stable API): the bench build
//! of the program (fresh flow per repeat), the bare baseline program,
//! `BPF_PROG_TEST_RUN` with repeats, and what a table change wrote.

use std::net::IpAddr;

use aya::maps::{Array, xdp::DevMap};
use aya::programs::Xdp;
use aya::{Ebpf, EbpfLoader};

use crate::{Forwarder, ForwarderError, ForwarderSpec};

static BENCH_OBJ: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/edged_xdp_bench.o"));
static BASE_OBJ: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/bench_base.o"));

/// The program built with `-DEDGED_BENCH_FRESH_FLOW`: after handling a TCP
/// packet it bumps the source port in the packet, so each repeat of
/// `BPF_PROG_TEST_RUN` is a new flow.
pub fn open_fresh_flow(spec: &ForwarderSpec) -> Result<Forwarder, ForwarderError> {
    Forwarder::open_object(spec, BENCH_OBJ)
}

/// `BPF_PROG_TEST_RUN` with `repeat`: (verdict, output, mean ns/repeat).
pub fn run(
    fwd: &Forwarder,
    frame: &[u8],
    repeat: u32,
) -> Result<(u32, Vec<u8>, u64), ForwarderError> {
    fwd.program.test_run(frame, None, repeat)
}

/// `ed_ring` words written by `fwd` since it was opened.
pub fn ring_words_written(fwd: &Forwarder) -> u64 {
    fwd.vips.words_written()
}

/// The `ed_vipidx` slot an address hashes to under `fwd`'s sizes.
pub fn index_slot(fwd: &Forwarder, addr: IpAddr) -> u32 {
    crate::keys::index_slot(addr, crate::load::vip_index_bits(fwd.spec.max_vips))
}

/// The pool (shared table) the VIP points at.
pub fn pool_of(fwd: &Forwarder, addr: IpAddr) -> Option<u32> {
    fwd.vips.pool_of(addr)
}

/// Forgets what the rings hold, so that the next change of each VIP's
/// table writes its idle half whole (as after a restart).
pub fn forget_rings(fwd: &mut Forwarder) {
    fwd.vips.forget_halves();
}

/// The proxy slot of every ring position of the VIP's active half, read
/// back from `ed_ring`; `None` for an unknown VIP.
pub fn active_ring(fwd: &Forwarder, addr: IpAddr) -> Result<Option<Vec<u32>>, ForwarderError> {
    fwd.vips.active_ring(&fwd.maps, addr)
}

/// The proxy slot (what the rings hold) of each proxy name.
pub fn proxy_slots(fwd: &Forwarder) -> std::collections::BTreeMap<String, u32> {
    fwd.proxies
        .iter()
        .map(|(n, s)| (n.to_string(), s))
        .collect()
}

/// The bare baseline: bounds check, destination MAC from an array map,
/// devmap redirect.
pub struct Baseline {
    ebpf: Ebpf,
}

impl Baseline {
    pub fn load(mac: [u8; 6], ifindex: u32) -> Result<Baseline, ForwarderError> {
        let load = |source| ForwarderError::Load {
            source: Box::new(source),
        };
        let mut ebpf = EbpfLoader::new().load(BASE_OBJ).map_err(load)?;
        let mut m: Array<_, [u8; 8]> =
            Array::try_from(ebpf.map_mut("base_mac").expect("in object"))
                .map_err(crate::error::map_err("base_mac", "open"))?;
        let mut v = [0u8; 8];
        v[..6].copy_from_slice(&mac);
        m.set(0, v, 0)
            .map_err(crate::error::map_err("base_mac", "set"))?;
        let mut tx = DevMap::try_from(ebpf.map_mut("base_tx").expect("in object"))
            .map_err(crate::error::map_err("base_tx", "open"))?;
        tx.set(0, ifindex, None, 0)
            .map_err(|source| ForwarderError::Devmap {
                op: "set".into(),
                source: Box::new(source),
            })?;
        let prog: &mut Xdp = ebpf
            .program_mut("edged_base")
            .ok_or(ForwarderError::MissingProgram("edged_base"))?
            .try_into()
            .map_err(|source| ForwarderError::Program {
                op: "find edged_base",
                source: Box::new(source),
            })?;
        prog.load().map_err(|source| ForwarderError::Program {
            op: "load baseline",
            source: Box::new(source),
        })?;
        Ok(Baseline { ebpf })
    }

    pub fn run(&self, frame: &[u8], repeat: u32) -> Result<(u32, Vec<u8>, u64), ForwarderError> {
        let prog: &Xdp = self
            .ebpf
            .program("edged_base")
            .ok_or(ForwarderError::MissingProgram("edged_base"))?
            .try_into()
            .map_err(|source| ForwarderError::Program {
                op: "find edged_base",
                source: Box::new(source),
            })?;
        crate::program::test_run(prog, frame, None, repeat)
    }
}

/// The embedded program object (for the layout test against its BTF).
pub fn object() -> &'static [u8] {
    crate::forwarder::OBJ
}
