//! Turning input into events ready to store (DESIGN §3, §6, §7).
//!
//! Every line of input passes through [`Preparer`] once: JSON parsing, redaction of secrets,
//! parsing into a typed [`custody_model::Event`], RFC 8785 canonicalization and the RFC 9162
//! leaf hash. What comes out is either a [`NewEvent`] or a [`Rejected`] line naming the file,
//! line and reason (itself redacted, so a secret in a bad line never reaches the
//! quarantine). The [`adapters`] read third-party logs (CloudTrail, GCP audit, Kubernetes
//! audit, Vault audit, OpenTelemetry, GitHub Actions; `docs/formats.md` lists every field read)
//! and yield the same `serde_json::Value` objects, which go through the same path
//! ([`Preparer::prepare_adapted`]); the CloudTrail adapter builds its events as
//! [`adapters::draft`]s instead, which a caller can prepare as they are made
//! ([`Preparer::prepare_draft`], to the same bytes) or take as `Value`s. This crate never
//! writes storage.

pub mod adapters;
pub mod fuzzing;
mod native;
mod summary;

pub use adapters::{detect, read, read_file, read_with, Format, Options, Records};
pub use native::{NdjsonReader, RawLine};
pub use summary::{IngestError, IngestSummary, MAX_LISTED_ERRORS};

use custody_model::{canonical_json, Event, Redactor};
use custody_store::{LineOrigin, NewEvent, Rejected};
use serde_json::Value;

/// How much of a rejected line the quarantine keeps.
pub const EXCERPT_BYTES: usize = 300;

/// Prepares raw input for the store: parse, redact, type, canonicalize, hash.
#[derive(Clone, Debug)]
pub struct Preparer {
    redactor: Redactor,
}

impl Preparer {
    /// A preparer that fingerprints secrets under `redactor`'s key.
    pub fn new(redactor: Redactor) -> Preparer {
        Preparer { redactor }
    }

    /// The redactor in use.
    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Prepares one line of NDJSON.
    pub fn prepare_line(&self, text: &str, origin: LineOrigin) -> Result<NewEvent, Rejected> {
        match serde_json::from_str::<Value>(text) {
            Ok(value) => self
                .prepare_value(value, Some(origin.clone()))
                .map_err(|reason| self.reject(origin, &reason, text)),
            Err(e) => Err(self.reject(origin, &format!("malformed JSON: {e}"), text)),
        }
    }

    /// [`Preparer::prepare_line`] for a caller that only stores the event: the typed event
    /// comes without its `attributes` (the canonical bytes hold them), and a line without
    /// escapes is read into a tape and prepared as a draft ([`Preparer::prepare_draft`])
    /// instead of through a `serde_json::Value`: the same canonical bytes, leaf hash and
    /// typed fields (a test compares both on every native line in tests/data and the
    /// examples), at about half the cost of the `Value`. A line that fails is prepared
    /// again the ordinary way, so its quarantine entry quotes the line as it was.
    pub fn prepare_line_to_store(
        &self,
        text: &str,
        mut origin: LineOrigin,
    ) -> Result<NewEvent, Rejected> {
        if let Some(tape) = adapters::tape::Tape::parse_text(text) {
            if let adapters::draft::Node::Object(draft) = adapters::draft::Node::of(tape.root()) {
                // The canonical bytes are about as long as the line: a buffer of that size
                // rather than 1 KiB halves the memory each event holds until it is written
                // (and the fresh pages the preparing threads fault in for it).
                let size = text.len() + text.len() / 8 + 64;
                match self.prepare_draft_in(origin, draft, size, adapters::draft::Source::Tape) {
                    Ok(event) => return Ok(event),
                    // Its origin back (not a copy of it made for every line in case).
                    Err(rejected) => origin = rejected.origin,
                }
            }
        }
        self.prepare_line(text, origin).map(|mut event| {
            event.event.attributes = None;
            event
        })
    }

    /// Prepares one JSON object (from NDJSON or an adapter). The error is a reason.
    pub fn prepare_value(
        &self,
        value: Value,
        origin: Option<LineOrigin>,
    ) -> Result<NewEvent, String> {
        self.prepare_redacting(value, origin)
            .map_err(|(reason, _)| reason)
    }

    /// As [`Preparer::prepare_value`]; on error also hands back the redacted object, so a
    /// caller can quote it without serialising every event in advance.
    fn prepare_redacting(
        &self,
        mut value: Value,
        origin: Option<LineOrigin>,
    ) -> Result<NewEvent, (String, Value)> {
        self.redactor.redact_value(&mut value);
        // `attributes` are free-form and taken as given: the typed event gets them by move
        // rather than by a deep copy, which for adapter records cost more than the rest of
        // the typing. (Out of the object while it is typed, back in for the canonical form.)
        let attributes = value.get_mut("attributes").map(Value::take);
        let typed = Event::from_value(&value);
        if let (Some(slot), Some(attributes)) = (value.get_mut("attributes"), attributes) {
            *slot = attributes;
        }
        let mut event = match typed {
            Ok(event) => event,
            Err(e) => return Err((e.to_string(), value)),
        };
        let canonical = match canonical_json(&value) {
            Ok(bytes) => bytes,
            Err(e) => return Err((e.to_string(), value)),
        };
        event.attributes = value
            .get_mut("attributes")
            .map(Value::take)
            .filter(|a| !a.is_null());
        Ok(NewEvent::new(event, canonical, origin))
    }

    /// Prepares one item of an adapter ([`adapters::read`]): the event object is prepared
    /// like any other; a rejection (and a prepared object that is not a valid event) comes
    /// back redacted, ready for the quarantine.
    pub fn prepare_adapted(&self, item: adapters::Item) -> Result<NewEvent, Rejected> {
        match item {
            Ok((origin, value)) => self
                .prepare_redacting(value, Some(origin.clone()))
                .map_err(|(reason, redacted)| self.reject(origin, &reason, &redacted.to_string())),
            Err(rejected) => Err(self.reject(rejected.origin, &rejected.reason, &rejected.excerpt)),
        }
    }

    /// Prepares an event an adapter built as a draft ([`adapters::Sink::draft`]) as
    /// [`Preparer::prepare_adapted`] prepares the draft's `Value`, to the same canonical
    /// bytes, leaf hash and quarantine entry, without building the `Value`. The typed event
    /// comes without its `attributes`: they are in the canonical bytes, the one copy the
    /// store keeps, and typing them is most of what a draft saves.
    pub fn prepare_draft(
        &self,
        origin: LineOrigin,
        draft: adapters::draft::Obj<'_>,
    ) -> Result<NewEvent, Rejected> {
        self.prepare_draft_in(origin, draft, 1024, adapters::draft::Source::Any)
    }

    /// [`Preparer::prepare_draft`], the canonical bytes written into a buffer of `size` bytes
    /// (grown if they need more), of a draft whose borrowed strings come from `source`.
    fn prepare_draft_in(
        &self,
        origin: LineOrigin,
        mut draft: adapters::draft::Obj<'_>,
        size: usize,
        source: adapters::draft::Source,
    ) -> Result<NewEvent, Rejected> {
        draft.redact(&self.redactor);
        let attributes = draft.take("attributes");
        let typed = Event::from_fields(&draft, |key| draft.get(key).is_some());
        draft.restore("attributes", attributes);
        let prepared = typed.map_err(|e| e.to_string()).and_then(|event| {
            let canonical = draft
                .canonical_in(Vec::with_capacity(size), source)
                .map_err(|e| e.to_string())?;
            Ok((event, canonical))
        });
        match prepared {
            Ok((event, canonical)) => Ok(NewEvent::new(event, canonical, Some(origin))),
            Err(reason) => Err(self.reject(origin, &reason, &draft.to_value().to_string())),
        }
    }

    /// A quarantine entry whose reason and excerpt are redacted and bounded.
    pub fn reject(&self, origin: LineOrigin, reason: &str, text: &str) -> Rejected {
        let excerpt = self.redactor.redact_text(text);
        Rejected {
            origin,
            reason: self.redactor.redact_text(reason).into_owned(),
            excerpt: truncate(&excerpt, EXCERPT_BYTES),
        }
    }
}

/// At most `max` bytes of `text`, cut at a character boundary, with `…` when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", text.get(..end).unwrap_or_default())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn preparer() -> Preparer {
        Preparer::new(Redactor::new(b"k"))
    }

    fn origin(line: u64) -> LineOrigin {
        LineOrigin {
            file: "in.ndjson".into(),
            line,
        }
    }

    #[test]
    fn a_good_line_is_hashed_over_its_canonical_form() {
        let p = preparer();
        let a = p
            .prepare_line(
                r#"{"source":"s","id":"1","type":"revocation","time":"2026-01-01T00:00:00Z","credential":"c"}"#,
                origin(1),
            )
            .unwrap();
        let b = p
            .prepare_line(
                r#"{ "id":"1", "credential":"c", "time":"2026-01-01T00:00:00Z", "type":"revocation", "source":"s" }"#,
                origin(2),
            )
            .unwrap();
        assert_eq!(a.canonical(), b.canonical());
        assert_eq!(a.leaf_hash(), b.leaf_hash());
        assert_eq!(a.leaf_hash(), custody_merkle::leaf_hash(a.canonical()));
        assert_eq!(a.event.key.to_string(), "s#1");
    }

    #[test]
    fn rejected_lines_are_redacted() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ";
        let line = format!(r#"{{"id":"1","type":"action","source":"s","time":"{jwt}"}}"#);
        let rejected = preparer().prepare_line(&line, origin(7)).unwrap_err();
        assert_eq!(rejected.origin.line, 7);
        assert!(
            rejected.reason.contains("not an RFC 3339 timestamp"),
            "{}",
            rejected.reason
        );
        assert!(!rejected.reason.contains(jwt));
        assert!(!rejected.excerpt.contains(jwt));
        let malformed = preparer()
            .prepare_line(&format!("{{\"x\": \"{jwt}"), origin(8))
            .unwrap_err();
        assert!(
            malformed.reason.starts_with("malformed JSON"),
            "{}",
            malformed.reason
        );
        assert!(!malformed.excerpt.contains(jwt));
    }

    /// The store's fast path prepares every native line as `prepare_line` does: the same
    /// bytes, hash and typed event (without attributes), or the same quarantine entry.
    #[test]
    fn lines_prepared_to_store_are_prepared_lines() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut lines: Vec<String> = Vec::new();
        let mut files: Vec<_> = std::fs::read_dir(root.join("examples"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "ndjson"))
            .collect();
        files.push(root.join("tests/data/secrets.ndjson"));
        files.push(root.join("tests/data/bad-input.ndjson"));
        for file in files {
            let text = std::fs::read_to_string(file).unwrap();
            lines.extend(text.lines().map(str::to_owned));
        }
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ";
        lines.extend([
            // A repeated key (the last counts), numbers in several spellings, non-ASCII
            // text and keys, secrets by shape and name at several depths.
            format!(r#"{{"id":"d1","id":"d2","type":"revocation","source":"s","time":"2026-01-01T00:00:00+02:00","credential":"c","attributes":{{"n":[1.50,1e2,-0,12345678901234567890],"é":"ünï","password":"p","x":{{"token":{{"a":["b"]}}}},"{jwt}":1}}}}"#),
            format!(r#"{{"id":"a1","type":"action","source":"s","time":"2026-01-01T00:00:00Z","actor":"{jwt}","operation":"op","resource":"r"}}"#),
            r#"{"id":"x","type":"action","source":"s","time":"not a time"}"#.to_owned(),
            r#"[1, 2]"#.to_owned(),
            r#"{"id":"q","type":"revocation","source":"s","time":"2026-01-01T00:00:00Z","credential":"c"q"}"#.to_owned(),
        ]);
        let p = preparer();
        let mut compared = 0;
        for (i, line) in lines.iter().filter(|l| !l.trim().is_empty()).enumerate() {
            let fast = p.prepare_line_to_store(line, origin(i as u64));
            let slow = p.prepare_line(line, origin(i as u64));
            match (fast, slow) {
                (Ok(f), Ok(mut s)) => {
                    assert_eq!(f.canonical(), s.canonical(), "{line}");
                    assert_eq!(f.leaf_hash(), s.leaf_hash());
                    assert!(f.event.attributes.is_none());
                    s.event.attributes = None;
                    assert_eq!(f.event, s.event, "{line}");
                }
                (Err(f), Err(s)) => assert_eq!(f, s, "{line}"),
                (f, s) => assert_eq!(f.is_ok(), s.is_ok(), "{line}: {f:?} / {s:?}"),
            }
            compared += 1;
        }
        assert!(compared >= 100, "only {compared} lines");
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h…");
        assert_eq!(truncate("abc", 3), "abc");
    }
}
