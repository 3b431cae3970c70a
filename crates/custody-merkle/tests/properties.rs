//! Property tests: for any leaves, the compact range's root is the tree root and survives a
//! round trip through its bytes; inclusion and consistency proofs for random trees verify; and a
//! proof with any one bit flipped (or checked against a flipped root or leaf) fails.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use custody_merkle::{
    consistency_proof, inclusion_proof, leaf_hash, root, verify_consistency, verify_inclusion,
    CompactRange, Hash,
};
use proptest::prelude::*;

fn leaves(n: u64, salt: u64) -> Vec<Hash> {
    (0..n)
        .map(|i| leaf_hash(&[salt.to_be_bytes(), i.to_be_bytes()].concat()))
        .collect()
}

fn flip(h: &mut Hash, bit: usize) {
    h[bit / 8 % 32] ^= 1 << (bit % 8);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn compact_range_root_is_the_tree_root(
        data in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..16), 0..300),
        split in any::<prop::sample::Index>(),
    ) {
        let hashes: Vec<Hash> = data.iter().map(|d| leaf_hash(d)).collect();
        let mut range = CompactRange::new();
        for h in &hashes {
            range.push(*h).unwrap();
        }
        prop_assert_eq!(range.size(), hashes.len() as u64);
        prop_assert_eq!(range.peaks().len(), hashes.len().count_ones() as usize);
        prop_assert_eq!(range.root(), root(&hashes));

        // Stopping anywhere, storing the bytes and resuming changes nothing.
        let cut = if hashes.is_empty() { 0 } else { split.index(hashes.len() + 1) };
        let mut first = CompactRange::new();
        first.extend(&hashes[..cut]).unwrap();
        let mut resumed = CompactRange::from_bytes(&first.to_bytes()).unwrap();
        resumed.extend(&hashes[cut..]).unwrap();
        prop_assert_eq!(&resumed, &range);
    }

    #[test]
    fn inclusion_proofs_verify_and_bit_flips_fail(
        n in 1u64..600,
        salt in any::<u64>(),
        pick in any::<prop::sample::Index>(),
        bit in 0usize..256,
        which in any::<prop::sample::Index>(),
    ) {
        let tree = leaves(n, salt);
        let r = root(&tree);
        let i = pick.index(n as usize) as u64;
        let leaf = tree[i as usize];
        let proof = inclusion_proof(&tree, i).unwrap();
        prop_assert_eq!(verify_inclusion(&leaf, i, n, &proof, &r), Ok(()));

        if !proof.is_empty() {
            let mut bad = proof.clone();
            flip(&mut bad[which.index(proof.len())], bit);
            prop_assert!(verify_inclusion(&leaf, i, n, &bad, &r).is_err());
        }
        let mut bad_root = r;
        flip(&mut bad_root, bit);
        prop_assert!(verify_inclusion(&leaf, i, n, &proof, &bad_root).is_err());
        let mut bad_leaf = leaf;
        flip(&mut bad_leaf, bit);
        prop_assert!(verify_inclusion(&bad_leaf, i, n, &proof, &r).is_err());
    }

    #[test]
    fn consistency_proofs_verify_and_bit_flips_fail(
        n in 1u64..600,
        salt in any::<u64>(),
        pick in any::<prop::sample::Index>(),
        bit in 0usize..256,
        which in any::<prop::sample::Index>(),
    ) {
        let tree = leaves(n, salt);
        let m = pick.index(n as usize) as u64 + 1; // 1..=n
        let old_root = root(&tree[..m as usize]);
        let new_root = root(&tree);
        let proof = consistency_proof(&tree, m).unwrap();
        prop_assert_eq!(verify_consistency(m, n, &old_root, &new_root, &proof), Ok(()));

        if !proof.is_empty() {
            let mut bad = proof.clone();
            flip(&mut bad[which.index(proof.len())], bit);
            prop_assert!(verify_consistency(m, n, &old_root, &new_root, &bad).is_err());
        }
        let mut bad_old = old_root;
        flip(&mut bad_old, bit);
        prop_assert!(verify_consistency(m, n, &bad_old, &new_root, &proof).is_err());
        let mut bad_new = new_root;
        flip(&mut bad_new, bit);
        prop_assert!(verify_consistency(m, n, &old_root, &bad_new, &proof).is_err());
    }
}
