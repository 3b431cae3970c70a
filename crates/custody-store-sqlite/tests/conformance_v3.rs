//! The shared conformance suite (`custody_store::testing`) against stores of schema version 3
//! (`events` with stored `source`, `id` and `type`), which this build still reads and appends
//! to: each created as an earlier build did, then opened by this one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use custody_store::testing::Harness;
use custody_store_sqlite::{create_schema_v3, SqliteStore};
use tempfile::TempDir;

struct V3Harness {
    dir: TempDir,
    next: AtomicU64,
}

impl V3Harness {
    fn new() -> Self {
        V3Harness {
            dir: tempfile::tempdir().unwrap(),
            next: AtomicU64::new(0),
        }
    }
}

impl Harness for V3Harness {
    type S = SqliteStore;

    fn fresh(&self) -> SqliteStore {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.path().join(format!("v3-{n}.db"));
        create_schema_v3(&path).unwrap();
        SqliteStore::open(&path).unwrap()
    }

    fn reopen(&self, store: SqliteStore) -> SqliteStore {
        let path: PathBuf = store.path().unwrap().to_path_buf();
        drop(store);
        SqliteStore::open(&path).unwrap()
    }
}

custody_store::conformance_tests!(V3Harness::new());
