//! The shared conformance suite (`custody_store::testing`) against `SqliteStore`: once as a
//! whole, then each check as its own test (for clear failures and parallel runs), on files in
//! a temporary directory; and the checks that need no reopening, in memory. Each check runs
//! again (module `v3`) against stores of schema version 3 (`events` with stored `source`,
//! `id` and `type`), which this build still reads and appends to: each created as an earlier
//! build did, then opened by this one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use custody_store::testing::{self, Harness};
use custody_store_sqlite::{create_schema_v3, SqliteStore};
use tempfile::TempDir;

/// Stores in files of one temporary directory, removed when the harness is dropped; of
/// schema version 3 when `v3`.
struct FileHarness {
    dir: TempDir,
    next: AtomicU64,
    v3: bool,
}

impl FileHarness {
    fn new() -> Self {
        FileHarness {
            dir: tempfile::tempdir().unwrap(),
            next: AtomicU64::new(0),
            v3: false,
        }
    }

    fn v3() -> Self {
        FileHarness {
            v3: true,
            ..FileHarness::new()
        }
    }
}

impl Harness for FileHarness {
    type S = SqliteStore;

    fn fresh(&self) -> SqliteStore {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.path().join(format!("store-{n}.db"));
        if self.v3 {
            create_schema_v3(&path).unwrap();
        }
        SqliteStore::open(&path).unwrap()
    }

    fn reopen(&self, store: SqliteStore) -> SqliteStore {
        let path: PathBuf = store.path().unwrap().to_path_buf();
        drop(store);
        SqliteStore::open(&path).unwrap()
    }
}

/// In-memory stores; "reopening" keeps the same store (there is nothing else to open).
struct MemoryHarness;

impl Harness for MemoryHarness {
    type S = SqliteStore;

    fn fresh(&self) -> SqliteStore {
        SqliteStore::open_in_memory().unwrap()
    }

    fn reopen(&self, store: SqliteStore) -> SqliteStore {
        store
    }
}

#[test]
fn run_all_on_files() {
    testing::run_all(&FileHarness::new());
}

#[test]
fn run_all_in_memory() {
    testing::run_all(&MemoryHarness);
}

custody_store::conformance_tests!(FileHarness::new());

mod v3 {
    use super::FileHarness;

    custody_store::conformance_tests!(FileHarness::v3());
}
