//! Ingest speed of the PostgreSQL store alone: 100k realistic events (already parsed,
//! canonical and hashed) appended into a fresh database in batches of 10k, against a floor:
//! the same lines SHA-256-hashed and copied into a one-key-plus-two-blobs table with one
//! binary COPY in one transaction.
//!
//! Needs the server the tests use (`CUSTODY_TEST_PG`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`); each iteration gets a database of its own,
//! created outside the timing and dropped after.
//!
//! `cargo bench -p custody-store-postgres --bench append`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use common::TempDb;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use custody_store::testing::synthetic_events;
use custody_store::Store;
use custody_store_postgres::PgStore;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;
use postgres::{Client, NoTls};

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

    let mut group = c.benchmark_group("postgres");
    group.throughput(Throughput::Elements(EVENTS));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(30));

    group.bench_function("append_100k_in_10k_batches", |b| {
        b.iter_batched(
            || {
                let db = TempDb::new();
                let store = PgStore::open(&db.url).unwrap();
                (db, store)
            },
            |(db, mut store)| {
                for batch in events.chunks(BATCH) {
                    let out = store.append_lean(batch, &[]).unwrap();
                    assert_eq!(out.accepted, batch.len() as u64);
                }
                (db, store)
            },
            BatchSize::PerIteration,
        );
    });

    group.bench_function("floor_sha256_copy_100k_one_tx", |b| {
        b.iter_batched(
            || {
                let db = TempDb::new();
                let mut client = Client::connect(&db.url, NoTls).unwrap();
                client
                    .batch_execute(
                        "CREATE TABLE floor (idx BIGINT PRIMARY KEY, hash BYTEA NOT NULL, body BYTEA NOT NULL)",
                    )
                    .unwrap();
                (db, client)
            },
            |(db, mut client)| {
                let mut tx = client.transaction().unwrap();
                let sink = tx
                    .copy_in("COPY floor (idx, hash, body) FROM STDIN (FORMAT binary)")
                    .unwrap();
                let mut w = BinaryCopyInWriter::new(sink, &[Type::INT8, Type::BYTEA, Type::BYTEA]);
                for (i, line) in (0i64..).zip(&lines) {
                    let hash = custody_merkle::leaf_hash(line);
                    w.write(&[&i, &&hash[..], line]).unwrap();
                }
                w.finish().unwrap();
                tx.commit().unwrap();
                (db, client)
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, bench_append);
criterion_main!(benches);
