//! The server on a real socket: concurrent clients, malformed input while serving, and a
//! graceful shutdown that loses no acknowledged event.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use common::*;
use custody_merkle::NoteSigner;
use custody_store::Store;
use custody_store_sqlite::SqliteStore;
use serde_json::{json, Value};

/// One HTTP/1.1 request with `Connection: close`; the status and the body.
fn http(addr: SocketAddr, method: &str, path: &str, ctype: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn line(client: usize, batch: usize, n: usize) -> String {
    json!({
        "id": format!("c{client}-b{batch}-e{n}"),
        "type": "action",
        "time": "2026-06-01T09:00:00Z",
        "source": "load-test",
        "actor": format!("agent:client-{client}"),
        "operation": "read",
        "resource": format!("db://table/{n}"),
    })
    .to_string()
}

struct Running {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start(db: &std::path::Path) -> Running {
    // The SQLite store is read inline, as `custody serve` does it; tests/api.rs covers
    // the other path.
    let state = state_over(
        db,
        Options {
            inline_reads: true,
            ..Options::default()
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let done = tokio::spawn(custody_server::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    Running { addr, stop, done }
}

fn verify(db: &std::path::Path) -> u64 {
    let store = SqliteStore::open(db).unwrap();
    let verifier = NoteSigner::generate(ORIGIN, [7; 32]).unwrap().verifier();
    let report = custody_store::ledger::verify_store(&store, &verifier).unwrap();
    assert!(report.ok, "the log verifies: {report:?}");
    store.size().unwrap()
}

fn stored_ids(db: &std::path::Path) -> BTreeSet<String> {
    let store = SqliteStore::open(db).unwrap();
    let mut ids = BTreeSet::new();
    store
        .scan(0, &mut |_, bytes, _| {
            let v: Value = serde_json::from_slice(bytes).unwrap();
            ids.insert(v["id"].as_str().unwrap().to_owned());
            Ok(())
        })
        .unwrap();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_clients_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("load.db");
    let server = start(&db).await;
    let addr = server.addr;
    let before = SqliteStore::open(&db).unwrap().size().unwrap();
    const CLIENTS: usize = 8;
    const BATCHES: usize = 25;
    const PER_BATCH: usize = 20;
    let acked = tokio::task::spawn_blocking(move || {
        let threads: Vec<_> = (0..CLIENTS)
            .map(|c| {
                std::thread::spawn(move || {
                    let mut acked = Vec::new();
                    for b in 0..BATCHES {
                        let body: String = (0..PER_BATCH).map(|n| line(c, b, n) + "\n").collect();
                        let (status, answer) = http(
                            addr,
                            "POST",
                            "/v1/events",
                            "application/x-ndjson",
                            body.as_bytes(),
                        );
                        assert_eq!(status, 200, "{answer}");
                        let v: Value = serde_json::from_str(&answer).unwrap();
                        assert_eq!(v["accepted"], PER_BATCH as u64, "{answer}");
                        acked.extend((0..PER_BATCH).map(|n| format!("c{c}-b{b}-e{n}")));
                    }
                    acked
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect::<Vec<String>>()
    })
    .await
    .unwrap();
    server.stop.send(()).unwrap();
    server.done.await.unwrap().unwrap();
    let size = verify(&db);
    assert_eq!(size, before + (CLIENTS * BATCHES * PER_BATCH) as u64);
    let ids = stored_ids(&db);
    for id in &acked {
        assert!(ids.contains(id), "acknowledged {id} is missing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_do_not_stop_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bad.db");
    let server = start(&db).await;
    let addr = server.addr;
    tokio::task::spawn_blocking(move || {
        let cases: [(&str, &str, &str, &[u8], u16); 6] = [
            (
                "POST",
                "/v1/events",
                "application/x-ndjson",
                b"{\"unterminated",
                400,
            ),
            ("POST", "/v1/events", "image/png", b"\x89PNG", 415),
            ("POST", "/v1/authorize", "application/json", b"[1,2", 400),
            (
                "POST",
                "/v1/traces",
                "application/x-protobuf",
                b"\xff\xff\xff\xff",
                400,
            ),
            ("GET", "/v2/unknown", "text/plain", b"", 404),
            ("PUT", "/v1/events", "application/x-ndjson", b"{}", 405),
        ];
        for (method, path, ctype, body, want) in cases {
            let (status, answer) = http(addr, method, path, ctype, body);
            assert_eq!(status, want, "{method} {path}: {answer}");
            let v: Value = serde_json::from_str(&answer)
                .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {answer}"));
            assert!(v["error"]["code"].is_string(), "{answer}");
            assert!(v["error"]["message"].is_string(), "{answer}");
            let (status, _) = http(addr, "GET", "/healthz", "text/plain", b"");
            assert_eq!(status, 200, "still serving after {method} {path}");
        }
        // An oversized body: 413 from the default 16 MiB limit.
        let big = vec![b' '; custody_server::DEFAULT_BODY_LIMIT + 1];
        let (status, answer) = http(addr, "POST", "/v1/events", "application/x-ndjson", &big);
        assert_eq!(status, 413, "{answer}");
        assert_eq!(http(addr, "GET", "/healthz", "text/plain", b"").0, 200);
        // And the gate still decides (read inline on the async worker).
        let proposal = proposal("01-allow-read-inventory-secret.json");
        let (status, answer) = http(
            addr,
            "POST",
            "/v1/authorize",
            "application/json",
            proposal.as_bytes(),
        );
        assert_eq!(status, 200, "{answer}");
        let v: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(v["decision"], "allow", "{answer}");
    })
    .await
    .unwrap();
    server.stop.send(()).unwrap();
    server.done.await.unwrap().unwrap();
    verify(&db);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_keeps_every_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("stop.db");
    let server = start(&db).await;
    let addr = server.addr;
    // Clients keep sending until the server stops answering.
    let clients = tokio::task::spawn_blocking(move || {
        let threads: Vec<_> = (0..4)
            .map(|c| {
                std::thread::spawn(move || {
                    let mut acked = Vec::new();
                    for b in 0..10_000 {
                        let body = line(c, b, 0) + "\n";
                        let Ok(mut s) = TcpStream::connect(addr) else { break };
                        let head = format!(
                            "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        if s.write_all(head.as_bytes()).is_err() {
                            break;
                        }
                        let mut answer = String::new();
                        if s.read_to_string(&mut answer).is_err() || !answer.starts_with("HTTP/1.1 200") {
                            break;
                        }
                        acked.push(format!("c{c}-b{b}-e0"));
                    }
                    acked
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect::<Vec<String>>()
    });
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    server.stop.send(()).unwrap();
    server.done.await.unwrap().unwrap();
    let acked = clients.await.unwrap();
    assert!(
        acked.len() > 10,
        "the clients got answers before the stop: {}",
        acked.len()
    );
    verify(&db);
    let ids = stored_ids(&db);
    let lost: Vec<&String> = acked.iter().filter(|id| !ids.contains(*id)).collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
}
