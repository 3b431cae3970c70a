//! The shared conformance suite (`custody_store::testing`) against `SqliteStore`: once as a
//! whole, then each check as its own test (for clear failures and parallel runs), on files in
//! a temporary directory; and the checks that need no reopening, in memory. Each check runs
//! again (module `v3`) against stores of schema version 3 (`events` with stored `source`,
//! `id` and `type`) and (module `v4`) of version 4 (no runs in the link index), which this
//! build still reads and appends to: each created as an earlier build did, then opened by
//! this one. Module `runs` runs each check on stores where every batch, however small,
//! writes its link rows as a run, so that the checks' batches make runs and merges.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use custody_store::testing::{self, Harness};
use custody_store_sqlite::{create_schema_v3, create_schema_v4, SqliteStore};
use tempfile::TempDir;

/// Which stores a harness makes.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Current,
    V3,
    V4,
    /// Of the current version, with a run for every batch.
    SmallRuns,
}

/// Stores in files of one temporary directory, removed when the harness is dropped.
struct FileHarness {
    dir: TempDir,
    next: AtomicU64,
    kind: Kind,
}

impl FileHarness {
    fn new() -> Self {
        FileHarness::of(Kind::Current)
    }

    fn of(kind: Kind) -> Self {
        FileHarness {
            dir: tempfile::tempdir().unwrap(),
            next: AtomicU64::new(0),
            kind,
        }
    }

    fn open(&self, path: &std::path::Path) -> SqliteStore {
        let mut store = SqliteStore::open(path).unwrap();
        if self.kind == Kind::SmallRuns {
            store.set_run_min_events(1);
        }
        store
    }
}

impl Harness for FileHarness {
    type S = SqliteStore;

    fn fresh(&self) -> SqliteStore {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.path().join(format!("store-{n}.db"));
        match self.kind {
            Kind::V3 => create_schema_v3(&path).unwrap(),
            Kind::V4 => create_schema_v4(&path).unwrap(),
            Kind::Current | Kind::SmallRuns => {}
        }
        self.open(&path)
    }

    fn reopen(&self, store: SqliteStore) -> SqliteStore {
        let path: PathBuf = store.path().unwrap().to_path_buf();
        drop(store);
        self.open(&path)
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
    use super::{FileHarness, Kind};

    custody_store::conformance_tests!(FileHarness::of(Kind::V3));
}

mod v4 {
    use super::{FileHarness, Kind};

    custody_store::conformance_tests!(FileHarness::of(Kind::V4));
}

mod runs {
    use super::{FileHarness, Kind};

    custody_store::conformance_tests!(FileHarness::of(Kind::SmallRuns));
}
