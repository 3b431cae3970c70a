//! Every proof the builder makes for trees of 1 to 64 leaves, at every index and every old
//! size, verifies; the same proof checked against anything else is rejected with the right
//! error; and the compact range agrees with the builder's root at every size.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use custody_merkle::{
    consistency_proof, inclusion_proof, leaf_hash, root, verify_consistency, verify_inclusion,
    CompactRange, Hash, ProofError, EMPTY_ROOT,
};

fn leaves(n: u64) -> Vec<Hash> {
    (0..n)
        .map(|i| leaf_hash(format!("leaf-{i}\n").as_bytes()))
        .collect()
}

#[test]
fn every_inclusion_proof_up_to_64_leaves() {
    let all = leaves(64);
    let mut checked = 0;
    for n in 1..=64u64 {
        let tree = &all[..n as usize];
        let r = root(tree);
        for i in 0..n {
            let proof = inclusion_proof(tree, i).unwrap();
            let leaf = &tree[i as usize];
            assert_eq!(
                verify_inclusion(leaf, i, n, &proof, &r),
                Ok(()),
                "i={i} n={n}"
            );
            checked += 1;

            // Another leaf, root, index or size must not verify.
            let other = leaf_hash(b"other");
            assert!(matches!(
                verify_inclusion(&other, i, n, &proof, &r),
                Err(ProofError::RootMismatch { .. })
            ));
            assert!(matches!(
                verify_inclusion(leaf, i, n, &proof, &other),
                Err(ProofError::RootMismatch { .. })
            ));
            if n > 1 {
                let j = (i + 1) % n;
                assert!(
                    verify_inclusion(leaf, j, n, &proof, &r).is_err(),
                    "i={i} j={j} n={n}"
                );
            }
            // (The same proof may verify the same root under another size when the path has the
            // same shape: the size is bound by the signed checkpoint, not by the proof.)
            assert_eq!(
                verify_inclusion(leaf, n, n, &proof, &r),
                Err(ProofError::IndexOutOfRange { index: n, size: n })
            );
            // A proof one hash longer or shorter has the wrong length.
            let mut longer = proof.clone();
            longer.push(other);
            assert!(matches!(
                verify_inclusion(leaf, i, n, &longer, &r),
                Err(ProofError::WrongProofLength { .. })
            ));
            if !proof.is_empty() {
                assert!(matches!(
                    verify_inclusion(leaf, i, n, &proof[1..], &r),
                    Err(ProofError::WrongProofLength { .. })
                ));
            }
            // Every single-bit flip anywhere in the proof is caught.
            for k in 0..proof.len() {
                for bit in [0usize, 77, 255] {
                    let mut bad = proof.clone();
                    bad[k][bit / 8] ^= 1 << (bit % 8);
                    assert!(verify_inclusion(leaf, i, n, &bad, &r).is_err());
                }
            }
        }
    }
    assert_eq!(checked, 64 * 65 / 2);
}

#[test]
fn every_consistency_proof_up_to_64_leaves() {
    let all = leaves(64);
    let roots: Vec<Hash> = (0..=64).map(|n| root(&all[..n])).collect();
    let mut checked = 0;
    for n in 1..=64u64 {
        let tree = &all[..n as usize];
        let new_root = roots[n as usize];
        for m in 1..=n {
            let old_root = roots[m as usize];
            let proof = consistency_proof(tree, m).unwrap();
            assert_eq!(
                verify_consistency(m, n, &old_root, &new_root, &proof),
                Ok(()),
                "m={m} n={n}"
            );
            checked += 1;
            if m == n {
                assert!(proof.is_empty());
                continue;
            }
            // Swapped or wrong roots, and wrong sizes, are rejected.
            assert!(verify_consistency(m, n, &new_root, &old_root, &proof).is_err());
            let other = leaf_hash(b"other");
            assert!(matches!(
                verify_consistency(m, n, &old_root, &other, &proof),
                Err(ProofError::RootMismatch { .. })
            ));
            assert!(verify_consistency(m, n, &other, &new_root, &proof).is_err());
            if m > 1 {
                assert!(verify_consistency(m - 1, n, &old_root, &new_root, &proof).is_err());
            }
            assert!(matches!(
                verify_consistency(m, n, &old_root, &new_root, &proof[1..]),
                Err(ProofError::WrongProofLength { .. })
            ));
            for k in 0..proof.len() {
                for bit in [0usize, 128, 255] {
                    let mut bad = proof.clone();
                    bad[k][bit / 8] ^= 1 << (bit % 8);
                    assert!(
                        verify_consistency(m, n, &old_root, &new_root, &bad).is_err(),
                        "m={m} n={n} k={k} bit={bit}"
                    );
                }
            }
        }
        // From the empty tree there is no proof to make or check.
        assert_eq!(
            consistency_proof(tree, 0),
            Err(ProofError::EmptyOldTree { new_size: n })
        );
        assert_eq!(
            verify_consistency(0, n, &EMPTY_ROOT, &new_root, &[]),
            Err(ProofError::EmptyOldTree { new_size: n })
        );
    }
    assert_eq!(checked, 64 * 65 / 2);
}

#[test]
fn compact_range_tracks_the_root_at_every_size() {
    let all = leaves(200);
    let mut range = CompactRange::new();
    assert_eq!(range.root(), EMPTY_ROOT);
    for (i, leaf) in all.iter().enumerate() {
        range.push(*leaf).unwrap();
        assert_eq!(range.root(), root(&all[..=i]), "size {}", i + 1);
        let reloaded = CompactRange::from_bytes(&range.to_bytes()).unwrap();
        assert_eq!(reloaded, range);
    }
    // Resuming from the stored bytes gives the same root as never stopping.
    let mut resumed = CompactRange::from_bytes(&{
        let mut r = CompactRange::new();
        r.extend(&all[..77]).unwrap();
        r.to_bytes()
    })
    .unwrap();
    resumed.extend(&all[77..]).unwrap();
    assert_eq!(resumed, range);
}

#[test]
fn large_tree_proofs() {
    // Big enough to cross several levels of uneven splits, small enough for a debug build.
    let n = 100_003u64;
    let all: Vec<Hash> = (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect();
    let r = root(&all);
    let mut range = CompactRange::new();
    range.extend(&all).unwrap();
    assert_eq!(range.root(), r);
    for i in [0, 65_535, 65_536, n - 1] {
        let proof = inclusion_proof(&all, i).unwrap();
        assert_eq!(verify_inclusion(&all[i as usize], i, n, &proof, &r), Ok(()));
    }
    for m in [1, 3, 65_536, 65_537, n - 1] {
        let proof = consistency_proof(&all, m).unwrap();
        let old = root(&all[..m as usize]);
        assert_eq!(verify_consistency(m, n, &old, &r, &proof), Ok(()), "m={m}");
    }
}
