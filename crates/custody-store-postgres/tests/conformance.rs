//! The shared conformance suite (`custody_store::testing`) against `PgStore`, on the real
//! server: once as a whole, then each check as its own test. Every store is a database of its
//! own, dropped at the end (see `common`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Mutex;

use common::TempDb;
use custody_store::testing::{self, Harness};
use custody_store_postgres::PgStore;

/// Each `fresh()` creates a database; all are dropped with the harness.
struct PgHarness {
    dbs: Mutex<Vec<TempDb>>,
}

impl PgHarness {
    fn new() -> Self {
        PgHarness {
            dbs: Mutex::new(Vec::new()),
        }
    }
}

impl Harness for PgHarness {
    type S = PgStore;

    fn fresh(&self) -> PgStore {
        let db = TempDb::new();
        let store = PgStore::open(&db.url).unwrap_or_else(|e| panic!("open {}: {e}", db.name));
        self.dbs.lock().unwrap().push(db);
        store
    }

    fn reopen(&self, store: PgStore) -> PgStore {
        let dbs = self.dbs.lock().unwrap();
        let target = store.target().to_owned();
        drop(store);
        let db = dbs
            .iter()
            .find(|d| target.ends_with(&format!("/{}", d.name)))
            .unwrap_or_else(|| panic!("no test database for {target}"));
        PgStore::open(&db.url).unwrap()
    }
}

#[test]
fn run_all() {
    testing::run_all(&PgHarness::new());
}

custody_store::conformance_tests!(PgHarness::new());
