//! The compact range (also called the frontier) of a log: the roots of the perfect subtrees in
//! the binary decomposition of the tree size, largest (leftmost) first. It is all a log writer
//! needs to keep to append leaves and compute the new root (RFC 9162 §2.1.1 `MTH`) without
//! rereading old leaves: one push is amortised O(1) hashing, and the root costs O(log n), so a
//! store that keeps it gets the root after a batch in O(batch + log n).

use crate::error::ProofError;
use crate::hash::{node_hash, Hash, EMPTY_ROOT};

/// Length of the size prefix in [`CompactRange::to_bytes`].
const SIZE_BYTES: usize = 8;
/// Length of one hash.
const HASH_BYTES: usize = 32;

/// The peaks of a tree of `size` leaves: one perfect-subtree root per set bit of `size`,
/// from the most significant bit (the leftmost, largest subtree) to the least.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactRange {
    size: u64,
    peaks: Vec<Hash>,
}

impl CompactRange {
    /// The compact range of the empty tree.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A compact range from its size and peaks (largest subtree first).
    ///
    /// # Errors
    /// [`ProofError::CompactRangePeaks`] when `peaks.len() != popcount(size)`.
    pub fn from_parts(size: u64, peaks: Vec<Hash>) -> Result<Self, ProofError> {
        let expected = size.count_ones() as usize;
        if peaks.len() != expected {
            return Err(ProofError::CompactRangePeaks {
                size,
                expected,
                actual: peaks.len(),
            });
        }
        Ok(Self { size, peaks })
    }

    /// The number of leaves pushed so far (the tree size).
    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The perfect-subtree roots, largest (leftmost) first.
    #[must_use]
    pub fn peaks(&self) -> &[Hash] {
        &self.peaks
    }

    /// Appends one leaf hash. Merges the new leaf with every peak of equal height, one
    /// `node_hash` per trailing one bit of the old size, so n pushes cost fewer than 2n hashes.
    ///
    /// # Errors
    /// [`ProofError::TreeTooLarge`] when the size would pass `u64::MAX`.
    pub fn push(&mut self, leaf_hash: Hash) -> Result<(), ProofError> {
        let new_size = self.size.checked_add(1).ok_or(ProofError::TreeTooLarge)?;
        merge_leaf(&mut self.peaks, self.size, leaf_hash);
        self.size = new_size;
        Ok(())
    }

    /// Appends several leaf hashes in order.
    ///
    /// # Errors
    /// As [`CompactRange::push`].
    pub fn extend<'a>(
        &mut self,
        leaves: impl IntoIterator<Item = &'a Hash>,
    ) -> Result<(), ProofError> {
        for leaf in leaves {
            self.push(*leaf)?;
        }
        Ok(())
    }

    /// The root of the tree: the peaks folded from the right, `H(p0, H(p1, ... H(pk-1, pk)))`,
    /// which is `MTH(D[n])` because each split of RFC 9162 §2.1.1 peels off the largest
    /// perfect subtree on the left. [`EMPTY_ROOT`] for the empty tree.
    #[must_use]
    pub fn root(&self) -> Hash {
        fold_peaks(&self.peaks)
    }

    /// The encoding `size (8 bytes, big-endian) || peaks (32 bytes each)`.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(SIZE_BYTES + HASH_BYTES * self.peaks.len());
        out.extend_from_slice(&self.size.to_be_bytes());
        for peak in &self.peaks {
            out.extend_from_slice(peak);
        }
        out
    }

    /// Decodes [`CompactRange::to_bytes`], checking that the length is exactly
    /// `8 + 32 * popcount(size)`.
    ///
    /// # Errors
    /// [`ProofError::CompactRangeLength`] on any other length.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProofError> {
        let (size_bytes, rest) =
            bytes
                .split_first_chunk::<SIZE_BYTES>()
                .ok_or(ProofError::CompactRangeLength {
                    size: 0,
                    expected: SIZE_BYTES,
                    actual: bytes.len(),
                })?;
        let size = u64::from_be_bytes(*size_bytes);
        let count = size.count_ones() as usize;
        let expected = SIZE_BYTES + HASH_BYTES * count;
        if bytes.len() != expected {
            return Err(ProofError::CompactRangeLength {
                size,
                expected,
                actual: bytes.len(),
            });
        }
        let mut peaks = Vec::with_capacity(count);
        for chunk in rest.chunks_exact(HASH_BYTES) {
            let mut peak = [0u8; HASH_BYTES];
            peak.copy_from_slice(chunk);
            peaks.push(peak);
        }
        Self::from_parts(size, peaks)
    }
}

/// Adds leaf number `size` to the peaks of a tree of `size` leaves: merges it with every peak
/// of equal height, one `node_hash` per trailing one bit of `size`.
pub(crate) fn merge_leaf(peaks: &mut Vec<Hash>, size: u64, leaf_hash: Hash) {
    let mut carry = leaf_hash;
    let mut bits = size;
    while bits & 1 == 1 {
        // popcount(size) == peaks.len(): each trailing one bit is one peak at the end.
        let Some(left) = peaks.pop() else {
            break;
        };
        carry = node_hash(&left, &carry);
        bits >>= 1;
    }
    peaks.push(carry);
}

/// The root from the peaks (largest first), [`EMPTY_ROOT`] when there are none.
pub(crate) fn fold_peaks(peaks: &[Hash]) -> Hash {
    let mut iter = peaks.iter().rev();
    let Some(last) = iter.next() else {
        return EMPTY_ROOT;
    };
    iter.fold(*last, |acc, peak| node_hash(peak, &acc))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::hash::leaf_hash;

    #[test]
    fn empty() {
        let r = CompactRange::new();
        assert_eq!(r.root(), EMPTY_ROOT);
        assert_eq!(r.to_bytes(), vec![0u8; 8]);
        assert_eq!(CompactRange::from_bytes(&[0u8; 8]).unwrap(), r);
    }

    #[test]
    fn peaks_follow_the_size_bits() {
        let mut r = CompactRange::new();
        for i in 0..100u64 {
            r.push(leaf_hash(&i.to_be_bytes())).unwrap();
            assert_eq!(r.peaks().len(), r.size().count_ones() as usize);
        }
    }

    #[test]
    fn bytes_round_trip_and_reject_bad_lengths() {
        let mut r = CompactRange::new();
        r.extend(&[leaf_hash(b"a"), leaf_hash(b"b"), leaf_hash(b"c")])
            .unwrap();
        let bytes = r.to_bytes();
        assert_eq!(bytes.len(), 8 + 2 * 32);
        assert_eq!(CompactRange::from_bytes(&bytes).unwrap(), r);
        assert_eq!(
            CompactRange::from_bytes(&bytes[..bytes.len() - 1]),
            Err(ProofError::CompactRangeLength {
                size: 3,
                expected: 72,
                actual: 71
            })
        );
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(CompactRange::from_bytes(&longer).is_err());
        assert!(CompactRange::from_bytes(&bytes[..7]).is_err());
        assert!(CompactRange::from_parts(3, vec![leaf_hash(b"a")]).is_err());
    }
}
