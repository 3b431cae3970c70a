//! Ingest speed of the SQLite store alone: 100k realistic events (already parsed, canonical
//! and hashed) appended into a fresh file in batches of 10k, against a floor: the same lines
//! SHA-256-hashed and inserted into a one-key-plus-blob table in one transaction.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use custody_store::testing::synthetic_events;
use custody_store::Store;
use custody_store_sqlite::SqliteStore;
use rusqlite::{params, Connection};
use sha2::{Digest, Sha256};

const EVENTS: u64 = 100_000;
const BATCH: usize = 10_000;

fn bench_append(c: &mut Criterion) {
    let events = synthetic_events(0, EVENTS);
    let bytes: u64 = events.iter().map(|e| e.canonical().len() as u64).sum();
    eprintln!(
        "{} events, {} bytes of canonical JSON ({} bytes on average)",
        events.len(),
        bytes,
        bytes / EVENTS
    );
    let lines: Vec<Vec<u8>> = events.iter().map(|e| e.canonical().to_vec()).collect();
    // As `custody ingest` hands them over: lean, their link keys computed where they were
    // prepared.
    let events: Vec<custody_store::LeanEvent> =
        events.iter().map(custody_store::LeanEvent::from).collect();

    let mut group = c.benchmark_group("sqlite");
    group.throughput(Throughput::Elements(EVENTS));
    group.measurement_time(Duration::from_secs(20));

    group.bench_function("append_100k_in_10k_batches", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().unwrap();
                let store = SqliteStore::open(&dir.path().join("bench.db")).unwrap();
                (dir, store)
            },
            |(dir, mut store)| {
                for batch in events.chunks(BATCH) {
                    let out = store.append_lean(batch, &[]).unwrap();
                    assert_eq!(out.accepted, batch.len() as u64);
                }
                (dir, store)
            },
            BatchSize::PerIteration,
        );
    });

    group.bench_function("floor_sha256_insert_100k_one_tx", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().unwrap();
                let conn = Connection::open(dir.path().join("floor.db")).unwrap();
                let _: String = conn
                    .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
                    .unwrap();
                conn.pragma_update(None, "synchronous", "NORMAL").unwrap();
                conn.execute_batch(
                    "CREATE TABLE floor (idx INTEGER PRIMARY KEY, hash BLOB NOT NULL, body BLOB NOT NULL)",
                )
                .unwrap();
                (dir, conn)
            },
            |(dir, mut conn)| {
                let tx = conn.transaction().unwrap();
                {
                    let mut insert = tx
                        .prepare_cached("INSERT INTO floor (idx, hash, body) VALUES (?1, ?2, ?3)")
                        .unwrap();
                    for (i, line) in (0i64..).zip(&lines) {
                        let hash: [u8; 32] = Sha256::digest(line).into();
                        insert.execute(params![i, &hash[..], line]).unwrap();
                    }
                }
                tx.commit().unwrap();
                (dir, conn)
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, bench_append);
criterion_main!(benches);
