//! Behaviour particular to the SQLite store: the schema refuses updates and deletes, WAL mode,
//! schema versions, crash survival, damage reported as `Corrupt`, several writers on one file,
//! and atomic batches.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};

use custody_merkle::{leaf_hash, root, Hash};
use custody_store::testing::{
    assert_lookups_match_the_model, new_event, sample_events, synthetic_events,
};
use custody_store::{LineOrigin, Lookup, Rejected, Store, StoreError, StoredCheckpoint};
use custody_store_sqlite::{SqliteStore, FANOUT, RUN_MIN_EVENTS, SCHEMA_VERSION};
use rusqlite::Connection;
use tempfile::TempDir;

fn temp_store() -> (TempDir, PathBuf, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("custody.db");
    let store = SqliteStore::open(&path).unwrap();
    (dir, path, store)
}

fn leaves(events: &[custody_store::NewEvent]) -> Vec<Hash> {
    events.iter().map(|e| e.leaf_hash()).collect()
}

fn rejected(line: u64) -> Rejected {
    Rejected {
        origin: LineOrigin {
            file: "in.ndjson".into(),
            line,
        },
        reason: "line is not json".into(),
        excerpt: "{".into(),
    }
}

/// Runs `sql` on a second connection and returns SQLite's error message.
fn refused(conn: &Connection, sql: &str) -> String {
    match conn.execute(sql, []) {
        Ok(n) => panic!("`{sql}` was allowed ({n} rows changed)"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_schema_refuses_updates_and_deletes_from_another_connection() {
    let (_dir, path, mut store) = temp_store();
    let events = sample_events();
    store.append_batch(&events, &[rejected(1)]).unwrap();
    let cp = StoredCheckpoint {
        size: events.len() as u64,
        root: store.root().unwrap(),
        note: "note\n".into(),
    };
    store.add_checkpoint(&cp).unwrap();
    let root_before = store.root().unwrap();

    let raw = Connection::open(&path).unwrap();
    for sql in [
        "UPDATE events SET body = x'7b7d' WHERE idx = 0",
        "UPDATE events SET leaf_hash = zeroblob(32)",
        "DELETE FROM events WHERE idx = 3",
        "DELETE FROM events",
        "UPDATE links SET key = 0",
        "DELETE FROM links",
        "UPDATE quarantine SET reason = 'fine'",
        "DELETE FROM quarantine",
        "UPDATE checkpoints SET note = 'forged'",
        "DELETE FROM checkpoints",
    ] {
        let msg = refused(&raw, sql);
        assert!(msg.contains("append-only"), "`{sql}`: {msg}");
    }
    assert!(refused(&raw, "DELETE FROM log_state").contains("cannot be deleted"));
    assert!(refused(&raw, "UPDATE log_state SET size = 0").contains("only grows"));
    // REPLACE would delete the old row; with recursive triggers on, the delete trigger fires.
    raw.pragma_update(None, "recursive_triggers", "ON").unwrap();
    let msg = refused(
        &raw,
        "INSERT OR REPLACE INTO events (idx, body, leaf_hash) VALUES (0, x'7b7d', zeroblob(32))",
    );
    assert!(msg.contains("append-only"), "{msg}");
    drop(raw);

    assert_eq!(store.size().unwrap(), events.len() as u64);
    assert_eq!(store.root().unwrap(), root_before);
    assert_eq!(
        store.event_at(0).unwrap().unwrap().canonical,
        events[0].canonical()
    );
    assert_eq!(store.quarantine().unwrap(), vec![rejected(1)]);
    assert_eq!(store.checkpoints().unwrap(), vec![cp]);
}

/// The page size SQLite reads from the file behind `raw`.
fn page_size(raw: &Connection) -> i64 {
    raw.pragma_query_value(None, "page_size", |r| r.get(0))
        .unwrap()
}

#[test]
fn a_store_made_with_4_kib_pages_keeps_them() {
    // As an earlier build made every store: 4 KiB pages, then events in it.
    let (_dir, path, mut store) = temp_store();
    store.append_batch(&sample_events()[..2], &[]).unwrap();
    drop(store);
    let raw = Connection::open(&path).unwrap();
    raw.execute_batch(
        "PRAGMA journal_mode = DELETE; PRAGMA page_size = 4096; VACUUM; PRAGMA journal_mode = WAL;",
    )
    .unwrap();
    assert_eq!(page_size(&raw), 4_096);
    drop(raw);
    let mut store = SqliteStore::open(&path).unwrap();
    store.append_batch(&sample_events()[2..], &[]).unwrap();
    assert_eq!(store.size().unwrap(), sample_events().len() as u64);
    drop(store);
    let raw = Connection::open(&path).unwrap();
    assert_eq!(
        page_size(&raw),
        4_096,
        "opening a store never changes its page size"
    );
    let store = SqliteStore::open(&path).unwrap();
    let events = sample_events();
    assert_eq!(store.size().unwrap(), events.len() as u64);
    assert_eq!(store.root().unwrap(), root(&leaves(&events)));
    let last = store.event_at(events.len() as u64 - 1).unwrap().unwrap();
    assert_eq!(last.canonical, events.last().unwrap().canonical());
}

#[test]
fn a_new_store_has_8_kib_pages() {
    let (_dir, path, mut store) = temp_store();
    store.append_batch(&sample_events(), &[]).unwrap();
    drop(store);
    let raw = Connection::open(&path).unwrap();
    assert_eq!(page_size(&raw), 8_192);
    // And the store reopens and reads back what was written.
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.size().unwrap(), sample_events().len() as u64);
}

#[test]
fn wal_mode_is_on() {
    let (_dir, path, mut store) = temp_store();
    store.append_batch(&sample_events(), &[]).unwrap();
    let raw = Connection::open(&path).unwrap();
    let mode: String = raw
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(user_version(&path), SCHEMA_VERSION);
    let mut wal = path.clone().into_os_string();
    wal.push("-wal");
    assert!(
        Path::new(&wal).exists(),
        "no write-ahead log next to the store"
    );
}

#[test]
fn a_reopened_file_keeps_everything() {
    let (_dir, path, mut store) = temp_store();
    let events = synthetic_events(0, 1000);
    for chunk in events.chunks(300) {
        store.append_batch(chunk, &[]).unwrap();
    }
    store.append_batch(&[], &[rejected(7)]).unwrap();
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.size().unwrap(), 1000);
    assert_eq!(store.root().unwrap(), root(&leaves(&events)));
    assert_eq!(store.leaf_hashes(0, 1000).unwrap(), leaves(&events));
    assert_eq!(
        store.event_at(999).unwrap().unwrap().canonical,
        events[999].canonical()
    );
    assert_eq!(store.quarantine().unwrap(), vec![rejected(7)]);
    assert_eq!(store.lookup(Lookup::Chain("run-10")).unwrap().len(), 3);
}

const CRASH_DIR: &str = "CUSTODY_SQLITE_CRASH_TEST_DIR";

/// The child half of `committed_batches_survive_a_process_crash`: appends, then aborts
/// without closing anything (no destructor, no WAL checkpoint).
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CRASH_DIR) else {
        return; // only meaningful when spawned by the test below
    };
    let mut store = SqliteStore::open(&Path::new(&dir).join("crash.db")).unwrap();
    let events = synthetic_events(0, 600);
    store.append_batch(&events[..500], &[]).unwrap();
    store.append_batch(&events[500..], &[rejected(3)]).unwrap();
    std::process::abort();
}

#[test]
fn committed_batches_survive_a_process_crash() {
    let dir = tempfile::tempdir().unwrap();
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--test-threads=1"])
        .env(CRASH_DIR, dir.path())
        .output()
        .unwrap();
    assert!(
        !child.status.success(),
        "the child was meant to abort: {}",
        String::from_utf8_lossy(&child.stdout)
    );
    let store = SqliteStore::open(&dir.path().join("crash.db")).unwrap();
    let events = synthetic_events(0, 600);
    assert_eq!(store.size().unwrap(), 600);
    assert_eq!(store.root().unwrap(), root(&leaves(&events)));
    assert_eq!(store.quarantine().unwrap(), vec![rejected(3)]);
}

#[test]
fn unknown_schema_versions_and_foreign_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let newer = dir.path().join("newer.db");
    drop(SqliteStore::open(&newer).unwrap());
    Connection::open(&newer)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    match SqliteStore::open(&newer) {
        Err(StoreError::Schema(msg)) => {
            assert!(msg.contains("99") && msg.contains("newer"), "{msg}")
        }
        other => panic!("expected a schema error, got {other:?}"),
    }

    let foreign = dir.path().join("foreign.db");
    let raw = Connection::open(&foreign).unwrap();
    raw.execute_batch("CREATE TABLE t (x)").unwrap();
    drop(raw);
    match SqliteStore::open(&foreign) {
        Err(StoreError::Schema(msg)) => assert!(msg.contains("not a custody store"), "{msg}"),
        other => panic!("expected a schema error, got {other:?}"),
    }
    let mode: String = Connection::open(&foreign)
        .unwrap()
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete", "a foreign file was switched to WAL");

    let missing_dir = dir.path().join("no/such/dir/custody.db");
    assert!(matches!(
        SqliteStore::open(&missing_dir),
        Err(StoreError::Backend(_))
    ));
}

/// Tampering that gets past the triggers (dropping them) is reported, never a panic.
#[test]
fn damaged_rows_are_corrupt_errors() {
    let (_dir, path, mut store) = temp_store();
    let events = sample_events();
    store.append_batch(&events, &[]).unwrap();
    let raw = Connection::open(&path).unwrap();
    raw.execute_batch(
        "DROP TRIGGER events_no_update;
         UPDATE events SET body = CAST('{\"not\": json' AS BLOB) WHERE idx = 4;
         UPDATE events SET body = CAST('{\"id\":\"x\"}' AS BLOB) WHERE idx = 5;",
    )
    .unwrap();
    drop(raw);
    match store.event_at(4) {
        Err(StoreError::Corrupt { index: 4, reason }) => {
            assert!(reason.contains("not JSON"), "{reason}")
        }
        other => panic!("expected Corrupt at 4, got {other:?}"),
    }
    match store.event_at(5) {
        Err(StoreError::Corrupt { index: 5, reason }) => {
            assert!(reason.contains("not an event"), "{reason}")
        }
        other => panic!("expected Corrupt at 5, got {other:?}"),
    }
    assert!(matches!(
        store.lookup(Lookup::Chain("run-1")),
        Err(StoreError::Corrupt { index: 4, .. })
    ));
    // scan does not parse: it hands the bytes over, and verification finds the mismatch.
    let mut mismatches = Vec::new();
    store
        .scan(0, &mut |i, bytes, hash| {
            if leaf_hash(bytes) != *hash {
                mismatches.push(i);
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(mismatches, vec![4, 5]);
}

/// A row slipped into `events` without `log_state` (or the reverse) is found on open.
#[test]
fn a_log_state_that_disagrees_with_the_events_is_corrupt() {
    let (_dir, path, mut store) = temp_store();
    store.append_batch(&sample_events()[..3], &[]).unwrap();
    drop(store);
    let raw = Connection::open(&path).unwrap();
    raw.execute(
        "INSERT INTO events (idx, body, leaf_hash) VALUES (3, x'7b7d', zeroblob(32))",
        [],
    )
    .unwrap();
    drop(raw);
    match SqliteStore::open(&path) {
        Err(StoreError::Corrupt { index: 3, reason }) => {
            assert!(reason.contains("log state"), "{reason}")
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// Two stores on one file (two processes, say) take turns; the tree stays right because
/// each batch reads the frontier inside its write transaction.
#[test]
fn two_writers_on_one_file_keep_one_tree() {
    let (_dir, path, mut a) = temp_store();
    let mut b = SqliteStore::open(&path).unwrap();
    let events = synthetic_events(0, 400);
    for (i, chunk) in events.chunks(50).enumerate() {
        let store = if i % 2 == 0 { &mut a } else { &mut b };
        let out = store.append_batch(chunk, &[]).unwrap();
        assert_eq!(out.accepted, 50);
    }
    let want = root(&leaves(&events));
    assert_eq!(a.root().unwrap(), want);
    assert_eq!(b.root().unwrap(), want);
    assert_eq!(b.append_batch(&events, &[]).unwrap().duplicates, 400);
}

/// A batch is one transaction: a failure part-way leaves nothing behind.
#[test]
fn a_failing_batch_writes_nothing() {
    let (_dir, _path, mut store) = temp_store();
    let events = sample_events();
    store.append_batch(&events[..2], &[]).unwrap();
    let root_before = store.root().unwrap();

    // A conflict whose line number SQLite cannot hold fails after the events were inserted.
    let mut conflicting = new_event(
        &custody_store::testing::SAMPLE_LINES[0].replace("SEC-4411", "SEC-1"),
        None,
    );
    conflicting.origin = Some(LineOrigin {
        file: "x".into(),
        line: u64::MAX,
    });
    let err = store
        .append_batch(
            &[events[2].clone(), events[3].clone(), conflicting],
            &[rejected(1)],
        )
        .unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");
    assert_eq!(store.size().unwrap(), 2);
    assert_eq!(store.root().unwrap(), root_before);
    assert!(store.get(&events[2].event.key).unwrap().is_none());
    assert!(store
        .lookup(Lookup::Principal("bob@example.com"))
        .unwrap()
        .is_empty());
    assert!(store.quarantine().unwrap().is_empty());

    // And the store goes on working.
    store.append_batch(&events[2..], &[]).unwrap();
    assert_eq!(store.root().unwrap(), root(&leaves(&events)));
}

#[test]
fn a_different_checkpoint_for_a_stored_size_is_refused() {
    let (_dir, _path, mut store) = temp_store();
    let cp = StoredCheckpoint {
        size: 0,
        root: root(&[]),
        note: "a\n".into(),
    };
    store.add_checkpoint(&cp).unwrap();
    let other = StoredCheckpoint {
        note: "b\n".into(),
        ..cp.clone()
    };
    assert!(store.add_checkpoint(&other).is_err());
    assert_eq!(store.checkpoints().unwrap(), vec![cp]);
}

#[test]
fn conflicts_without_an_origin_still_reach_the_quarantine() {
    let (_dir, _path, mut store) = temp_store();
    let events = sample_events();
    store.append_batch(&events[..1], &[]).unwrap();
    let conflicting = new_event(
        &custody_store::testing::SAMPLE_LINES[0].replace("SEC-4411", "SEC-2"),
        None,
    );
    let out = store.append_batch(&[conflicting], &[]).unwrap();
    assert_eq!(out.conflicts.len(), 1);
    assert_eq!(out.conflicts[0].origin.line, 0);
    assert_eq!(store.quarantine().unwrap(), out.conflicts);
}

#[test]
fn the_store_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<SqliteStore>();
}

/// Opening (and reading) does not wait for another writer's transaction to end.
#[test]
fn opening_does_not_wait_for_a_writer() {
    let (_dir, path, mut store) = temp_store();
    store.append_batch(&sample_events(), &[]).unwrap();
    drop(store);
    let mut writer = Connection::open(&path).unwrap();
    let tx = writer
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap();
    let started = std::time::Instant::now();
    let reader = SqliteStore::open(&path).unwrap();
    assert_eq!(reader.size().unwrap(), 13);
    assert_eq!(reader.lookup(Lookup::Chain("run-1")).unwrap().len(), 4);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "opening waited {:?} for the writer",
        started.elapsed()
    );
    tx.rollback().unwrap();
}

/// Link keys are hashes and may collide; a lookup, `get` and the duplicate check must not
/// trust them. Here every event is also linked under every key of every other event (as if
/// all their keys collided): every answer stays exact.
#[test]
fn colliding_link_keys_change_no_answer() {
    let (_dir, path, mut store) = temp_store();
    let events = sample_events();
    store.append_batch(&events, &[]).unwrap();
    let raw = Connection::open(&path).unwrap();
    raw.execute_batch(
        "INSERT OR IGNORE INTO links (key, first, more) \
         SELECT l.key, e.idx, x'' FROM links AS l, events AS e",
    )
    .unwrap();
    drop(raw);
    for (by, want) in custody_store::testing::sample_lookups() {
        let got: Vec<u64> = store.lookup(by).unwrap().iter().map(|e| e.index).collect();
        assert_eq!(got, want, "{by:?}");
    }
    for (i, e) in events.iter().enumerate() {
        assert_eq!(store.get(&e.event.key).unwrap().unwrap().index, i as u64);
    }
    let again = store.append_batch(&events, &[]).unwrap();
    assert_eq!((again.accepted, again.duplicates), (0, events.len() as u64));
    // The same outcome as in a store without collisions.
    let more = synthetic_events(0, 20);
    let mut clean = SqliteStore::open_in_memory().unwrap();
    clean.append_batch(&events, &[]).unwrap();
    assert_eq!(
        store.append_batch(&more, &[]).unwrap(),
        clean.append_batch(&more, &[]).unwrap()
    );
}

/// A large batch (its link rows computed on a second thread) that fails after its events
/// were inserted leaves nothing behind either.
#[test]
fn a_failing_large_batch_writes_nothing() {
    let (_dir, _path, mut store) = temp_store();
    let mut events = synthetic_events(0, 1000);
    // A conflicting copy of an event of the batch, with a line number SQLite cannot hold:
    // its quarantine entry fails once all the events are in.
    let text = String::from_utf8(events[900].canonical().to_vec()).unwrap();
    let mut conflicting = new_event(&text.replacen('{', "{\"note\":\"other\",", 1), None);
    conflicting.origin = Some(LineOrigin {
        file: "x".into(),
        line: u64::MAX,
    });
    events.push(conflicting);
    let err = store.append_batch(&events, &[rejected(1)]).unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");
    assert_eq!(store.size().unwrap(), 0);
    assert!(store.quarantine().unwrap().is_empty());
    assert!(store
        .lookup(Lookup::Id(&events[0].event.key.id))
        .unwrap()
        .is_empty());
    events.pop();
    assert_eq!(store.append_batch(&events, &[]).unwrap().accepted, 1000);
}

#[test]
fn a_read_snapshot_does_not_see_appends_made_during_it() {
    let (_dir, path, mut writer) = temp_store();
    writer.append_batch(&synthetic_events(0, 10), &[]).unwrap();
    let reader = SqliteStore::open(&path).unwrap();
    let mut seen = Vec::new();
    reader
        .read_snapshot(&mut || {
            seen.push(reader.size()?);
            writer.append_batch(&synthetic_events(10, 5), &[])?;
            seen.push(reader.size()?);
            seen.push(reader.lookup(Lookup::Id("req-2"))?.len() as u64); // event 12
            Ok(())
        })
        .unwrap();
    assert_eq!(seen, [10, 10, 0], "one snapshot for every read inside");
    assert_eq!(reader.size().unwrap(), 15, "and the new events after it");
    assert_eq!(reader.lookup(Lookup::Id("req-2")).unwrap().len(), 1);
    // A failing body still ends the transaction.
    let err = reader
        .read_snapshot(&mut || Err(StoreError::Backend("stop".into())))
        .unwrap_err();
    assert!(err.to_string().contains("stop"));
    writer.append_batch(&synthetic_events(15, 1), &[]).unwrap();
    assert_eq!(reader.size().unwrap(), 16);
}

/// The largest size the WAL file reaches while `batches` batches of 400 events are
/// appended by a writer told that checkpoints run elsewhere (as `custody ingest`'s writer
/// is) with nothing checkpointing meanwhile (as when the other handle's checkpoints never
/// catch up with the writer), the WAL restart threshold at `restart_bytes`.
fn peak_wal_bytes(restart_bytes: i64, batches: u64) -> (u64, SqliteStore, TempDir) {
    let (dir, path, mut writer) = temp_store();
    writer.defer_maintenance().unwrap();
    writer.set_wal_restart_bytes(restart_bytes);
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    let mut peak = 0;
    for b in 0..batches {
        let outcome = writer
            .append_batch(&synthetic_events(b * 400, 400), &[])
            .unwrap();
        assert_eq!(outcome.accepted, 400);
        peak = peak.max(std::fs::metadata(&wal).unwrap().len());
    }
    (peak, writer, dir)
}

#[test]
fn an_ingest_wal_starts_over_once_past_its_bound() {
    // 30 batches write about 15 MiB of WAL frames.
    let (unbounded, _, _dir) = peak_wal_bytes(i64::MAX, 30);
    assert!(
        unbounded > 12 << 20,
        "with no checkpoint the WAL holds every batch: {unbounded} bytes"
    );
    let (bounded, writer, dir) = peak_wal_bytes(2 << 20, 30);
    // The bound, the batch that crossed it, and the first batch after the restart.
    assert!(
        bounded < 5 << 20,
        "the WAL should start over past 2 MiB, but reached {bounded} bytes"
    );
    // Nothing was lost on the way, in this handle or in the file.
    assert_eq!(writer.size().unwrap(), 30 * 400);
    drop(writer);
    let reopened = SqliteStore::open(&dir.path().join("custody.db")).unwrap();
    assert_eq!(reopened.size().unwrap(), 30 * 400);
    let last = reopened.event_at(30 * 400 - 1).unwrap().unwrap();
    assert_eq!(last.index, 30 * 400 - 1);
}

/// `(source, id, type)` of every event, in log order, from `sql`.
fn keys_by(conn: &Connection, sql: &str) -> Vec<(Option<String>, Option<String>, Option<String>)> {
    let mut stmt = conn.prepare(sql).unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn keys_of(
    events: &[custody_store::NewEvent],
) -> Vec<(Option<String>, Option<String>, Option<String>)> {
    events
        .iter()
        .map(|e| {
            (
                Some(e.event.key.source.clone()),
                Some(e.event.key.id.clone()),
                Some(e.event.event_type().as_str().to_owned()),
            )
        })
        .collect()
}

/// `events` keeps only what custody reads; `readable_events` gives people each event's source,
/// id and type from its body, and a body that is not JSON does not break it.
#[test]
fn readable_events_reads_source_id_and_type_from_the_body() {
    let (_dir, path, mut store) = temp_store();
    let events = sample_events();
    store.append_batch(&events, &[]).unwrap();
    let raw = Connection::open(&path).unwrap();
    let sql = "SELECT source, id, type FROM readable_events ORDER BY idx";
    assert_eq!(keys_by(&raw, sql), keys_of(&events));
    let columns: Vec<String> = raw
        .prepare("SELECT name FROM pragma_table_info('events')")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(columns, ["idx", "body", "leaf_hash"]);
    raw.execute_batch(
        "DROP TRIGGER events_no_update;
         UPDATE events SET body = CAST('{\"not\": json' AS BLOB) WHERE idx = 1;",
    )
    .unwrap();
    let mut want = keys_of(&events);
    want[1] = (None, None, None);
    assert_eq!(keys_by(&raw, sql), want);
}

/// A store of schema version 3 (made as an earlier build made it) is read and appended to,
/// with its stored `source`, `id` and `type` filled in.
#[test]
fn a_schema_3_store_gets_its_stored_columns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v3.db");
    custody_store_sqlite::create_schema_v3(&path).unwrap();
    let mut store = SqliteStore::open(&path).unwrap();
    let events = sample_events();
    store.append_batch(&events[..4], &[]).unwrap();
    drop(store);
    let mut store = SqliteStore::open(&path).unwrap();
    let again = store.append_batch(&events, &[]).unwrap();
    assert_eq!(
        (again.duplicates, again.accepted),
        (4, events.len() as u64 - 4)
    );
    assert_eq!(user_version(&path), 3);
    let raw = Connection::open(&path).unwrap();
    let sql = "SELECT source, id, type FROM events ORDER BY idx";
    assert_eq!(keys_by(&raw, sql), keys_of(&events));
}

/// The schema version written in the file at `path`.
fn user_version(path: &Path) -> i64 {
    Connection::open(path)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

fn run_levels(path: &Path) -> Vec<(i64, i64)> {
    let raw = Connection::open(path).unwrap();
    let mut stmt = raw
        .prepare("SELECT level, count(*) FROM link_runs GROUP BY level ORDER BY level")
        .unwrap();
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)));
    rows.unwrap().collect::<rusqlite::Result<_>>().unwrap()
}

/// Batches of [`RUN_MIN_EVENTS`] write their link rows as runs, eight runs merge into one,
/// and every lookup still gives what the model says, before and after reopening; smaller
/// batches write no run.
#[test]
fn large_batches_write_runs_that_merge_and_lookups_stay_exact() {
    let (_dir, path, mut store) = temp_store();
    let per = RUN_MIN_EVENTS as u64;
    let mut all = Vec::new();
    let mut at = 0;
    for b in 0..(FANOUT as u64 * 2 + 3) {
        // Every fifth batch is one event short of a run: its rows go into `links`.
        let n = if b % 5 == 4 { per - 1 } else { per };
        let batch = synthetic_events(at, n);
        assert_eq!(store.append_batch(&batch, &[]).unwrap().accepted, n);
        at += n;
        all.extend(batch);
        if b % 4 == 0 {
            assert_lookups_match_the_model(&store, &all, &format!("after batch {b}"));
        }
    }
    // 19 batches, 3 of them small: 16 runs, merged into two of level 1.
    assert_eq!(run_levels(&path), vec![(1, 2)]);
    assert_lookups_match_the_model(&store, &all, "at the end");
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    assert_lookups_match_the_model(&store, &all, "after reopening");
}

/// A store of schema version 4 is appended to as it is: no run tables, every row in `links`.
#[test]
fn a_version_4_store_keeps_its_links_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v4.db");
    custody_store_sqlite::create_schema_v4(&path).unwrap();
    let mut store = SqliteStore::open(&path).unwrap();
    let batch = synthetic_events(0, RUN_MIN_EVENTS as u64 * 2);
    store.append_batch(&batch, &[]).unwrap();
    assert_lookups_match_the_model(&store, &batch, "version 4");
    drop(store);
    assert_eq!(user_version(&path), 4);
    let raw = Connection::open(&path).unwrap();
    let runs: i64 = raw
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name IN ('link_runs', 'link_blocks')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(runs, 0, "no run tables were added");
}

/// A second handle on the file sees the runs the first one writes (its cached filters are
/// read again), in its lookups and in its duplicate check.
#[test]
fn a_second_handle_sees_the_runs_of_the_first() {
    let (_dir, path, mut a) = temp_store();
    let mut b = SqliteStore::open(&path).unwrap();
    let per = RUN_MIN_EVENTS as u64;
    let mut all = synthetic_events(0, per);
    a.append_batch(&all, &[]).unwrap();
    assert_lookups_match_the_model(&b, &all, "after the first run");
    let second = synthetic_events(per, per);
    a.append_batch(&second, &[]).unwrap();
    all.extend(second.iter().cloned());
    assert_lookups_match_the_model(&b, &all, "after the second run");
    let again = b.append_batch(&second, &[]).unwrap();
    assert_eq!((again.accepted, again.duplicates), (0, per));
    assert_eq!(run_levels(&path), vec![(0, 2)]);
}

/// As `a_read_snapshot_does_not_see_appends_made_during_it`, with every batch a run: the runs
/// read once in a snapshot serve it, and the next lookup after it reads the new run.
#[test]
fn a_read_snapshot_reads_the_runs_of_its_own_time() {
    let (_dir, path, mut writer) = temp_store();
    writer.set_run_min_events(1);
    writer.append_batch(&synthetic_events(0, 10), &[]).unwrap();
    let reader = SqliteStore::open(&path).unwrap();
    let mut seen = Vec::new();
    reader
        .read_snapshot(&mut || {
            seen.push(reader.lookup(Lookup::Id("req-2"))?.len() as u64); // event 12
            writer.append_batch(&synthetic_events(10, 5), &[])?;
            seen.push(reader.lookup(Lookup::Id("req-2"))?.len() as u64);
            seen.push(reader.lookup(Lookup::Id("del-2"))?.len() as u64); // event 13
            Ok(())
        })
        .unwrap();
    assert_eq!(seen, [0, 0, 0], "one snapshot for every read inside");
    assert_eq!(reader.lookup(Lookup::Id("req-2")).unwrap().len(), 1);
    assert_eq!(reader.lookup(Lookup::Id("del-2")).unwrap().len(), 1);
    assert_eq!(run_levels(&path), vec![(0, 2)]);
}
