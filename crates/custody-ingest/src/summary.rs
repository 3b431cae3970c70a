//! The result of an ingest (DESIGN §10 shape): what `custody ingest` prints and what
//! `POST /v1/events` answers.

use std::collections::BTreeMap;

use serde_json::json;

/// Errors listed in a summary; past this they are counted only.
pub const MAX_LISTED_ERRORS: usize = 1_000;

/// One error line of the summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngestError {
    /// The file.
    pub file: String,
    /// The line (0 when the whole file failed).
    pub line: u64,
    /// Why.
    pub reason: String,
}

/// The result of an ingest (DESIGN §10 shape).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IngestSummary {
    /// Events appended.
    pub accepted: u64,
    /// Events already stored with the same content.
    pub duplicates: u64,
    /// Lines quarantined.
    pub quarantined: u64,
    /// The first errors, with file and line.
    pub errors: Vec<IngestError>,
    /// Errors past [`MAX_LISTED_ERRORS`].
    pub errors_omitted: u64,
    /// Whether a file could not be read at all.
    pub unreadable: bool,
    /// The log size afterwards.
    pub size: u64,
    /// Records understood but carrying nothing to record, by reason (adapters).
    pub skipped: BTreeMap<String, u64>,
    /// Records read per input format (adapters).
    pub formats: BTreeMap<String, u64>,
}

impl IngestSummary {
    /// Lists an error (the first [`MAX_LISTED_ERRORS`]; past that, counts it).
    pub fn note_error(&mut self, file: &str, line: u64, reason: &str) {
        if self.errors.len() < MAX_LISTED_ERRORS {
            self.errors.push(IngestError {
                file: file.to_owned(),
                line,
                reason: reason.to_owned(),
            });
        } else {
            self.errors_omitted += 1;
        }
    }

    /// `{"accepted", "duplicates", "quarantined", "errors": [{"file", "line", "reason"}]}`.
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "quarantined": self.quarantined,
            "errors": self.errors.iter().map(|e| json!({"file": e.file, "line": e.line, "reason": e.reason})).collect::<Vec<_>>(),
            "errors_omitted": self.errors_omitted,
            "size": self.size,
            "skipped": self.skipped,
            "formats": self.formats,
        })
    }

    /// A short report for people.
    pub fn to_text(&self) -> String {
        let mut out = format!(
            "accepted {}, duplicates {}, quarantined {} (log size {})\n",
            self.accepted, self.duplicates, self.quarantined, self.size
        );
        for e in &self.errors {
            if e.line == 0 {
                out.push_str(&format!("  {}: {}\n", e.file, e.reason));
            } else {
                out.push_str(&format!("  {}:{}: {}\n", e.file, e.line, e.reason));
            }
        }
        if !self.formats.is_empty() {
            let formats: Vec<String> = self
                .formats
                .iter()
                .map(|(f, n)| format!("{f} {n}"))
                .collect();
            out.push_str(&format!("  records by format: {}\n", formats.join(", ")));
        }
        let skipped: u64 = self.skipped.values().sum();
        if skipped > 0 {
            let reasons: Vec<String> = self
                .skipped
                .iter()
                .map(|(r, n)| format!("{r} ({n})"))
                .collect();
            out.push_str(&format!(
                "  skipped {skipped} records with nothing to record: {}\n",
                reasons.join("; ")
            ));
        }
        if self.errors_omitted > 0 {
            out.push_str(&format!("  ... and {} more\n", self.errors_omitted));
        }
        out
    }
}
