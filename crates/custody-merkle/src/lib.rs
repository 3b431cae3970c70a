//! Tamper evidence for the Custody log: RFC 9162 Merkle trees over the stored events, with
//! inclusion and consistency proofs, compact ranges for cheap appends, and checkpoints signed
//! as C2SP signed notes with Ed25519 so that third-party tools can check them. Pure functions
//! and types: no files, no network, no clock, no randomness of its own.
//!
//! - [`hash`]: leaf and node hashes (RFC 9162 §2.1.1).
//! - [`tree`]: roots and proofs built from leaf hashes (§2.1.3.1, §2.1.4.1).
//! - [`verify`]: proof checking, independent of [`tree`] (§2.1.3.2, §2.1.4.2).
//! - [`compact`]: the compact range (frontier) a log writer keeps.
//! - [`note`]: C2SP signed notes and the Go `note` key formats.
//! - [`checkpoint`]: C2SP tlog checkpoints.

pub mod checkpoint;
pub mod compact;
pub mod error;
pub mod hash;
pub mod note;
pub mod tree;
pub mod verify;

pub use checkpoint::{Checkpoint, UnverifiedCheckpoint};
pub use compact::CompactRange;
pub use error::{NoteError, ProofError};
pub use hash::{leaf_hash, node_hash, Hash, EMPTY_ROOT};
pub use note::{key_id, sign_note, NoteSigner, NoteVerifier, SignatureLine, SignedNote};
pub use tree::{consistency_proof, inclusion_proof, root};
pub use verify::{root_from_inclusion_proof, verify_consistency, verify_inclusion};

/// `Result` with this crate's tree and proof error.
pub type Result<T, E = ProofError> = std::result::Result<T, E>;
