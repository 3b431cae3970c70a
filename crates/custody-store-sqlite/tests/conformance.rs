//! The shared conformance suite (`custody_store::testing`) against `SqliteStore`: once as a
//! whole, then each check as its own test (for clear failures and parallel runs), on files in
//! a temporary directory; and the checks that need no reopening, in memory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use custody_store::testing::{self, Harness};
use custody_store_sqlite::SqliteStore;
use tempfile::TempDir;

/// Stores in files of one temporary directory, removed when the harness is dropped.
struct FileHarness {
    dir: TempDir,
    next: AtomicU64,
}

impl FileHarness {
    fn new() -> Self {
        FileHarness {
            dir: tempfile::tempdir().unwrap(),
            next: AtomicU64::new(0),
        }
    }
}

impl Harness for FileHarness {
    type S = SqliteStore;

    fn fresh(&self) -> SqliteStore {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        SqliteStore::open(&self.dir.path().join(format!("store-{n}.db"))).unwrap()
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
