//! A server over a real SQLite file holding the five example stories.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use custody_gate::Gate;
use custody_ingest::Preparer;
use custody_merkle::NoteSigner;
use custody_model::Redactor;
use custody_store::{Ledger, Store};
use custody_store_sqlite::SqliteStore;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message as _;
use serde_json::Value;
use tower::ServiceExt as _;

#[allow(unused_imports)]
pub use custody_server::{Options, Role, State, Token};

pub const KEY: &[u8] = b"server-test-fingerprint-key-0001";
pub const ORIGIN: &str = "server.test/log";

pub fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

pub fn proposal(name: &str) -> String {
    std::fs::read_to_string(examples().join("proposals").join(name)).unwrap()
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    pub state: Arc<State>,
    pub examples: u64,
}

/// A ledger over `db` holding the example stories.
pub fn seeded_ledger(db: &std::path::Path) -> (Ledger, u64) {
    let store = SqliteStore::open(db).unwrap();
    let signer = NoteSigner::generate(ORIGIN, [7; 32]).unwrap();
    let mut ledger = Ledger::new(Box::new(store), signer, ORIGIN);
    let preparer = Preparer::new(Redactor::new(KEY));
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "ndjson"))
        .collect();
    files.sort();
    for f in files {
        let name = f.display().to_string();
        let records = custody_ingest::adapters::read(None, std::fs::File::open(&f).unwrap(), &name);
        let events: Vec<_> = records
            .map(|item| preparer.prepare_adapted(item).unwrap())
            .collect();
        ledger.append(&events, &[]).unwrap();
    }
    let size = ledger.store().size().unwrap();
    (ledger, size)
}

pub fn state_over(db: &std::path::Path, options: Options) -> Arc<State> {
    let (ledger, _) = seeded_ledger(db);
    let path = db.to_path_buf();
    let opener: custody_server::Opener = Box::new(move || {
        let s = SqliteStore::open(&path)?;
        Ok(Box::new(s) as Box<dyn Store>)
    });
    let gate = Gate::new(custody_rules::Policy::default(), None);
    State::new(ledger, opener, Redactor::new(KEY), gate, options).unwrap()
}

impl Fixture {
    pub fn new(options: Options) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("server.db");
        let state = state_over(&db, options);
        let examples = SqliteStore::open(&db).unwrap().size().unwrap();
        Fixture {
            dir,
            db,
            state,
            examples,
        }
    }

    pub fn reader(&self) -> Box<dyn Store> {
        Box::new(SqliteStore::open(&self.db).unwrap())
    }

    pub fn size(&self) -> u64 {
        self.reader().size().unwrap()
    }

    /// The canonical bytes of every event after the examples.
    pub fn events_after_examples(&self) -> Vec<String> {
        let store = self.reader();
        let mut out = Vec::new();
        store
            .scan(self.examples, &mut |_, bytes, _| {
                out.push(String::from_utf8(bytes.to_vec()).unwrap());
                Ok(())
            })
            .unwrap();
        out
    }

    pub async fn call_raw(&self, request: Request<Body>) -> (StatusCode, Vec<u8>) {
        let response = custody_server::app(self.state.clone())
            .oneshot(request)
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, bytes.to_vec())
    }

    pub async fn call(&self, request: Request<Body>) -> (StatusCode, Value) {
        let (status, bytes) = self.call_raw(request).await;
        let value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            panic!(
                "answer ({status}) is not JSON: {e}: {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    pub async fn get_text(&self, path: &str) -> (StatusCode, String) {
        let (status, bytes) = self
            .call_raw(Request::get(path).body(Body::empty()).unwrap())
            .await;
        (status, String::from_utf8(bytes).unwrap())
    }

    pub async fn post(&self, path: &str, content_type: &str, body: &str) -> (StatusCode, Value) {
        self.call(
            Request::post(path)
                .header("content-type", content_type)
                .body(Body::from(body.to_owned()))
                .unwrap(),
        )
        .await
    }

    pub async fn post_bytes(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Vec<u8>) {
        self.call_raw(
            Request::post(path)
                .header("content-type", content_type)
                .body(Body::from(body))
                .unwrap(),
        )
        .await
    }
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
    }
}

/// An agent run as an instrumented agent exports it: `invoke_agent` for a human, and an
/// `execute_tool` span under it that names its credential and resource.
pub fn otlp_request() -> ExportTraceServiceRequest {
    let trace_id = vec![0x4b; 16];
    let agent = Span {
        trace_id: trace_id.clone(),
        span_id: vec![1; 8],
        name: "invoke_agent support-copilot".into(),
        start_time_unix_nano: 1_780_000_000_000_000_000,
        end_time_unix_nano: 1_780_000_005_000_000_000,
        attributes: vec![
            kv("gen_ai.operation.name", "invoke_agent"),
            kv("gen_ai.agent.id", "support-copilot"),
            kv("enduser.id", "ana@example.com"),
        ],
        ..Span::default()
    };
    let tool = Span {
        trace_id,
        span_id: vec![2; 8],
        parent_span_id: vec![1; 8],
        name: "execute_tool issue_refund".into(),
        start_time_unix_nano: 1_780_000_001_000_000_000,
        end_time_unix_nano: 1_780_000_002_000_000_000,
        attributes: vec![
            kv("gen_ai.operation.name", "execute_tool"),
            kv("gen_ai.tool.name", "issue_refund"),
            kv("gen_ai.tool.call.id", "call-77"),
            kv("custody.operation", "crm:refund.create"),
            kv("custody.resource", "crm://orders/1234"),
            kv("custody.credential.id", "crm-token-9"),
        ],
        ..Span::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "support-copilot")],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![agent, tool],
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

pub fn otlp_protobuf(r: &ExportTraceServiceRequest) -> Vec<u8> {
    r.encode_to_vec()
}

/// The same request in the OTLP JSON encoding, written by hand from the specification
/// (not by the server's own converter), so the two paths are checked against each other.
pub fn otlp_json(r: &ExportTraceServiceRequest) -> Value {
    let spans: Vec<Value> = r.resource_spans[0].scope_spans[0]
        .spans
        .iter()
        .map(|s| {
            let mut v = serde_json::json!({
                "traceId": hex::encode(&s.trace_id),
                "spanId": hex::encode(&s.span_id),
                "name": s.name,
                "startTimeUnixNano": s.start_time_unix_nano.to_string(),
                "endTimeUnixNano": s.end_time_unix_nano.to_string(),
                "attributes": s.attributes.iter().map(|kv| {
                    let Some(AnyValue { value: Some(any_value::Value::StringValue(x)) }) = &kv.value else { panic!() };
                    serde_json::json!({"key": kv.key, "value": {"stringValue": x}})
                }).collect::<Vec<_>>(),
            });
            if !s.parent_span_id.is_empty() {
                v["parentSpanId"] = hex::encode(&s.parent_span_id).into();
            }
            v
        })
        .collect();
    serde_json::json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "support-copilot"}}]},
        "scopeSpans": [{"spans": spans}]
    }]})
}
