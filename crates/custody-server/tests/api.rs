//! The HTTP API through `app(state)`, without a socket: every endpoint answers the CLI's
//! shapes, errors are JSON, tokens and roles are enforced, decisions are recorded and
//! provable, and OTLP protobuf and OTLP JSON become the same events.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::*;
use custody_merkle::Hash;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

#[tokio::test]
async fn health_and_json_errors() {
    let fx = Fixture::new(Options::default());
    let (status, body) = fx.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["size"], fx.size());

    let (status, body) = fx.get("/v1/nothing-here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");

    let (status, body) = fx
        .call(Request::delete("/healthz").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"]["code"], "method_not_allowed");

    let (status, body) = fx.get("/v1/proofs/inclusion?index=abc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"].as_str().unwrap().contains("index"));

    let (status, body) = fx.get("/v1/chains/no-such-event").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no-such-event"));
}

#[tokio::test]
async fn events_are_ingested_counted_and_quarantined() {
    let fx = Fixture::new(Options::default());
    let before = fx.size();
    let lines = format!(
        "{}\n{{not json\n{}\n",
        json!({"id":"api-1","type":"request","time":"2026-06-01T09:00:00Z","source":"api-test",
               "initiator":{"id":"zoe@example.com","kind":"human"},"intent":"look"}),
        json!({"id":"api-2","type":"action","time":"2026-06-01T09:01:00Z","source":"api-test",
               "actor":"agent:bot","operation":"read","resource":"db://x","request":"api-1"}),
    );
    let (status, body) = fx.post("/v1/events", "application/x-ndjson", &lines).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], 2);
    assert_eq!(body["quarantined"], 1);
    assert_eq!(body["errors"][0]["line"], 2);
    assert!(body["errors"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("malformed JSON"));
    assert_eq!(body["size"], before + 2);
    assert_eq!(fx.size(), before + 2);

    // The same again: duplicates, nothing stored, the bad line quarantined again.
    let (status, body) = fx.post("/v1/events", "application/x-ndjson", &lines).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["accepted"], 0);
    assert_eq!(body["duplicates"], 2);
    assert_eq!(body["size"], before + 2);

    // Conflicting content for a stored id: quarantined, never an overwrite.
    let conflict = json!({"id":"api-2","type":"action","time":"2026-06-01T09:01:00Z","source":"api-test",
        "actor":"agent:bot","operation":"delete","resource":"db://x"});
    let (status, body) = fx
        .post("/v1/events", "application/x-ndjson", &conflict.to_string())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["quarantined"], 1);
    assert_eq!(body["error"]["code"], "bad_input");
    let (_, chain) = fx.get("/v1/chains/api-test%23api-2").await;
    let ops: Vec<String> = chain
        .to_string()
        .matches("delete")
        .map(String::from)
        .collect();
    assert!(
        ops.is_empty(),
        "the conflicting copy must not be stored: {chain}"
    );

    // Wrong content type, empty body.
    let (status, body) = fx.post("/v1/events", "image/png", "x").await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(body["error"]["code"], "unsupported_media_type");
    let (status, _) = fx.post("/v1/events", "application/x-ndjson", "  \n").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn oversized_bodies_get_413_as_json() {
    let fx = Fixture::new(Options {
        body_limit: 1024,
        ..Options::default()
    });
    let big = "x".repeat(4096);
    for path in ["/v1/events", "/v1/authorize", "/v1/traces"] {
        let (status, body) = fx.post(path, "application/json", &big).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}: {body}");
        assert_eq!(body["error"]["code"], "payload_too_large");
    }
    // Still serving.
    assert_eq!(fx.get("/healthz").await.0, StatusCode::OK);
}

fn token(name: &str, secret: &str, roles: &[Role]) -> Token {
    Token {
        name: name.into(),
        sha256: Sha256::digest(secret.as_bytes()).into(),
        roles: roles.to_vec(),
    }
}

#[tokio::test]
async fn tokens_and_roles() {
    let fx = Fixture::new(Options {
        tokens: vec![
            token("reader", "read-secret-1", &[Role::Read]),
            token("ci", "ingest-secret-2", &[Role::Ingest]),
            token("root", "admin-secret-3", &[Role::Admin]),
        ],
        ..Options::default()
    });
    let with = |method: &str, path: &str, token: Option<&str>, body: &str| {
        let mut r = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json");
        if let Some(t) = token {
            r = r.header("authorization", format!("Bearer {t}"));
        }
        r.body(Body::from(body.to_owned())).unwrap()
    };
    // Public.
    assert_eq!(
        fx.call(with("GET", "/healthz", None, "")).await.0,
        StatusCode::OK
    );
    // No token, an unknown token: 401.
    let (status, body) = fx.call(with("GET", "/v1/checkpoint", None, "")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, _) = fx
        .call(with("GET", "/v1/checkpoint", Some("guess"), ""))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The wrong role: 403.
    let (status, body) = fx
        .call(with("GET", "/v1/checkpoint", Some("ingest-secret-2"), ""))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body["error"]["message"].as_str().unwrap().contains("read"));
    let (status, _) = fx
        .call(with("POST", "/v1/events", Some("read-secret-1"), "{}"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = fx
        .call(with("POST", "/v1/authorize", Some("ingest-secret-2"), "{}"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The right role, and admin for anything.
    let (status, _) = fx
        .call(with("GET", "/v1/checkpoint", Some("read-secret-1"), ""))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = fx
        .call_raw(with("GET", "/metrics", Some("admin-secret-3"), ""))
        .await;
    assert_eq!(status, StatusCode::OK);
    let line = json!({"id":"tok-1","type":"request","time":"2026-06-01T09:00:00Z","source":"api-test",
        "initiator":{"id":"zoe@example.com","kind":"human"},"intent":"x"});
    let (status, body) = fx
        .call(with(
            "POST",
            "/v1/events",
            Some("ingest-secret-2"),
            &line.to_string(),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], 1);
}

#[test]
fn non_loopback_without_tokens_is_refused() {
    let open: std::net::SocketAddr = "0.0.0.0:8080".parse().unwrap();
    let local: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
    let err = custody_server::check_listen(&open, &[]).unwrap_err();
    assert!(err.contains("without tokens"), "{err}");
    assert!(custody_server::check_listen(&local, &[]).is_ok());
    assert!(custody_server::check_listen(&open, &[token("t", "s", &[Role::Admin])]).is_ok());
}

fn b64(h: &str) -> Hash {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(h)
        .unwrap()
        .try_into()
        .unwrap()
}

#[tokio::test]
async fn authorize_decides_records_and_proves() {
    let fx = Fixture::new(Options::default());
    let allow = proposal("01-allow-read-inventory-secret.json");
    let (status, body) = fx.post("/v1/authorize", "application/json", &allow).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["decision"], "allow", "{body}");
    let index = body["decision_index"].as_u64().unwrap();
    assert_eq!(body["decision_event"]["type"], "decision");
    assert_eq!(index + 1, fx.size(), "the decision is the newest event");

    let deny = proposal("02-deny-reused-vault-token.json");
    let (status, body) = fx.post("/v1/authorize", "application/json", &deny).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["decision"], "deny");
    let rules: Vec<&str> = body["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&"token-reuse"), "{rules:?}");

    // The decision is provable against the signed checkpoint.
    let (_, cp) = fx.get("/v1/checkpoint").await;
    let size = cp["size"].as_u64().unwrap();
    assert!(size > index);
    let (status, p) = fx
        .get(&format!("/v1/proofs/inclusion?index={index}&size={size}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    let leaf = custody_merkle::leaf_hash(p["leaf"].as_str().unwrap().as_bytes());
    assert_eq!(leaf, b64(p["leaf_hash"].as_str().unwrap()));
    let path: Vec<Hash> = p["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| b64(h.as_str().unwrap()))
        .collect();
    custody_merkle::verify_inclusion(
        &leaf,
        index,
        size,
        &path,
        &b64(cp["root"].as_str().unwrap()),
    )
    .expect("inclusion proof of the decision verifies");
    let verifier = custody_merkle::NoteVerifier::parse(cp["key"].as_str().unwrap()).unwrap();
    custody_merkle::UnverifiedCheckpoint::parse(cp["note"].as_str().unwrap().as_bytes())
        .unwrap()
        .verify(&verifier)
        .expect("the checkpoint note is signed by the server's key");

    // Bad input: 400 naming the problem; wrong type: 415.
    let (status, body) = fx
        .post("/v1/authorize", "application/json", "{\"time\":")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("malformed JSON"));
    let (status, body) = fx
        .post(
            "/v1/authorize",
            "application/json",
            "{\"actor\":\"agent:x\"}",
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = fx.post("/v1/authorize", "text/html", &allow).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let (_, metrics) = fx.get_text("/metrics").await;
    assert!(
        metrics.contains("custody_decisions_total{verdict=\"allow\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("custody_decisions_total{verdict=\"deny\"} 1"));
    assert!(metrics.contains("custody_decision_seconds_count 2"));
}

#[tokio::test]
async fn reads_answer_the_cli_shapes() {
    let fx = Fixture::new(Options::default());
    let store = fx.reader();
    let link = custody_chain::LinkConfig::default();

    let (status, chain) = fx.get("/v1/chains/s1-act-2").await;
    assert_eq!(status, StatusCode::OK);
    let want = custody_chain::Trace::of_event(store.as_ref(), "s1-act-2", &link)
        .unwrap()
        .to_json();
    assert_eq!(chain, want);

    let (status, findings) = fx.get("/v1/findings").await;
    assert_eq!(status, StatusCode::OK);
    let gate = custody_gate::Gate::new(custody_rules::Policy::default(), None);
    let report = custody_gate::findings(store.as_ref(), &gate).unwrap();
    assert_eq!(findings.as_array().unwrap().len(), report.findings.len());
    assert!(!report.findings.is_empty());
    let (_, reuse) = fx.get("/v1/findings?rule=token-reuse").await;
    let reuse = reuse.as_array().unwrap();
    assert!(!reuse.is_empty());
    assert!(reuse.iter().all(|f| f["rule"] == "token-reuse"));
    let (status, _) = fx.get("/v1/findings?rule=made-up").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, radius) = fx
        .get("/v1/blast-radius?secret=secret%2Fci%2Fci-publisher%2Faws")
        .await;
    assert_eq!(status, StatusCode::OK, "{radius}");
    let want = custody_chain::BlastRadius::compute(
        store.as_ref(),
        custody_chain::BlastStart::Secret("secret/ci/ci-publisher/aws".into()),
        &custody_chain::BlastConfig::default(),
    )
    .unwrap()
    .to_json();
    assert_eq!(radius, want);
    let (status, _) = fx.get("/v1/blast-radius?credential=a&principal=b").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = fx.get("/v1/blast-radius?credential=never-issued").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, c) = fx.get("/v1/proofs/consistency?from=3").await;
    assert_eq!(status, StatusCode::OK, "{c}");
    assert_eq!(c["from"], 3);
    let (status, _) = fx.get("/v1/proofs/consistency?from=999999").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // The evidence bundle verifies offline with the verifier key alone.
    let (status, bundle) = fx.get("/v1/evidence/s1-act-2").await;
    assert_eq!(status, StatusCode::OK);
    let (_, cp) = fx.get("/v1/checkpoint").await;
    let verifier = custody_merkle::NoteVerifier::parse(cp["key"].as_str().unwrap()).unwrap();
    let parsed = custody_chain::UnverifiedBundle::parse(bundle.to_string().as_bytes()).unwrap();
    let verified = parsed.verify(&verifier).expect("bundle verifies");
    assert!(verified.events.len() >= 3);
}

#[tokio::test]
async fn otlp_protobuf_and_json_become_the_same_events() {
    let proto_fx = Fixture::new(Options::default());
    let json_fx = Fixture::new(Options::default());
    let request = otlp_request();
    let (status, bytes) = proto_fx
        .post_bytes(
            "/v1/traces",
            "application/x-protobuf",
            otlp_protobuf(&request),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // An ExportTraceServiceResponse with nothing rejected: an empty message.
    assert!(bytes.is_empty(), "{bytes:?}");
    let (status, body) = json_fx
        .post(
            "/v1/traces",
            "application/json",
            &otlp_json(&request).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({}));
    let a = proto_fx.events_after_examples();
    let b = json_fx.events_after_examples();
    assert_eq!(a.len(), 2, "a request and an action: {a:?}");
    assert_eq!(a, b, "protobuf and JSON give byte-identical events");
    assert!(a
        .iter()
        .any(|e| e.contains("\"type\":\"request\"") && e.contains("ana@example.com")));
    assert!(a
        .iter()
        .any(|e| e.contains("\"type\":\"action\"") && e.contains("crm:refund.create")));

    // Garbage: 400; a wrong type: 415.
    let (status, _) = proto_fx
        .post_bytes(
            "/v1/traces",
            "application/x-protobuf",
            vec![0xff, 0xff, 0xff],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = proto_fx.post("/v1/traces", "text/plain", "x").await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn openapi_documents_every_route() {
    let fx = Fixture::new(Options::default());
    let (status, doc) = fx.get("/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
    let paths = doc["paths"].as_object().unwrap();
    for (method, path) in custody_server::ROUTES {
        let op = paths
            .get(path.to_string().as_str())
            .and_then(|p| p.get(method.to_ascii_lowercase()))
            .unwrap_or_else(|| panic!("{method} {path} is not in the OpenAPI document"));
        assert!(
            op.get("responses").is_some(),
            "{method} {path} has no responses"
        );
    }
    assert_eq!(paths.len(), {
        let mut distinct: Vec<&str> = custody_server::ROUTES.iter().map(|(_, p)| *p).collect();
        distinct.dedup();
        distinct.len()
    });
    insta::assert_json_snapshot!("openapi", doc);
}

#[tokio::test]
async fn the_ui_is_served_by_the_binary() {
    let fx = Fixture::new(Options::default());
    let (status, html) = fx.get_text("/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("<title>Custody"), "{html}");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external resources"
    );
}

#[tokio::test]
async fn chain_svg_is_drawn() {
    let fx = Fixture::new(Options::default());
    let (status, svg) = fx.get_text("/v1/chains/s1-act-2/svg").await;
    assert_eq!(status, StatusCode::OK);
    assert!(svg.starts_with("<svg") || svg.contains("<svg"), "{svg}");
    assert!(svg.contains("rotation-agent"));
}

#[test]
fn digest_of_a_token_is_what_the_config_holds() {
    // The README tells users to configure `printf %s TOKEN | sha256sum`.
    let t = token("x", "s3cr3t", &[Role::Read]);
    assert_eq!(
        hex::encode(t.sha256),
        "4e738ca5563c06cfd0018299933d58db1dd8bf97f6973dc99bf6cdc64b5550bd"
    );
}

#[tokio::test]
async fn findings_follow_the_log() {
    let fx = Fixture::new(Options::default());
    let (_, before) = fx.get("/v1/findings").await;
    let (_, again) = fx.get("/v1/findings").await;
    assert_eq!(before, again, "the same log, the same findings");
    // An action with a credential nobody recorded issuing, by an agent no human asked.
    let line = json!({"id":"lone-1","type":"action","time":"2026-06-09T03:00:00Z","source":"api-test",
        "actor":{"id":"stray-agent","kind":"agent"},"credential":"never-issued-key",
        "operation":"s3:DeleteBucket","resource":"arn:aws:s3:::prod-data","outcome":"success"});
    let (status, _) = fx
        .post("/v1/events", "application/x-ndjson", &line.to_string())
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, after) = fx.get("/v1/findings").await;
    let flagged: Vec<&Value> = after
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["events"][0] == "api-test#lone-1")
        .collect();
    assert!(
        !flagged.is_empty(),
        "the new event's findings appear: {after}"
    );
    assert_eq!(
        after.as_array().unwrap().len(),
        before.as_array().unwrap().len() + flagged.len()
    );
}
