//! One pool's Maglev ring in `ed_ring`: two halves of `ring_words(M)` words,
//! 8 one-byte proxy slots per word (position `i` in byte `i % 8` of word
//! `i / 8`). The pool's `ed_poolst` entry says which half packets read.
//!
//! The idle half still holds the table before the current one. [`Halves`]
//! keeps a copy of what each half holds, so a change writes only the words
//! in which the new table differs (a proxy joining or leaving moves about
//! 1/N of the positions); a half not known (a new pool, after a restart,
//! after a failed write) is written whole.

use crate::ForwarderError;
use crate::error::map_err;
use crate::load::ring_words;
use crate::maps::Maps;

/// What each half of one pool's ring holds, where known.
#[derive(Default)]
pub(crate) struct Halves([Option<Vec<u64>>; 2]);

impl Halves {
    /// Halves of which only `half` is known to hold `words`.
    pub fn known(half: u32, words: Vec<u64>) -> Halves {
        let mut h = Halves::default();
        h.0[half as usize] = Some(words);
        h
    }

    pub fn forget(&mut self) {
        self.0 = [None, None];
    }

    /// Writes `words` into half `half` of pool `id`'s ring, skipping the
    /// words that half already holds. Returns the number written.
    pub fn write(
        &mut self,
        maps: &mut Maps,
        table_size: u32,
        id: u32,
        half: u32,
        words: Vec<u64>,
    ) -> Result<u64, ForwarderError> {
        let base = (id * 2 + half) * ring_words(table_size);
        // Unknown until every word is written: an error leaves it so.
        let held = self.0[half as usize].take();
        let mut written = 0;
        for (w, word) in (0..).zip(&words) {
            if held.as_ref().is_some_and(|h| h[w as usize] == *word) {
                continue;
            }
            maps.ring
                .set(base + w, *word, 0)
                .map_err(map_err("ed_ring", "set"))?;
            written += 1;
        }
        self.0[half as usize] = Some(words);
        Ok(written)
    }
}

/// The words of half `half` of pool `id`'s ring, read from `ed_ring`.
pub(crate) fn read(
    maps: &Maps,
    table_size: u32,
    id: u32,
    half: u32,
) -> Result<Vec<u64>, ForwarderError> {
    let words = ring_words(table_size);
    let base = (id * 2 + half) * words;
    (base..base + words)
        .map(|i| maps.ring.get(&i, 0).map_err(map_err("ed_ring", "get")))
        .collect()
}

/// A Maglev table as ring words; `slot` maps a backend index to its proxy
/// slot.
pub(crate) fn pack(table: &[u32], slot: impl Fn(u32) -> u32) -> Vec<u64> {
    table
        .chunks(8)
        .map(|chunk| {
            chunk
                .iter()
                .enumerate()
                .fold(0u64, |word, (i, b)| word | (slot(*b) as u64) << (8 * i))
        })
        .collect()
}

/// The proxy slot of each of the `table_size` positions `words` hold.
pub(crate) fn unpack(words: &[u64], table_size: u32) -> impl Iterator<Item = u32> + '_ {
    words
        .iter()
        .flat_map(|w| (0..8).map(move |i| ((w >> (8 * i)) & 0xff) as u32))
        .take(table_size as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpack_reverses_pack_and_stops_at_the_table_size() {
        let table: Vec<u32> = (0..13).map(|i| i % 3).collect();
        let words = pack(&table, |b| b + 10);
        assert_eq!(words.len(), 2);
        let back: Vec<u32> = unpack(&words, 13).collect();
        let want: Vec<u32> = table.iter().map(|b| b + 10).collect();
        assert_eq!(back, want);
    }
}
