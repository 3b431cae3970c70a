//! Link rows packed into blocks (no SQL here): how a backend can append a batch's link index
//! as a few large values instead of inserting each row into one B-tree.
//!
//! A row is a [`links`](crate::links) row `(key, first, more)`. A block holds rows sorted by
//! key, then by first index, each as the key (8 bytes, little-endian), the first index and
//! the length of `more` (LEB128), then `more`. A block is cut only where the key changes, so
//! all the rows of a key in one sorted sequence (a "run") are in one block, and the block
//! that holds a key is the first whose last key is not below it.

use std::ops::Range;

/// A block is closed once it holds at least this many bytes: small enough for one B-tree
/// cell of a 4 KiB page in SQLite (a `WITHOUT ROWID` table keeps about 1,000 bytes of a row
/// in the page), large enough that a batch's index is a few hundred values.
pub const BLOCK_BYTES: usize = 896;

/// Appends `n` as LEB128.
pub(crate) fn push_leb(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn read_leb(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut n: u64 = 0;
    let mut shift = 0u32;
    loop {
        let b = *bytes.get(*at)?;
        *at += 1;
        if shift > 63 {
            return None;
        }
        n |= u64::from(b & 0x7f).checked_shl(shift)?;
        shift += 7;
        if b & 0x80 == 0 {
            return Some(n);
        }
    }
}

/// Appends one row to `block`. A negative `first` (never a log index) is written as 0.
pub fn push_row(block: &mut Vec<u8>, key: i64, first: i64, more: &[u8]) {
    block.extend_from_slice(&key.to_le_bytes());
    push_leb(block, u64::try_from(first).unwrap_or(0));
    push_leb(block, more.len() as u64);
    block.extend_from_slice(more);
}

/// Calls `f` with each row of `block`: its key, first index and where its `more` lies in
/// `block`. `None` when the block is damaged (rows read before the damage were passed on).
pub fn rows_of(block: &[u8], mut f: impl FnMut(i64, i64, Range<usize>)) -> Option<()> {
    let mut at = 0;
    while at < block.len() {
        let key = i64::from_le_bytes(block.get(at..at + 8)?.try_into().ok()?);
        at += 8;
        let first = i64::try_from(read_leb(block, &mut at)?).ok()?;
        let len = usize::try_from(read_leb(block, &mut at)?).ok()?;
        let end = at.checked_add(len)?;
        if end > block.len() {
            return None;
        }
        f(key, first, at..end);
        at = end;
    }
    Some(())
}

/// Packs rows sorted by key into blocks of about [`BLOCK_BYTES`], calling `out` with each
/// block's last key and bytes.
pub struct Packer<F> {
    block: Vec<u8>,
    last: Option<i64>,
    out: F,
}

impl<F> Packer<F> {
    /// A packer that hands each full block to `out`.
    pub fn new(out: F) -> Self {
        Packer {
            block: Vec::with_capacity(BLOCK_BYTES * 2),
            last: None,
            out,
        }
    }

    /// Adds a row; rows must come sorted by key.
    pub fn push<E>(&mut self, key: i64, first: i64, more: &[u8]) -> Result<(), E>
    where
        F: FnMut(i64, &[u8]) -> Result<(), E>,
    {
        if let Some(last) = self.last {
            if last != key && self.block.len() >= BLOCK_BYTES {
                (self.out)(last, &self.block)?;
                self.block.clear();
            }
        }
        push_row(&mut self.block, key, first, more);
        self.last = Some(key);
        Ok(())
    }

    /// Hands on the last block, if any.
    pub fn finish<E>(mut self) -> Result<(), E>
    where
        F: FnMut(i64, &[u8]) -> Result<(), E>,
    {
        match self.last {
            Some(last) if !self.block.is_empty() => (self.out)(last, &self.block),
            _ => Ok(()),
        }
    }
}

/// A Bloom filter of a run's keys: whether a key may be in the run, so that a lookup reads
/// a block only of the runs that may hold its key (one in a hundred of the others, at
/// [`FILTER_BITS_PER_KEY`]). Blocked: the bits of one key are in one 64-byte line of
/// memory, so a test costs one cache miss.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyFilter {
    /// Lines of 8 words, 512 bits.
    words: Vec<u64>,
}

/// A key's hashes for [`KeyFilter`]: the same in every filter.
#[derive(Clone, Copy, Debug)]
pub struct FilterProbe {
    /// Picks the line.
    hash: u64,
    /// Probe `i` sets or tests bit `bits >> 6 i & 63` of word `i` of the line.
    bits: u64,
}

impl FilterProbe {
    /// The hashes of `key`: the line from the first, the bits from a second mix.
    pub fn of(key: i64) -> Self {
        let hash = mix(key);
        FilterProbe {
            hash,
            bits: mix(hash.rotate_left(32) as i64),
        }
    }
}

/// Bits of a [`KeyFilter`] per key: about 1% false positives.
pub const FILTER_BITS_PER_KEY: usize = 10;

/// Bits set per key, each in its own word of the key's line.
const FILTER_PROBES: u32 = 8;

/// The splitmix64 finalizer: link keys share their high bits with keys of the same prefix,
/// so they are mixed before their bits pick a line and bits.
fn mix(key: i64) -> u64 {
    let mut z = key as u64;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl KeyFilter {
    /// An empty filter sized for `keys` keys.
    pub fn with_capacity(keys: usize) -> Self {
        let lines = keys
            .saturating_mul(FILTER_BITS_PER_KEY)
            .div_ceil(512)
            .max(1);
        KeyFilter {
            words: vec![0; lines * 8],
        }
    }

    /// The first word of the line of a probe's key.
    fn line(&self, probe: &FilterProbe) -> usize {
        let lines = (self.words.len() / 8).max(1) as u128;
        // The line from all 64 bits (a multiply, not a division).
        ((u128::from(probe.hash) * lines) >> 64) as usize * 8
    }

    /// Adds `key`.
    pub fn insert(&mut self, key: i64) {
        let probe = FilterProbe::of(key);
        let (line, bits) = (self.line(&probe), probe.bits);
        if let Some(words) = self.words.get_mut(line..line + FILTER_PROBES as usize) {
            for (i, word) in (0..FILTER_PROBES).zip(words) {
                *word |= 1u64 << ((bits >> (6 * i)) & 63);
            }
        }
    }

    /// Whether `key` may have been added (never false for one that was).
    pub fn may_contain(&self, key: i64) -> bool {
        self.may_contain_probe(&FilterProbe::of(key))
    }

    /// [`KeyFilter::may_contain`] for a key whose hashes are computed already, as when one
    /// key is tested against many filters.
    pub fn may_contain_probe(&self, probe: &FilterProbe) -> bool {
        let (line, bits) = (self.line(probe), probe.bits);
        self.words
            .get(line..line + FILTER_PROBES as usize)
            .is_some_and(|words| {
                (0..FILTER_PROBES)
                    .zip(words)
                    .all(|(i, word)| word & (1u64 << ((bits >> (6 * i)) & 63)) != 0)
            })
    }

    /// Its bytes (little-endian words), as stored.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    /// A filter from [`KeyFilter::to_bytes`]; `None` unless whole 64-byte lines.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.is_empty() || !bytes.len().is_multiple_of(64) {
            return None;
        }
        let words = bytes
            .chunks_exact(8)
            .map(|c| c.try_into().map(u64::from_le_bytes))
            .collect::<Result<_, _>>()
            .ok()?;
        Some(KeyFilter { words })
    }

    /// The number of keys it was sized for, about.
    pub fn capacity(&self) -> usize {
        self.words.len() * 64 / FILTER_BITS_PER_KEY
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_holds_every_key_added_and_few_others() {
        let keys: Vec<i64> = (0..50_000i64)
            .map(|i| i.wrapping_mul(0x5851_F42D_4C95_7F2D))
            .collect();
        let mut f = KeyFilter::with_capacity(keys.len());
        for &k in &keys {
            f.insert(k);
        }
        assert!(keys.iter().all(|&k| f.may_contain(k)), "no false negatives");
        // Keys that share their high 32 bits, as link keys of one prefix do.
        let others = (0..100_000i64).map(|i| (7 << 32) | (i + 1_000_000));
        let false_positives = others.filter(|&k| f.may_contain(k)).count();
        assert!(
            false_positives < 2_500,
            "{false_positives} of 100,000 (want about 1%)"
        );
        let back = KeyFilter::from_bytes(&f.to_bytes()).unwrap();
        assert_eq!(back, f);
        assert!(f.capacity() >= keys.len());
        assert!(KeyFilter::from_bytes(&[0; 63]).is_none());
        assert!(KeyFilter::from_bytes(&[]).is_none());
        let empty = KeyFilter::with_capacity(0);
        assert!(!empty.may_contain(5));
    }

    fn unpack(blocks: &[(i64, Vec<u8>)]) -> Vec<(i64, i64, Vec<u8>)> {
        let mut rows = Vec::new();
        for (last, block) in blocks {
            let mut max = i64::MIN;
            rows_of(block, |k, f, m| {
                max = max.max(k);
                rows.push((k, f, block[m].to_vec()));
            })
            .unwrap();
            assert_eq!(max, *last, "a block's last key is its largest");
        }
        rows
    }

    fn pack(rows: &[(i64, i64, Vec<u8>)]) -> Vec<(i64, Vec<u8>)> {
        let mut blocks = Vec::new();
        let mut p = Packer::new(|last, b: &[u8]| -> Result<(), ()> {
            blocks.push((last, b.to_vec()));
            Ok(())
        });
        for (k, f, m) in rows {
            p.push(*k, *f, m).unwrap();
        }
        p.finish().unwrap();
        blocks
    }

    #[test]
    fn rows_come_back_as_packed_and_no_key_spans_two_blocks() {
        // Keys over the whole range, some with several rows, some with long `more`.
        let mut rows = Vec::new();
        for i in 0..2_000i64 {
            let key = i.wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as i64);
            for r in 0..(i % 3 + 1) {
                let more = vec![(i % 128) as u8; (i % 7 * 40) as usize];
                rows.push((key, i * 10 + r, more));
            }
        }
        rows.push((i64::MIN, 0, vec![]));
        rows.push((i64::MAX, i64::MAX, vec![1, 2, 3]));
        rows.sort();
        let blocks = pack(&rows);
        assert!(blocks.len() > 10, "{} blocks", blocks.len());
        assert_eq!(unpack(&blocks), rows);
        let lasts: Vec<i64> = blocks.iter().map(|b| b.0).collect();
        let mut sorted = lasts.clone();
        sorted.dedup();
        assert_eq!(
            lasts, sorted,
            "last keys strictly increase: no key is split"
        );
        for (_, b) in &blocks[..blocks.len() - 1] {
            assert!(b.len() >= BLOCK_BYTES, "only the last block may be short");
        }
    }

    #[test]
    fn nothing_packs_to_no_block() {
        assert!(pack(&[]).is_empty());
    }

    #[test]
    fn damaged_blocks_are_refused() {
        let blocks = pack(&[(5, 1, vec![9, 9]), (6, 2, vec![])]);
        let block = &blocks[0].1;
        for cut in 1..block.len() {
            if cut == 12 {
                continue; // ends exactly after the first row
            }
            assert!(
                rows_of(&block[..cut], |_, _, _| {}).is_none(),
                "cut at {cut}"
            );
        }
        let mut long = block.clone();
        long[9] = 0x7f; // the first row's `more` now runs past the end
        assert!(rows_of(&long, |_, _, _| {}).is_none());
        let endless = [0u8, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(rows_of(&endless, |_, _, _| {}).is_none());
    }
}
