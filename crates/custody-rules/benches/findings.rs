//! Findings over a large store: one scan, one index, every rule.
//!
//! `cargo bench -p custody-rules --bench findings` builds a 200,000-event store of realistic
//! chains (`custody_store::testing::synthetic_events`: request, delegation, just-in-time grant,
//! action, effect, secret access) and times `custody_rules::evaluate` over it.
//! `CUSTODY_BENCH_EVENTS=1000000` for the 1M-event figure of the README.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use custody_rules::{evaluate, ApprovalRule, Policy};
use custody_store::testing::synthetic_events;
use custody_store::Store;
use custody_store_sqlite::SqliteStore;

/// The `custody` binary's allocator, so the figure is the command's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn findings(c: &mut Criterion) {
    let events: u64 = std::env::var("CUSTODY_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&dir.path().join("big.db")).unwrap();
    let started = Instant::now();
    let batch = 10_000;
    let mut first = 0;
    while first < events {
        let n = batch.min(events - first);
        store
            .append_batch(&synthetic_events(first, n), &[])
            .unwrap();
        first += n;
    }
    eprintln!("built a {events}-event store in {:.1?}", started.elapsed());
    let policy = Policy {
        secret_managers: vec!["vault://prod".into()],
        approvals: vec![ApprovalRule::new(
            "db:*",
            "*",
            Some("rows".into()),
            Some(900.0),
        )],
        ..Policy::default()
    };
    let started = Instant::now();
    let report = evaluate(&store, &policy).unwrap();
    eprintln!(
        "findings over {events} events: {} findings in {} chains, {:.2?}",
        report.findings.len(),
        report.chains.len(),
        started.elapsed()
    );
    let mut group = c.benchmark_group("findings");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(events));
    group.bench_function(format!("evaluate/{events}"), |b| {
        b.iter(|| evaluate(&store, &policy).unwrap())
    });
    group.finish();
}

criterion_group!(benches, findings);
criterion_main!(benches);
