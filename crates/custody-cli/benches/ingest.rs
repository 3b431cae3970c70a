//! Ingest throughput: the whole pipeline (parse, redact, type, canonicalize, hash, index,
//! group commit, checkpoint) beside a bare floor in the same run: a loop that only hashes each
//! line and inserts it into one SQLite table in one transaction.
//!
//! `cargo bench -p custody-cli --bench ingest`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use custody_cli::synth;
use custody_cli::Ingester;
use custody_merkle::NoteSigner;
use custody_model::Redactor;
use custody_store::Ledger;
use custody_store_sqlite::SqliteStore;

const EVENTS: u64 = 100_000;

fn ingest(c: &mut Criterion) {
    let input = synth::ndjson(42, EVENTS);
    let mut group = c.benchmark_group("ingest");
    group.sample_size(10);
    group.throughput(Throughput::Elements(EVENTS));

    // From a file, as `custody ingest FILE` reads it (the file's size lets the last batches
    // shrink), written once: written before each run, its pages were still being written
    // back to disk while the run was measured.
    let input_dir = tempfile::tempdir().unwrap();
    let input_file = input_dir.path().join("in.ndjson");
    std::fs::write(&input_file, &input).unwrap();
    group.bench_function("custody_pipeline_100k", |b| {
        b.iter_with_setup(
            || tempfile::tempdir().unwrap(),
            |dir| {
                let path = dir.path().join("c.db");
                let store = SqliteStore::open(&path).unwrap();
                let signer = NoteSigner::generate("bench/log", [7; 32]).unwrap();
                let mut ledger = Ledger::new(Box::new(store), signer, "bench/log");
                // As `custody ingest`: WAL checkpoints on a second handle, off the writer.
                let ingester = Ingester::new(Redactor::new(b"bench-key"))
                    .with_maintenance(Box::new(SqliteStore::open(&path).unwrap()));
                let file = input_file.display().to_string();
                let summary = ingester.ingest_files(&mut ledger, &[file], false).unwrap();
                assert_eq!(summary.accepted, EVENTS);
                dir
            },
        )
    });

    // As `custody ingest` prepares each line (`prepare_line_to_store`), on one thread.
    group.bench_function("prepare_only_100k", |b| {
        let p = custody_ingest::Preparer::new(Redactor::new(b"bench-key"));
        b.iter(|| {
            let mut n = 0usize;
            for (i, line) in input.lines().enumerate() {
                let origin = custody_store::LineOrigin {
                    file: "b".into(),
                    line: i as u64 + 1,
                };
                n += p
                    .prepare_line_to_store(line, origin)
                    .map(|e| e.canonical().len())
                    .unwrap_or(0);
            }
            n
        })
    });

    let values: Vec<serde_json::Value> = input
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    group.bench_function("stage_parse_value", |b| {
        b.iter(|| {
            input
                .lines()
                .filter(|l| {
                    serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v.is_object())
                })
                .count()
        })
    });
    group.bench_function("stage_redact", |b| {
        let r = Redactor::new(b"k");
        b.iter_batched(
            || values.clone(),
            |mut vs| vs.iter_mut().map(|v| r.redact_value(v)).sum::<usize>(),
            criterion::BatchSize::LargeInput,
        )
    });
    group.bench_function("stage_from_value", |b| {
        b.iter(|| {
            values
                .iter()
                .map(|v| custody_model::Event::from_value(v).is_ok() as usize)
                .sum::<usize>()
        })
    });
    group.bench_function("stage_canonical", |b| {
        b.iter(|| {
            values
                .iter()
                .map(|v| custody_model::canonical_json(v).unwrap().len())
                .sum::<usize>()
        })
    });

    group.bench_function("floor_hash_and_insert_100k", |b| {
        b.iter_with_setup(
            || tempfile::tempdir().unwrap(),
            |dir| {
                let mut conn = rusqlite::Connection::open(dir.path().join("f.db")).unwrap();
                conn.execute_batch(
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;
                     CREATE TABLE t (id INTEGER PRIMARY KEY, hash BLOB, body BLOB);",
                )
                .unwrap();
                let tx = conn.transaction().unwrap();
                {
                    let mut stmt = tx
                        .prepare("INSERT INTO t (hash, body) VALUES (?1, ?2)")
                        .unwrap();
                    for line in input.lines() {
                        let h = custody_merkle::leaf_hash(line.as_bytes());
                        stmt.execute(rusqlite::params![&h[..], line.as_bytes()])
                            .unwrap();
                    }
                }
                tx.commit().unwrap();
                dir
            },
        )
    });
    group.finish();
}

criterion_group!(benches, ingest);
criterion_main!(benches);
