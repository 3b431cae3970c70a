//! RFC 9162 §2.1.1 hashing: the domain-separated SHA-256 leaf and interior-node hashes every
//! other part of this crate builds on, and the root of the empty tree. A leaf hash can never be
//! confused with a node hash because the first byte hashed differs (0x00 for leaves, 0x01 for
//! nodes), which is what stops second-preimage attacks on the tree.

use sha2::{Digest, Sha256};

/// A SHA-256 output: a leaf hash, a node hash or a tree root.
pub type Hash = [u8; 32];

/// The root of the empty tree, `SHA-256("")` (RFC 9162 §2.1.1: `MTH({}) = SHA-256()`).
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// The hash of one leaf, `SHA-256(0x00 || data)` (RFC 9162 §2.1.1).
#[must_use]
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// The hash of an interior node, `SHA-256(0x01 || left || right)` (RFC 9162 §2.1.1).
#[must_use]
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        let got: Hash = Sha256::digest(b"").into();
        assert_eq!(got, EMPTY_ROOT);
    }

    #[test]
    fn rfc6962_known_values() {
        // The empty leaf hash and the one-byte leaf 0x00, from the RFC 6962 reference test tree.
        assert_eq!(
            hex::encode(leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        assert_eq!(
            hex::encode(leaf_hash(&[0x00])),
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"
        );
        let l = leaf_hash(b"");
        let r = leaf_hash(&[0x00]);
        assert_ne!(node_hash(&l, &r), node_hash(&r, &l));
    }
}
