//! A table change writes only the ring words that differ from what the
//! idle half holds, and the rings stay what a full rewrite would give.
//! Needs root (BPF, bpffs); no namespace: the proxies are the host stack.

mod common;

use std::net::IpAddr;

use common::PinDir;
use edged_ebpf::bench::{active_ring, forget_rings, proxy_slots, ring_words_written};
use edged_ebpf::{
    Delivery, Forwarder, ForwarderSpec, Proto, ProxyTarget, VipService, XdpMode, maglev,
};
use edged_testlab::Rng;

const M: u32 = 65537;
/// Words of one ring at M (8 one-byte slots per word).
const WORDS: u64 = 8193;

fn host(name: &str) -> ProxyTarget {
    ProxyTarget {
        name: name.into(),
        delivery: Delivery::HostStack,
    }
}

fn vip(addr: &str) -> VipService {
    VipService {
        addr: addr.parse().unwrap(),
        ports: vec![(80, Proto::Tcp)],
        no_healthy: None,
    }
}

fn open(pins: &PinDir) -> Forwarder {
    let mut spec = ForwarderSpec::new(vec![], pins.path.clone());
    spec.mode = XdpMode::Generic;
    spec.table_size = M;
    spec.conntrack_entries = 1024;
    Forwarder::open(&spec).expect("open")
}

/// The ring a full rewrite of `serving` gives: each position's proxy slot.
fn full_rewrite(fwd: &Forwarder, serving: &[(String, u32)]) -> Vec<u32> {
    let backends: Vec<(&str, u32)> = serving.iter().map(|(n, w)| (n.as_str(), *w)).collect();
    let slots = proxy_slots(fwd);
    maglev::build(M, &backends)
        .iter()
        .map(|&b| slots[backends[b as usize].0])
        .collect()
}

/// Ring words (8 positions each) in which `a` and `b` differ.
fn words_differing(a: &[u32], b: &[u32]) -> u64 {
    a.chunks(8).zip(b.chunks(8)).filter(|(x, y)| x != y).count() as u64
}

/// The VIP's active half, read back, is what a full rewrite of `serving`
/// gives.
fn check_ring(fwd: &Forwarder, addr: IpAddr, serving: &[(String, u32)], what: &str) {
    let got = active_ring(fwd, addr).unwrap().expect("a VIP");
    let want = full_rewrite(fwd, serving);
    let wrong = got.iter().zip(&want).filter(|(a, b)| a != b).count();
    assert!(
        got.len() == want.len() && wrong == 0,
        "{what}: {wrong} of {M} positions differ from a full rewrite"
    );
}

/// Words written by `f`.
fn written(fwd: &mut Forwarder, f: impl FnOnce(&mut Forwarder)) -> u64 {
    let before = ring_words_written(fwd);
    f(fwd);
    ring_words_written(fwd) - before
}

#[test]
fn a_one_proxy_change_writes_only_the_words_that_changed() {
    let pins = PinDir::new();
    let mut fwd = open(&pins);
    let proxies: Vec<ProxyTarget> = (0..100).map(|i| host(&format!("proxy-{i:03}"))).collect();
    fwd.set_proxies(&proxies).unwrap();
    let all: Vec<(String, u32)> = proxies.iter().map(|p| (p.name.clone(), 1)).collect();
    let one_less: Vec<(String, u32)> = all
        .iter()
        .filter(|(n, _)| n != "proxy-042")
        .cloned()
        .collect();
    let v = vip("192.0.2.10");

    let n = written(&mut fwd, |f| f.set_vip(&v, &all).unwrap());
    assert_eq!(n, WORDS, "a new VIP's pool is written whole");
    let n = written(&mut fwd, |f| f.set_vip(&v, &all).unwrap());
    assert_eq!(n, 0, "the same set again writes nothing");
    // The idle half is not known yet: written whole, once.
    let n = written(&mut fwd, |f| f.set_vip(&v, &one_less).unwrap());
    assert_eq!(n, WORDS, "the idle half is written whole the first time");
    check_ring(&fwd, v.addr, &one_less, "one_less");

    // The proxy comes back: the idle half still holds that table.
    let n = written(&mut fwd, |f| f.set_vip(&v, &all).unwrap());
    assert_eq!(n, 0, "the idle half held the new table already");
    check_ring(&fwd, v.addr, &all, "all");

    // Another proxy goes: only the words where the idle half's table
    // (one_less) and the new one differ.
    let other: Vec<(String, u32)> = all
        .iter()
        .filter(|(n, _)| n != "proxy-017")
        .cloned()
        .collect();
    let n = written(&mut fwd, |f| f.set_vip(&v, &other).unwrap());
    let want = words_differing(&full_rewrite(&fwd, &one_less), &full_rewrite(&fwd, &other));
    assert_eq!(n, want, "exactly the words where the tables differ");
    assert!(n > 0 && n < WORDS / 4, "{n} of {WORDS} words");
    check_ring(&fwd, v.addr, &other, "other");

    // No healthy proxy writes nothing and keeps what the halves hold:
    // the emptied half (all) still holds it afterwards.
    let n = written(&mut fwd, |f| f.set_vip(&v, &[]).unwrap());
    assert_eq!(n, 0);
    let n = written(&mut fwd, |f| f.set_vip(&v, &one_less).unwrap());
    assert_eq!(
        n,
        words_differing(&full_rewrite(&fwd, &other), &full_rewrite(&fwd, &one_less))
    );
    let n = written(&mut fwd, |f| f.set_vip(&v, &all).unwrap());
    assert_eq!(n, 0, "the emptied half still held the full table");
    check_ring(&fwd, v.addr, &all, "all");

    // Forgotten halves (as after a restart) are written whole.
    forget_rings(&mut fwd);
    let n = written(&mut fwd, |f| f.set_vip(&v, &one_less).unwrap());
    assert_eq!(n, WORDS);
    let n = written(&mut fwd, |f| f.set_vip(&v, &all).unwrap());
    assert_eq!(n, WORDS);

    // After a restart the active half is read back; the idle one is not
    // known and is written whole once.
    drop(fwd);
    let mut fwd = open(&pins);
    fwd.set_proxies(&proxies).unwrap();
    let n = written(&mut fwd, |f| f.set_vip(&v, &one_less).unwrap());
    assert_eq!(n, WORDS, "the idle half after a restart is written whole");
    let n = written(&mut fwd, |f| f.set_vip(&v, &all).unwrap());
    assert_eq!(n, 0, "the half read back at restart held this table");
    check_ring(&fwd, v.addr, &all, "all");
}

/// What a table depends on: the positive weights, by name.
fn content(serving: &[(String, u32)]) -> Vec<(String, u32)> {
    let mut c: Vec<_> = serving.iter().filter(|(_, w)| *w > 0).cloned().collect();
    c.sort();
    c
}

/// A random serving set over `names`: each proxy out, or in with weight 1..=4.
fn random_serving(rng: &mut Rng, names: &[String]) -> Vec<(String, u32)> {
    names
        .iter()
        .filter_map(|n| match rng.below(3) {
            0 => None,
            _ => Some((n.clone(), rng.below(4) as u32 + 1)),
        })
        .collect()
}

#[test]
fn rings_after_random_changes_equal_a_full_rewrite() {
    let pins = PinDir::new();
    let mut fwd = open(&pins);
    let names: Vec<String> = (0..24).map(|i| format!("p{i:02}")).collect();
    let proxies: Vec<ProxyTarget> = names.iter().map(|n| host(n)).collect();
    fwd.set_proxies(&proxies).unwrap();
    let vips = [vip("192.0.2.10"), vip("2001:db8::10"), vip("192.0.2.20")];
    let mut model: Vec<Vec<(String, u32)>> = vec![Vec::new(); vips.len()];
    let mut rng = Rng(0x7ab1e);
    let mut full_writes = 0;
    for round in 0..60 {
        let i = rng.below(vips.len());
        match round % 12 {
            // A proxy leaves the proxy set (every VIP's table), then returns.
            5 => {
                let gone = &names[rng.below(names.len())];
                let rest: Vec<ProxyTarget> = proxies
                    .iter()
                    .filter(|p| &p.name != gone)
                    .cloned()
                    .collect();
                fwd.set_proxies(&rest).unwrap();
                for m in model.iter_mut() {
                    m.retain(|(n, _)| n != gone);
                }
                fwd.set_proxies(&proxies).unwrap();
            }
            // A restart: the pinned rings are re-adopted, then the tables
            // set again (as the daemon does once its checks decide).
            8 => {
                drop(fwd);
                fwd = open(&pins);
                fwd.set_proxies(&proxies).unwrap();
                for (v, serving) in vips.iter().zip(&model) {
                    if !serving.is_empty() {
                        fwd.set_vip(v, serving).unwrap();
                    }
                }
            }
            // The VIP goes and comes back (its id's old words are stale).
            11 => {
                fwd.remove_vip(vips[i].addr).unwrap();
                model[i] = random_serving(&mut rng, &names);
                let n = written(&mut fwd, |f| f.set_vip(&vips[i], &model[i]).unwrap());
                let shared =
                    (0..vips.len()).any(|j| j != i && content(&model[j]) == content(&model[i]));
                if !model[i].is_empty() && !shared {
                    assert_eq!(
                        n, WORDS,
                        "round {round}: a new pool's half is written whole"
                    );
                    full_writes += 1;
                }
            }
            _ => {
                model[i] = random_serving(&mut rng, &names);
                fwd.set_vip(&vips[i], &model[i]).unwrap();
            }
        }
        for (v, serving) in vips.iter().zip(&model) {
            if serving.is_empty() {
                continue; // not set yet, or no healthy proxy: nothing to read
            }
            let what = format!("round {round}: VIP {}", v.addr);
            check_ring(&fwd, v.addr, serving, &what);
        }
    }
    assert!(full_writes > 0, "the VIP removal case ran");
}
