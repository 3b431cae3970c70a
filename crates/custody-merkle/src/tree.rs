//! Building proofs from a list of leaf hashes: the tree root (RFC 9162 §2.1.1 `MTH`), inclusion
//! proofs (§2.1.3.1 `PATH`) and consistency proofs (§2.1.4.1 `PROOF`/`SUBPROOF`). Everything
//! here is iterative: each proof hashes every leaf at most once (O(n) hashing) while holding only
//! O(log n) hashes of working state, so proofs over millions of leaves neither recurse deeply nor
//! allocate per level. Checking a proof needs none of this module; see [`crate::verify`].

use crate::compact::{fold_peaks, merge_leaf};
use crate::error::ProofError;
use crate::hash::Hash;

/// The Merkle tree hash `MTH(D[n])` over `leaves`, the leaf hashes of the tree in order
/// (RFC 9162 §2.1.1). The empty list gives [`crate::EMPTY_ROOT`].
///
/// Computed by folding the leaves into the peaks of a [`crate::CompactRange`]: O(n) hashing, O(log n) memory.
#[must_use]
pub fn root(leaves: &[Hash]) -> Hash {
    let mut peaks = Vec::with_capacity(64);
    for (size, leaf) in (0u64..).zip(leaves) {
        merge_leaf(&mut peaks, size, *leaf);
    }
    fold_peaks(&peaks)
}

/// The inclusion proof `PATH(index, D[n])` for leaf `index` in the tree whose leaf hashes are
/// `leaves` (so the tree size is `leaves.len()`), bottom level first (RFC 9162 §2.1.3.1).
///
/// # Errors
/// [`ProofError::IndexOutOfRange`] when `index >= leaves.len()`.
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Result<Vec<Hash>, ProofError> {
    let size = tree_size(leaves)?;
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let mut proof = Vec::with_capacity(path_len(index, size, 0));
    push_path(leaves, index, 0, &mut proof)?;
    Ok(proof)
}

/// The consistency proof `PROOF(old_size, D[n])` between the tree of the first `old_size`
/// leaves and the tree of all `leaves` (RFC 9162 §2.1.4.1). When `old_size` equals the new size
/// the proof is empty.
///
/// # Errors
/// [`ProofError::OldSizeTooLarge`] when `old_size > leaves.len()`, and
/// [`ProofError::EmptyOldTree`] when `old_size` is 0 and the new tree is not empty (no proof
/// is defined from the empty tree; see [`crate::verify::verify_consistency`]).
pub fn consistency_proof(leaves: &[Hash], old_size: u64) -> Result<Vec<Hash>, ProofError> {
    let new_size = tree_size(leaves)?;
    if old_size > new_size {
        return Err(ProofError::OldSizeTooLarge { old_size, new_size });
    }
    if old_size == new_size {
        return Ok(Vec::new());
    }
    if old_size == 0 {
        return Err(ProofError::EmptyOldTree { new_size });
    }
    // SUBPROOF descends until the old tree's last leaf sits in a perfect subtree of height
    // `shift` (the old size's trailing zero bits) that ends exactly at `old_size`. That subtree's
    // hash is the proof's first element unless it is the whole old tree (a power of two), which
    // the verifier already holds as the old root. The rest is the inclusion path of that
    // subtree in the new tree.
    let shift = old_size.trailing_zeros();
    let last = old_size - 1;
    let whole = old_size.is_power_of_two();
    let mut proof = Vec::with_capacity(usize::from(!whole) + path_len(last, new_size, shift));
    if !whole {
        let start = old_size - (1u64 << shift);
        proof.push(subtree_root(leaves, start, old_size)?);
    }
    push_path(leaves, last, shift, &mut proof)?;
    Ok(proof)
}

/// The tree size of `leaves` as a `u64`.
fn tree_size(leaves: &[Hash]) -> Result<u64, ProofError> {
    u64::try_from(leaves.len()).map_err(|_| ProofError::TreeTooLarge)
}

/// Bit length of `x` (0 for 0).
fn bit_len(x: u64) -> u32 {
    u64::BITS - x.leading_zeros()
}

/// Number of hashes [`push_path`] appends for leaf `index` from level `from_level` in a tree of
/// `size` leaves.
fn path_len(index: u64, size: u64, from_level: u32) -> usize {
    let inner = bit_len(index ^ (size - 1));
    let border = (index.checked_shr(inner).unwrap_or(0)).count_ones();
    (inner.saturating_sub(from_level) + border) as usize
}

/// Appends the inclusion path of the node at level `from_level` above leaf `index` (the node
/// covering that leaf) in the tree of all `leaves`, lowest level first.
///
/// Below level `inner` the path to `index` and the path to the last leaf differ, so each level
/// contributes the sibling's hash (a right sibling may be cut short by the end of the tree).
/// From `inner` up the path runs along the right border, where only levels at which the node is
/// a right child have a sibling: a perfect subtree to the left.
fn push_path(
    leaves: &[Hash],
    index: u64,
    from_level: u32,
    out: &mut Vec<Hash>,
) -> Result<(), ProofError> {
    let size = tree_size(leaves)?;
    let inner = bit_len(index ^ (size - 1));
    for level in from_level..inner {
        let sibling = (index >> level) ^ 1;
        let start = sibling << level;
        let end = start.saturating_add(1u64 << level).min(size);
        out.push(subtree_root(leaves, start, end)?);
    }
    let mut level = inner;
    while let Some(node) = index.checked_shr(level).filter(|n| *n != 0) {
        if node & 1 == 1 {
            let start = (node - 1) << level;
            out.push(subtree_root(leaves, start, start + (1u64 << level))?);
        }
        level += 1;
    }
    Ok(())
}

/// `MTH(D[start:end])`, for a range that forms a (possibly right-truncated) subtree.
fn subtree_root(leaves: &[Hash], start: u64, end: u64) -> Result<Hash, ProofError> {
    let range = usize::try_from(start)
        .ok()
        .zip(usize::try_from(end).ok())
        .and_then(|(s, e)| leaves.get(s..e))
        .ok_or(ProofError::IndexOutOfRange {
            index: end,
            size: leaves.len() as u64,
        })?;
    Ok(root(range))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::hash::{leaf_hash, node_hash, EMPTY_ROOT};

    /// The recursive definitions of RFC 9162 §2.1, transcribed literally, as a reference.
    fn mth_ref(d: &[Hash]) -> Hash {
        match d.len() {
            0 => EMPTY_ROOT,
            1 => d[0],
            n => {
                let k = largest_pow2_below(n);
                node_hash(&mth_ref(&d[..k]), &mth_ref(&d[k..]))
            }
        }
    }

    fn largest_pow2_below(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    fn path_ref(m: usize, d: &[Hash]) -> Vec<Hash> {
        let n = d.len();
        if n == 1 {
            return vec![];
        }
        let k = largest_pow2_below(n);
        if m < k {
            let mut p = path_ref(m, &d[..k]);
            p.push(mth_ref(&d[k..]));
            p
        } else {
            let mut p = path_ref(m - k, &d[k..]);
            p.push(mth_ref(&d[..k]));
            p
        }
    }

    fn subproof_ref(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
        let n = d.len();
        if m == n {
            return if b { vec![] } else { vec![mth_ref(d)] };
        }
        let k = largest_pow2_below(n);
        if m <= k {
            let mut p = subproof_ref(m, &d[..k], b);
            p.push(mth_ref(&d[k..]));
            p
        } else {
            let mut p = subproof_ref(m - k, &d[k..], false);
            p.push(mth_ref(&d[..k]));
            p
        }
    }

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("leaf-{i}").as_bytes()))
            .collect()
    }

    #[test]
    fn matches_the_recursive_definitions() {
        for n in 0..=70usize {
            let d = leaves(n);
            assert_eq!(root(&d), mth_ref(&d), "root n={n}");
            for m in 0..n {
                assert_eq!(
                    inclusion_proof(&d, m as u64).unwrap(),
                    path_ref(m, &d),
                    "path m={m} n={n}"
                );
            }
            for m in 1..=n {
                let want = if m == n {
                    vec![]
                } else {
                    subproof_ref(m, &d, true)
                };
                assert_eq!(
                    consistency_proof(&d, m as u64).unwrap(),
                    want,
                    "proof m={m} n={n}"
                );
            }
        }
    }

    #[test]
    fn range_errors() {
        let d = leaves(5);
        assert_eq!(
            inclusion_proof(&d, 5),
            Err(ProofError::IndexOutOfRange { index: 5, size: 5 })
        );
        assert_eq!(
            inclusion_proof(&[], 0),
            Err(ProofError::IndexOutOfRange { index: 0, size: 0 })
        );
        assert_eq!(
            consistency_proof(&d, 6),
            Err(ProofError::OldSizeTooLarge {
                old_size: 6,
                new_size: 5
            })
        );
        assert_eq!(
            consistency_proof(&d, 0),
            Err(ProofError::EmptyOldTree { new_size: 5 })
        );
        assert_eq!(consistency_proof(&[], 0), Ok(vec![]));
        assert_eq!(consistency_proof(&d, 5), Ok(vec![]));
    }
}
