//! Custody's HTTP API (DESIGN §11): the CLI's answers over HTTP, OTLP/HTTP trace intake,
//! Prometheus metrics and the web UI, as one axum [`Router`] built by [`app`].
//!
//! - Reads run on pooled read handles of the store (SQLite in WAL mode lets them run beside
//!   the writer); every write goes through the one [`writer::Writer`] thread, which groups
//!   concurrent batches under one signed checkpoint (group commit). An answer to a write
//!   means the events are committed and checkpointed.
//! - The gate keeps its facts in memory ([`custody_gate::FactIndex`]) and, before each
//!   decision, catches up with whatever the log gained since (appended here, by a CLI
//!   ingest, or by another node on a shared database), so no decision scans the log.
//! - Security as DESIGN §7: bearer tokens known only by their SHA-256, with roles; a body
//!   limit (413); every error is JSON `{"error": {"code", "message"}}`; no token, secret or
//!   request body is ever logged (the per-request span holds the method, the route
//!   pattern, the status and the time taken).

mod metrics;
mod otlp;
pub mod writer;

use std::io::Cursor;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State as AxState};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use custody_chain::{
    BlastConfig, BlastError, BlastRadius, BlastStart, LinkConfig, Trace, TraceError,
    UnverifiedBundle,
};
use custody_gate::{FactIndex, Gate, ProposedAction};
use custody_ingest::adapters::{self, Format};
use custody_ingest::{IngestSummary, Preparer};
use custody_model::{Event, Redactor, Timestamp, Verdict};
use custody_store::{LeanEvent, Ledger, LineOrigin, Rejected, Store, StoreError, StoreResult};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub use metrics::Metrics;
pub use writer::Writer;

/// The default request body limit: 16 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// What a bearer token may do (DESIGN §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// `POST /v1/events`, `POST /v1/traces`.
    Ingest,
    /// Every `GET` of the API and `/metrics`.
    Read,
    /// `POST /v1/authorize`.
    Gate,
    /// Everything.
    Admin,
}

impl Role {
    /// Parses a role name.
    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "ingest" => Some(Role::Ingest),
            "read" => Some(Role::Read),
            "gate" => Some(Role::Gate),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Read => "read",
            Role::Gate => "gate",
            Role::Admin => "admin",
        }
    }
}

/// A configured bearer token: only its SHA-256 is known.
#[derive(Clone, Debug)]
pub struct Token {
    /// A name for logs and metrics (never the token).
    pub name: String,
    /// SHA-256 of the token.
    pub sha256: [u8; 32],
    /// What it may do.
    pub roles: Vec<Role>,
}

/// Server settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// Bearer tokens; none means no authentication (loopback only, see [`check_listen`]).
    pub tokens: Vec<Token>,
    /// Largest accepted request body in bytes (413 past it).
    pub body_limit: usize,
    /// Linking settings for chains.
    pub link: LinkConfig,
    /// The most events one blast radius may hold.
    pub blast_max_events: usize,
    /// Whether the store may be read on an async worker thread as it is (true for SQLite:
    /// a short indexed read). False: such reads go through `block_in_place` or the
    /// blocking pool, as a store whose client runs a runtime of its own (PostgreSQL) needs.
    pub inline_reads: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tokens: Vec::new(),
            body_limit: DEFAULT_BODY_LIMIT,
            link: LinkConfig::default(),
            blast_max_events: BlastConfig::default().max_events,
            inline_reads: false,
        }
    }
}

/// Opens one more handle on the store (for the read pool).
pub type Opener = Box<dyn Fn() -> StoreResult<Box<dyn Store>> + Send + Sync>;

/// The gate's in-memory facts and how much of the log they cover.
struct Facts {
    index: FactIndex,
    covered: u64,
}

/// Everything the handlers share.
pub struct State {
    maintenance: Maintenance,
    options: Options,
    opener: Opener,
    readers: Mutex<Vec<Box<dyn Store>>>,
    writer: Writer,
    preparer: Preparer,
    gate: Gate,
    facts: RwLock<Facts>,
    /// The findings of the log at one size (see [`State::findings_now`]).
    findings: Mutex<Option<(u64, Arc<Vec<custody_rules::Finding>>)>>,
    metrics: Metrics,
    origin: String,
    verifier_key: String,
}

/// How often the maintenance thread runs [`Store::maintain`] (for SQLite, a passive WAL
/// checkpoint on its own handle).
///
/// Often, because the writer restarts the WAL each time it has grown past a bound (128 MiB
/// for SQLite), and that restart first copies, on the writer and in the path of the requests
/// waiting for it, whatever the maintenance thread has not copied yet. Every 200 ms that was
/// up to 200 ms of decisions, about 13 MB under load, and `scripts/bench-serve.sh 10 16` had
/// a p99 of 2.9–4.2 ms with 4 KiB pages and 3.8–4.9 ms with 8 KiB; every 20 ms, 2.4–2.5 and
/// 2.4–2.6 ms, with more decisions a second (alternating runs, EPYC host, 2026-12-05). An
/// idle server's checkpoint finds nothing to copy and returns at once.
const MAINTAIN_EVERY: std::time::Duration = std::time::Duration::from_millis(20);

/// A thread that runs the store's housekeeping ([`Store::maintain`]) on a handle of its own.
struct Maintenance {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Maintenance {
    fn start(store: Box<dyn Store>) -> std::io::Result<Maintenance> {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("custody-maintenance".into())
            .spawn(move || {
                while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::park_timeout(MAINTAIN_EVERY);
                    if let Err(e) = store.maintain() {
                        tracing::warn!(error = %e, "store maintenance failed");
                    }
                }
            })?;
        Ok(Maintenance {
            stop,
            thread: Mutex::new(Some(thread)),
        })
    }

    fn stop(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let thread = match self.thread.lock() {
            Ok(mut t) => t.take(),
            Err(p) => p.into_inner().take(),
        };
        if let Some(t) = thread {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// How many idle read handles are kept.
const READ_POOL: usize = 16;

impl State {
    /// The shared state: `ledger` goes to the writer thread; `opener` makes read handles;
    /// the gate's facts are loaded from the log now.
    pub fn new(
        ledger: Ledger,
        opener: Opener,
        redactor: Redactor,
        gate: Gate,
        options: Options,
    ) -> Result<Arc<State>, StoreError> {
        let origin = ledger.origin().to_owned();
        let verifier_key = ledger.verifier_key();
        let size = ledger.store().size()?;
        // The writer never checkpoints the WAL itself: a thread of its own does, on its own
        // handle, so no request waits behind a 32 MiB copy.
        let mut ledger = ledger;
        ledger.defer_maintenance()?;
        let maintenance = Maintenance::start(opener()?).map_err(|e| {
            StoreError::Backend(format!("cannot start the maintenance thread: {e}"))
        })?;
        let writer = Writer::start(ledger)
            .map_err(|e| StoreError::Backend(format!("cannot start the writer thread: {e}")))?;
        let state = State {
            maintenance,
            options,
            opener,
            readers: Mutex::new(Vec::new()),
            writer,
            preparer: Preparer::new(redactor),
            gate,
            facts: RwLock::new(Facts {
                index: FactIndex::new(),
                covered: 0,
            }),
            findings: Mutex::new(None),
            metrics: Metrics::new(),
            origin,
            verifier_key,
        };
        state
            .metrics
            .log_size
            .set(i64::try_from(size).unwrap_or(i64::MAX));
        state
            .with_reader(|s| state.catch_up(s).map_err(ApiError::from))
            .map_err(|e| StoreError::Backend(e.message))?;
        Ok(Arc::new(state))
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Stops the writer after it has committed every queued batch, then the maintenance.
    pub fn shutdown(&self) {
        self.writer.shutdown();
        self.maintenance.stop();
    }

    fn with_reader<T>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let pooled = match self.readers.lock() {
            Ok(mut p) => p.pop(),
            Err(p) => p.into_inner().pop(),
        };
        let store = match pooled {
            Some(s) => s,
            None => (self.opener)()?,
        };
        let result = f(store.as_ref());
        if let Ok(mut pool) = self.readers.lock() {
            if pool.len() < READ_POOL {
                pool.push(store);
            }
        }
        result
    }

    /// Every finding over the log as it is now: computed once per log size (a findings run
    /// reads the whole log) and shared by the requests that come while the log is unchanged.
    fn findings_now(&self, store: &dyn Store) -> StoreResult<Arc<Vec<custody_rules::Finding>>> {
        let size = store.size()?;
        if let Ok(cache) = self.findings.lock() {
            if let Some((at, list)) = cache.as_ref() {
                if *at == size {
                    return Ok(list.clone());
                }
            }
        }
        let mut report = None;
        let mut failed = None;
        // One snapshot, so the findings describe exactly the log of `size` events.
        store.read_snapshot(&mut || {
            let size_now = store.size()?;
            match custody_gate::findings(store, &self.gate) {
                Ok(r) => report = Some((size_now, r)),
                Err(e) => failed = Some(e),
            }
            Ok(())
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        let (at, report) =
            report.ok_or_else(|| StoreError::Backend("findings were not computed".into()))?;
        let list = Arc::new(report.findings);
        if let Ok(mut cache) = self.findings.lock() {
            *cache = Some((at, list.clone()));
        }
        Ok(list)
    }

    /// Brings the gate's facts up to the log's current size.
    fn catch_up(&self, store: &dyn Store) -> StoreResult<()> {
        let size = store.size()?;
        let behind = match self.facts.read() {
            Ok(f) => f.covered < size,
            Err(_) => true,
        };
        if !behind {
            return Ok(());
        }
        let mut facts = match self.facts.write() {
            Ok(f) => f,
            Err(p) => p.into_inner(),
        };
        let start = facts.covered;
        let mut covered = start;
        let index = &mut facts.index;
        store.scan(start, &mut |i, bytes, _| {
            let value: Value = serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
                index: i,
                reason: e.to_string(),
            })?;
            let event = Event::from_value(&value).map_err(|e| StoreError::Corrupt {
                index: i,
                reason: e.to_string(),
            })?;
            index.observe(&event);
            covered = i + 1;
            Ok(())
        })?;
        facts.covered = covered;
        Ok(())
    }
}

/// Refuses to listen on a non-loopback address with no tokens configured (DESIGN §7).
pub fn check_listen(addr: &SocketAddr, tokens: &[Token]) -> Result<(), String> {
    if !addr.ip().is_loopback() && tokens.is_empty() {
        return Err(format!(
            "refusing to listen on {addr} without tokens: anyone who can reach it could read \
             the log and write to it. Configure [[server.tokens]] in custody.toml, or listen \
             on 127.0.0.1"
        ));
    }
    Ok(())
}

/// An error answer: `{"error": {"code", "message"}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        tracing::error!(error = %e, "store error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "store", e.to_string())
    }
}

impl From<TraceError> for ApiError {
    fn from(e: TraceError) -> ApiError {
        match e {
            TraceError::UnknownEvent(_) | TraceError::UnknownCredential(_) => {
                ApiError::not_found(e.to_string())
            }
            TraceError::AmbiguousEvent { .. } => {
                ApiError::new(StatusCode::CONFLICT, "ambiguous", e.to_string())
            }
            TraceError::Store(s) => s.into(),
            other => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "trace",
                other.to_string(),
            ),
        }
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> ApiError {
        let status = r.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "payload_too_large"
        } else {
            "bad_body"
        };
        ApiError::new(status, code, r.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Runs blocking store work off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the request's work failed: {e}"),
        ))
    })
}

/// Runs `f` on a pooled read handle, off the async workers.
async fn read<T: Send + 'static>(
    state: &Arc<State>,
    f: impl FnOnce(&State, &dyn Store) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    let s = state.clone();
    blocking(move || s.with_reader(|store| f(&s, store))).await
}

/// A query string; a malformed one is a JSON 400, like every other error.
struct ApiQuery<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequestParts<S>
    for ApiQuery<T>
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| ApiQuery(q))
            .map_err(|e| ApiError::bad_request(e.body_text()))
    }
}

/// Runs short store work: right here when the store allows it ([`Options::inline_reads`]),
/// else in place on a multi-threaded runtime (`block_in_place`), else on the blocking pool.
async fn run_sync<T: Send + 'static>(
    inline: bool,
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    if inline {
        f()
    } else if Handle::current().runtime_flavor() == RuntimeFlavor::MultiThread {
        tokio::task::block_in_place(f)
    } else {
        blocking(f).await
    }
}

type Shared = AxState<Arc<State>>;

/// Every route of [`app`] (method, path pattern), as the OpenAPI document lists them.
pub const ROUTES: [(&str, &str); 16] = [
    ("GET", "/"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/v1/openapi.json"),
    ("POST", "/v1/events"),
    ("POST", "/v1/traces"),
    ("POST", "/v1/authorize"),
    ("GET", "/v1/chains/{event}"),
    ("GET", "/v1/chains/{event}/svg"),
    ("GET", "/v1/findings"),
    ("GET", "/v1/blast-radius"),
    ("GET", "/v1/checkpoint"),
    ("GET", "/v1/proofs/inclusion"),
    ("GET", "/v1/proofs/consistency"),
    ("GET", "/v1/evidence/{event}"),
    ("GET", "/v1/status"),
];

/// The router: every endpoint of DESIGN §11 and the web UI. Tests call it without a socket.
pub fn app(state: Arc<State>) -> Router {
    let limit = state.options.body_limit;
    Router::new()
        .route("/", get(ui))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/events", post(post_events))
        .route("/v1/traces", post(post_traces))
        .route("/v1/authorize", post(authorize))
        .route("/v1/chains/{event}", get(chain))
        .route("/v1/chains/{event}/svg", get(chain_svg))
        .route("/v1/findings", get(findings))
        .route("/v1/blast-radius", get(blast_radius))
        .route("/v1/checkpoint", get(checkpoint))
        .route("/v1/proofs/inclusion", get(inclusion))
        .route("/v1/proofs/consistency", get(consistency))
        .route("/v1/evidence/{event}", get(evidence))
        .route("/v1/status", get(status))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            authorize_request,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            observe_request,
        ))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Serves `app(state)` on `listener` until `shutdown` resolves, then lets requests in
/// flight finish and the writer commit everything queued.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<State>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let result = axum::serve(listener, app(state.clone()))
        .with_graceful_shutdown(shutdown)
        .await;
    // The last handles are dropped off the async workers too: a store client may own a
    // runtime of its own, which must not be dropped inside this one.
    let _ = tokio::task::spawn_blocking(move || {
        state.shutdown();
        drop(state);
    })
    .await;
    result
}

async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route for {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// The role a request needs; `None`: public.
fn required_role(method: &Method, path: &str) -> Option<Role> {
    match (method, path) {
        (_, "/" | "/healthz" | "/v1/openapi.json") => None,
        (&Method::POST, "/v1/events" | "/v1/traces") => Some(Role::Ingest),
        (&Method::POST, "/v1/authorize") => Some(Role::Gate),
        _ => Some(Role::Read),
    }
}

async fn authorize_request(state: Shared, request: Request, next: Next) -> Response {
    let tokens = &state.0.options.tokens;
    if tokens.is_empty() {
        return next.run(request).await;
    }
    let Some(needed) = required_role(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(presented) = presented else {
        return unauthorized("this endpoint needs `Authorization: Bearer TOKEN`");
    };
    let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    let Some(token) = tokens.iter().find(|t| t.sha256 == digest) else {
        return unauthorized("the bearer token is not one this server knows");
    };
    if !token
        .roles
        .iter()
        .any(|r| *r == needed || *r == Role::Admin)
    {
        tracing::info!(token = %token.name, needed = needed.as_str(), "forbidden");
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "token `{}` lacks the `{}` role this endpoint needs",
                token.name,
                needed.as_str()
            ),
        )
        .into_response();
    }
    next.run(request).await
}

fn unauthorized(message: &str) -> Response {
    let mut r = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

/// A span per request (method and route pattern only: no ids, queries, headers or bodies)
/// and the `http_requests` metric.
async fn observe_request(state: Shared, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = request.method().clone();
    let span = tracing::info_span!("request", %method, route = %route);
    let started = Instant::now();
    let response = {
        let _enter = span.enter();
        drop(_enter);
        next.run(request).await
    };
    let status = response.status().as_u16();
    let micros = started.elapsed().as_micros();
    span.in_scope(|| tracing::info!(status, micros, "answered"));
    state
        .0
        .metrics
        .requests
        .get_or_create(&metrics::RouteLabel { route, status })
        .inc();
    response
}

fn mime(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
}

fn unsupported(got: &str, wanted: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!("content type `{got}` is not accepted here; send {wanted}"),
    )
}

async fn ui() -> Html<&'static str> {
    Html(include_str!("../ui/index.html"))
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}

async fn healthz(state: Shared) -> ApiResult<Json<Value>> {
    let size = read(&state.0, |_, store| Ok(store.size()?)).await?;
    Ok(Json(json!({"status": "ok", "size": size})))
}

async fn metrics_text(state: Shared) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.0.metrics.encode(),
    )
        .into_response()
}

/// Reads `body` with the adapters (detected or `format`), prepares each record, and
/// commits the lot as one batch.
async fn ingest_body(
    state: &Arc<State>,
    body: Bytes,
    format: Option<Format>,
    name: &'static str,
) -> ApiResult<IngestSummary> {
    let s = state.clone();
    let (events, rejected, stats) = blocking(move || {
        let mut records = adapters::read(format, Cursor::new(body), name);
        // Lean here, on this blocking thread, where the typed events were made: the one
        // writer thread takes only what the store needs.
        let mut events: Vec<LeanEvent> = Vec::new();
        let mut rejected: Vec<Rejected> = Vec::new();
        for item in records.by_ref() {
            match s.preparer.prepare_adapted(item) {
                Ok(e) => events.push(LeanEvent::from(e)),
                Err(r) => rejected.push(r),
            }
        }
        Ok((events, rejected, records.stats().clone()))
    })
    .await?;
    let mut summary = IngestSummary::default();
    for r in &rejected {
        summary.note_error(&r.origin.file, r.origin.line, &r.reason);
    }
    let outcome = state.writer.append(events, rejected).await?;
    for r in &outcome.conflicts {
        summary.note_error(&r.origin.file, r.origin.line, &r.reason);
    }
    let m = &state.metrics;
    m.accepted.inc_by(outcome.accepted);
    m.duplicates.inc_by(outcome.duplicates);
    m.quarantined.inc_by(outcome.quarantined);
    m.log_size
        .set(i64::try_from(outcome.size).unwrap_or(i64::MAX));
    summary.accepted = outcome.accepted;
    summary.duplicates = outcome.duplicates;
    summary.quarantined = outcome.quarantined;
    summary.size = outcome.size;
    summary.skipped = stats.skipped;
    summary.formats = stats.formats;
    Ok(summary)
}

#[derive(Deserialize)]
struct IngestQuery {
    format: Option<String>,
}

/// `POST /v1/events`: NDJSON of `custody-event/1` objects, or any format `custody ingest`
/// reads (detected, or `?format=NAME`). Answers like `custody ingest --format json`; 400
/// when nothing in the body could be stored (what was rejected is in the quarantine).
async fn post_events(
    state: Shared,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<IngestQuery>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let query = q;
    if let Some(m) = mime(&headers) {
        const OK: [&str; 8] = [
            "application/x-ndjson",
            "application/ndjson",
            "application/jsonl",
            "application/json",
            "text/plain",
            "application/gzip",
            "application/octet-stream",
            "",
        ];
        if !OK.contains(&m.as_str()) {
            return Err(unsupported(
                &m,
                "application/x-ndjson (or application/json)",
            ));
        }
    }
    let format = match query.format.as_deref() {
        Some(name) => Some(
            Format::parse(name)
                .ok_or_else(|| ApiError::bad_request(format!("unknown format `{name}`")))?,
        ),
        None => None,
    };
    let body = body?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "the body is empty: send NDJSON events",
        ));
    }
    let summary = ingest_body(&state.0, body, format, "POST /v1/events").await?;
    let status = if summary.accepted + summary.duplicates == 0 && summary.quarantined > 0 {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let mut answer = summary.to_json();
    if status == StatusCode::BAD_REQUEST {
        let first = summary
            .errors
            .first()
            .map(|e| format!("; first: line {}: {}", e.line, e.reason))
            .unwrap_or_default();
        if let Value::Object(map) = &mut answer {
            map.insert("error".into(), json!({
            "code": "bad_input",
            "message": format!("nothing stored: {} record(s) quarantined{first}", summary.quarantined),
        }));
        }
    }
    Ok((status, Json(answer)).into_response())
}

/// `POST /v1/traces`: OTLP/HTTP, protobuf or JSON, mapped by the OTel adapter. Answers an
/// `ExportTraceServiceResponse` in the request's encoding, with `partial_success` naming
/// the spans that were rejected.
async fn post_traces(
    state: Shared,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let m = mime(&headers).unwrap_or_default();
    let protobuf = match m.as_str() {
        "application/x-protobuf" | "application/protobuf" => true,
        "application/json" => false,
        other => {
            return Err(unsupported(
                other,
                "application/x-protobuf or application/json (OTLP/HTTP)",
            ))
        }
    };
    let body = body?;
    // JSON goes to the OTel adapter as sent (checked first, so a malformed body is a 400);
    // protobuf is decoded and written as the OTLP JSON encoding the adapter reads.
    let bytes = if protobuf {
        let doc = otlp::protobuf_to_json(&body).map_err(|e| {
            ApiError::bad_request(format!("not an OTLP ExportTraceServiceRequest: {e}"))
        })?;
        Bytes::from(serde_json::to_vec(&doc).map_err(|e| ApiError::bad_request(e.to_string()))?)
    } else {
        serde_json::from_slice::<serde::de::IgnoredAny>(&body)
            .map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
        body
    };
    let summary = ingest_body(&state.0, bytes, Some(Format::Otel), "POST /v1/traces").await?;
    let rejected = summary.quarantined;
    let message = summary
        .errors
        .first()
        .map(|e| e.reason.clone())
        .unwrap_or_default();
    if protobuf {
        use opentelemetry_proto::tonic::collector::trace::v1::{
            ExportTracePartialSuccess, ExportTraceServiceResponse,
        };
        use prost::Message as _;
        let answer = ExportTraceServiceResponse {
            partial_success: (rejected > 0).then(|| ExportTracePartialSuccess {
                rejected_spans: i64::try_from(rejected).unwrap_or(i64::MAX),
                error_message: message,
            }),
        };
        Ok((
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            answer.encode_to_vec(),
        )
            .into_response())
    } else {
        let answer = if rejected > 0 {
            json!({"partialSuccess": {"rejectedSpans": rejected.to_string(), "errorMessage": message}})
        } else {
            json!({})
        };
        Ok(Json(answer).into_response())
    }
}

/// `POST /v1/authorize`: a proposed action in, the gate's decision out (the shape of
/// `custody check --format json`); the decision is recorded before the answer.
async fn authorize(
    state: Shared,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let started = Instant::now();
    if let Some(m) = mime(&headers) {
        if m != "application/json" && !m.is_empty() {
            return Err(unsupported(&m, "application/json"));
        }
    }
    let body = body?;
    let value: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "malformed JSON at line {} column {}: {e}",
            e.line(),
            e.column()
        ))
    })?;
    // Deciding takes tens of microseconds of CPU and two indexed reads: it runs on the
    // async worker itself (`block_in_place`, so a store client that blocks on its own
    // runtime, as the PostgreSQL one does, may), which measured faster than a hop to the
    // blocking pool. See `run_sync`.
    let s = state.0.clone();
    let (decision, prepared) = run_sync(state.0.options.inline_reads, move || {
        let proposed = ProposedAction::parse(value, s.preparer.redactor())
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let at = proposed.time.unwrap_or_else(Timestamp::now);
        let size = s.with_reader(|store| {
            s.catch_up(store)?;
            Ok(store.size()?)
        })?;
        let facts = match s.facts.read() {
            Ok(f) => f,
            Err(p) => p.into_inner(),
        };
        let decision = s.gate.decide(&facts.index, &proposed, at);
        drop(facts);
        let event = s.gate.decision_event(&proposed, &decision, at, size);
        let prepared = s
            .preparer
            .prepare_value(
                event,
                Some(LineOrigin {
                    file: "POST /v1/authorize".into(),
                    line: 1,
                }),
            )
            .map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    format!("cannot record the decision: {e}"),
                )
            })?;
        Ok::<_, ApiError>((decision, prepared))
    })
    .await?;
    let key = prepared.event.key.clone();
    let stored: Value = serde_json::from_slice(prepared.canonical())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let outcome = state
        .0
        .writer
        .append(vec![LeanEvent::from(prepared)], Vec::new())
        .await?;
    if !outcome.conflicts.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("the decision {key} is already stored with other content"),
        ));
    }
    let index = if outcome.accepted == 1 {
        outcome.size.saturating_sub(1)
    } else {
        let s = state.0.clone();
        run_sync(s.options.inline_reads, move || {
            s.with_reader(|store| {
                store.get(&key)?.map(|e| e.index).ok_or_else(|| {
                    ApiError::not_found(format!("the decision {key} is not in the log"))
                })
            })
        })
        .await?
    };
    let m = &state.0.metrics;
    m.accepted.inc_by(outcome.accepted);
    m.duplicates.inc_by(outcome.duplicates);
    m.log_size
        .set(i64::try_from(outcome.size).unwrap_or(i64::MAX));
    m.decided(
        decision.verdict == Verdict::Allow,
        started.elapsed().as_secs_f64(),
    );
    Ok(Json(decision.to_json(&stored, Some(index))))
}

/// `GET /v1/chains/{event}`: the chain as `custody trace --format json`.
async fn chain(state: Shared, Path(event): Path<String>) -> ApiResult<Json<Value>> {
    read(&state.0, move |s, store| {
        Ok(Json(
            Trace::of_event(store, &event, &s.options.link)?.to_json(),
        ))
    })
    .await
}

#[derive(Deserialize)]
struct FindingsQuery {
    rule: Option<String>,
    framework: Option<String>,
    since: Option<String>,
}

/// `GET /v1/findings[?rule=&framework=&since=]`: as `custody findings --format json`.
async fn findings(state: Shared, ApiQuery(q): ApiQuery<FindingsQuery>) -> ApiResult<Json<Value>> {
    let catalogue = custody_rules::catalogue();
    if let Some(rule) = &q.rule {
        if catalogue.rule(rule).is_none() {
            return Err(ApiError::bad_request(format!("unknown rule `{rule}`")));
        }
    }
    let control = match &q.framework {
        Some(name) => Some(
            catalogue
                .control(name)
                .map(|c| c.id.clone())
                .ok_or_else(|| {
                    ApiError::bad_request(format!("unknown framework control `{name}`"))
                })?,
        ),
        None => None,
    };
    let since = match &q.since {
        Some(t) => {
            Some(Timestamp::parse(t).map_err(|e| ApiError::bad_request(format!("since: {e}")))?)
        }
        None => None,
    };
    read(&state.0, move |s, store| {
        let findings = s.findings_now(store)?;
        let list: Vec<Value> = findings
            .iter()
            .filter(|f| q.rule.as_deref().is_none_or(|r| f.rule == r))
            .filter(|f| {
                control
                    .as_deref()
                    .is_none_or(|c| f.frameworks.iter().any(|x| x == c))
            })
            .filter(|f| since.is_none_or(|t| f.time >= t))
            .map(custody_rules::Finding::to_json)
            .collect();
        Ok(Json(Value::Array(list)))
    })
    .await
}

#[derive(Deserialize)]
struct BlastQuery {
    credential: Option<String>,
    principal: Option<String>,
    secret: Option<String>,
    max_events: Option<usize>,
}

/// `GET /v1/blast-radius?credential=|principal=|secret=`: as `custody blast-radius`.
async fn blast_radius(state: Shared, ApiQuery(q): ApiQuery<BlastQuery>) -> ApiResult<Json<Value>> {
    let start = match (q.credential, q.principal, q.secret) {
        (Some(c), None, None) => BlastStart::Credential(c),
        (None, Some(p), None) => BlastStart::Principal(p),
        (None, None, Some(s)) => BlastStart::Secret(s),
        _ => {
            return Err(ApiError::bad_request(
                "give exactly one of credential=, principal=, secret=",
            ))
        }
    };
    let s = state.0.clone();
    let config = BlastConfig {
        max_events: q.max_events.unwrap_or(s.options.blast_max_events),
    };
    blocking(move || {
        s.with_reader(|store| match BlastRadius::compute(store, start, &config) {
            Ok(r) => Ok(Json(r.to_json())),
            Err(
                e @ (BlastError::UnknownCredential(_)
                | BlastError::UnknownPrincipal(_)
                | BlastError::UnknownSecret(_)),
            ) => Err(ApiError::not_found(e.to_string())),
            Err(e) => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "store",
                e.to_string(),
            )),
        })
    })
    .await
}

/// `GET /v1/checkpoint`: the latest signed checkpoint (signed now if the log grew), as
/// `custody checkpoint --format json`, plus the verifier key.
async fn checkpoint(state: Shared) -> ApiResult<Json<Value>> {
    let c = state.0.writer.checkpoint().await?;
    Ok(Json(json!({
        "origin": state.0.origin,
        "size": c.size,
        "root": base64::engine::general_purpose::STANDARD.encode(c.root),
        "note": c.note,
        "key": state.0.verifier_key,
    })))
}

#[derive(Deserialize)]
struct InclusionQuery {
    index: u64,
    size: Option<u64>,
}

/// `GET /v1/proofs/inclusion?index=&size=`: as `custody proof --index --format json`.
async fn inclusion(state: Shared, ApiQuery(q): ApiQuery<InclusionQuery>) -> ApiResult<Json<Value>> {
    read(&state.0, move |_, store| {
        let current = store.size()?;
        if q.index >= q.size.unwrap_or(current) {
            return Err(ApiError::not_found(format!(
                "index {} is not in a tree of size {}",
                q.index,
                q.size.unwrap_or(current)
            )));
        }
        if q.size.is_some_and(|n| n > current) {
            return Err(ApiError::bad_request(format!(
                "the log has {current} events, fewer than the requested size"
            )));
        }
        let p = custody_store::inclusion_proof_in(store, q.index, q.size)?;
        let leaf = store.event_at(q.index)?.map(|e| e.canonical);
        Ok(Json(p.to_json(leaf.as_deref())))
    })
    .await
}

#[derive(Deserialize)]
struct ConsistencyQuery {
    from: u64,
    to: Option<u64>,
}

/// `GET /v1/proofs/consistency?from=&to=`: as `custody proof --from --format json`.
async fn consistency(
    state: Shared,
    ApiQuery(q): ApiQuery<ConsistencyQuery>,
) -> ApiResult<Json<Value>> {
    read(&state.0, move |_, store| {
        let current = store.size()?;
        let to = q.to.unwrap_or(current);
        if q.from > to || to > current {
            return Err(ApiError::bad_request(format!(
                "cannot prove consistency from size {} to size {to} in a log of {current}",
                q.from
            )));
        }
        let p = custody_store::consistency_proof_in(store, q.from, q.to)?;
        Ok(Json(p.to_json()))
    })
    .await
}

/// `GET /v1/evidence/{event}`: the evidence bundle of `custody export`.
async fn evidence(state: Shared, Path(event): Path<String>) -> ApiResult<Json<Value>> {
    let checkpoint = state.0.writer.checkpoint().await?;
    read(&state.0, move |s, store| {
        let trace = Trace::of_event(store, &event, &s.options.link)?;
        let bundle = UnverifiedBundle::export(
            store,
            &s.origin,
            &trace.start,
            trace.events.values(),
            &checkpoint,
        )
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "bundle", e.to_string()))?;
        let value = serde_json::to_value(&bundle).map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "bundle", e.to_string())
        })?;
        Ok(Json(value))
    })
    .await
}

/// `GET /v1/chains/{event}/svg`: the chain drawn as a graph (the web UI shows it).
async fn chain_svg(state: Shared, Path(event): Path<String>) -> ApiResult<Response> {
    let svg = read(&state.0, move |s, store| {
        let trace = Trace::of_event(store, &event, &s.options.link)?;
        Ok(custody_chain::chain_svg(&trace))
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}

/// `GET /v1/status`: the log's size and root and the latest signed checkpoint (the UI's
/// log status), without signing anything.
async fn status(state: Shared) -> ApiResult<Json<Value>> {
    read(&state.0, move |s, store| {
        let b64 = base64::engine::general_purpose::STANDARD;
        let latest = store.latest_checkpoint()?;
        Ok(Json(json!({
            "origin": s.origin,
            "size": store.size()?,
            "root": b64.encode(store.root()?),
            "key": s.verifier_key,
            "checkpoint": latest.map(|c| json!({
                "size": c.size,
                "root": b64.encode(c.root),
                "note": c.note,
            })),
        })))
    })
    .await
}
