//! Blast radius at scale: a store holding a background of unrelated events plus one leaked
//! credential whose reach is about 100,000 events (1,501 credentials in three levels of
//! `assume_role` derivations, each used by 33 actions with one effect each), then
//! `BlastRadius::compute` from the leaked credential and from the secret that exposed it.
//!
//! Also `trace` of one action three hops down in the same store.
//!
//! `cargo bench -p custody-chain --bench blast`. `CUSTODY_BENCH_BACKGROUND` sets the number
//! of background events (default 1,000,000); the store is built once, in a temporary folder.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

// The allocator the `custody` binary uses, so the figures are what users get.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use criterion::{criterion_group, criterion_main, Criterion};
use custody_chain::{BlastConfig, BlastRadius, BlastStart};
use custody_ingest::Preparer;
use custody_model::Redactor;
use custody_store::{LineOrigin, NewEvent, Store};
use custody_store_sqlite::SqliteStore;

const CHILDREN: usize = 30;
const GRANDCHILDREN: usize = 49;
const USES: usize = 33;
const T: &str = r#""time":"2026-06-01T00:00:00Z""#;

fn background(i: u64) -> String {
    if i.is_multiple_of(2) {
        format!(
            r#"{{"id":"bg-a{i}","type":"action",{T},"source":"bg","actor":{{"id":"bot-{}","kind":"agent"}},"credential":"bg-cred-{}","operation":"s3:PutObject","resource":"arn:bg/{i}"}}"#,
            i % 1000,
            (i / 2) % 50_000
        )
    } else {
        format!(
            r#"{{"id":"bg-e{i}","type":"effect",{T},"source":"bg","system":"s3","resource":"arn:bg/{}","change":"created","caused_by":"bg#bg-a{}"}}"#,
            i - 1,
            i - 1
        )
    }
}

fn uses(cred: &str, out: &mut Vec<String>) {
    for k in 0..USES {
        out.push(format!(
            r#"{{"id":"a-{cred}-{k}","type":"action",{T},"source":"t","actor":{{"id":"holder-{cred}","kind":"service"}},"credential":"{cred}","operation":"s3:PutObject","resource":"arn:t/{cred}/{k}"}}"#
        ));
        out.push(format!(
            r#"{{"id":"e-{cred}-{k}","type":"effect",{T},"source":"t","system":"s3:{cred}","resource":"arn:t/{cred}/{k}","change":"updated","caused_by":"t#a-{cred}-{k}"}}"#
        ));
    }
}

fn delegation(id: &str, parent: &str, cred: &str) -> String {
    format!(
        r#"{{"id":"{id}","type":"delegation",{T},"source":"t","from":{{"id":"holder-{parent}","kind":"service"}},"to":{{"id":"holder-{cred}","kind":"service"}},"via":"assume_role","parent_credential":"{parent}","credential":{{"id":"{cred}"}},"scope":[{{"action":"*","resource":"*"}}]}}"#
    )
}

fn target() -> Vec<String> {
    let mut out = vec![format!(
        r#"{{"id":"sa","type":"secret_access",{T},"source":"t","principal":{{"id":"holder-ROOT","kind":"workload"}},"manager":"vault://t","secret":"secret/leaked","credential":"ROOT"}}"#
    )];
    uses("ROOT", &mut out);
    for c in 0..CHILDREN {
        let child = format!("C{c}");
        out.push(delegation(&format!("d-{c}"), "ROOT", &child));
        uses(&child, &mut out);
        for g in 0..GRANDCHILDREN {
            let grandchild = format!("C{c}-{g}");
            out.push(delegation(&format!("d-{c}-{g}"), &child, &grandchild));
            uses(&grandchild, &mut out);
        }
    }
    out
}

fn append(store: &mut SqliteStore, preparer: &Preparer, lines: &[String]) {
    let events: Vec<NewEvent> = lines
        .iter()
        .map(|l| {
            let origin = LineOrigin {
                file: "bench".into(),
                line: 1,
            };
            preparer
                .prepare_line(l, origin)
                .unwrap_or_else(|r| panic!("{}: {l}", r.reason))
        })
        .collect();
    store.append_batch(&events, &[]).unwrap();
}

fn blast(c: &mut Criterion) {
    let background_events: u64 = std::env::var("CUSTODY_BENCH_BACKGROUND")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&dir.path().join("blast.db")).unwrap();
    let preparer = Preparer::new(Redactor::new(b"bench-key"));
    let started = Instant::now();
    let half = background_events / 2;
    let mut batch = Vec::with_capacity(10_000);
    let flush = |batch: &mut Vec<String>, store: &mut SqliteStore| {
        append(store, &preparer, batch);
        batch.clear();
    };
    for i in 0..half {
        batch.push(background(i));
        if batch.len() == 10_000 {
            flush(&mut batch, &mut store);
        }
    }
    for chunk in target().chunks(10_000) {
        batch.extend_from_slice(chunk);
        flush(&mut batch, &mut store);
    }
    for i in half..background_events {
        batch.push(background(i));
        if batch.len() == 10_000 {
            flush(&mut batch, &mut store);
        }
    }
    flush(&mut batch, &mut store);
    let size = store.size().unwrap();
    eprintln!("built a {size}-event store in {:.1?}", started.elapsed());

    let config = BlastConfig::default();
    let r = BlastRadius::compute(&store, BlastStart::Credential("ROOT".into()), &config).unwrap();
    eprintln!(
        "blast radius of ROOT: {} events, {} credentials, truncated {}",
        r.events.len(),
        r.credentials.len(),
        r.truncated
    );
    assert_eq!(r.credentials.len(), 1 + CHILDREN + CHILDREN * GRANDCHILDREN);
    assert!(!r.truncated);

    let mut group = c.benchmark_group("blast_radius");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("credential_reaching_100k_events", |b| {
        b.iter(|| {
            BlastRadius::compute(&store, BlastStart::Credential("ROOT".into()), &config).unwrap()
        })
    });
    group.bench_function("secret_reaching_100k_events", |b| {
        b.iter(|| {
            BlastRadius::compute(&store, BlastStart::Secret("secret/leaked".into()), &config)
                .unwrap()
        })
    });
    group.finish();

    // `trace` of one action three hops down (secret access → ROOT → C7 → C7-11 → action).
    let link = custody_chain::LinkConfig::default();
    let t = custody_chain::Trace::of_event(&store, "t#a-C7-11-5", &link).unwrap();
    eprintln!("trace of t#a-C7-11-5: {} events", t.events.len());
    let mut group = c.benchmark_group("trace");
    group.bench_function("action_three_hops_down", |b| {
        b.iter(|| custody_chain::Trace::of_event(&store, "t#a-C7-11-5", &link).unwrap())
    });
    group.finish();
}

criterion_group!(benches, blast);
criterion_main!(benches);
