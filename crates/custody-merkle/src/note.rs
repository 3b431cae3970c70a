//! C2SP signed notes (<https://c2sp.org/signed-note>) with Ed25519 keys: signing a note text,
//! parsing a signed note, and verifying it against one expected key, plus the one-line key
//! strings of Go's `golang.org/x/mod/sumdb/note` (private `PRIVATE+KEY+name+id+key` and
//! verifier `name+id+key`) so keys move between Custody and other tools unchanged. A note is
//! its text, a blank line, and signature lines `— <name> <base64(key id || signature)>`; the
//! key id is the first 4 bytes of `SHA-256(name || 0x0A || 0x01 || public key)`. No I/O: the
//! caller reads and writes key files and supplies randomness for new keys.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::error::NoteError;

/// The most signature lines a note may carry (the spec requires accepting at least 16).
pub const MAX_SIGNATURES: usize = 100;

/// Signature type byte of Ed25519 note signatures (signed-note §"Signature types").
pub const ALG_ED25519: u8 = 0x01;

/// The start of every signature line: U+2014 EM DASH and a space.
const SIG_PREFIX: &str = "\u{2014} ";

/// The prefix of private key strings in the Go `note` format.
const PRIVATE_PREFIX: &str = "PRIVATE+KEY+";

/// The 4-byte key id of an Ed25519 note key: `SHA-256(name || 0x0A || 0x01 || public key)[:4]`
/// (signed-note §"Signatures").
#[must_use]
pub fn key_id(name: &str, public_key: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([0x0a, ALG_ED25519]);
    h.update(public_key);
    let digest: [u8; 32] = h.finalize().into();
    let [a, b, c, d, ..] = digest;
    [a, b, c, d]
}

/// `0x01 || key`, the key material of Ed25519 key strings.
fn key_material(key: &[u8; 32]) -> Vec<u8> {
    let mut material = Vec::with_capacity(33);
    material.push(ALG_ED25519);
    material.extend_from_slice(key);
    material
}

/// Checks a key name: non-empty, no Unicode whitespace, no `+`, no control characters
/// (signed-note §"Signatures": names are non-empty and contain no spaces or `+`).
fn check_name(name: &str) -> Result<(), NoteError> {
    let bad = name.is_empty()
        || name
            .chars()
            .any(|c| c.is_whitespace() || c == '+' || c.is_control());
    if bad {
        return Err(NoteError::InvalidKeyName(name.to_owned()));
    }
    Ok(())
}

/// Checks note text: non-empty, ends in a newline, no control character but newline.
fn check_text(text: &str) -> Result<(), NoteError> {
    if text.is_empty() {
        return Err(NoteError::EmptyText);
    }
    check_controls(text)?;
    if !text.ends_with('\n') {
        return Err(NoteError::MissingNewline("note text"));
    }
    Ok(())
}

fn check_controls(text: &str) -> Result<(), NoteError> {
    match text.chars().find(|&c| c < ' ' && c != '\n') {
        Some(c) => Err(NoteError::ControlCharacter(u32::from(c))),
        None => Ok(()),
    }
}

/// Decodes `<alg byte || 32-byte key>` base64 key material; `what` names it in errors and
/// `wrong_length` is the error for material of the wrong length.
fn decode_key_material(
    b64: &str,
    what: &'static str,
    wrong_length: NoteError,
) -> Result<[u8; 32], NoteError> {
    let raw = B64
        .decode(b64)
        .map_err(|_| NoteError::InvalidBase64(what))?;
    let (alg, key) = raw.split_first().ok_or(NoteError::InvalidBase64(what))?;
    if *alg != ALG_ED25519 {
        return Err(NoteError::UnsupportedAlgorithm(*alg));
    }
    <[u8; 32]>::try_from(key).map_err(|_| wrong_length)
}

/// Decodes an 8-hex-digit key id.
fn decode_key_id(hex8: &str) -> Option<[u8; 4]> {
    if hex8.len() != 8 {
        return None;
    }
    let mut id = [0u8; 4];
    hex::decode_to_slice(hex8, &mut id).ok()?;
    Some(id)
}

/// A public key that verifies notes: a key name, its key id and an Ed25519 key.
///
/// Its text form is the note verifier key `<name>+<hex8 key id>+<base64(0x01 || key)>`
/// ([`fmt::Display`] and [`NoteVerifier::parse`]).
#[derive(Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: [u8; 4],
    key: VerifyingKey,
}

impl NoteVerifier {
    /// A verifier for `key` under `name`.
    ///
    /// # Errors
    /// [`NoteError::InvalidKeyName`], or [`NoteError::InvalidPublicKey`] for a weak
    /// (small-order) key, under which signatures can be forged.
    pub fn new(name: impl Into<String>, key: VerifyingKey) -> Result<Self, NoteError> {
        let name = name.into();
        check_name(&name)?;
        if key.is_weak() {
            return Err(NoteError::InvalidPublicKey);
        }
        let key_id = key_id(&name, key.as_bytes());
        Ok(Self { name, key_id, key })
    }

    /// Parses `<name>+<hex8 key id>+<base64(0x01 || public key)>`; surrounding whitespace
    /// (a key file's final newline) is ignored.
    ///
    /// # Errors
    /// [`NoteError::InvalidVerifierKey`] for a string not of that form,
    /// [`NoteError::InvalidKeyName`], [`NoteError::InvalidBase64`],
    /// [`NoteError::UnsupportedAlgorithm`], [`NoteError::InvalidPublicKey`], and
    /// [`NoteError::KeyIdMismatch`] when the id is not the one the name and key give.
    pub fn parse(vkey: &str) -> Result<Self, NoteError> {
        let vkey = vkey.trim();
        let (name, rest) = vkey.split_once('+').ok_or(NoteError::InvalidVerifierKey(
            "expected <name>+<hex8 id>+<base64 key>",
        ))?;
        let (hex8, b64) = rest.split_once('+').ok_or(NoteError::InvalidVerifierKey(
            "expected <name>+<hex8 id>+<base64 key>",
        ))?;
        check_name(name)?;
        let stated = decode_key_id(hex8).ok_or(NoteError::InvalidVerifierKey(
            "the key id is not 8 hex digits",
        ))?;
        let bytes = decode_key_material(
            b64,
            "verifier key",
            NoteError::InvalidVerifierKey("the key is not 32 bytes"),
        )?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| NoteError::InvalidPublicKey)?;
        let verifier = Self::new(name, key)?;
        if verifier.key_id != stated {
            return Err(NoteError::KeyIdMismatch {
                stated,
                computed: verifier.key_id,
            });
        }
        Ok(verifier)
    }

    /// The key name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key id.
    #[must_use]
    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    /// The Ed25519 public key.
    #[must_use]
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.key
    }
}

impl fmt::Display for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}+{}+{}",
            self.name,
            hex::encode(self.key_id),
            B64.encode(key_material(self.key.as_bytes()))
        )
    }
}

impl fmt::Debug for NoteVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("NoteVerifier")
            .field(&self.to_string())
            .finish()
    }
}

impl FromStr for NoteVerifier {
    type Err = NoteError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A private key that signs notes: a key name and an Ed25519 signing key.
///
/// Its text form is Go's `PRIVATE+KEY+<name>+<hex8 key id>+<base64(0x01 || seed)>`
/// ([`NoteSigner::to_private_key_string`] and [`NoteSigner::parse`]), one line, so a key file
/// is that line. `Debug` does not show the key.
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    key_id: [u8; 4],
    key: SigningKey,
}

impl NoteSigner {
    /// A signer with `key` under `name`.
    ///
    /// # Errors
    /// [`NoteError::InvalidKeyName`].
    pub fn new(name: impl Into<String>, key: SigningKey) -> Result<Self, NoteError> {
        let name = name.into();
        check_name(&name)?;
        let key_id = key_id(&name, key.verifying_key().as_bytes());
        Ok(Self { name, key_id, key })
    }

    /// A new key from a 32-byte Ed25519 seed, which the caller draws from a secure random
    /// source (this crate does no I/O).
    ///
    /// # Errors
    /// [`NoteError::InvalidKeyName`].
    pub fn generate(name: impl Into<String>, seed: [u8; 32]) -> Result<Self, NoteError> {
        Self::new(name, SigningKey::from_bytes(&seed))
    }

    /// Parses `PRIVATE+KEY+<name>+<hex8 key id>+<base64(0x01 || 32-byte seed)>`; surrounding
    /// whitespace (a key file's final newline) is ignored.
    ///
    /// # Errors
    /// [`NoteError::InvalidPrivateKey`] for a string not of that form,
    /// [`NoteError::InvalidKeyName`], [`NoteError::InvalidBase64`],
    /// [`NoteError::UnsupportedAlgorithm`], and [`NoteError::KeyIdMismatch`].
    pub fn parse(private_key: &str) -> Result<Self, NoteError> {
        let rest =
            private_key
                .trim()
                .strip_prefix(PRIVATE_PREFIX)
                .ok_or(NoteError::InvalidPrivateKey(
                    "missing the PRIVATE+KEY+ prefix",
                ))?;
        let (name, rest) = rest.split_once('+').ok_or(NoteError::InvalidPrivateKey(
            "expected PRIVATE+KEY+<name>+<hex8 id>+<base64 key>",
        ))?;
        let (hex8, b64) = rest.split_once('+').ok_or(NoteError::InvalidPrivateKey(
            "expected PRIVATE+KEY+<name>+<hex8 id>+<base64 key>",
        ))?;
        check_name(name)?;
        let stated = decode_key_id(hex8).ok_or(NoteError::InvalidPrivateKey(
            "the key id is not 8 hex digits",
        ))?;
        let seed = decode_key_material(
            b64,
            "private key",
            NoteError::InvalidPrivateKey("the key is not 32 bytes"),
        )?;
        let signer = Self::generate(name, seed)?;
        if signer.key_id != stated {
            return Err(NoteError::KeyIdMismatch {
                stated,
                computed: signer.key_id,
            });
        }
        Ok(signer)
    }

    /// The private key string `PRIVATE+KEY+<name>+<hex8 key id>+<base64(0x01 || seed)>`.
    /// It is the secret: store it like one.
    #[must_use]
    pub fn to_private_key_string(&self) -> String {
        format!(
            "{PRIVATE_PREFIX}{}+{}+{}",
            self.name,
            hex::encode(self.key_id),
            B64.encode(key_material(self.key.as_bytes()))
        )
    }

    /// The matching verifier (public) key.
    #[must_use]
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// The key name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key id.
    #[must_use]
    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    /// The signature line `— <name> <base64(key id || signature)>\n` over `text`.
    ///
    /// # Errors
    /// As [`sign_note`].
    pub fn signature_line(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        let signature = self.key.sign(text.as_bytes());
        let mut blob = Vec::with_capacity(4 + 64);
        blob.extend_from_slice(&self.key_id);
        blob.extend_from_slice(&signature.to_bytes());
        Ok(format!("{SIG_PREFIX}{} {}\n", self.name, B64.encode(blob)))
    }
}

impl fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoteSigner")
            .field("name", &self.name)
            .field("key_id", &hex::encode(self.key_id))
            .finish_non_exhaustive()
    }
}

/// Signs `text` with each of `signers` and returns the signed note: the text, a blank line,
/// and one signature line per signer (signed-note §"Format").
///
/// # Errors
/// [`NoteError::EmptyText`], [`NoteError::ControlCharacter`], or [`NoteError::MissingNewline`]
/// when the text does not end in a newline; [`NoteError::NoSignatures`] without signers.
pub fn sign_note(text: &str, signers: &[&NoteSigner]) -> Result<String, NoteError> {
    check_text(text)?;
    if signers.is_empty() {
        return Err(NoteError::NoSignatures);
    }
    let mut note = String::with_capacity(text.len() + 1 + signers.len() * 120);
    note.push_str(text);
    note.push('\n');
    for signer in signers {
        note.push_str(&signer.signature_line(text)?);
    }
    Ok(note)
}

/// One signature line of a note, not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureLine {
    name: String,
    key_id: [u8; 4],
    signature: Vec<u8>,
}

impl SignatureLine {
    /// The key name on the line.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id on the line.
    #[must_use]
    pub fn key_id(&self) -> [u8; 4] {
        self.key_id
    }

    /// The signature bytes after the key id.
    #[must_use]
    pub fn signature(&self) -> &[u8] {
        &self.signature
    }
}

/// A parsed, not yet verified, signed note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNote {
    text: String,
    signatures: Vec<SignatureLine>,
}

impl SignedNote {
    /// Parses a signed note (signed-note §"Format"): UTF-8 with no control character but
    /// newline, ending in a newline; the text is everything up to and including the newline
    /// before the last blank line, and every line after it is a signature line.
    ///
    /// # Errors
    /// [`NoteError::NotUtf8`], [`NoteError::ControlCharacter`], [`NoteError::MissingNewline`],
    /// [`NoteError::MissingBlankLine`], [`NoteError::EmptyText`], [`NoteError::NoSignatures`],
    /// [`NoteError::MalformedSignatureLine`], [`NoteError::InvalidBase64`],
    /// [`NoteError::TooManySignatures`].
    pub fn parse(note: impl AsRef<[u8]>) -> Result<Self, NoteError> {
        let note = std::str::from_utf8(note.as_ref()).map_err(|_| NoteError::NotUtf8)?;
        check_controls(note)?;
        if !note.ends_with('\n') {
            return Err(NoteError::MissingNewline("note"));
        }
        let split = note.rfind("\n\n").ok_or(NoteError::MissingBlankLine)?;
        let (text, block) = note.split_at(split + 1);
        let block = block.strip_prefix('\n').unwrap_or(block);
        if text.chars().all(|c| c == '\n') {
            return Err(NoteError::EmptyText);
        }
        if block.is_empty() {
            return Err(NoteError::NoSignatures);
        }
        let lines: Vec<&str> = block
            .strip_suffix('\n')
            .unwrap_or(block)
            .split('\n')
            .collect();
        if lines.len() > MAX_SIGNATURES {
            return Err(NoteError::TooManySignatures(lines.len()));
        }
        let mut signatures = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            signatures.push(parse_signature_line(line, i + 1)?);
        }
        Ok(Self {
            text: text.to_owned(),
            signatures,
        })
    }

    /// The note text (what was signed), ending in a newline.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The signature lines, in order.
    #[must_use]
    pub fn signatures(&self) -> &[SignatureLine] {
        &self.signatures
    }

    /// Verifies the note against one expected key (signed-note §"Verification"): lines whose
    /// name and key id are not that key's are ignored; the key's line must appear once and its
    /// Ed25519 signature must verify (strictly) over the note text.
    ///
    /// # Errors
    /// [`NoteError::NoValidSignature`] when no line is by the key,
    /// [`NoteError::DuplicateSignature`] when two are, [`NoteError::InvalidSignature`] when it
    /// does not verify.
    pub fn verify(&self, verifier: &NoteVerifier) -> Result<(), NoteError> {
        let mut found = false;
        for line in &self.signatures {
            if line.name != verifier.name || line.key_id != verifier.key_id {
                continue;
            }
            if found {
                return Err(NoteError::DuplicateSignature(verifier.name.clone()));
            }
            found = true;
            let bytes = <[u8; 64]>::try_from(line.signature.as_slice())
                .map_err(|_| NoteError::InvalidSignature(verifier.name.clone()))?;
            let signature = Signature::from_bytes(&bytes);
            verifier
                .key
                .verify_strict(self.text.as_bytes(), &signature)
                .map_err(|_| NoteError::InvalidSignature(verifier.name.clone()))?;
        }
        if !found {
            return Err(NoteError::NoValidSignature {
                name: verifier.name.clone(),
                key_id: verifier.key_id,
            });
        }
        Ok(())
    }
}

/// Parses `— <name> <base64(key id || signature)>` (line number `n` for errors).
fn parse_signature_line(line: &str, n: usize) -> Result<SignatureLine, NoteError> {
    let malformed = |reason| NoteError::MalformedSignatureLine { line: n, reason };
    let rest = line
        .strip_prefix(SIG_PREFIX)
        .ok_or(malformed("it does not start with an em dash and a space"))?;
    let (name, b64) = rest
        .rsplit_once(' ')
        .ok_or(malformed("no space between key name and signature"))?;
    if check_name(name).is_err() {
        return Err(malformed("invalid key name"));
    }
    let blob = B64
        .decode(b64)
        .map_err(|_| NoteError::InvalidBase64("signature line"))?;
    match blob.split_first_chunk::<4>() {
        Some((key_id, signature)) if !signature.is_empty() => Ok(SignatureLine {
            name: name.to_owned(),
            key_id: *key_id,
            signature: signature.to_vec(),
        }),
        _ => Err(malformed(
            "the signature is shorter than a key id and one byte",
        )),
    }
}
