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
pub mod draft;
pub mod gcp;
pub mod github;
pub mod iam;
pub mod kubernetes;
pub mod otel;
mod split;
pub(crate) mod tape;
mod util;
pub mod vault;

use tape::{Json, Tape};
use util::Conv;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use custody_store::{LineOrigin, Rejected};
use serde_json::Value;

/// How much of a rejected record the raw excerpt keeps. Far more than the quarantine keeps
/// ([`crate::EXCERPT_BYTES`]): the redactor must see whole secrets before the excerpt is
/// cut to size, or a secret cut in two could slip through by halves.
const EXCERPT_CHARS: usize = 16 * 1024;

/// A line of NDJSON at least this long that is a `Records` document or an array is split
/// into its records as it is read (shorter ones are parsed whole by the converter).
const SPLIT_LINES_FROM: usize = 64 * 1024;

/// The most [`Records::with_size_hint`] reserves ahead (4 GiB).
const MAX_SIZE_HINT: usize = 1 << 32;

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

    fn convert<'a>(self, record: &'a Value, options: &Options) -> Result<Conv<'a>, String> {
        match self {
            Format::Custody => Ok(Conv::Events(vec![record.clone()])),
            Format::CloudTrail => cloudtrail::convert(record, options),
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
    /// An IAM policy snapshot: CloudTrail delegations get the scope of the role or user
    /// they hand out ([`iam::IamScopes::scope_for`]).
    pub iam: Option<std::sync::Arc<iam::IamScopes>>,
}

/// Which format one record is in, from its own fields; `None` when no adapter knows it.
pub fn classify(record: &Value) -> Option<Format> {
    classify_json(record)
}

/// [`classify`] of a record read either way ([`tape::Json`]).
fn classify_json<'a, J: Json<'a>>(record: J) -> Option<Format> {
    if !record.is_object() {
        return None;
    }
    let has = |k: &str| record.get(k).is_some();
    let str_at = |k: &str| record.get(k).and_then(J::as_str);
    if has("eventVersion") && (has("eventSource") || has("userIdentity")) {
        return Some(Format::CloudTrail);
    }
    if has("resourceSpans") || record.get("spans").is_some_and(J::is_array) {
        return Some(Format::Otel);
    }
    if let Some(payload) = record.get("protoPayload") {
        if payload.get("authenticationInfo").is_some()
            || payload.get("methodName").is_some()
            || payload.get("serviceName").is_some()
        {
            return Some(Format::GcpAudit);
        }
    }
    let kind = str_at("kind");
    let api = str_at("apiVersion").unwrap_or("");
    if (kind == Some("Event") && api.starts_with("audit.k8s.io"))
        || (has("auditID") && (kind == Some("Event") || has("verb")))
    {
        return Some(Format::KubernetesAudit);
    }
    let typ = str_at("type");
    if matches!(typ, Some("request") | Some("response"))
        && has("time")
        && record.get("request").is_some_and(J::is_object)
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
        && str_at("action").is_some()
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
            if let Some(found) = detect_parsed(&value) {
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

/// The format of a file whose first record (or first line) is `value`, when its fields name
/// one: what [`detect`] finds first, for a caller that has parsed that record already.
pub fn detect_parsed(value: &Value) -> Option<Format> {
    first_record(value).and_then(classify)
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

impl Stats {
    /// Counts one record of `format` (the name is copied only the first time).
    fn count_format(&mut self, format: Format) {
        match self.formats.get_mut(format.name()) {
            Some(n) => *n += 1,
            None => {
                self.formats.insert(format.name().to_owned(), 1);
            }
        }
    }

    /// Adds `other` (the counts of another part of the same input) to these.
    pub fn merge(&mut self, other: Stats) {
        self.records += other.records;
        self.events += other.events;
        self.rejected += other.rejected;
        for (reason, n) in other.skipped {
            *self.skipped.entry(reason).or_default() += n;
        }
        for (format, n) in other.formats {
            *self.formats.entry(format).or_default() += n;
        }
    }
}

/// One item of [`read`]: an event object with where it came from, or a rejection.
pub type Item = Result<(LineOrigin, Value), Rejected>;

/// Where a [`Converter`] puts what it makes of a record, in order.
pub trait Sink {
    /// An event object, or a rejection.
    fn item(&mut self, item: Item);
    /// An event an adapter built as a [`draft::Obj`] (strings borrowed from the record,
    /// which lives only until this returns): by default, its `Value` as an [`Item`]. A sink
    /// that prepares events at once takes the draft as it is
    /// ([`Preparer::prepare_draft`](crate::Preparer::prepare_draft)).
    fn draft(&mut self, origin: LineOrigin, draft: draft::Obj<'_>) {
        self.item(Ok((origin, draft.to_value())));
    }
}

impl Sink for VecDeque<Item> {
    fn item(&mut self, item: Item) {
        self.push_back(item);
    }
}

enum Shape {
    /// Not started: the shape is found on the first `next`.
    Start,
    /// NDJSON: one unit per line.
    Lines,
    /// A whole document, already split.
    Done,
}

/// A record (or a line of records) read but not yet parsed or converted: see
/// [`Records::next_raw`] and [`Converter::convert`].
pub struct RawRecord {
    number: u64,
    body: Body,
}

enum Body {
    /// A record already parsed.
    Value(Value),
    /// One record of a split document: its bytes, known to be valid JSON.
    Slice(Arc<Vec<u8>>, Range<usize>),
    /// One line of NDJSON (not blank, as read): parsed, then split like any unit.
    Line(Vec<u8>),
    /// Records of a document checked by [`split::scan`], read back from its file: the span
    /// of the file they lie in, and each one's number and range within the span.
    File(Arc<File>, Range<u64>, Vec<(u64, Range<usize>)>),
}

impl Next {
    /// How many records this is (at least one): a caller dealing work by records.
    pub fn records(&self) -> usize {
        match self {
            Next::Raw(RawRecord {
                body: Body::File(_, _, records),
                ..
            }) => records.len().max(1),
            _ => 1,
        }
    }
}

/// What [`Records::next_raw`] yields: an item made while reading (a rejection), or a
/// record for a [`Converter`].
pub enum Next {
    /// Ready as it is.
    Item(Item),
    /// To be converted, in this position of the input's order.
    Raw(RawRecord),
}

/// Turns [`RawRecord`]s into items: parsing, detection, the adapter. Cheap to clone, and
/// safe to run on several threads at once (each converting its own records).
#[derive(Clone, Debug)]
pub struct Converter {
    file: String,
    format: Option<Format>,
    options: Options,
}

/// Streams the events of one input (see [`read`]).
pub struct Records {
    input: Box<dyn BufRead + Send>,
    converter: Converter,
    shape: Shape,
    line: u64,
    buf: Vec<u8>,
    pending: VecDeque<RawRecord>,
    out: VecDeque<Item>,
    stats: Stats,
}

/// Reads `reader` (named `file_name` in origins) as `format`, or detected per record when
/// `None`. Gzip input is unpacked. Streams NDJSON line by line; a JSON document (array,
/// `Records`, pretty-printed object) is read whole, checked, then split into its records'
/// bytes, each parsed only when it is converted.
pub fn read<R: Read + Send + 'static>(
    format: Option<Format>,
    reader: R,
    file_name: &str,
) -> Records {
    read_with(format, reader, file_name, Options::default())
}

/// [`read_with`] of a file. A large file holding one JSON document (a `Records` document
/// or an array) is checked and split in a first pass that holds one block at a time; each
/// record is then read back from the file by whoever converts it, so the document is never
/// held in memory whole. Anything else reads as [`read_with`] reads it, with the same
/// records, numbers and reasons either way.
pub fn read_file(
    format: Option<Format>,
    path: &Path,
    file_name: &str,
    options: Options,
) -> std::io::Result<Records> {
    let file = File::open(path)?;
    let len = file.metadata().map_or(0, |m| m.len());
    if cfg!(unix) && len >= STREAM_FROM {
        if let Some(scanned) = scan_file(&file) {
            let mut records = read_with(format, std::io::empty(), file_name, options);
            records.shape = Shape::Done;
            records.push_scanned(Arc::new(file), scanned);
            return Ok(records);
        }
    }
    let file = File::open(path)?;
    Ok(read_with(format, file, file_name, options).with_size_hint(len))
}

/// [`split::scan`] of a file, the check of its records ([`split::is_record_json`]) on a
/// second thread reading them back from the file as the scan finds them. Checking is the
/// slower of the two: when the checker has batches waiting, the scanning thread checks the
/// next batch itself, from the bytes it has in hand, so both threads stay busy.
fn scan_file(file: &File) -> Option<split::Scanned> {
    /// Batches waiting for the checker before the scanning thread checks one itself.
    const BACKLOG: usize = 2;
    scan_file_with(file, BACKLOG)
}

/// [`scan_file`], the scanning thread checking a batch itself whenever `backlog` batches
/// wait for the checker (0: it checks every record; `usize::MAX`: none).
fn scan_file_with(file: &File, backlog: usize) -> Option<split::Scanned> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    const BATCH: usize = 256;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Range<u64>>>(16);
    let waiting = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let waiting = &waiting;
        let checker = scope.spawn(move || {
            let mut bytes = Vec::new();
            for batch in rx {
                waiting.fetch_sub(1, Ordering::Relaxed);
                let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
                    continue;
                };
                let span = first.start..last.end;
                bytes.resize(usize::try_from(span.end - span.start).unwrap_or(0), 0);
                if read_at(file, &mut bytes, span.start).is_err() {
                    return false;
                }
                for r in &batch {
                    let start = usize::try_from(r.start - span.start).unwrap_or(0);
                    let end = usize::try_from(r.end - span.start).unwrap_or(0);
                    if !bytes.get(start..end).is_some_and(split::is_record_json) {
                        return false;
                    }
                }
            }
            true
        });
        let mut batch = Vec::with_capacity(BATCH);
        // Records this thread still checks itself (of a batch it took on), and whether all
        // it checked were good.
        let mut here = 0;
        let mut good = true;
        let mut check = |bytes: &[u8], range: Range<u64>| {
            if here == 0 && batch.is_empty() && waiting.load(Ordering::Relaxed) >= backlog {
                here = BATCH;
            }
            if here > 0 {
                here -= 1;
                good = split::is_record_json(bytes);
                return good;
            }
            batch.push(range);
            if batch.len() < BATCH {
                return true;
            }
            waiting.fetch_add(1, Ordering::Relaxed);
            tx.send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)))
                .is_ok()
        };
        let scanned = split::scan(file, &mut check);
        let sent = batch.is_empty() || {
            waiting.fetch_add(1, Ordering::Relaxed);
            tx.send(batch).is_ok()
        };
        drop(tx);
        let checked = checker.join().unwrap_or(false);
        match scanned {
            Ok(Some(scanned)) if sent && checked && good => Some(scanned),
            _ => None,
        }
    })
}

/// Files at least this large are read by [`read_file`] in two passes when they hold one
/// document.
const STREAM_FROM: u64 = 1 << 20;

thread_local! {
    /// What a converting thread reads a [`Body::File`] group into.
    static READ_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Groups up to this size are read into the thread's [`READ_BUFFER`]; a larger one (huge
/// records) into a buffer of its own, so that no thread keeps one that size.
const KEPT_BUFFER: usize = 4 << 20;

/// Calls `f` with `len` bytes to read into: the thread's buffer, grown to the largest group
/// read and never shrunk, so the bytes are neither allocated nor zeroed again per group.
fn with_read_buffer<T>(len: usize, f: impl FnOnce(&mut [u8]) -> T) -> T {
    if len > KEPT_BUFFER {
        return f(&mut vec![0; len]);
    }
    READ_BUFFER.with_borrow_mut(|buffer| {
        if buffer.len() < len {
            buffer.resize(len, 0);
        }
        f(buffer.get_mut(..len).unwrap_or_default())
    })
}

/// Records per [`Body::File`] (one read of the file each).
const FILE_GROUP: usize = 32;

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(not(unix))]
fn read_at(_: &File, _: &mut [u8], _: u64) -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
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
        converter: Converter {
            file: file_name.to_owned(),
            format,
            options,
        },
        shape: Shape::Start,
        line: 0,
        buf: Vec::with_capacity(4096),
        pending: VecDeque::new(),
        out: VecDeque::new(),
        stats: Stats::default(),
    }
}

fn origin(file: &str, line: u64) -> LineOrigin {
    LineOrigin {
        file: file.to_owned(),
        line,
    }
}

fn reject(
    file: &str,
    stats: &mut Stats,
    out: &mut dyn Sink,
    line: u64,
    reason: String,
    excerpt: &str,
) {
    stats.rejected += 1;
    out.item(Err(Rejected {
        origin: origin(file, line),
        reason,
        excerpt: util::cut(excerpt, EXCERPT_CHARS),
    }));
}

/// The records of one parsed unit (a line or a document).
fn unit_records(value: Value) -> Vec<Value> {
    match value {
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
    }
}

impl Converter {
    /// Converts one raw record: its items are appended to `out`, its counts added to
    /// `stats` (merge the `stats` of every converter into the reader's, [`Stats::merge`]).
    pub fn convert(&self, raw: RawRecord, stats: &mut Stats, out: &mut dyn Sink) {
        let number = raw.number;
        match raw.body {
            Body::Value(record) => self.convert_one(number, record, stats, out),
            Body::Slice(doc, range) => {
                self.convert_bytes(number, doc.get(range).unwrap_or_default(), stats, out);
            }
            Body::File(file, span, records) => {
                let len = usize::try_from(span.end - span.start).unwrap_or(0);
                with_read_buffer(len, |bytes| match read_at(&file, bytes, span.start) {
                    Ok(()) => {
                        for (number, range) in records {
                            self.convert_bytes(
                                number,
                                bytes.get(range).unwrap_or_default(),
                                stats,
                                out,
                            );
                        }
                    }
                    Err(e) => {
                        for (number, _) in records {
                            stats.records += 1;
                            let reason = format!("unreadable input: {e}");
                            reject(&self.file, stats, out, number, reason, "");
                        }
                    }
                });
            }
            Body::Line(line)
                if self.may_be_cloudtrail(&line)
                    && self.convert_tape(number, line.trim_ascii(), stats, out) => {}
            Body::Line(line) => match serde_json::from_slice::<Value>(line.trim_ascii()) {
                Ok(value) => {
                    for record in unit_records(value) {
                        self.convert_one(number, record, stats, out);
                    }
                }
                Err(e) => {
                    stats.records += 1;
                    let text = String::from_utf8_lossy(&line);
                    let reason = format!("malformed JSON: {e}");
                    reject(&self.file, stats, out, number, reason, &text);
                }
            },
        }
    }

    /// Converts one record of a checked document (so valid JSON).
    fn convert_bytes(&self, number: u64, bytes: &[u8], stats: &mut Stats, out: &mut dyn Sink) {
        if self.convert_tape(number, bytes, stats, out) {
            return;
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(record) => self.convert_one(number, record, stats, out),
            // Not reached: the document was checked whole before it was split.
            Err(e) => {
                stats.records += 1;
                let text = String::from_utf8_lossy(bytes);
                let reason = format!("malformed JSON: {e}");
                reject(&self.file, stats, out, number, reason, &text);
            }
        }
    }

    fn convert_one(&self, number: u64, record: Value, stats: &mut Stats, out: &mut dyn Sink) {
        stats.records += 1;
        let file = self.file.as_str();
        let format = match self.format.or_else(|| classify(&record)) {
            Some(f) => f,
            None => {
                let text = record.to_string();
                let reason = if record.is_object() {
                    "unrecognised record: no adapter knows its fields".to_owned()
                } else {
                    format!("unrecognised record: a JSON {}", util::json_kind(&record))
                };
                reject(file, stats, out, number, reason, &text);
                return;
            }
        };
        stats.count_format(format);
        if !record.is_object() {
            let reason = format!(
                "{format} record is a JSON {}, not an object",
                util::json_kind(&record)
            );
            reject(file, stats, out, number, reason, &record.to_string());
            return;
        }
        match format.convert(&record, &self.options) {
            Ok(conv) => emit(file, format, number, conv, stats, out),
            Err(reason) => {
                let text = record.to_string();
                reject(
                    file,
                    stats,
                    out,
                    number,
                    format!("{format}: {reason}"),
                    &text,
                );
            }
        }
    }

    /// Whether a line is worth reading through a [`Tape`] first: CloudTrail is forced or the
    /// line names CloudTrail's `eventVersion` (other lines would be read twice).
    fn may_be_cloudtrail(&self, line: &[u8]) -> bool {
        match self.format {
            Some(Format::CloudTrail) => true,
            None => memchr::memmem::find(line, b"\"eventVersion\"").is_some(),
            Some(_) => false,
        }
    }

    /// Converts a CloudTrail record through a [`Tape`], without a `Value` of the record
    /// (the tape accepts only JSON that `serde_json` reads as the same value, so unchecked
    /// lines can come here too): `false` (nothing done) for a record the tape leaves to
    /// `serde_json` (escapes, ...), of another format, or that the adapter refuses (the
    /// `Value` path then gives the same items, with its own rendering of the record in the
    /// rejection).
    fn convert_tape(
        &self,
        number: u64,
        bytes: &[u8],
        stats: &mut Stats,
        out: &mut dyn Sink,
    ) -> bool {
        if !matches!(self.format, None | Some(Format::CloudTrail)) {
            return false;
        }
        let Some(tape) = Tape::parse(bytes) else {
            return false;
        };
        let record = tape.root();
        let format = Format::CloudTrail;
        if !record.is_object() || self.format.or_else(|| classify_json(record)) != Some(format) {
            return false;
        }
        match cloudtrail::convert(record, &self.options) {
            Ok(conv) => {
                stats.records += 1;
                stats.count_format(format);
                emit(&self.file, format, number, conv, stats, out);
                true
            }
            Err(_) => false,
        }
    }
}

/// Counts and queues what an adapter made of record `number`.
fn emit(
    file: &str,
    format: Format,
    number: u64,
    conv: Conv<'_>,
    stats: &mut Stats,
    out: &mut dyn Sink,
) {
    match conv {
        Conv::Skip(reason) => {
            *stats
                .skipped
                .entry(format!("{format}: {reason}"))
                .or_default() += 1;
        }
        Conv::Events(events) if events.is_empty() => {
            *stats
                .skipped
                .entry(format!("{format}: nothing to record"))
                .or_default() += 1;
        }
        Conv::Drafts(drafts) if drafts.is_empty() => {
            *stats
                .skipped
                .entry(format!("{format}: nothing to record"))
                .or_default() += 1;
        }
        Conv::Events(events) => {
            for event in events {
                stats.events += 1;
                out.item(Ok((origin(file, number), event)));
            }
        }
        Conv::Drafts(drafts) => {
            for draft in drafts {
                stats.events += 1;
                out.draft(origin(file, number), draft);
            }
        }
    }
}

impl Records {
    /// Expects about `bytes` of input (a file's length): a document or a long line is then
    /// read into one allocation of that size instead of a buffer grown by doubling.
    pub fn with_size_hint(mut self, bytes: u64) -> Records {
        let bytes = usize::try_from(bytes).unwrap_or(0).min(MAX_SIZE_HINT);
        self.buf.reserve(bytes.saturating_add(1));
        self
    }

    /// Counts so far (complete once the iterator is exhausted). With
    /// [`Records::next_raw`], only what reading itself counted: add the converters' counts.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The converter for the records of [`Records::next_raw`].
    pub fn converter(&self) -> Converter {
        self.converter.clone()
    }

    /// The next item in input order without converting it: the caller hands each
    /// [`Next::Raw`] to a [`Converter`] (on any thread) and keeps the order. Reading,
    /// checking and splitting a document happen here; parsing a record does not.
    pub fn next_raw(&mut self) -> Option<Next> {
        loop {
            if let Some(item) = self.out.pop_front() {
                return Some(Next::Item(item));
            }
            if let Some(raw) = self.pending.pop_front() {
                return Some(Next::Raw(raw));
            }
            if !self.fill() && self.pending.is_empty() && self.out.is_empty() {
                return None;
            }
        }
    }

    fn reject(&mut self, line: u64, reason: String, excerpt: &str) {
        reject(
            &self.converter.file,
            &mut self.stats,
            &mut self.out,
            line,
            reason,
            excerpt,
        );
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

    /// Queues the records [`split::scan`] found in `file`, in groups read back together.
    fn push_scanned(&mut self, file: Arc<File>, scanned: split::Scanned) {
        let mut index = 0u64;
        for group in scanned.records.chunks(FILE_GROUP) {
            let (Some(first), Some(last)) = (group.first(), group.last()) else {
                continue;
            };
            let span = first.start..last.end;
            let records = group
                .iter()
                .map(|r| {
                    index += 1;
                    let start = usize::try_from(r.start - span.start).unwrap_or(0);
                    let end = usize::try_from(r.end - span.start).unwrap_or(0);
                    (scanned.line.unwrap_or(index), start..end)
                })
                .collect();
            let number = scanned.line.unwrap_or(index);
            self.push(number, Body::File(Arc::clone(&file), span, records));
        }
    }

    fn push(&mut self, number: u64, body: Body) {
        self.pending.push_back(RawRecord { number, body });
    }

    /// Queues the records of `doc[within]`, a valid JSON document, numbered `line` (or by
    /// index when `None`); hands `doc` back when it is not a shape [`split::records`] splits.
    fn push_split(
        &mut self,
        doc: Vec<u8>,
        within: Range<usize>,
        line: Option<u64>,
    ) -> Result<(), Vec<u8>> {
        let Some(ranges) = doc.get(within.clone()).and_then(split::records) else {
            return Err(doc);
        };
        let doc = Arc::new(doc);
        for (i, range) in ranges.into_iter().enumerate() {
            let number = line.unwrap_or(i as u64 + 1);
            let range = range.start + within.start..range.end + within.start;
            self.push(number, Body::Slice(Arc::clone(&doc), range));
        }
        Ok(())
    }

    /// Queues the line in `buf` (without its byte-order mark when `first`): split here when
    /// it is a large `Records` document or array, so that its records can be converted
    /// apart; else whole, to be parsed and split by the converter.
    fn push_line(&mut self, line: u64, first: bool) {
        let mut text = self.buf.trim_ascii();
        if first {
            text = util::strip_bom(text);
        }
        if text.len() >= SPLIT_LINES_FROM && split::looks_splittable(text) && split::is_json(text) {
            // The buffer itself becomes the document: a large line is not copied.
            let start = text.as_ptr() as usize - self.buf.as_ptr() as usize;
            let within = start..start + text.len();
            let doc = std::mem::take(&mut self.buf);
            match self.push_split(doc, within, Some(line)) {
                Ok(()) => return,
                Err(doc) => self.buf = doc,
            }
        }
        // The line as read (a rejection quotes it so), but the first without its byte-order
        // mark: it was checked so.
        let unit = if first {
            util::strip_bom(self.buf.trim_ascii()).to_vec()
        } else {
            self.buf.clone()
        };
        self.push(line, Body::Line(unit));
    }

    /// Queues the records of a whole document, numbered by their index: checked whole and
    /// split into bytes when it has the shape, else parsed whole here. A document that is
    /// not JSON is one rejected record.
    fn push_document(&mut self, all: Vec<u8>) {
        let lead = all.len() - all.trim_ascii_start().len();
        let trimmed = all.trim_ascii();
        let doc = util::strip_bom(trimmed);
        let within = lead + (trimmed.len() - doc.len())..lead + trimmed.len();
        let all = if split::looks_splittable(doc) && split::is_json(doc) {
            match self.push_split(all, within.clone(), None) {
                Ok(()) => return,
                Err(all) => all,
            }
        } else {
            all
        };
        match serde_json::from_slice::<Value>(all.get(within).unwrap_or_default()) {
            Ok(value) => {
                for (i, item) in unit_records(value).into_iter().enumerate() {
                    self.push(i as u64 + 1, Body::Value(item));
                }
            }
            Err(e) => {
                self.stats.records += 1;
                let text = String::from_utf8_lossy(&all).into_owned();
                self.reject(1, format!("malformed JSON: {e}"), &text);
            }
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
                if first.first() != Some(&b'[') && split::is_json(first) {
                    self.shape = Shape::Lines;
                    let line = self.line;
                    self.push_line(line, true);
                } else {
                    // A document: read the rest, then check and split it.
                    self.shape = Shape::Done;
                    let mut all = std::mem::take(&mut self.buf);
                    if let Err(e) = self.input.read_to_end(&mut all) {
                        self.reject(0, format!("unreadable input: {e}"), "");
                        return true;
                    }
                    self.push_document(all);
                }
                true
            }
            Shape::Lines => match self.next_line() {
                Ok(true) => {
                    let line = self.line;
                    self.push_line(line, false);
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
}

impl Iterator for Records {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.out.pop_front() {
                return Some(item);
            }
            if let Some(raw) = self.pending.pop_front() {
                self.converter.convert(raw, &mut self.stats, &mut self.out);
                continue;
            }
            if !self.fill() && self.pending.is_empty() && self.out.is_empty() {
                return None;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_parsed_first_record_names_the_format_as_the_start_of_its_file_does() {
        let native = json!({"id": "1", "type": "revocation", "time": "2026-01-01T00:00:00Z",
            "source": "s", "credential": "c"});
        let trail = json!({"Records": [cloudtrail_records(1)[0].clone()]});
        let unknown = json!({"hello": "world"});
        assert_eq!(detect_parsed(&native), Some(Format::Custody));
        assert_eq!(detect_parsed(&trail), Some(Format::CloudTrail));
        assert_eq!(detect_parsed(&unknown), None);
        for value in [native, trail, unknown] {
            let line = serde_json::to_vec(&value).unwrap();
            assert_eq!(detect_parsed(&value), detect(&line), "{value}");
        }
    }

    /// The real invictus-ir CloudTrail records of tests/data, each `copies` times with a
    /// unique eventID.
    fn cloudtrail_records(copies: usize) -> Vec<Value> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/data/realdata/invictus-ir-aws_dataset/CloudTrail");
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        paths.sort();
        let mut real = Vec::new();
        for path in paths {
            let doc: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
            real.extend(doc["Records"].as_array().unwrap().iter().cloned());
        }
        let mut out = Vec::new();
        for i in 0..copies {
            for r in &real {
                let mut r = r.clone();
                r["eventID"] = json!(format!("{}-{i}", r["eventID"].as_str().unwrap()));
                out.push(r);
            }
        }
        out
    }

    /// Every CloudTrail record in tests/data (the real samples and the fixtures).
    fn all_cloudtrail_records() -> Vec<Value> {
        fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path
                    .extension()
                    .is_some_and(|e| e == "json" || e == "jsonl")
                {
                    out.push(path);
                }
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut paths = Vec::new();
        walk(&root.join("../../tests/data/realdata"), &mut paths);
        walk(&root.join("tests/fixtures"), &mut paths);
        let mut out = Vec::new();
        for path in paths {
            let bytes = std::fs::read(&path).unwrap();
            let units: Vec<Value> = match serde_json::from_slice::<Value>(&bytes) {
                Ok(v) => vec![v],
                Err(_) => bytes
                    .split(|b| *b == b'\n')
                    .filter_map(|l| serde_json::from_slice(l).ok())
                    .collect(),
            };
            for unit in units {
                out.extend(
                    unit_records(unit)
                        .into_iter()
                        .filter(|r| classify(r) == Some(Format::CloudTrail)),
                );
            }
        }
        out
    }

    #[test]
    fn cloudtrail_records_read_through_a_tape_convert_as_through_a_value() {
        let options = Options::default();
        let records = all_cloudtrail_records();
        let mut compared = 0;
        for record in &records {
            for text in [
                serde_json::to_string(record).unwrap(),
                serde_json::to_string_pretty(record).unwrap(),
            ] {
                let Some(tape) = Tape::parse(text.as_bytes()) else {
                    assert!(text.contains('\\'), "only escapes are left to serde_json");
                    continue;
                };
                let by_value = cloudtrail::convert(record, &options);
                let by_tape = cloudtrail::convert(tape.root(), &options);
                assert_eq!(by_tape, by_value, "{text}");
                compared += 1;
            }
        }
        // The samples hold delegations, actions, effects, service calls and refusals.
        assert!(
            compared >= 100,
            "only {compared} of {} records",
            records.len()
        );
    }

    /// A draft prepares to what its `Value` prepares to: the same canonical bytes and leaf
    /// hash, the same typed event but for `attributes` (left out of a draft's), or the same
    /// quarantine entry; for every CloudTrail record of tests/data, read both ways, and for
    /// one with secrets by shape and by name in values and keys, at every depth.
    #[test]
    fn cloudtrail_drafts_prepare_as_their_values() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ";
        let token = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
        let secrets = json!({
            "eventVersion": "1.08", "eventID": "e-secret", "eventName": "AssumeRole",
            "eventTime": "2024-01-01T00:00:00Z", "eventSource": "sts.amazonaws.com",
            "sourceIPAddress": format!("https://u:pa55word@example.com/{jwt}"),
            "userAgent": format!("agent {token}"),
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::1:user/a",
                             "accessKeyId": "AKIAEXAMPLE", "userName": jwt},
            "requestParameters": {"roleArn": "arn:aws:iam::1:role/r", "roleSessionName": token,
                "principalTags": {"password": "hunter2", "apiKey": {"nested": ["x", "y"]},
                                  "ghp_0123456789abcdefghijABCDEFGHIJ012345": "as a key", "ok": 1.50},
                "tags": [{"key": "token", "value": "v"}, {"key": "Secret", "value": ""}]},
            "responseElements": {"credentials": {"accessKeyId": "ASIAEXAMPLE",
                "sessionToken": "never copied", "expiration": "Jan 1, 2024, 1:00:00 AM"},
                "assumedRoleUser": {"arn": "arn:aws:sts::1:assumed-role/r/s",
                                    "assumedRoleId": "AROA:s"}}
        });
        let mut records = all_cloudtrail_records();
        records.push(secrets);
        let preparer = crate::Preparer::new(custody_model::Redactor::new(b"k"));
        let options = Options::default();
        let mut compared = 0;
        for record in &records {
            let text = serde_json::to_string(record).unwrap();
            let tape = Tape::parse(text.as_bytes());
            let mut conversions = vec![cloudtrail::convert(record, &options)];
            if let Some(tape) = &tape {
                conversions.push(cloudtrail::convert(tape.root(), &options));
            }
            for conv in conversions {
                let Ok(Conv::Drafts(drafts)) = conv else {
                    continue;
                };
                for draft in drafts {
                    let origin = LineOrigin {
                        file: "t".into(),
                        line: 1,
                    };
                    let by_value = preparer.prepare_adapted(Ok((origin.clone(), draft.to_value())));
                    let by_draft = preparer.prepare_draft(origin, draft);
                    match (by_value, by_draft) {
                        (Ok(mut v), Ok(d)) => {
                            assert_eq!(d.canonical(), v.canonical(), "{text}");
                            assert_eq!(d.leaf_hash(), v.leaf_hash());
                            v.event.attributes = None;
                            assert_eq!(format!("{:?}", d.event), format!("{:?}", v.event));
                            assert_eq!(d.origin, v.origin);
                        }
                        (Err(v), Err(d)) => {
                            assert_eq!(d.reason, v.reason);
                            assert_eq!(d.excerpt, v.excerpt);
                        }
                        (v, d) => {
                            assert_eq!(
                                d.is_ok(),
                                v.is_ok(),
                                "{text}: by value {v:?}, by draft {d:?}"
                            );
                        }
                    }
                    compared += 1;
                }
            }
        }
        assert!(compared >= 150, "only {compared} events compared");
        // A draft that is not a valid event (a bad time, a secret in it): the same
        // quarantine entry both ways.
        let bad = draft::Obj::of([
            ("id", "x".into()),
            ("type", "action".into()),
            ("time", jwt.into()),
            ("source", "s".into()),
        ]);
        let origin = LineOrigin {
            file: "t".into(),
            line: 9,
        };
        let by_value = preparer
            .prepare_adapted(Ok((origin.clone(), bad.to_value())))
            .unwrap_err();
        let by_draft = preparer.prepare_draft(origin, bad).unwrap_err();
        assert_eq!(by_draft, by_value);
        assert!(by_draft.reason.contains("RFC 3339"), "{}", by_draft.reason);
        assert!(!by_draft.excerpt.contains(jwt));
    }

    fn items(bytes: Vec<u8>) -> (Vec<Item>, Stats) {
        let mut records = read(None, std::io::Cursor::new(bytes), "t");
        let items: Vec<Item> = records.by_ref().collect();
        (items, records.stats().clone())
    }

    /// What each record becomes on its own, numbered `number(i)`.
    fn one_by_one(records: &[Value], number: impl Fn(usize) -> u64) -> Vec<Item> {
        let converter = read(None, std::io::empty(), "t").converter();
        let mut out = VecDeque::new();
        let mut stats = Stats::default();
        for (i, r) in records.iter().enumerate() {
            converter.convert_one(number(i), r.clone(), &mut stats, &mut out);
        }
        out.into_iter().collect()
    }

    #[test]
    fn a_long_records_line_is_split_and_its_records_keep_the_line_number() {
        let records = cloudtrail_records(4);
        let line = serde_json::to_vec(&json!({ "Records": records })).unwrap();
        assert!(line.len() > SPLIT_LINES_FROM);
        let mut input = line.clone();
        input.extend(b"\n\n");
        input.extend(&line);
        let (got, stats) = items(input);
        let mut want = one_by_one(&records, |_| 1);
        want.extend(one_by_one(&records, |_| 3));
        assert!(want.iter().all(Result::is_ok));
        assert_eq!(got, want);
        assert_eq!(stats.records, 2 * records.len() as u64);
    }

    #[test]
    fn ndjson_cloudtrail_lines_read_through_a_tape_give_what_values_give() {
        // Every CloudTrail record of tests/data one per line, with lines of other formats,
        // a broken line and an escaped one between them.
        let mut records = all_cloudtrail_records();
        records.push(json!({"kind": "Event", "apiVersion": "audit.k8s.io/v1", "auditID": "a"}));
        records.push(json!({"eventVersion": "1.08", "eventSource": "s3.amazonaws.com"}));
        records.push(
            json!({"eventVersion": "1.08", "userIdentity": {"type": "IAMUser",
            "arn": "arn:aws:iam::1:user/a\"b"}, "eventID": "e", "eventName": "GetObject",
            "eventTime": "2024-01-01T00:00:00Z"}),
        );
        let mut input = Vec::new();
        for r in &records {
            input.extend(serde_json::to_vec(r).unwrap());
            input.push(b'\n');
        }
        input.extend(b"{\"eventVersion\": 1,\n");
        let (got, stats) = items(input);
        let mut want = one_by_one(&records, |i| i as u64 + 1);
        assert!(
            matches!(got.last(), Some(Err(_))),
            "the broken line is quarantined"
        );
        want.push(got.last().unwrap().clone());
        assert_eq!(got, want);
        assert_eq!(stats.records, records.len() as u64 + 1);
        assert!(records.len() > 50, "{}", records.len());
    }

    #[test]
    fn a_document_is_split_into_records_numbered_by_index() {
        let records = cloudtrail_records(2);
        for doc in [
            serde_json::to_vec_pretty(&json!({ "Records": records })).unwrap(),
            serde_json::to_vec(&json!(records)).unwrap(),
            [
                &b"\xef\xbb\xbf \n"[..],
                &serde_json::to_vec_pretty(&records).unwrap(),
            ]
            .concat(),
        ] {
            let (got, stats) = items(doc);
            assert_eq!(got, one_by_one(&records, |i| i as u64 + 1));
            assert_eq!(stats.records, records.len() as u64);
        }
    }

    #[test]
    fn a_document_broken_anywhere_is_rejected_whole() {
        let records = cloudtrail_records(4);
        let good = serde_json::to_string_pretty(&json!({ "Records": records })).unwrap();
        let one_line = serde_json::to_string(&json!({ "Records": records })).unwrap();
        let last_id = records.last().unwrap()["eventID"].as_str().unwrap();
        for bad in [
            good.get(..good.len() - 3).unwrap().to_owned(),
            good.replace(last_id, "\\ud800"),
            good.replace(&format!("\"{last_id}\""), "1e400"),
            format!("{good} x"),
            one_line.get(..one_line.len() - 1).unwrap().to_owned(),
            one_line.replace(last_id, "\u{1}"),
        ] {
            let error = serde_json::from_str::<Value>(bad.trim()).unwrap_err();
            let (got, stats) = items(bad.into_bytes());
            assert_eq!(got.len(), 1);
            let rejected = got[0].as_ref().unwrap_err();
            assert_eq!(rejected.origin.line, 1);
            assert_eq!(rejected.reason, format!("malformed JSON: {error}"));
            assert_eq!((stats.records, stats.events, stats.rejected), (1, 0, 1));
        }
    }

    #[test]
    fn a_malformed_line_is_quoted_as_it_was_read() {
        let (got, _) = items(b"{\"a\":1}\n  not json \r\n".to_vec());
        let rejected = got[1].as_ref().unwrap_err();
        assert_eq!(rejected.origin.line, 2);
        assert_eq!(rejected.excerpt, "  not json \r\n");
    }

    #[test]
    fn a_large_document_file_read_in_two_passes_gives_the_same_items() {
        let mut records = cloudtrail_records(40);
        records[500].as_object_mut().unwrap().remove("eventID");
        records[700] = json!("a string");
        let one_line = serde_json::to_string(&json!({ "Records": records })).unwrap();
        assert!(one_line.len() as u64 > STREAM_FROM);
        let pretty = serde_json::to_string_pretty(&json!({ "Records": records })).unwrap();
        let array = serde_json::to_string(&records).unwrap();
        let dir = std::env::temp_dir().join(format!("custody-read-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("in.json");
        // A number out of range in a record far down: found by the checking thread.
        let late = one_line.match_indices("\"eventID\"").nth(900).unwrap().0;
        for (input, scanned_line) in [
            (format!("\n \r\n{one_line} \n\n"), Some(Some(3))),
            (pretty.clone(), Some(None)),
            (format!("\n{array}"), Some(None)),
            (pretty.replacen('[', "[\n", 1), Some(None)),
            (one_line.get(..one_line.len() - 2).unwrap().to_owned(), None),
            (format!("{one_line}\n{one_line}\n"), None),
            (pretty.replacen('{', "{\"x\": [1], ", 1), None),
            (
                format!("{}\"x\": 1e400, {}", &one_line[..late], &one_line[late..]),
                None,
            ),
        ] {
            std::fs::write(&path, &input).unwrap();
            let scanned = scan_file(&File::open(&path).unwrap());
            let checked_here =
                split::scan(File::open(&path).unwrap(), &mut |b, _| split::is_json(b)).unwrap();
            assert_eq!(scanned, checked_here);
            // Every record checked by the scanning thread, or every one by the checker.
            for backlog in [0, usize::MAX] {
                let scanned = scan_file_with(&File::open(&path).unwrap(), backlog);
                assert_eq!(scanned, checked_here, "backlog {backlog}");
            }
            assert_eq!(scanned.map(|s| s.line), scanned_line);
            let mut from_file = read_file(None, &path, "t", Options::default()).unwrap();
            let got: Vec<Item> = from_file.by_ref().collect();
            let (want, want_stats) = items(input.into_bytes());
            assert_eq!(got, want);
            assert_eq!(from_file.stats(), &want_stats);
            assert!(
                got.iter()
                    .any(|i| i.as_ref().is_err_and(|r| r.reason.contains("eventID")))
                    || want_stats.records <= 1
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// One thread's converted records, by their position in the input, and its counts.
    type Converted = (Vec<(usize, Vec<Item>)>, Stats);

    #[test]
    fn raw_records_converted_apart_give_what_the_iterator_gives() {
        let records = cloudtrail_records(3);
        let mut ndjson = Vec::new();
        for r in &records {
            ndjson.extend(serde_json::to_vec(r).unwrap());
            ndjson.push(b'\n');
        }
        ndjson.extend(b"not json\n[1, {\"hello\": 2}]\n");
        for input in [
            ndjson,
            serde_json::to_vec(&json!({ "Records": records })).unwrap(),
            serde_json::to_vec_pretty(&json!({ "Records": records, "other": 1 })).unwrap(),
            b"{\"Records\": [1, 2".to_vec(),
        ] {
            let (want, want_stats) = items(input.clone());
            let mut records = read(None, std::io::Cursor::new(input), "t");
            let converter = records.converter();
            let mut raws = Vec::new();
            while let Some(next) = records.next_raw() {
                raws.push(next);
            }
            // Every other record on another thread, as the ingest pipeline does.
            let mut stats = records.stats().clone();
            let mut halves: [Vec<(usize, Next)>; 2] = [Vec::new(), Vec::new()];
            for (i, next) in raws.into_iter().enumerate() {
                halves[i % 2].push((i, next));
            }
            let converted: Vec<Converted> = std::thread::scope(|s| {
                let handles: Vec<_> = halves
                    .into_iter()
                    .map(|half| {
                        let converter = converter.clone();
                        s.spawn(move || {
                            let mut stats = Stats::default();
                            let mut done = Vec::new();
                            for (i, next) in half {
                                let mut out = VecDeque::new();
                                match next {
                                    Next::Item(item) => out.push_back(item),
                                    Next::Raw(raw) => converter.convert(raw, &mut stats, &mut out),
                                }
                                done.push((i, out.into_iter().collect()));
                            }
                            (done, stats)
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let mut all = Vec::new();
            for (done, part) in converted {
                all.extend(done);
                stats.merge(part);
            }
            all.sort_by_key(|(i, _)| *i);
            let got: Vec<Item> = all.into_iter().flat_map(|(_, items)| items).collect();
            assert_eq!(got, want);
            assert_eq!(stats, want_stats);
        }
    }
}
