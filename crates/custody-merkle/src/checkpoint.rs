//! C2SP transparency-log checkpoints (<https://c2sp.org/tlog-checkpoint>): the signed statement
//! "the log `origin` has `size` entries and this Merkle root", carried as a signed note
//! ([`crate::note`]). The body is three lines, origin, size in decimal, base64 root, optionally
//! followed by extension lines, which are accepted on parsing and never produced. Parsing gives
//! an [`UnverifiedCheckpoint`]; the only way from text to a [`Checkpoint`] is
//! [`UnverifiedCheckpoint::verify`] with the log's key.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::error::NoteError;
use crate::hash::Hash;
use crate::note::{sign_note, NoteSigner, NoteVerifier, SignedNote};

/// A log's size and root under its origin name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Checkpoint {
    /// The log's origin line, its unique name (by convention a schema-less URL).
    pub origin: String,
    /// The number of leaves.
    pub size: u64,
    /// The Merkle root over those leaves (RFC 9162 §2.1.1).
    pub root: Hash,
}

impl Checkpoint {
    /// The note text: `origin\nsize\nbase64(root)\n` (tlog-checkpoint §"Note text").
    #[must_use]
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    /// The signed note: the body, a blank line and `signer`'s signature line.
    ///
    /// # Errors
    /// [`NoteError::EmptyLine`] for an empty origin, [`NoteError::ControlCharacter`] for an
    /// origin holding a newline or other control character.
    pub fn sign(&self, signer: &NoteSigner) -> Result<String, NoteError> {
        if self.origin.is_empty() {
            return Err(NoteError::EmptyLine(1));
        }
        if let Some(c) = self.origin.chars().find(|c| c.is_control()) {
            return Err(NoteError::ControlCharacter(u32::from(c)));
        }
        sign_note(&self.body(), &[signer])
    }
}

/// A checkpoint parsed from a signed note whose signatures are not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnverifiedCheckpoint {
    note: SignedNote,
    claimed: Checkpoint,
    extensions: Vec<String>,
}

impl UnverifiedCheckpoint {
    /// Parses a signed checkpoint note: the signed-note format ([`SignedNote::parse`]), then a
    /// body of at least three non-empty lines, the origin, the size as a decimal without
    /// leading zeros, and the base64 of a 32-byte root, then any extension lines.
    ///
    /// # Errors
    /// Any error of [`SignedNote::parse`]; [`NoteError::TooFewLines`],
    /// [`NoteError::EmptyLine`], [`NoteError::InvalidSize`], [`NoteError::InvalidBase64`],
    /// [`NoteError::InvalidRootLength`].
    pub fn parse(note: impl AsRef<[u8]>) -> Result<Self, NoteError> {
        let note = SignedNote::parse(note)?;
        let text = note.text();
        let lines: Vec<&str> = text
            .strip_suffix('\n')
            .unwrap_or(text)
            .split('\n')
            .collect();
        if let Some(i) = lines.iter().position(|l| l.is_empty()) {
            return Err(NoteError::EmptyLine(i + 1));
        }
        let [origin, size, root, extensions @ ..] = lines.as_slice() else {
            return Err(NoteError::TooFewLines(lines.len()));
        };
        let claimed = Checkpoint {
            origin: (*origin).to_owned(),
            size: parse_size(size)?,
            root: parse_root(root)?,
        };
        let extensions = extensions.iter().map(|l| (*l).to_owned()).collect();
        Ok(Self {
            note,
            claimed,
            extensions,
        })
    }

    /// The origin line, to choose which key to verify with.
    #[must_use]
    pub fn origin(&self) -> &str {
        &self.claimed.origin
    }

    /// The extension lines after the root, if any (unverified).
    #[must_use]
    pub fn extensions(&self) -> &[String] {
        &self.extensions
    }

    /// The parsed note.
    #[must_use]
    pub fn note(&self) -> &SignedNote {
        &self.note
    }

    /// Checks the note's signature by `verifier` over the body (unknown keys' lines are
    /// ignored; see [`SignedNote::verify`]) and returns the checkpoint.
    ///
    /// # Errors
    /// [`NoteError::NoValidSignature`], [`NoteError::DuplicateSignature`],
    /// [`NoteError::InvalidSignature`].
    pub fn verify(self, verifier: &NoteVerifier) -> Result<Checkpoint, NoteError> {
        self.note.verify(verifier)?;
        Ok(self.claimed)
    }

    /// As [`UnverifiedCheckpoint::verify`], and also requires the origin line to be `origin`.
    ///
    /// # Errors
    /// [`NoteError::OriginMismatch`], then as [`UnverifiedCheckpoint::verify`].
    pub fn verify_for_origin(
        self,
        verifier: &NoteVerifier,
        origin: &str,
    ) -> Result<Checkpoint, NoteError> {
        if self.claimed.origin != origin {
            return Err(NoteError::OriginMismatch {
                expected: origin.to_owned(),
                found: self.claimed.origin,
            });
        }
        self.verify(verifier)
    }
}

/// A tree size: ASCII decimal digits, no sign, no leading zero (but "0"), within u64.
fn parse_size(s: &str) -> Result<u64, NoteError> {
    let invalid = || NoteError::InvalidSize(s.to_owned());
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return Err(invalid());
    }
    s.parse().map_err(|_| invalid())
}

/// A root: canonical padded base64 of exactly 32 bytes.
fn parse_root(s: &str) -> Result<Hash, NoteError> {
    let bytes = B64
        .decode(s)
        .map_err(|_| NoteError::InvalidBase64("checkpoint root"))?;
    Hash::try_from(bytes.as_slice()).map_err(|_| NoteError::InvalidRootLength(bytes.len()))
}
