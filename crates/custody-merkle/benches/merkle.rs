//! Benchmarks at a million leaves: the root through a compact range, an inclusion proof built
//! from the leaf hashes, and checking that proof.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use custody_merkle::{inclusion_proof, leaf_hash, root, verify_inclusion, CompactRange, Hash};

const N: u64 = 1 << 20;

fn leaves() -> Vec<Hash> {
    (0..N).map(|i| leaf_hash(&i.to_be_bytes())).collect()
}

fn bench(c: &mut Criterion) {
    let leaves = leaves();
    let tree_root = root(&leaves);
    let index = N / 3;
    let proof = inclusion_proof(&leaves, index).unwrap();
    let leaf = *leaves.get(index as usize).unwrap();

    let mut group = c.benchmark_group("merkle-1M");
    group.sample_size(10);
    group.bench_function("compact_range_push_root", |b| {
        b.iter(|| {
            let mut range = CompactRange::new();
            for leaf in &leaves {
                range.push(*leaf).unwrap();
            }
            black_box(range.root())
        });
    });
    group.bench_function("inclusion_proof", |b| {
        b.iter(|| black_box(inclusion_proof(black_box(&leaves), black_box(index)).unwrap()));
    });
    group.finish();

    c.bench_function("verify_inclusion_1M", |b| {
        b.iter(|| {
            verify_inclusion(black_box(&leaf), index, N, black_box(&proof), &tree_root).unwrap();
        });
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
