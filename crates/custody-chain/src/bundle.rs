//! Evidence bundles (DESIGN §8, `docs/bundle.schema.json`): a chain's events, each with its
//! exact canonical bytes, its log index and an RFC 9162 inclusion proof against one signed
//! C2SP checkpoint, so that anyone holding the log's verifier key can check the chain
//! without the database.
//!
//! A bundle read from a file is an [`UnverifiedBundle`]; the only way to a [`Bundle`] is
//! [`UnverifiedBundle::verify`], which checks the checkpoint's signature, recomputes each
//! leaf hash from the bytes (RFC 9162 §2.1.1), checks each inclusion proof against the
//! checkpoint's root and size (§2.1.3.2), and parses each event. Verification does no I/O.

use std::collections::BTreeSet;
use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use custody_merkle::{
    inclusion_proof, leaf_hash, verify_inclusion, Checkpoint, Hash, NoteVerifier,
    UnverifiedCheckpoint,
};
use custody_model::{Event, EventKey};
use custody_store::{Store, StoreError, StoredCheckpoint, StoredEvent};
use serde::{Deserialize, Serialize};

/// The `format` of the bundles this version writes and reads.
pub const BUNDLE_FORMAT: &str = "custody-bundle/1";

/// Why a bundle could not be made or read (as opposed to read and found altered).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The input is not a bundle: not JSON, a field missing or of the wrong type, another
    /// format.
    #[error("not an evidence bundle: {0}")]
    Malformed(String),
    /// An event to export is not covered by the checkpoint.
    #[error("event {event} (index {index}) is not covered by the checkpoint of size {size}")]
    NotCovered {
        /// The event.
        event: String,
        /// Its log index.
        index: u64,
        /// The checkpoint's size.
        size: u64,
    },
    /// The stored leaf hashes do not lead to the checkpoint's root: the log itself does not
    /// verify (run `custody verify`).
    #[error("the stored log does not match its checkpoint of size {0}; run `custody verify`")]
    LogMismatch(u64),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One event as carried in a bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleEntry {
    /// `source#id`, as a label; it must match the bytes.
    pub event: String,
    /// The log index (the Merkle leaf index).
    pub index: u64,
    /// The event's canonical bytes (RFC 8785 JSON), exactly as hashed into the log.
    pub canonical: String,
    /// The inclusion proof (RFC 9162 §2.1.3) at the checkpoint's size, base64 hashes.
    pub proof: Vec<String>,
}

/// A bundle as written to and read from a file, not yet checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnverifiedBundle {
    /// [`BUNDLE_FORMAT`].
    pub format: String,
    /// The log's origin (the checkpoint's first line and the key's name).
    pub origin: String,
    /// The event the bundle was exported for.
    pub start: String,
    /// The signed checkpoint note (C2SP tlog-checkpoint, signed-note), verbatim.
    pub checkpoint: String,
    /// The chain's events, in log order.
    pub events: Vec<BundleEntry>,
}

/// One event of a verified bundle.
#[derive(Clone, Debug)]
pub struct BundleEvent {
    /// Its log index.
    pub index: u64,
    /// The typed event parsed from the bytes.
    pub event: Event,
    /// The verified bytes.
    pub canonical: Vec<u8>,
}

/// A bundle whose checkpoint signature, leaf hashes and inclusion proofs all verified.
#[derive(Clone, Debug)]
pub struct Bundle {
    /// The event the bundle was exported for.
    pub start: String,
    /// The verified checkpoint.
    pub checkpoint: Checkpoint,
    /// The events, in log order.
    pub events: Vec<BundleEvent>,
}

/// What failed when a bundle was checked: one sentence per problem, naming the event,
/// proof or signature concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleFailure {
    /// The problems, in the order found.
    pub problems: Vec<String>,
}

impl fmt::Display for BundleFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problems.join("; "))
    }
}

impl std::error::Error for BundleFailure {}

impl UnverifiedBundle {
    /// A bundle of `events` proven against `checkpoint`. The leaf hashes are read once;
    /// each proof is computed from them, and the checkpoint's root is recomputed first so
    /// that a damaged log never yields a bundle that cannot verify.
    ///
    /// # Errors
    /// [`BundleError::NotCovered`] for an event past the checkpoint,
    /// [`BundleError::LogMismatch`] when the stored leaves do not give the checkpoint's root.
    pub fn export<'a>(
        store: &dyn Store,
        origin: &str,
        start: &str,
        events: impl IntoIterator<Item = &'a StoredEvent>,
        checkpoint: &StoredCheckpoint,
    ) -> Result<UnverifiedBundle, BundleError> {
        let leaves = store.leaf_hashes(0, checkpoint.size)?;
        if custody_merkle::root(&leaves) != checkpoint.root {
            return Err(BundleError::LogMismatch(checkpoint.size));
        }
        let mut entries = Vec::new();
        for e in events {
            if e.index >= checkpoint.size {
                return Err(BundleError::NotCovered {
                    event: e.key().to_string(),
                    index: e.index,
                    size: checkpoint.size,
                });
            }
            let proof = inclusion_proof(&leaves, e.index)
                .map_err(|err| StoreError::Backend(format!("inclusion proof: {err}")))?;
            let canonical =
                String::from_utf8(e.canonical.clone()).map_err(|_| StoreError::Corrupt {
                    index: e.index,
                    reason: "canonical bytes are not utf-8".into(),
                })?;
            entries.push(BundleEntry {
                event: e.key().to_string(),
                index: e.index,
                canonical,
                proof: proof.iter().map(|h| B64.encode(h)).collect(),
            });
        }
        entries.sort_by_key(|e| e.index);
        Ok(UnverifiedBundle {
            format: BUNDLE_FORMAT.to_owned(),
            origin: origin.to_owned(),
            start: start.to_owned(),
            checkpoint: checkpoint.note.clone(),
            events: entries,
        })
    }

    /// Reads a bundle's JSON. Only the shape is checked here; the content is checked by
    /// [`UnverifiedBundle::verify`].
    ///
    /// # Errors
    /// [`BundleError::Malformed`]: not JSON, a field missing or mistyped, another format.
    pub fn parse(bytes: &[u8]) -> Result<UnverifiedBundle, BundleError> {
        let bundle: UnverifiedBundle =
            serde_json::from_slice(bytes).map_err(|e| BundleError::Malformed(e.to_string()))?;
        if bundle.format != BUNDLE_FORMAT {
            return Err(BundleError::Malformed(format!(
                "format `{}`, expected `{BUNDLE_FORMAT}`",
                bundle.format
            )));
        }
        Ok(bundle)
    }

    /// The JSON text written to a file.
    ///
    /// # Errors
    /// Never in practice (the types serialize); a serializer error otherwise.
    pub fn to_json_pretty(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }

    /// Checks everything with `verifier` alone: the checkpoint's signature and origin, then
    /// for every event its bytes parse as an event named by its label, its leaf hash
    /// recomputed from the bytes, and its inclusion proof against the checkpoint.
    ///
    /// # Errors
    /// [`BundleFailure`] listing every problem found, each naming what failed.
    pub fn verify(&self, verifier: &NoteVerifier) -> Result<Bundle, BundleFailure> {
        let mut problems = Vec::new();
        let checkpoint = match UnverifiedCheckpoint::parse(self.checkpoint.as_bytes()) {
            Err(e) => {
                problems.push(format!("checkpoint: the note is malformed: {e}"));
                None
            }
            Ok(unverified) => match unverified.verify(verifier) {
                Err(e) => {
                    problems.push(format!(
                        "checkpoint: the signature does not verify with key `{}`: {e}",
                        verifier.name()
                    ));
                    None
                }
                Ok(c) => Some(c),
            },
        };
        if let Some(c) = &checkpoint {
            if c.origin != self.origin {
                problems.push(format!(
                    "checkpoint: signed for origin `{}`, but the bundle names `{}`",
                    c.origin, self.origin
                ));
            }
        }
        if !self.events.iter().any(|e| e.event == self.start) {
            problems.push(format!(
                "bundle: the exported event `{}` is not among its events",
                self.start
            ));
        }
        let mut seen = BTreeSet::new();
        let mut events = Vec::new();
        for entry in &self.events {
            let name = format!("event `{}` (index {})", entry.event, entry.index);
            if !seen.insert(entry.index) {
                problems.push(format!("{name}: index given twice"));
                continue;
            }
            let bytes = entry.canonical.as_bytes();
            match parse_event(bytes) {
                Ok(event) if event.key.to_string() == entry.event => {
                    events.push(BundleEvent {
                        index: entry.index,
                        event,
                        canonical: bytes.to_vec(),
                    });
                }
                Ok(event) => problems.push(format!(
                    "{name}: the bytes are event `{}`, not the one labelled",
                    event.key
                )),
                Err(e) => problems.push(format!("{name}: the bytes are not an event: {e}")),
            }
            let Some(c) = &checkpoint else {
                continue; // nothing trusted to prove against
            };
            let proof: Result<Vec<Hash>, String> = entry
                .proof
                .iter()
                .enumerate()
                .map(|(i, h)| decode_hash(h).map_err(|why| format!("proof hash {i}: {why}")))
                .collect();
            let proof = match proof {
                Ok(p) => p,
                Err(why) => {
                    problems.push(format!("{name}: inclusion proof is malformed: {why}"));
                    continue;
                }
            };
            if let Err(e) =
                verify_inclusion(&leaf_hash(bytes), entry.index, c.size, &proof, &c.root)
            {
                problems.push(format!(
                    "{name}: inclusion proof does not lead to the checkpoint's root at size {} \
                     (the event's bytes or the proof were altered): {e}",
                    c.size
                ));
            }
        }
        match checkpoint {
            Some(checkpoint) if problems.is_empty() => Ok(Bundle {
                start: self.start.clone(),
                checkpoint,
                events,
            }),
            _ => Err(BundleFailure { problems }),
        }
    }
}

fn parse_event(bytes: &[u8]) -> Result<Event, String> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    Event::from_value(&value).map_err(|e| e.to_string())
}

fn decode_hash(text: &str) -> Result<Hash, String> {
    let bytes = B64
        .decode(text)
        .map_err(|_| format!("`{text}` is not base64"))?;
    Hash::try_from(bytes.as_slice()).map_err(|_| format!("{} bytes, not 32", bytes.len()))
}

impl Bundle {
    /// The keys of the events, in log order.
    pub fn keys(&self) -> Vec<&EventKey> {
        self.events.iter().map(|e| &e.event.key).collect()
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests {
    use super::*;
    use crate::{LinkConfig, Trace};
    use custody_ingest::Preparer;
    use custody_merkle::NoteSigner;
    use custody_model::Redactor;
    use custody_store::{Ledger, LineOrigin};
    use custody_store_sqlite::SqliteStore;

    const ORIGIN: &str = "example.test/log";

    fn ledger() -> (Ledger, NoteVerifier) {
        let store = SqliteStore::open_in_memory().unwrap();
        let signer = NoteSigner::generate(ORIGIN, [7u8; 32]).unwrap();
        let verifier = signer.verifier();
        let mut ledger = Ledger::new(Box::new(store), signer, ORIGIN);
        let preparer = Preparer::new(Redactor::new(b"k"));
        let text = include_str!("../../../examples/04-leaked-secret.ndjson");
        let events: Vec<_> = text
            .lines()
            .enumerate()
            .map(|(i, l)| {
                let origin = LineOrigin {
                    file: "t".into(),
                    line: i as u64 + 1,
                };
                preparer.prepare_line(l, origin).unwrap()
            })
            .collect();
        ledger.append(&events, &[]).unwrap();
        (ledger, verifier)
    }

    fn bundle(ledger: &mut Ledger) -> UnverifiedBundle {
        let start = "aws:cloudtrail:123456789012#s4-act-7";
        let trace = Trace::of_event(ledger.store(), start, &LinkConfig::default()).unwrap();
        let checkpoint = ledger.checkpoint().unwrap();
        UnverifiedBundle::export(
            ledger.store(),
            ORIGIN,
            start,
            trace.events.values(),
            &checkpoint,
        )
        .unwrap()
    }

    #[test]
    fn an_exported_bundle_verifies_and_survives_a_round_trip() {
        let (mut ledger, verifier) = ledger();
        let b = bundle(&mut ledger);
        assert!(b.events.len() >= 5, "{}", b.events.len());
        let text = b.to_json_pretty().unwrap();
        let back = UnverifiedBundle::parse(text.as_bytes()).unwrap();
        assert_eq!(back, b);
        let ok = back.verify(&verifier).unwrap();
        assert_eq!(ok.events.len(), b.events.len());
        assert_eq!(ok.checkpoint.origin, ORIGIN);
    }

    #[test]
    fn any_altered_byte_is_named() {
        let (mut ledger, verifier) = ledger();
        let good = bundle(&mut ledger);

        let mut b = good.clone();
        b.events[1].canonical = b.events[1].canonical.replacen("2026", "2027", 1);
        let err = b.verify(&verifier).unwrap_err().to_string();
        assert!(
            err.contains(&good.events[1].event) && err.contains("inclusion proof"),
            "{err}"
        );

        let mut b = good.clone();
        let mut h = B64.decode(&b.events[0].proof[0]).unwrap();
        h[5] ^= 1;
        b.events[0].proof[0] = B64.encode(h);
        let err = b.verify(&verifier).unwrap_err().to_string();
        assert!(err.contains(&good.events[0].event), "{err}");

        let mut b = good.clone();
        b.checkpoint = b.checkpoint.replacen("\n", "\n1", 1); // the size line
        let err = b.verify(&verifier).unwrap_err().to_string();
        assert!(err.starts_with("checkpoint:"), "{err}");

        let other = NoteSigner::generate(ORIGIN, [8u8; 32]).unwrap().verifier();
        let err = good.verify(&other).unwrap_err().to_string();
        assert!(err.contains("signature"), "{err}");

        let mut b = good.clone();
        b.events[2].event = good.events[3].event.clone();
        let err = b.verify(&verifier).unwrap_err().to_string();
        assert!(err.contains("not the one labelled"), "{err}");
    }

    #[test]
    fn malformed_input_is_not_a_bundle() {
        assert!(matches!(
            UnverifiedBundle::parse(b"{\"format\":"),
            Err(BundleError::Malformed(_))
        ));
        assert!(matches!(
            UnverifiedBundle::parse(
                br#"{"format":"other/1","origin":"o","start":"s","checkpoint":"","events":[]}"#
            ),
            Err(BundleError::Malformed(_))
        ));
    }
}
