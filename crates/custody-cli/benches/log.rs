//! The log at scale: a 1M-event store built once, then `trace` of one action, `verify` of the
//! whole log, and a new checkpoint right after a batch commits.
//!
//! `cargo bench -p custody-cli --bench log` (building the store takes a few seconds;
//! `CUSTODY_BENCH_EVENTS` changes its size).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Cursor;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use custody_chain::{LinkConfig, Trace};
use custody_cli::{synth, IngestSummary, Ingester};
use custody_merkle::NoteSigner;
use custody_model::Redactor;
use custody_store::Ledger;
use custody_store_sqlite::SqliteStore;

fn ledger_at(path: &std::path::Path) -> Ledger {
    let store = SqliteStore::open(path).unwrap();
    let signer = NoteSigner::generate("bench/log", [7; 32]).unwrap();
    Ledger::new(Box::new(store), signer, "bench/log")
}

fn log(c: &mut Criterion) {
    let events: u64 = std::env::var("CUSTODY_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("big.db");
    let mut ledger = ledger_at(&db);
    let ingester = Ingester::new(Redactor::new(b"bench-key"));
    let started = Instant::now();
    let mut summary = IngestSummary::default();
    // Stream the input in slices so the bench itself stays small in memory.
    let slice = 100_000;
    let mut seed_events = 0;
    while seed_events < events {
        let n = slice.min(events - seed_events);
        let mut text = String::new();
        for i in seed_events..seed_events + n {
            synth::event_line(1, i, &mut text);
            text.push('\n');
        }
        ingester
            .ingest_reader(
                &mut ledger,
                "bench",
                Box::new(Cursor::new(text.into_bytes())),
                &mut summary,
                None,
            )
            .unwrap();
        seed_events += n;
    }
    eprintln!(
        "built a {}-event store in {:.1?} ({:.0} events/s)",
        summary.accepted,
        started.elapsed(),
        summary.accepted as f64 / started.elapsed().as_secs_f64()
    );

    let mut group = c.benchmark_group("log");
    let link = LinkConfig::default();
    let mut k = 0u64;
    group.bench_function("trace_one_action_in_1m", |b| {
        b.iter(|| {
            // A different chain each time: no warm row cache for the same keys.
            k = (k + 7919) % (events / 5);
            let t = Trace::of_event(ledger.store(), &format!("agent-runtime#act-1-{k}"), &link)
                .unwrap();
            assert!(t.complete());
            t
        })
    });

    let verifier = custody_merkle::NoteVerifier::parse(&ledger.verifier_key()).unwrap();
    group.sample_size(10);
    group.throughput(Throughput::Elements(events));
    group.bench_function("verify_1m", |b| {
        b.iter(|| {
            let r = custody_store::ledger::verify_store(ledger.store(), &verifier).unwrap();
            assert!(r.ok);
            r
        })
    });

    group.throughput(Throughput::Elements(1));
    let mut batch_seed = 1000u64;
    group.bench_function("checkpoint_after_10k_batch", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                batch_seed += 1;
                let text = synth::ndjson(batch_seed, 10_000);
                let prepared: Vec<_> = {
                    let p = custody_ingest::Preparer::new(Redactor::new(b"bench-key"));
                    text.lines()
                        .enumerate()
                        .map(|(i, l)| {
                            p.prepare_line(
                                l,
                                custody_store::LineOrigin {
                                    file: "b".into(),
                                    line: i as u64 + 1,
                                },
                            )
                            .map(custody_store::LeanEvent::from)
                            .unwrap()
                        })
                        .collect()
                };
                // Commit the batch without signing, then time the checkpoint alone.
                let store_out = ledger.append_unsigned(&prepared, &[]).unwrap();
                assert_eq!(store_out.accepted, 10_000);
                let start = Instant::now();
                let cp = ledger.checkpoint().unwrap();
                total += start.elapsed();
                assert_eq!(cp.size, store_out.size);
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, log);
criterion_main!(benches);
