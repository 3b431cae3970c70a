//! Checking proofs, apart from building them: what an auditor needs, using nothing of this
//! crate but the two hash functions ([`crate::hash`]) and the error type. Each check first
//! compares the proof's length with the one its tree sizes dictate, so a truncated, padded or
//! mis-sized proof is named as such, then runs the verification algorithm of RFC 9162
//! (§2.1.3.2 for inclusion, §2.1.4.2 for consistency) step by step.

use crate::error::ProofError;
use crate::hash::{node_hash, Hash, EMPTY_ROOT};

/// Bit length of `x` (0 for 0).
fn bit_len(x: u64) -> u32 {
    u64::BITS - x.leading_zeros()
}

/// How many hashes the inclusion proof of leaf `index` in a tree of `size` leaves has
/// (`index < size`): one per level where the paths to `index` and to the last leaf differ,
/// plus one per left sibling along the right border above them.
fn inclusion_len(index: u64, size: u64) -> usize {
    let inner = bit_len(index ^ (size - 1));
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner + border) as usize
}

/// The root that an inclusion proof leads to: RFC 9162 §2.1.3.2 steps 1 to 4, after checking
/// the proof's length. [`verify_inclusion`] compares it with the expected root.
///
/// # Errors
/// [`ProofError::IndexOutOfRange`] when `index >= size`, [`ProofError::WrongProofLength`]
/// when the proof does not have the length that `index` and `size` dictate.
pub fn root_from_inclusion_proof(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
) -> Result<Hash, ProofError> {
    // Step 1.
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_len(index, size);
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }
    let wrong_length = ProofError::WrongProofLength {
        expected,
        actual: proof.len(),
    };
    // Steps 2 and 3.
    let mut fnode = index;
    let mut snode = size - 1;
    let mut r = *leaf_hash;
    // Step 4.
    for p in proof {
        if snode == 0 {
            return Err(wrong_length);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 5, first half.
    if snode != 0 {
        return Err(wrong_length);
    }
    Ok(r)
}

/// Checks that `leaf_hash` is leaf number `index` of the tree of `size` leaves whose root is
/// `root`, given the inclusion proof `proof` (RFC 9162 §2.1.3.2).
///
/// # Errors
/// [`ProofError::IndexOutOfRange`], [`ProofError::WrongProofLength`], or
/// [`ProofError::RootMismatch`] when the proof leads to another root.
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    let computed = root_from_inclusion_proof(leaf_hash, index, size, proof)?;
    if computed != *root {
        return Err(ProofError::RootMismatch {
            computed,
            expected: *root,
        });
    }
    Ok(())
}

/// Checks that the tree of `old_size` leaves with root `old_root` is a prefix of the tree of
/// `new_size` leaves with root `new_root`, given the consistency proof `proof`
/// (RFC 9162 §2.1.4.2).
///
/// Beyond the RFC's algorithm, which starts from `0 < old_size < new_size`: equal sizes need an
/// empty proof and equal roots, and the tree of size 0 has only the root [`EMPTY_ROOT`]. A
/// proof from size 0 to a larger size is refused ([`ProofError::EmptyOldTree`]): every tree
/// extends the empty one, so there is nothing to prove, and accepting one would hide a caller
/// that lost its old checkpoint.
///
/// # Errors
/// [`ProofError::OldSizeTooLarge`], [`ProofError::EmptyOldTree`],
/// [`ProofError::WrongProofLength`], [`ProofError::OldRootMismatch`] when the proof does not
/// lead to the old root, [`ProofError::RootMismatch`] when it does not lead to the new one.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::OldSizeTooLarge { old_size, new_size });
    }
    if old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::WrongProofLength {
                expected: 0,
                actual: proof.len(),
            });
        }
        if old_size == 0 && *old_root != EMPTY_ROOT {
            return Err(ProofError::OldRootMismatch {
                computed: EMPTY_ROOT,
                expected: *old_root,
            });
        }
        if old_root != new_root {
            return Err(ProofError::RootMismatch {
                computed: *old_root,
                expected: *new_root,
            });
        }
        return Ok(());
    }
    if old_size == 0 {
        return Err(ProofError::EmptyOldTree { new_size });
    }

    // Now 0 < old_size < new_size. Length: the hash of the perfect subtree that ends the old
    // tree (left out when it is the whole old tree, a power of two), then that subtree's
    // inclusion path in the new tree.
    let shift = old_size.trailing_zeros();
    let whole = old_size.is_power_of_two();
    let inner = bit_len((old_size - 1) ^ (new_size - 1));
    let border = (old_size - 1).checked_shr(inner).unwrap_or(0).count_ones();
    let expected = usize::from(!whole) + (inner.saturating_sub(shift) + border) as usize;
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }
    let wrong_length = ProofError::WrongProofLength {
        expected,
        actual: proof.len(),
    };

    // Steps 1 and 2: a non-empty path, with the old root prepended when old_size is a power of 2.
    let (seed, rest) = if whole {
        (*old_root, proof)
    } else {
        match proof.split_first() {
            Some((first, rest)) => (*first, rest),
            None => return Err(wrong_length),
        }
    };
    // Steps 3 and 4.
    let mut fnode = old_size - 1;
    let mut snode = new_size - 1;
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 5.
    let mut fr = seed;
    let mut sr = seed;
    // Step 6.
    for c in rest {
        if snode == 0 {
            return Err(wrong_length);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    // Step 7.
    if snode != 0 {
        return Err(wrong_length);
    }
    if fr != *old_root {
        return Err(ProofError::OldRootMismatch {
            computed: fr,
            expected: *old_root,
        });
    }
    if sr != *new_root {
        return Err(ProofError::RootMismatch {
            computed: sr,
            expected: *new_root,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::hash::leaf_hash;

    fn h(s: &str) -> Hash {
        leaf_hash(s.as_bytes())
    }

    #[test]
    fn inclusion_errors_are_precise() {
        let (a, b) = (h("a"), h("b"));
        let root = node_hash(&a, &b);
        assert_eq!(verify_inclusion(&a, 0, 2, &[b], &root), Ok(()));
        assert_eq!(verify_inclusion(&b, 1, 2, &[a], &root), Ok(()));
        assert_eq!(
            verify_inclusion(&a, 2, 2, &[b], &root),
            Err(ProofError::IndexOutOfRange { index: 2, size: 2 })
        );
        assert_eq!(
            verify_inclusion(&a, 0, 0, &[], &EMPTY_ROOT),
            Err(ProofError::IndexOutOfRange { index: 0, size: 0 })
        );
        assert_eq!(
            verify_inclusion(&a, 0, 2, &[b, b], &root),
            Err(ProofError::WrongProofLength {
                expected: 1,
                actual: 2
            })
        );
        assert_eq!(
            verify_inclusion(&a, 0, 2, &[], &root),
            Err(ProofError::WrongProofLength {
                expected: 1,
                actual: 0
            })
        );
        assert_eq!(
            verify_inclusion(&b, 0, 2, &[a], &root),
            Err(ProofError::RootMismatch {
                computed: node_hash(&b, &a),
                expected: root
            })
        );
        // A single-leaf tree: the leaf hash is the root, the proof is empty.
        assert_eq!(verify_inclusion(&a, 0, 1, &[], &a), Ok(()));
    }

    #[test]
    fn consistency_edge_cases() {
        let (a, b) = (h("a"), h("b"));
        let r2 = node_hash(&a, &b);
        assert_eq!(verify_consistency(1, 2, &a, &r2, &[b]), Ok(()));
        assert_eq!(
            verify_consistency(0, 0, &EMPTY_ROOT, &EMPTY_ROOT, &[]),
            Ok(())
        );
        assert_eq!(verify_consistency(2, 2, &r2, &r2, &[]), Ok(()));
        assert_eq!(
            verify_consistency(0, 0, &a, &a, &[]),
            Err(ProofError::OldRootMismatch {
                computed: EMPTY_ROOT,
                expected: a
            })
        );
        assert_eq!(
            verify_consistency(2, 2, &r2, &a, &[]),
            Err(ProofError::RootMismatch {
                computed: r2,
                expected: a
            })
        );
        assert_eq!(
            verify_consistency(2, 2, &r2, &r2, &[a]),
            Err(ProofError::WrongProofLength {
                expected: 0,
                actual: 1
            })
        );
        assert_eq!(
            verify_consistency(0, 2, &EMPTY_ROOT, &r2, &[]),
            Err(ProofError::EmptyOldTree { new_size: 2 })
        );
        assert_eq!(
            verify_consistency(3, 2, &r2, &r2, &[]),
            Err(ProofError::OldSizeTooLarge {
                old_size: 3,
                new_size: 2
            })
        );
        assert_eq!(
            verify_consistency(1, 2, &a, &r2, &[]),
            Err(ProofError::WrongProofLength {
                expected: 1,
                actual: 0
            })
        );
        assert_eq!(
            verify_consistency(1, 2, &b, &r2, &[b]),
            Err(ProofError::RootMismatch {
                computed: node_hash(&b, &b),
                expected: r2
            })
        );
        // 3 -> 4: proof [c, H(a, b)]; a wrong old root is caught as such.
        let (c, d) = (h("c"), h("d"));
        let ab = node_hash(&a, &b);
        let r3 = node_hash(&ab, &c);
        let r4 = node_hash(&ab, &node_hash(&c, &d));
        assert_eq!(verify_consistency(3, 4, &r3, &r4, &[c, d, ab]), Ok(()));
        assert_eq!(
            verify_consistency(3, 4, &r2, &r4, &[c, d, ab]),
            Err(ProofError::OldRootMismatch {
                computed: r3,
                expected: r2
            })
        );
    }

    #[test]
    fn huge_sizes_do_not_overflow() {
        let a = h("a");
        let size = u64::MAX;
        let index = u64::MAX - 1;
        // The second-to-last leaf: on the right border all the way, 63 left siblings.
        let proof = vec![a; inclusion_len(index, size)];
        assert_eq!(proof.len(), 63);
        assert!(matches!(
            verify_inclusion(&a, index, size, &proof, &a),
            Err(ProofError::RootMismatch { .. })
        ));
        // The first leaf: 64 levels below the split.
        let proof = vec![a; inclusion_len(0, size)];
        assert_eq!(proof.len(), 64);
        assert!(matches!(
            verify_inclusion(&a, 0, size, &proof, &a),
            Err(ProofError::RootMismatch { .. })
        ));
        assert!(verify_consistency(u64::MAX - 1, u64::MAX, &a, &a, &[a; 3]).is_err());
    }
}
