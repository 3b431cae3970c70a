//! The crate's errors: [`ProofError`] for everything about trees and proofs (building them,
//! verifying them, encoding compact ranges) and [`NoteError`] for signed notes, keys and
//! checkpoints. Each is one `thiserror` enum, `#[non_exhaustive]`, so callers match the variants
//! they act on and keep a catch-all arm; messages are lowercase and name the values involved.

use crate::hash::Hash;

/// A tree, proof or compact-range operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// A leaf index is not below the tree size.
    #[error("leaf index {index} is out of range for a tree of size {size}")]
    IndexOutOfRange {
        /// The leaf index asked for.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// An older tree is larger than the newer one.
    #[error("old tree size {old_size} is larger than new tree size {new_size}")]
    OldSizeTooLarge {
        /// The older (first) tree size.
        old_size: u64,
        /// The newer (second) tree size.
        new_size: u64,
    },
    /// A consistency proof from the empty tree was asked for or offered: every tree extends
    /// the empty tree, so such a proof proves nothing and none is defined (RFC 9162 §2.1.4).
    #[error(
        "a consistency proof from the empty tree (old size 0) to size {new_size} is meaningless"
    )]
    EmptyOldTree {
        /// The newer tree size.
        new_size: u64,
    },
    /// A proof has the wrong number of hashes for its tree sizes.
    #[error("wrong proof length: expected {expected} hashes, got {actual}")]
    WrongProofLength {
        /// How many hashes a proof for these sizes has.
        expected: usize,
        /// How many the proof has.
        actual: usize,
    },
    /// The root computed from a proof is not the root it was checked against.
    #[error("root mismatch: computed {}, expected {}", hex::encode(.computed), hex::encode(.expected))]
    RootMismatch {
        /// The root the proof leads to.
        computed: Hash,
        /// The root it should lead to.
        expected: Hash,
    },
    /// A consistency proof does not lead to the old root it was checked against.
    #[error("old root mismatch: computed {}, expected {}", hex::encode(.computed), hex::encode(.expected))]
    OldRootMismatch {
        /// The old root the proof leads to.
        computed: Hash,
        /// The old root it should lead to.
        expected: Hash,
    },
    /// The encoding of a compact range has the wrong length for its size.
    #[error("compact range encoding is {actual} bytes, but size {size} needs {expected}")]
    CompactRangeLength {
        /// The tree size read from the encoding (0 when too short to hold one).
        size: u64,
        /// `8 + 32 * popcount(size)`.
        expected: usize,
        /// The length given.
        actual: usize,
    },
    /// A compact range's peaks do not match its size.
    #[error("compact range of size {size} needs {expected} peaks, got {actual}")]
    CompactRangePeaks {
        /// The tree size.
        size: u64,
        /// `popcount(size)`.
        expected: usize,
        /// The number of peaks given.
        actual: usize,
    },
    /// The tree is too large for this operation on this platform or for a `u64` size.
    #[error("tree too large")]
    TreeTooLarge,
}

/// A signed note, key or checkpoint is malformed, or does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NoteError {
    /// The note is not valid UTF-8.
    #[error("note is not valid utf-8")]
    NotUtf8,
    /// The note holds an ASCII control character other than newline.
    #[error("note contains a control character (U+{0:04X}) other than newline")]
    ControlCharacter(u32),
    /// There is no blank line between the note text and the signatures.
    #[error("note has no blank line before its signature lines")]
    MissingBlankLine,
    /// The note text, or the whole note, does not end in a newline.
    #[error("{0} does not end with a newline")]
    MissingNewline(&'static str),
    /// The note text is empty.
    #[error("note text is empty")]
    EmptyText,
    /// The note has no signature lines.
    #[error("note has no signature lines")]
    NoSignatures,
    /// A signature line is not `— <name> <base64>`.
    #[error("malformed signature line {line}: {reason}")]
    MalformedSignatureLine {
        /// 1-based line number within the signature block.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// More signature lines than a verifier accepts.
    #[error("note has {0} signature lines, more than the {max} accepted", max = crate::note::MAX_SIGNATURES)]
    TooManySignatures(usize),
    /// A key name is empty, holds a space, a `+` or a control character.
    #[error(
        "invalid key name {0:?}: it must be non-empty with no spaces, '+' or control characters"
    )]
    InvalidKeyName(String),
    /// Base64 that is not canonical standard base64 with padding.
    #[error("invalid base64 in {0}")]
    InvalidBase64(&'static str),
    /// A private key string is not `PRIVATE+KEY+<name>+<hex8>+<base64>`.
    #[error("invalid private key: {0}")]
    InvalidPrivateKey(&'static str),
    /// A verifier key string is not `<name>+<hex8>+<base64>`.
    #[error("invalid verifier key: {0}")]
    InvalidVerifierKey(&'static str),
    /// A key's algorithm byte is not Ed25519 (0x01).
    #[error("unsupported key algorithm 0x{0:02x} (only ed25519, 0x01, is supported)")]
    UnsupportedAlgorithm(u8),
    /// The key id in a key string is not the one its name and key give.
    #[error("key id mismatch: the key says {}, its name and key give {}", hex::encode(.stated), hex::encode(.computed))]
    KeyIdMismatch {
        /// The key id written in the key string.
        stated: [u8; 4],
        /// `SHA-256(name || 0x0A || 0x01 || key)[:4]`.
        computed: [u8; 4],
    },
    /// The public key is not a usable Ed25519 key (not a point, or of small order).
    #[error("public key is not a valid ed25519 key")]
    InvalidPublicKey,
    /// Two signature lines of the expected key (same name and key id).
    #[error("note has more than one signature by {0}")]
    DuplicateSignature(String),
    /// A signature by the expected key does not verify over the note text.
    #[error("signature by {0} does not verify")]
    InvalidSignature(String),
    /// No signature line is by the expected key (other keys' lines are ignored).
    #[error("note has no signature by the expected key {name} ({})", hex::encode(.key_id))]
    NoValidSignature {
        /// The expected key's name.
        name: String,
        /// The expected key's id.
        key_id: [u8; 4],
    },
    /// The checkpoint body has fewer than its three lines (origin, size, root).
    #[error("checkpoint body has {0} lines, needs at least origin, size and root")]
    TooFewLines(usize),
    /// A checkpoint line (the origin or an extension line) is empty.
    #[error("checkpoint line {0} is empty")]
    EmptyLine(usize),
    /// The tree size is not a decimal without leading zeros that fits in a u64.
    #[error("checkpoint size {0:?} is not a decimal number without leading zeros")]
    InvalidSize(String),
    /// The root hash does not decode to 32 bytes.
    #[error("checkpoint root is {0} bytes, not 32")]
    InvalidRootLength(usize),
    /// The checkpoint's origin is not the one expected.
    #[error("checkpoint origin {found:?} is not the expected {expected:?}")]
    OriginMismatch {
        /// The origin the caller expects.
        expected: String,
        /// The origin in the checkpoint.
        found: String,
    },
}
