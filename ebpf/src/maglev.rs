//! Weighted Maglev lookup table (Eisenbud et al., NSDI 2016), pure.
//!
//! Each backend walks its own permutation of the table (offset and skip from
//! a hash of its stable id) and claims the next free slot on its turn.
//! Weights decide how often a backend gets a turn: every round each backend
//! earns its weight in credit and takes a turn per `max_weight` of credit.
//! Backends are ordered by id first, so the table depends only on the set of
//! (id, weight) pairs, never on the input order: every node builds the same.

// === impl build ===

/// Builds a table of `table_size` slots, each the index (into `backends`) of
/// the backend owning it. Backends with weight 0 own nothing; with no
/// positive weight the table is empty. `table_size` should be prime (the
/// permutations only cover every slot when it is) and much larger than the
/// number of backends (100x keeps shares within 1 % of the weights).
pub fn build(table_size: u32, backends: &[(&str, u32)]) -> Vec<u32> {
    let m = table_size as usize;
    let mut order: Vec<usize> = (0..backends.len()).filter(|&i| backends[i].1 > 0).collect();
    if m == 0 || order.is_empty() {
        return Vec::new();
    }
    order.sort_by(|&a, &b| backends[a].0.cmp(backends[b].0).then(a.cmp(&b)));
    let max_weight = order.iter().map(|&i| backends[i].1).max().unwrap_or(1) as u64;
    let mut walkers: Vec<Walker> = order
        .iter()
        .map(|&i| Walker::new(i as u32, backends[i].0, backends[i].1, m))
        .collect();
    let mut table = vec![u32::MAX; m];
    let mut filled = 0usize;
    loop {
        for w in walkers.iter_mut() {
            w.credit += w.weight;
            if w.credit < max_weight {
                continue;
            }
            w.credit -= max_weight;
            let slot = w.claim(&table, m);
            table[slot] = w.index;
            filled += 1;
            if filled == m {
                return table;
            }
        }
    }
}

/// One backend's walk over its permutation of the table.
struct Walker {
    index: u32,
    weight: u64,
    credit: u64,
    pos: usize,
    skip: usize,
}

impl Walker {
    fn new(index: u32, id: &str, weight: u32, m: usize) -> Self {
        let offset = (hash64(id, 0x6d61_676c_6576_3031) % m as u64) as usize;
        let skip = if m > 1 {
            (hash64(id, 0x736b_6970_7365_6564) % (m as u64 - 1)) as usize + 1
        } else {
            1
        };
        Walker {
            index,
            weight: weight as u64,
            credit: 0,
            pos: offset,
            skip,
        }
    }

    /// The next free slot of this walker's permutation.
    fn claim(&mut self, table: &[u32], m: usize) -> usize {
        loop {
            let c = self.pos;
            self.pos += self.skip;
            if self.pos >= m {
                self.pos -= m;
            }
            if table[c] == u32::MAX {
                return c;
            }
        }
    }
}

/// FNV-1a then a splitmix64 finaliser: stable across builds and platforms.
fn hash64(id: &str, seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in id.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
#[path = "maglev_tests.rs"]
mod tests;
