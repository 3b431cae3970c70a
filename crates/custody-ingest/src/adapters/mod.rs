//! Adapters: third-party logs in, `custody-event/1` objects out (DESIGN §6).
//!
//! [`read`] takes any reader (gzip is recognised by its magic bytes and unpacked), finds the
//! shape of the file (a `{"Records": [...]}` document, a JSON array, NDJSON, or one JSON
//! object), splits it into records, and hands each record to the adapter of its format:
//! the forced one, or the one [`classify`] recognises from the record's own fields. Each
//! record becomes zero or more event objects in the exact §3 format; a record that cannot
//! be understood becomes a [`Rejected`] naming the file, record number and reason; a
//! record that is understood but carries nothing Custody records (a model call span, a
//! request-stage audit entry) is counted as skipped. Adapters never write storage: the
//! caller passes every value through [`crate::Preparer`] (see
//! [`crate::Preparer::prepare_adapted`]), which redacts, types, canonicalizes and hashes.
//!
//! The excerpt of a [`Rejected`] made here is raw input: redact it (as
//! `Preparer::prepare_adapted` does) before it is stored or printed.

pub mod cloudtrail;
pub mod gcp;
pub mod github;
pub mod kubernetes;
pub mod otel;
mod util;
pub mod vault;

use util::Conv;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io::{BufRead, BufReader, Read};

use custody_store::{LineOrigin, Rejected};
use serde_json::Value;

/// How much of a rejected record the raw excerpt keeps. Far more than the quarantine keeps
/// ([`crate::EXCERPT_BYTES`]): the redactor must see whole secrets before the excerpt is
/// cut to size, or a secret cut in two could slip through by halves.
const EXCERPT_CHARS: usize = 16 * 1024;

/// A third-party (or native) log format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    /// Custody's own `custody-event/1` objects, passed through unchanged.
    Custody,
    /// AWS CloudTrail records.
    CloudTrail,
    /// GCP Cloud Audit Logs entries (`protoPayload` of type `AuditLog`).
    GcpAudit,
    /// Kubernetes audit `Event`s (including EKS).
    KubernetesAudit,
    /// HashiCorp Vault audit log, file device (JSON lines).
    VaultAudit,
    /// OpenTelemetry traces: OTLP JSON, or a JSON dump of SDK spans.
    Otel,
    /// GitHub Actions OIDC token claims and GitHub audit-log entries.
    GitHub,
}

impl Format {
    /// Every format, in the order detection tries them.
    pub const ALL: [Format; 7] = [
        Format::Custody,
        Format::CloudTrail,
        Format::GcpAudit,
        Format::KubernetesAudit,
        Format::VaultAudit,
        Format::Otel,
        Format::GitHub,
    ];

    /// The name used by `--format`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Custody => "custody",
            Format::CloudTrail => "cloudtrail",
            Format::GcpAudit => "gcp-audit",
            Format::KubernetesAudit => "k8s-audit",
            Format::VaultAudit => "vault-audit",
            Format::Otel => "otel",
            Format::GitHub => "github",
        }
    }

    /// Parses a `--format` name (a few aliases accepted).
    pub fn parse(name: &str) -> Option<Format> {
        let name = name.to_ascii_lowercase();
        let found = match name.as_str() {
            "custody" | "native" | "custody-event" | "ndjson" => Format::Custody,
            "cloudtrail" | "aws-cloudtrail" | "aws" => Format::CloudTrail,
            "gcp-audit" | "gcp" | "gcp-audit-log" => Format::GcpAudit,
            "k8s-audit" | "k8s" | "kubernetes" | "kubernetes-audit" | "eks-audit" => {
                Format::KubernetesAudit
            }
            "vault-audit" | "vault" => Format::VaultAudit,
            "otel" | "otlp" | "otlp-json" | "opentelemetry" => Format::Otel,
            "github" | "github-actions" | "github-audit" => Format::GitHub,
            _ => return None,
        };
        Some(found)
    }

    fn convert(self, record: &Value, options: &Options) -> Result<Conv, String> {
        match self {
            Format::Custody => Ok(Conv::Events(vec![record.clone()])),
            Format::CloudTrail => cloudtrail::convert(record),
            Format::GcpAudit => gcp::convert(record),
            Format::KubernetesAudit => kubernetes::convert(record, options),
            Format::VaultAudit => vault::convert(record, options),
            Format::Otel => otel::convert(record),
            Format::GitHub => github::convert(record),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Settings that the input itself does not carry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// The Vault cluster name, for `vault://<cluster>` (default `vault`).
    pub vault_cluster: Option<String>,
    /// The Kubernetes cluster name, for the source `k8s:audit:<cluster>` (default
    /// `k8s:audit`: audit events do not name their cluster).
    pub k8s_cluster: Option<String>,
}

/// Which format one record is in, from its own fields; `None` when no adapter knows it.
pub fn classify(record: &Value) -> Option<Format> {
    let obj = record.as_object()?;
    let has = |k: &str| obj.contains_key(k);
    if has("eventVersion") && (has("eventSource") || has("userIdentity")) {
        return Some(Format::CloudTrail);
    }
    if has("resourceSpans") || (has("spans") && obj.get("spans").is_some_and(Value::is_array)) {
        return Some(Format::Otel);
    }
    if let Some(payload) = obj.get("protoPayload") {
        if payload.get("authenticationInfo").is_some()
            || payload.get("methodName").is_some()
            || payload.get("serviceName").is_some()
        {
            return Some(Format::GcpAudit);
        }
    }
    let kind = obj.get("kind").and_then(Value::as_str);
    let api = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if (kind == Some("Event") && api.starts_with("audit.k8s.io"))
        || (has("auditID") && (kind == Some("Event") || has("verb")))
    {
        return Some(Format::KubernetesAudit);
    }
    let typ = obj.get("type").and_then(Value::as_str);
    if matches!(typ, Some("request") | Some("response"))
        && has("time")
        && obj.get("request").is_some_and(Value::is_object)
    {
        return Some(Format::VaultAudit);
    }
    if has("id") && has("source") && has("time") && typ.is_some() {
        return Some(Format::Custody);
    }
    if (has("job_workflow_ref") || has("workflow_ref")) && (has("repository") || has("run_id")) {
        return Some(Format::GitHub);
    }
    if has("actor")
        && obj.get("action").and_then(Value::as_str).is_some()
        && (has("org") || has("repo") || has("business") || has("_document_id"))
    {
        return Some(Format::GitHub);
    }
    None
}

/// The format of a file, from its first bytes (gzip is looked through when the whole
/// start of the member is there). `None` when the start names no known format.
pub fn detect(first_bytes: &[u8]) -> Option<Format> {
    if util::is_gzip(first_bytes) {
        let mut out = Vec::new();
        let mut decoder = flate2::read::MultiGzDecoder::new(first_bytes);
        let mut chunk = [0u8; 8192];
        while out.len() < 1 << 20 {
            match decoder.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            }
        }
        return detect(&out);
    }
    let text = String::from_utf8_lossy(util::strip_bom(first_bytes));
    let trimmed = text.trim_start();
    // A complete first record: classify it by its fields.
    if let Some(first_line) = trimmed.lines().next() {
        if let Ok(value) = serde_json::from_str::<Value>(first_line) {
            if let Some(found) = first_record(&value).and_then(classify) {
                return Some(found);
            }
        }
    }
    if let Ok(value) = serde_json::from_str::<Value>(trimmed) {
        if let Some(found) = first_record(&value).and_then(classify) {
            return Some(found);
        }
    }
    // A cut-off start: look for the fields that name each format.
    sniff(trimmed)
}

fn first_record(value: &Value) -> Option<&Value> {
    match value {
        Value::Array(items) => items.first(),
        Value::Object(obj) => match obj.get("Records") {
            Some(Value::Array(items)) => items.first(),
            _ => Some(value),
        },
        _ => None,
    }
}

fn sniff(text: &str) -> Option<Format> {
    let has = |k: &str| text.contains(k);
    if has("\"eventVersion\"") && (has("\"eventSource\"") || has("\"userIdentity\"")) {
        Some(Format::CloudTrail)
    } else if has("\"resourceSpans\"") || (has("\"spans\"") && has("\"trace_id\"")) {
        Some(Format::Otel)
    } else if has("\"protoPayload\"") {
        Some(Format::GcpAudit)
    } else if has("\"auditID\"") {
        Some(Format::KubernetesAudit)
    } else if has("\"job_workflow_ref\"") || has("\"workflow_ref\"") {
        Some(Format::GitHub)
    } else if has("\"mount_type\"") || has("\"client_token_accessor\"") {
        Some(Format::VaultAudit)
    } else {
        None
    }
}

/// What one input produced so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Records read (array elements, `Records` entries, lines, documents).
    pub records: u64,
    /// Event objects produced.
    pub events: u64,
    /// Records rejected (unreadable, unknown, or missing what the adapter needs).
    pub rejected: u64,
    /// Records understood but carrying nothing to record, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// Records by the format that read them.
    pub formats: BTreeMap<String, u64>,
}

/// One item of [`read`]: an event object with where it came from, or a rejection.
pub type Item = Result<(LineOrigin, Value), Rejected>;

enum Shape {
    /// Not started: the shape is found on the first `next`.
    Start,
    /// NDJSON: one unit per line.
    Lines,
    /// A whole document, already split.
    Done,
}

/// Streams the events of one input (see [`read`]).
pub struct Records {
    input: Box<dyn BufRead + Send>,
    file: String,
    format: Option<Format>,
    options: Options,
    shape: Shape,
    line: u64,
    buf: Vec<u8>,
    pending: VecDeque<(u64, Value)>,
    out: VecDeque<Item>,
    stats: Stats,
}

/// Reads `reader` (named `file_name` in origins) as `format`, or detected per record when
/// `None`. Gzip input is unpacked. Streams NDJSON line by line; a JSON document (array,
/// `Records`, pretty-printed object) is read whole, then split.
pub fn read<R: Read + Send + 'static>(
    format: Option<Format>,
    reader: R,
    file_name: &str,
) -> Records {
    read_with(format, reader, file_name, Options::default())
}

/// [`read`] with [`Options`].
pub fn read_with<R: Read + Send + 'static>(
    format: Option<Format>,
    reader: R,
    file_name: &str,
    options: Options,
) -> Records {
    let mut buffered = BufReader::with_capacity(64 * 1024, reader);
    let gz = matches!(buffered.fill_buf(), Ok(start) if util::is_gzip(start));
    let input: Box<dyn BufRead + Send> = if gz {
        Box::new(BufReader::with_capacity(
            64 * 1024,
            flate2::bufread::MultiGzDecoder::new(buffered),
        ))
    } else {
        Box::new(buffered)
    };
    Records {
        input,
        file: file_name.to_owned(),
        format,
        options,
        shape: Shape::Start,
        line: 0,
        buf: Vec::with_capacity(4096),
        pending: VecDeque::new(),
        out: VecDeque::new(),
        stats: Stats::default(),
    }
}

impl Records {
    /// Counts so far (complete once the iterator is exhausted).
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    fn origin(&self, line: u64) -> LineOrigin {
        LineOrigin {
            file: self.file.clone(),
            line,
        }
    }

    fn reject(&mut self, line: u64, reason: String, excerpt: &str) {
        self.stats.rejected += 1;
        self.out.push_back(Err(Rejected {
            origin: self.origin(line),
            reason,
            excerpt: util::cut(excerpt, EXCERPT_CHARS),
        }));
    }

    /// Reads the next non-blank line into `buf`; false at the end.
    fn next_line(&mut self) -> Result<bool, std::io::Error> {
        loop {
            self.buf.clear();
            let n = self.input.read_until(b'\n', &mut self.buf)?;
            if n == 0 {
                return Ok(false);
            }
            self.line += 1;
            if !self.buf.trim_ascii().is_empty() {
                return Ok(true);
            }
        }
    }

    /// Splits one parsed unit (a line or a document) into records.
    fn push_unit(&mut self, line: u64, value: Value, numbered_by_index: bool) {
        let items = match value {
            Value::Array(items) => items,
            Value::Object(mut obj) => match obj.remove("Records") {
                Some(Value::Array(items)) => items,
                Some(other) => {
                    obj.insert("Records".into(), other);
                    vec![Value::Object(obj)]
                }
                None => vec![Value::Object(obj)],
            },
            other => vec![other],
        };
        for (i, item) in items.into_iter().enumerate() {
            let number = if numbered_by_index {
                i as u64 + 1
            } else {
                line
            };
            self.pending.push_back((number, item));
        }
    }

    /// Fills `pending` (or `out`) from the input; false when the input is exhausted.
    fn fill(&mut self) -> bool {
        match self.shape {
            Shape::Done => false,
            Shape::Start => {
                match self.next_line() {
                    Ok(true) => {}
                    Ok(false) => {
                        self.shape = Shape::Done;
                        return false;
                    }
                    Err(e) => {
                        self.shape = Shape::Done;
                        self.reject(0, format!("unreadable input: {e}"), "");
                        return true;
                    }
                }
                let first = util::strip_bom(self.buf.trim_ascii());
                let whole_line = if first.first() == Some(&b'[') {
                    None
                } else {
                    serde_json::from_slice::<Value>(first).ok()
                };
                match whole_line {
                    Some(value) => {
                        self.shape = Shape::Lines;
                        let line = self.line;
                        self.push_unit(line, value, false);
                    }
                    None => {
                        // A document: read the rest and parse it whole.
                        self.shape = Shape::Done;
                        let mut all = std::mem::take(&mut self.buf);
                        if let Err(e) = self.input.read_to_end(&mut all) {
                            self.reject(0, format!("unreadable input: {e}"), "");
                            return true;
                        }
                        match serde_json::from_slice::<Value>(util::strip_bom(all.trim_ascii())) {
                            Ok(value) => self.push_unit(1, value, true),
                            Err(e) => {
                                self.stats.records += 1;
                                let text = String::from_utf8_lossy(&all).into_owned();
                                self.reject(1, format!("malformed JSON: {e}"), &text);
                            }
                        }
                    }
                }
                true
            }
            Shape::Lines => match self.next_line() {
                Ok(true) => {
                    let line = self.line;
                    match serde_json::from_slice::<Value>(self.buf.trim_ascii()) {
                        Ok(value) => self.push_unit(line, value, false),
                        Err(e) => {
                            self.stats.records += 1;
                            let text = String::from_utf8_lossy(&self.buf).into_owned();
                            self.reject(line, format!("malformed JSON: {e}"), &text);
                        }
                    }
                    true
                }
                Ok(false) => {
                    self.shape = Shape::Done;
                    false
                }
                Err(e) => {
                    self.shape = Shape::Done;
                    let line = self.line + 1;
                    self.reject(line, format!("unreadable input: {e}"), "");
                    true
                }
            },
        }
    }

    fn convert_one(&mut self, number: u64, record: Value) {
        self.stats.records += 1;
        let format = match self.format.or_else(|| classify(&record)) {
            Some(f) => f,
            None => {
                let text = record.to_string();
                let reason = if record.is_object() {
                    "unrecognised record: no adapter knows its fields".to_owned()
                } else {
                    format!("unrecognised record: a JSON {}", util::json_kind(&record))
                };
                self.reject(number, reason, &text);
                return;
            }
        };
        *self
            .stats
            .formats
            .entry(format.name().to_owned())
            .or_default() += 1;
        if !record.is_object() {
            let reason = format!(
                "{format} record is a JSON {}, not an object",
                util::json_kind(&record)
            );
            self.reject(number, reason, &record.to_string());
            return;
        }
        match format.convert(&record, &self.options) {
            Ok(Conv::Skip(reason)) => {
                *self
                    .stats
                    .skipped
                    .entry(format!("{format}: {reason}"))
                    .or_default() += 1;
            }
            Ok(Conv::Events(events)) if events.is_empty() => {
                *self
                    .stats
                    .skipped
                    .entry(format!("{format}: nothing to record"))
                    .or_default() += 1;
            }
            Ok(Conv::Events(events)) => {
                for event in events {
                    self.stats.events += 1;
                    let origin = self.origin(number);
                    self.out.push_back(Ok((origin, event)));
                }
            }
            Err(reason) => {
                let text = record.to_string();
                self.reject(number, format!("{format}: {reason}"), &text);
            }
        }
    }
}

impl Iterator for Records {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.out.pop_front() {
                return Some(item);
            }
            if let Some((number, record)) = self.pending.pop_front() {
                self.convert_one(number, record);
                continue;
            }
            if !self.fill() && self.pending.is_empty() && self.out.is_empty() {
                return None;
            }
        }
    }
}
