//! What only the PostgreSQL store promises, on the real server: several connections append to
//! one log (sequenced, nothing lost, nothing twice, one tree), the database itself refuses
//! edits, migrations run once and refuse a newer schema, and an unreachable server is a clear
//! error.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::collections::HashSet;

use common::{with_dbname, TempDb};
use custody_merkle::NoteSigner;
use custody_store::ledger::verify_store;
use custody_store::testing::{sample_events, synthetic_events};
use custody_store::{Ledger, Store, StoreError};
use custody_store_postgres::{PgStore, SCHEMA_VERSION};
use postgres::{Client, NoTls};

fn sql(db: &TempDb) -> Client {
    Client::connect(&db.url, NoTls).unwrap()
}

/// The log's leaves as stored, and the checks every multi-writer test ends with: the root the
/// store reports is the RFC 9162 root over the stored leaves, each leaf is the hash of its
/// stored bytes, and no `source#id` is stored twice.
fn check_one_log(store: &PgStore) {
    let size = store.size().unwrap();
    let leaves = store.leaf_hashes(0, size).unwrap();
    assert_eq!(store.root().unwrap(), custody_merkle::root(&leaves));
    let mut keys = HashSet::new();
    let mut n = 0;
    store
        .scan(0, &mut |i, body, hash| {
            assert_eq!(i, n, "indexes are contiguous");
            assert_eq!(custody_merkle::leaf_hash(body), *hash);
            assert_eq!(leaves[i as usize], *hash);
            n += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(n, size);
    for i in 0..size {
        let e = store.event_at(i).unwrap().unwrap();
        assert!(
            keys.insert(e.event.key.to_string()),
            "{} stored twice",
            e.event.key
        );
    }
}

#[test]
fn concurrent_appenders_build_one_log() {
    let db = TempDb::new();
    const PER_WRITER: u64 = 1500;
    const WRITERS: u64 = 3;
    // Each writer has its own connection and events; the last two also share a third set,
    // which must be stored once.
    let shared = synthetic_events(1_000_000, 300);
    std::thread::scope(|s| {
        for w in 0..WRITERS {
            let url = db.url.clone();
            let shared = &shared;
            s.spawn(move || {
                let mut store = PgStore::open(&url).unwrap();
                let mine = synthetic_events(w * 100_000, PER_WRITER);
                for (i, batch) in mine.chunks(50).enumerate() {
                    store.append_batch(batch, &[]).unwrap();
                    if w > 0 && i < shared.len() / 50 {
                        store
                            .append_batch(&shared[i * 50..(i + 1) * 50], &[])
                            .unwrap();
                    }
                }
            });
        }
    });
    let store = PgStore::open(&db.url).unwrap();
    assert_eq!(
        store.size().unwrap(),
        WRITERS * PER_WRITER + shared.len() as u64
    );
    check_one_log(&store);
    for w in 0..WRITERS {
        for e in synthetic_events(w * 100_000, PER_WRITER) {
            let got = store.get(&e.event.key).unwrap().unwrap();
            assert_eq!(got.canonical, e.canonical(), "{}", e.event.key);
        }
    }
    for e in &shared {
        assert!(
            store.get(&e.event.key).unwrap().is_some(),
            "{}",
            e.event.key
        );
    }
}

#[test]
fn concurrent_ledgers_sign_only_true_checkpoints() {
    let db = TempDb::new();
    let signer = NoteSigner::generate("custody.test/pg", [7u8; 32]).unwrap();
    std::thread::scope(|s| {
        for w in 0..2u64 {
            let url = db.url.clone();
            let signer = signer.clone();
            s.spawn(move || {
                let store = PgStore::open(&url).unwrap();
                let mut ledger = Ledger::new(Box::new(store), signer, "custody.test/pg");
                for batch in synthetic_events(w * 100_000, 1000).chunks(40) {
                    ledger.append(batch, &[]).unwrap();
                }
            });
        }
    });
    let store = PgStore::open(&db.url).unwrap();
    assert_eq!(store.size().unwrap(), 2000);
    check_one_log(&store);
    assert!(store.checkpoints().unwrap().len() >= 2);
    let report = verify_store(&store, &signer.verifier()).unwrap();
    assert!(report.ok, "{:?}", report.problems);
    assert_eq!(report.size, 2000);
}

#[test]
fn the_database_refuses_updates_and_deletes() {
    let db = TempDb::new();
    let mut store = PgStore::open(&db.url).unwrap();
    let events = sample_events();
    let rejected = vec![custody_store::Rejected {
        origin: custody_store::LineOrigin {
            file: "x.ndjson".into(),
            line: 1,
        },
        reason: "not json".into(),
        excerpt: "{".into(),
    }];
    store.append_batch(&events, &rejected).unwrap();
    let mut ledger = Ledger::new(
        Box::new(store),
        NoteSigner::generate("custody.test/pg", [1u8; 32]).unwrap(),
        "custody.test/pg",
    );
    ledger.checkpoint().unwrap();
    let root = ledger.store().root().unwrap();
    let mut c = sql(&db);
    for statement in [
        "UPDATE events SET body = '\\x7b7d'::bytea WHERE idx = 0",
        "DELETE FROM events WHERE idx = 12",
        "TRUNCATE events",
        "UPDATE links SET first = first + 1",
        "DELETE FROM links",
        "UPDATE quarantine SET reason = 'fine'",
        "DELETE FROM quarantine",
        "TRUNCATE quarantine",
        "UPDATE checkpoints SET note = 'forged'",
        "DELETE FROM checkpoints",
        "TRUNCATE checkpoints",
        "UPDATE log_state SET size = 0, compact_range = '\\x0000000000000000'::bytea",
        "DELETE FROM log_state",
        "TRUNCATE log_state",
    ] {
        let err = c
            .batch_execute(statement)
            .expect_err(&format!("{statement} was allowed"));
        let text = err
            .as_db_error()
            .map(|d| d.message().to_owned())
            .unwrap_or_default();
        assert!(
            text.contains("append-only") || text.contains("only grows"),
            "{statement}: {text}"
        );
    }
    let store = PgStore::open(&db.url).unwrap();
    assert_eq!(store.size().unwrap(), events.len() as u64);
    assert_eq!(store.root().unwrap(), root);
    assert_eq!(store.quarantine().unwrap().len(), 1);
    assert_eq!(store.checkpoints().unwrap().len(), 1);
}

#[test]
fn migrations_run_once_when_nodes_start_together() {
    let db = TempDb::new();
    std::thread::scope(|s| {
        for _ in 0..4 {
            let url = db.url.clone();
            s.spawn(move || PgStore::open(&url).unwrap());
        }
    });
    let rows = sql(&db)
        .query(
            "SELECT version, name FROM custody_schema ORDER BY version",
            &[],
        )
        .unwrap();
    let versions: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>());
    assert_eq!(rows[0].get::<_, String>(1), "0001_init");
}

#[test]
fn a_newer_schema_is_refused() {
    let db = TempDb::new();
    drop(PgStore::open(&db.url).unwrap());
    sql(&db)
        .batch_execute("INSERT INTO custody_schema (version, name) VALUES (99, '0099_future')")
        .unwrap();
    match PgStore::open(&db.url) {
        Err(StoreError::Schema(m)) => {
            assert!(
                m.contains("schema version 99") && m.contains("upgrade"),
                "{m}"
            )
        }
        other => panic!("expected a schema error, got {other:?}"),
    }
}

#[test]
fn a_database_of_something_else_is_refused() {
    let db = TempDb::new();
    sql(&db)
        .batch_execute("CREATE TABLE events (x INT)")
        .unwrap();
    match PgStore::open(&db.url) {
        Err(StoreError::Schema(m)) => assert!(m.contains("not a custody store"), "{m}"),
        other => panic!("expected a schema error, got {other:?}"),
    }
}

#[test]
fn an_unreachable_server_is_a_clear_error_without_the_password() {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    let url = "postgres://custody:hunter2@127.0.0.1:1/custody";
    let err = PgStore::open(url).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    assert!(
        text.contains("cannot connect to PostgreSQL at postgres://custody@127.0.0.1:1/custody"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");
    let err = PgStore::open("postgres://[bad").unwrap_err();
    assert!(err.to_string().contains("invalid PostgreSQL URL"), "{err}");
}

#[test]
fn a_missing_database_is_a_clear_error() {
    let url = with_dbname(&common::admin_url(), "custody_no_such_database");
    let text = PgStore::open(&url).unwrap_err().to_string();
    assert!(
        text.contains("custody_no_such_database") && text.contains("does not exist"),
        "{text}"
    );
}

/// A node's store through which another node appends a batch at the worst moment: the first
/// time this node reads the root (for a checkpoint: between its reads of the size and of the
/// root) or the size (for verify: right after its scan).
struct AnotherNodeAppendsDuringRoot {
    inner: PgStore,
    other: std::sync::Mutex<Option<(PgStore, Vec<custody_store::NewEvent>)>>,
    on_size: bool,
}

impl AnotherNodeAppendsDuringRoot {
    fn other_appends(&self) -> custody_store::StoreResult<()> {
        if let Some((mut other, events)) = self.other.lock().unwrap().take() {
            other.append_batch(&events, &[])?;
        }
        Ok(())
    }
}

impl Store for AnotherNodeAppendsDuringRoot {
    fn append_lean(
        &mut self,
        events: &[custody_store::LeanEvent],
        rejected: &[custody_store::Rejected],
    ) -> custody_store::StoreResult<custody_store::BatchOutcome> {
        self.inner.append_lean(events, rejected)
    }
    fn size(&self) -> custody_store::StoreResult<u64> {
        if self.on_size {
            self.other_appends()?;
        }
        self.inner.size()
    }
    fn root(&self) -> custody_store::StoreResult<custody_merkle::Hash> {
        if !self.on_size {
            self.other_appends()?;
        }
        self.inner.root()
    }
    fn event_at(
        &self,
        index: u64,
    ) -> custody_store::StoreResult<Option<custody_store::StoredEvent>> {
        self.inner.event_at(index)
    }
    fn get(
        &self,
        key: &custody_model::EventKey,
    ) -> custody_store::StoreResult<Option<custody_store::StoredEvent>> {
        self.inner.get(key)
    }
    fn lookup(
        &self,
        by: custody_store::Lookup<'_>,
    ) -> custody_store::StoreResult<Vec<custody_store::StoredEvent>> {
        self.inner.lookup(by)
    }
    fn leaf_hashes(
        &self,
        start: u64,
        end: u64,
    ) -> custody_store::StoreResult<Vec<custody_merkle::Hash>> {
        self.inner.leaf_hashes(start, end)
    }
    fn scan(
        &self,
        start: u64,
        f: &mut dyn FnMut(u64, &[u8], &custody_merkle::Hash) -> custody_store::StoreResult<()>,
    ) -> custody_store::StoreResult<()> {
        self.inner.scan(start, f)
    }
    fn add_checkpoint(
        &mut self,
        c: &custody_store::StoredCheckpoint,
    ) -> custody_store::StoreResult<()> {
        self.inner.add_checkpoint(c)
    }
    fn latest_checkpoint(
        &self,
    ) -> custody_store::StoreResult<Option<custody_store::StoredCheckpoint>> {
        self.inner.latest_checkpoint()
    }
    fn checkpoints(&self) -> custody_store::StoreResult<Vec<custody_store::StoredCheckpoint>> {
        self.inner.checkpoints()
    }
    fn quarantine(&self) -> custody_store::StoreResult<Vec<custody_store::Rejected>> {
        self.inner.quarantine()
    }
}

#[test]
fn a_checkpoint_never_pairs_one_size_with_a_later_root() {
    let db = TempDb::new();
    let signer = NoteSigner::generate("custody.test/pg", [3u8; 32]).unwrap();
    let store = AnotherNodeAppendsDuringRoot {
        inner: PgStore::open(&db.url).unwrap(),
        other: std::sync::Mutex::new(Some((
            PgStore::open(&db.url).unwrap(),
            synthetic_events(500_000, 70),
        ))),
        on_size: false,
    };
    let mut ledger = Ledger::new(Box::new(store), signer.clone(), "custody.test/pg");
    ledger.append(&synthetic_events(0, 30), &[]).unwrap();
    let store = PgStore::open(&db.url).unwrap();
    assert_eq!(store.size().unwrap(), 100);
    let checkpoints = store.checkpoints().unwrap();
    assert_eq!(checkpoints.len(), 1);
    assert_eq!(
        checkpoints[0].size, 100,
        "signed for the head it read the root of"
    );
    assert_eq!(checkpoints[0].root, store.root().unwrap());
    let report = verify_store(&store, &signer.verifier()).unwrap();
    assert!(report.ok, "{:?}", report.problems);
}

#[test]
fn verify_catches_up_with_another_node_appending_meanwhile() {
    let db = TempDb::new();
    let signer = NoteSigner::generate("custody.test/pg", [4u8; 32]).unwrap();
    let mut ledger = Ledger::new(
        Box::new(PgStore::open(&db.url).unwrap()),
        signer.clone(),
        "custody.test/pg",
    );
    ledger.append(&synthetic_events(0, 40), &[]).unwrap();
    let store = AnotherNodeAppendsDuringRoot {
        inner: PgStore::open(&db.url).unwrap(),
        other: std::sync::Mutex::new(Some((
            PgStore::open(&db.url).unwrap(),
            synthetic_events(600_000, 25),
        ))),
        on_size: true,
    };
    let report = verify_store(&store, &signer.verifier()).unwrap();
    assert!(report.ok, "{:?}", report.problems);
    assert_eq!(
        report.size, 65,
        "the events appended meanwhile were checked too"
    );
    assert_eq!(report.root, store.inner.root().unwrap());
}
