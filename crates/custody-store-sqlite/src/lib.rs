//! Custody's embedded store: one SQLite file in WAL mode, append-only (DESIGN §7–§9).
//!
//! [`SqliteStore`] implements [`custody_store::Store`]. The file holds:
//!
//! - `events`: the log, one row per event, `idx` = Merkle leaf index, the RFC 8785 bytes
//!   (`body`) and the RFC 9162 leaf hash; the view `readable_events` adds each event's
//!   `source`, `id` and `type`, read from the body, for people reading the file with `sqlite3`
//!   (a store of schema version 3 stores them in `events` and has no view);
//! - `links`: every way an event can be found (`get`, each [`Lookup`], the duplicate check),
//!   as 64-bit keys hashed from a tag and the text, with the event's index (module `links`);
//!   a large batch writes its rows as a run of blocks in `link_blocks` instead, with a Bloom
//!   filter of its keys in `link_runs` (module `runs`, schema version 5);
//! - `quarantine`, `checkpoints`;
//! - `log_state`: one row with the size and the compact range (Merkle frontier), written in the
//!   same transaction as each batch so that `root()` costs O(log n) and opening costs nothing.
//!
//! The schema itself refuses `UPDATE` and `DELETE` on every table except `log_state` (which
//! may only grow), through triggers. Those triggers are a guard against mistakes and casual
//! edits, not against someone who can write the file: they can drop triggers. What catches
//! that is the Merkle tree (`custody verify` and signed checkpoints).
//!
//! Writers serialise on SQLite's write lock (`BEGIN IMMEDIATE`) and read `log_state` inside
//! their transaction, so two stores (or two processes) appending to one file stay correct.

mod append;
mod runs;

pub use runs::{FANOUT, MAX_RUN_EVENTS, RUN_MIN_EVENTS};

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::Duration;

use custody_merkle::{CompactRange, Hash};
use custody_model::EventKey;
use custody_store::batch::{self, hash_from};
use custody_store::{
    links, BatchOutcome, LeanEvent, LineOrigin, Lookup, Rejected, Store, StoreError, StoreResult,
    StoredCheckpoint, StoredEvent,
};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior};

/// The schema version this build writes and reads (`PRAGMA user_version`): version 4 and
/// the link index's runs (module `runs`).
pub const SCHEMA_VERSION: i64 = 5;

/// The earlier schema version this build still reads and appends to as it is: version 4,
/// whose link index is all in `links` (and stays so).
pub const SCHEMA_VERSION_NO_RUNS: i64 = 4;

/// The earlier schema version this build still reads and appends to: version 3, whose
/// `events` table stores `source`, `id` and `type` beside the body; otherwise the same.
pub const SCHEMA_VERSION_STORED_KEYS: i64 = 3;

/// `PRAGMA application_id` of a Custody store: "CSTY".
pub const APPLICATION_ID: i64 = 0x4353_5459;

/// How long a writer waits for another writer's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The `events` table of schema version 3: `source`, `id` and `type` stored beside the body.
const EVENTS_V3: &str = "
CREATE TABLE events (
    idx       INTEGER PRIMARY KEY,
    source    TEXT    NOT NULL,
    id        TEXT    NOT NULL,
    type      TEXT    NOT NULL,
    body      BLOB    NOT NULL,
    leaf_hash BLOB    NOT NULL CHECK (length(leaf_hash) = 32)
);
";

/// The `events` table ([`SCHEMA`] holds the rest), and a view of it for people.
const EVENTS: &str = r#"
-- The log: custody reads and writes only these columns.
CREATE TABLE events (
    idx       INTEGER PRIMARY KEY,
    body      BLOB    NOT NULL,
    leaf_hash BLOB    NOT NULL CHECK (length(leaf_hash) = 32)
);

-- For people reading the file with sqlite3: each event with its source, id and type, read
-- from the body (NULL for a body that is not JSON). Schema version 3 stored these three in
-- `events`: three more values to bind and copy for every event and 7% of the table, for
-- queries only people run; without them 200k events were ingested 6% faster, with 9% less
-- CPU (alternating rounds, 2026-12-05). (As generated columns they cost more than stored:
-- SQLite computes them on every insert.) json_extract rather than `->>`, which a sqlite3
-- older than 3.38 cannot parse, and SQLite parses every view to open a file.
CREATE VIEW readable_events AS
SELECT idx,
       CASE WHEN json THEN json_extract(text, '$.source') END AS source,
       CASE WHEN json THEN json_extract(text, '$.id') END AS id,
       CASE WHEN json THEN json_extract(text, '$.type') END AS type,
       body,
       leaf_hash
FROM (SELECT idx, body, leaf_hash, CAST(body AS TEXT) AS text,
             json_valid(CAST(body AS TEXT)) AS json
      FROM events);
"#;

/// Every table but `events`, and the triggers.
const SCHEMA: &str = r#"
-- Every way an event can be found (its key, id, credential, parent credential, chain,
-- resource, secret, referenced ids, principals), as 64-bit hashes of a tag and the text:
-- see custody_store::links. WITHOUT ROWID: the table is its own index.
-- One row per key and batch: `first` is the first index linked, `more` the gaps to the
-- others (LEB128).
CREATE TABLE links (
    key   INTEGER NOT NULL,
    first INTEGER NOT NULL,
    more  BLOB    NOT NULL,
    PRIMARY KEY (key, first)
) WITHOUT ROWID;

CREATE TABLE quarantine (
    seq     INTEGER PRIMARY KEY,
    file    TEXT    NOT NULL,
    line    INTEGER NOT NULL,
    reason  TEXT    NOT NULL,
    excerpt TEXT    NOT NULL
);

CREATE TABLE checkpoints (
    size INTEGER PRIMARY KEY,
    root BLOB    NOT NULL CHECK (length(root) = 32),
    note TEXT    NOT NULL
);

CREATE TABLE log_state (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    size          INTEGER NOT NULL CHECK (size >= 0),
    compact_range BLOB    NOT NULL
);
INSERT INTO log_state (id, size, compact_range) VALUES (1, 0, zeroblob(8));

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'custody: events are append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'custody: events are append-only'); END;
CREATE TRIGGER links_no_update BEFORE UPDATE ON links
BEGIN SELECT RAISE(ABORT, 'custody: links are append-only'); END;
CREATE TRIGGER links_no_delete BEFORE DELETE ON links
BEGIN SELECT RAISE(ABORT, 'custody: links are append-only'); END;
CREATE TRIGGER quarantine_no_update BEFORE UPDATE ON quarantine
BEGIN SELECT RAISE(ABORT, 'custody: the quarantine is append-only'); END;
CREATE TRIGGER quarantine_no_delete BEFORE DELETE ON quarantine
BEGIN SELECT RAISE(ABORT, 'custody: the quarantine is append-only'); END;
CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'custody: checkpoints are append-only'); END;
CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'custody: checkpoints are append-only'); END;
CREATE TRIGGER log_state_no_delete BEFORE DELETE ON log_state
BEGIN SELECT RAISE(ABORT, 'custody: log_state cannot be deleted'); END;
CREATE TRIGGER log_state_only_grows BEFORE UPDATE ON log_state
WHEN NEW.size < OLD.size OR NEW.id IS NOT OLD.id
BEGIN SELECT RAISE(ABORT, 'custody: the log only grows'); END;
"#;

/// The page size of a new store, in bytes: 8 KiB, twice SQLite's default. A stored event is
/// about 450 bytes, and a bulk ingest pays per page: a WAL frame (two `pwrite`s and a
/// checksum), a page-cache entry, a split. Every commit also writes its dirty pages whole to
/// the WAL, and `custody serve` commits a few decisions at a time, so larger pages cost the
/// gate; 16 KiB (2026-12-02) took its p99 to 5.0–11.9 ms and 32 KiB to 6.4–6.6 ms, over the
/// server's 5 ms goal.
///
/// 8 KiB was turned back twice on 2026-12-05 for the same reason (p99 4.0–4.6 ms against
/// 3.4–4.2 ms). In a ninth session that day the cause showed: the server's writer restarts
/// the WAL each time it passes [`WAL_RESTART_BYTES`], copying the frames the maintenance
/// thread has not copied yet, and larger pages fill the WAL twice as fast. With the
/// maintenance thread's checkpoints every 20 ms instead of 200 ms (custody-server's
/// `MAINTAIN_EVERY`), that copy is small, and `scripts/bench-serve.sh 10 16` gave a p99 of
/// 2.4–2.6 ms with 8 KiB pages (2.4–2.5 ms with 4 KiB). The ingest bench then ran at
/// 389,000–402,000 events/s against 357,000–367,000 with 4 KiB pages (alternating runs, EPYC
/// host; docs/performance.md).
///
/// A store's page size is fixed when it is created: stores made with 4 KiB pages keep them.
const PAGE_SIZE: u32 = 8_192;

/// WAL size at which a commit checkpoints (when checkpoints are not left to a second
/// connection), in bytes.
const WAL_CHECKPOINT_BYTES: i64 = 32 << 20;

/// WAL size at which the writer of a store whose checkpoints run on another handle
/// ([`Store::defer_maintenance`]) has the WAL start over, in bytes; also the size the WAL
/// file is trimmed back to (`journal_size_limit`).
///
/// The other handle's passive checkpoints copy the WAL into the database but can never let
/// it start over from its beginning: that takes a moment when every frame is copied and
/// the writer has not begun its next batch, and an ingest's writer always has. Until
/// 2026-12-05 the WAL of an ingest therefore grew for as long as the ingest ran: 1.19 GB
/// for a million events, whose database is 526 MB. Now, after the commit that takes the
/// WAL past this size, the writer runs a `RESTART` checkpoint (the frames the other
/// handle has not copied yet, about one batch, and two fsyncs) and its next batch writes
/// the WAL from its beginning again, into file blocks that already exist.
const WAL_RESTART_BYTES: i64 = 128 << 20;

/// How long the writer waits for a `RESTART` checkpoint to be possible (the other handle's
/// checkpoint to end, readers to leave the WAL): not long, because the ingest waits with it.
/// When it is not possible, the WAL grows on and the writer tries again after another
/// eighth of [`WAL_RESTART_BYTES`].
const WAL_RESTART_PATIENCE: Duration = Duration::from_millis(250);

/// Milliseconds one `RESTART` checkpoint waits for readers to leave the WAL.
const WAL_RESTART_WAIT_MS: i32 = 20;

thread_local! {
    /// Frames in the WAL after the last commit on this thread, as SQLite's WAL hook reports
    /// it (registered by [`Store::defer_maintenance`]).
    static WAL_FRAMES: Cell<i32> = const { Cell::new(0) };
}

/// The WAL hook of a writer whose checkpoints run elsewhere: notes the WAL's size.
fn note_wal_frames(_: &rusqlite::hooks::Wal, frames: std::ffi::c_int) -> rusqlite::Result<()> {
    WAL_FRAMES.with(|f| f.set(frames));
    Ok(())
}

/// The busy handler of a `RESTART` checkpoint: a millisecond at a time, up to
/// [`WAL_RESTART_WAIT_MS`].
fn wait_for_readers(tries: i32) -> bool {
    if tries >= WAL_RESTART_WAIT_MS {
        return false;
    }
    std::thread::sleep(Duration::from_millis(1));
    true
}

/// Settings of every connection.
///
/// - `synchronous = NORMAL` in WAL mode: a committed batch survives a crash of the process
///   (it is in the WAL, in the OS's hands) and the file can never be corrupted; a power loss
///   or OS crash may lose the transactions committed since the last WAL checkpoint. `FULL`
///   would add an fsync to every batch.
/// - `wal_autocheckpoint` at [`WAL_CHECKPOINT_BYTES`] (32 MiB: 4096 pages of 8 KiB, 8192 of
///   4 KiB; SQLite's default is 1000 pages): fewer checkpoints during ingest, and an index
///   page that several batches rewrite is copied back to the database once (about 15% less
///   CPU per event). Set in pages, so it follows the store's page size: at 128 MiB a
///   checkpoint after a batch took milliseconds instead of a fraction of one.
/// - `journal_size_limit` (set in [`SqliteStore::open`]) trims the WAL file back to
///   [`WAL_RESTART_BYTES`] when the WAL starts over after a larger transaction.
/// - `recursive_triggers`: `INSERT OR REPLACE` deletes rows without firing delete triggers
///   unless this is on. This store never uses `REPLACE`; with this on, neither can a
///   statement sent through this connection.
/// - 16 MiB of page cache per connection (SQLite's default is 2 MiB), room for the index
///   pages a batch touches. It was 64 MiB until 2026-12-02; the writer then spent about a
///   fifth of its time in the kernel zeroing the fresh pages the cache grew into (perf
///   `page-faults`: `pcache1Alloc` under B-tree inserts), and ingests of 200k and 1M native
///   events and of 100k CloudTrail records all ran 4–6% faster, with 30–50 MB less peak
///   memory, at 16 MiB (8 MiB: no faster).
///
/// Foreign keys are not enforced: `links` rows are written only by
/// [`append::append_events`], in the transaction that inserts their event, and a check per
/// row costs a lookup into `events` for nothing.
const CONNECTION_PRAGMAS: &str = "
    PRAGMA synchronous = NORMAL;
    PRAGMA recursive_triggers = ON;
    PRAGMA cache_size = -16384;
    PRAGMA temp_store = MEMORY;
";

/// The `links` rows of one key with the event of each row's first index, in log order.
const LINKS_OF_KEY: &str = "SELECT e.idx, e.body, e.leaf_hash, l.more FROM links AS l \
     JOIN events AS e ON e.idx = l.first WHERE l.key = ?1 ORDER BY l.first";

/// [`LINKS_OF_KEY`], then the events at an array of indexes (those the runs link), each
/// with no more indexes.
const LINKS_OF_KEY_AND_EVENTS_AT: &str = "SELECT e.idx, e.body, e.leaf_hash, l.more \
     FROM links AS l JOIN events AS e ON e.idx = l.first WHERE l.key = ?1 \
     UNION ALL SELECT e.idx, e.body, e.leaf_hash, x'' FROM rarray(?2) AS j \
     JOIN events AS e ON e.idx = j.value";

/// The events at an array of indexes.
const EVENTS_AT: &str = "SELECT e.idx, e.body, e.leaf_hash FROM rarray(?1) AS j \
     JOIN events AS e ON e.idx = j.value";

/// The embedded store: one SQLite file (WAL mode) or, for tests, one in-memory database.
pub struct SqliteStore {
    conn: Connection,
    path: Option<PathBuf>,
    /// The WAL frames past which a writer whose checkpoints run on another handle has the
    /// WAL start over ([`WAL_RESTART_BYTES`]).
    restart_frames: i64,
    /// When checkpoints run on another handle: the WAL frames at which this writer next
    /// tries to have the WAL start over.
    restart_at: Option<i64>,
    /// Whether `events` stores `source`, `id` and `type` (schema version 3), which an
    /// insert must then give.
    stored_keys: bool,
    /// The fewest accepted events for which a batch writes its link rows as a run
    /// ([`RUN_MIN_EVENTS`]); `None` in a store of schema version 4 or 3, which has no runs.
    run_min: Option<usize>,
    /// The runs and their filters, as this connection last read them.
    run_cache: std::cell::RefCell<runs::RunCache>,
    /// Read snapshots begun (`read_snapshot`), and the one open now.
    snapshots: Cell<u64>,
    snapshot: Cell<Option<u64>>,
}

/// Creates an empty store of schema version 3 at `path` (`events` with stored `source`, `id`
/// and `type`), as an earlier build did: for tests of this build against such stores.
#[doc(hidden)]
pub fn create_schema_v3(path: &Path) -> StoreResult<()> {
    create_earlier_schema(path, EVENTS_V3, SCHEMA_VERSION_STORED_KEYS)
}

/// Creates an empty store of schema version 4 at `path` (no runs in the link index), as an
/// earlier build did: for tests of this build against such stores.
#[doc(hidden)]
pub fn create_schema_v4(path: &Path) -> StoreResult<()> {
    create_earlier_schema(path, EVENTS, SCHEMA_VERSION_NO_RUNS)
}

fn create_earlier_schema(path: &Path, events: &str, version: i64) -> StoreResult<()> {
    let conn = Connection::open(path).map_err(db)?;
    conn.pragma_update(None, "page_size", PAGE_SIZE)
        .map_err(db)?;
    conn.execute_batch(events).map_err(db)?;
    conn.execute_batch(SCHEMA).map_err(db)?;
    conn.pragma_update(None, "application_id", APPLICATION_ID)
        .map_err(db)?;
    conn.pragma_update(None, "user_version", version)
        .map_err(db)
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Integers as an array to bind to `rarray(?)`.
fn int_array(ints: impl IntoIterator<Item = i64>) -> rusqlite::vtab::array::Array {
    std::rc::Rc::new(
        ints.into_iter()
            .map(rusqlite::types::Value::Integer)
            .collect(),
    )
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

fn to_i64(n: u64, what: &str) -> StoreResult<i64> {
    i64::try_from(n).map_err(|_| StoreError::Backend(format!("{what} {n} is out of range")))
}

fn to_u64(n: i64, what: &str) -> StoreResult<u64> {
    u64::try_from(n).map_err(|_| StoreError::Backend(format!("stored {what} {n} is negative")))
}

impl SqliteStore {
    /// Opens the store at `path`, creating the file and its schema when missing.
    ///
    /// # Errors
    /// [`StoreError::Schema`] when the file is not a Custody store or was written by another
    /// schema version; [`StoreError::Corrupt`] when the stored log state and the events
    /// disagree; [`StoreError::Backend`] for I/O and SQLite failures.
    pub fn open(path: &Path) -> StoreResult<SqliteStore> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", path.display())))?;
        Self::init(conn, Some(path.to_path_buf()))
    }

    /// A store in memory, gone when dropped (tests, demos).
    ///
    /// # Errors
    /// [`StoreError::Backend`] when SQLite fails.
    pub fn open_in_memory() -> StoreResult<SqliteStore> {
        let conn = Connection::open_in_memory().map_err(db)?;
        Self::init(conn, None)
    }

    /// The file this store lives in (`None` in memory).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Sets the fewest accepted events for which a batch writes a run (default
    /// [`RUN_MIN_EVENTS`]), for tests that make runs and merges with small batches. No
    /// effect on a store of schema version 4 or 3.
    #[doc(hidden)]
    pub fn set_run_min_events(&mut self, events: usize) {
        if self.run_min.is_some() {
            self.run_min = Some(events);
        }
    }

    /// Sets the WAL size at which a writer whose checkpoints run elsewhere has the WAL start
    /// over (default [`WAL_RESTART_BYTES`]), for tests that cannot write 128 MiB.
    #[doc(hidden)]
    pub fn set_wal_restart_bytes(&mut self, bytes: i64) {
        let page_size: i64 = self
            .conn
            .pragma_query_value(None, "page_size", |r| r.get(0))
            .unwrap_or(i64::from(PAGE_SIZE));
        self.restart_frames = bytes / page_size.max(512);
        if self.restart_at.is_some() {
            self.restart_at = Some(self.restart_frames);
        }
    }

    /// After a commit of a writer whose checkpoints run elsewhere: once the WAL has passed
    /// [`WAL_RESTART_BYTES`], a `RESTART` checkpoint, so that the next batch writes the WAL
    /// from its beginning. Best effort: the batch is committed whatever happens here, and a
    /// checkpoint that cannot finish now (the other handle is checkpointing, a reader stays)
    /// is tried again later.
    fn bound_wal(&mut self) {
        let Some(at) = self.restart_at else {
            return;
        };
        let frames = i64::from(WAL_FRAMES.with(Cell::get));
        if frames < at {
            return;
        }
        let restarted =
            self.conn.busy_handler(Some(wait_for_readers)).is_ok() && self.restart_wal();
        let _ = self.conn.busy_timeout(BUSY_TIMEOUT);
        self.restart_at = Some(if restarted {
            self.restart_frames
        } else {
            frames.saturating_add(self.restart_frames / 8)
        });
    }

    /// `RESTART` checkpoints until one completes (true) or [`WAL_RESTART_PATIENCE`] has
    /// passed. SQLite does not wait for another handle's checkpoint (it answers busy at
    /// once), so this loop does; the busy handler set by the caller waits for readers.
    fn restart_wal(&self) -> bool {
        let deadline = std::time::Instant::now() + WAL_RESTART_PATIENCE;
        loop {
            let busy = self
                .conn
                .query_row("PRAGMA wal_checkpoint(RESTART)", [], |row| {
                    row.get::<_, i64>(0)
                });
            match busy {
                Ok(0) => return true,
                Ok(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                _ => return false,
            }
        }
    }

    fn init(mut conn: Connection, path: Option<PathBuf>) -> StoreResult<SqliteStore> {
        conn.busy_timeout(BUSY_TIMEOUT).map_err(db)?;
        // The schema check comes first, so that a file that is not a Custody store is left
        // as it was (not even switched to WAL).
        let version = Self::ensure_schema(&mut conn, path.as_deref())?;
        if path.is_some() {
            // WAL: readers never block the writer and a batch is one append to the WAL.
            let mode: String = conn
                .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
                .map_err(db)?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::Backend(format!(
                    "cannot switch the store to WAL mode (journal_mode is {mode})"
                )));
            }
        }
        conn.execute_batch(CONNECTION_PRAGMAS).map_err(db)?;
        let page_size: i64 = conn
            .pragma_query_value(None, "page_size", |r| r.get::<_, i64>(0))
            .map_err(db)?
            .max(512);
        conn.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_BYTES / page_size)
            .map_err(db)?;
        conn.pragma_update(None, "journal_size_limit", WAL_RESTART_BYTES)
            .map_err(db)?;
        conn.set_prepared_statement_cache_capacity(64);
        // `rarray`: the duplicate check hands SQLite a batch's keys as an array.
        rusqlite::vtab::array::load_module(&conn).map_err(db)?;
        let store = SqliteStore {
            conn,
            path,
            restart_frames: WAL_RESTART_BYTES / page_size,
            restart_at: None,
            stored_keys: version == SCHEMA_VERSION_STORED_KEYS,
            run_min: (version == SCHEMA_VERSION).then_some(RUN_MIN_EVENTS),
            run_cache: Default::default(),
            snapshots: Cell::new(0),
            snapshot: Cell::new(None),
        };
        store.check_log_state()?;
        Ok(store)
    }

    /// Creates the schema in an empty database, or checks that an existing one is a Custody
    /// store of a schema version this build reads, and returns the version. Only creation
    /// takes the write lock, so opening a store that another process is writing to does not
    /// wait for its batch.
    fn ensure_schema(conn: &mut Connection, path: Option<&Path>) -> StoreResult<i64> {
        let name = path.map_or_else(
            || "the in-memory store".to_owned(),
            |p| p.display().to_string(),
        );
        let header = |conn: &Connection| -> StoreResult<(i64, i64, i64)> {
            let app = conn
                .pragma_query_value(None, "application_id", |r| r.get(0))
                .map_err(db)?;
            let version = conn
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .map_err(db)?;
            let objects = conn
                .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
                .map_err(db)?;
            Ok((app, version, objects))
        };
        let (mut app, mut version, mut objects) = header(conn)?;
        if (app, version, objects) == (0, 0, 0) {
            // Takes effect only in an empty database, and only outside a transaction.
            conn.pragma_update(None, "page_size", PAGE_SIZE)
                .map_err(db)?;
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(db)?;
            // Another process may have created it while this one waited for the lock.
            (app, version, objects) = header(&tx)?;
            if (app, version, objects) == (0, 0, 0) {
                tx.execute_batch(EVENTS).map_err(db)?;
                tx.execute_batch(SCHEMA).map_err(db)?;
                tx.execute_batch(runs::RUNS_SCHEMA).map_err(db)?;
                tx.pragma_update(None, "application_id", APPLICATION_ID)
                    .map_err(db)?;
                tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                    .map_err(db)?;
                tx.commit().map_err(db)?;
                return Ok(SCHEMA_VERSION);
            }
        }
        if app != APPLICATION_ID {
            return Err(StoreError::Schema(format!(
                "{name} is not a custody store (application_id {app:#x}, {objects} schema objects)"
            )));
        }
        match version {
            SCHEMA_VERSION | SCHEMA_VERSION_NO_RUNS | SCHEMA_VERSION_STORED_KEYS => Ok(version),
            v if v > SCHEMA_VERSION => Err(StoreError::Schema(format!(
                "{name} has schema version {v}, newer than this build's {SCHEMA_VERSION}: upgrade custody"
            ))),
            v => Err(StoreError::Schema(format!(
                "{name} has unknown schema version {v} (this build reads version {SCHEMA_VERSION})"
            ))),
        }
    }

    /// Checks that `log_state` agrees with the events table (a cheap check: two lookups).
    fn check_log_state(&self) -> StoreResult<()> {
        let range = read_range(&self.conn)?;
        let next: i64 = self
            .conn
            .query_row("SELECT coalesce(max(idx) + 1, 0) FROM events", [], |r| {
                r.get(0)
            })
            .map_err(db)?;
        let rows = to_u64(next, "index")?;
        if rows != range.size() {
            return Err(StoreError::Corrupt {
                index: rows.min(range.size()),
                reason: format!(
                    "the log state says {} events but the events table ends at index {rows}",
                    range.size()
                ),
            });
        }
        Ok(())
    }
}

impl SqliteStore {
    /// [`Store::append_batch`] itself: one transaction.
    fn append_batch_once(
        &mut self,
        events: &[LeanEvent],
        rejected: &[Rejected],
    ) -> StoreResult<BatchOutcome> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let mut range = read_range(&tx)?;
        let mut outcome = BatchOutcome::default();
        for r in rejected {
            insert_rejected(&tx, r)?;
        }
        append::append_events(
            &tx,
            events,
            self.stored_keys,
            self.run_min.map(|min| (min, &self.run_cache)),
            &mut range,
            &mut outcome,
        )?;
        for c in &outcome.conflicts {
            insert_rejected(&tx, c)?;
        }
        if outcome.accepted > 0 {
            tx.prepare_cached("UPDATE log_state SET size = ?1, compact_range = ?2 WHERE id = 1")
                .map_err(db)?
                .execute(params![to_i64(range.size(), "log size")?, range.to_bytes()])
                .map_err(db)?;
        }
        tx.commit().map_err(db)?;
        self.bound_wal();
        outcome.quarantined = (rejected.len() + outcome.conflicts.len()) as u64;
        outcome.size = range.size();
        outcome.root = range.root();
        Ok(outcome)
    }

    /// The events linked under `key`, in log order, each once. One statement reads each
    /// `links` row with the event of its first index; a row that links more events of its
    /// batch costs one more read per event; so do the rows of the runs (module `runs`), one
    /// block of each run whose filter may hold the key read by one more statement.
    fn linked(&self, key: i64) -> StoreResult<Vec<StoredEvent>> {
        // The runs first (their filters are in memory, and most runs are passed over): the
        // events they link are then read by the statement that reads `links`.
        let mut in_runs = Vec::new();
        if self.run_min.is_some() {
            let snapshot = self.snapshot.get();
            runs::linked_in_runs(&self.conn, &self.run_cache, snapshot, &[key], &mut in_runs)?;
        }
        let mut stmt;
        let mut rows = if in_runs.is_empty() {
            stmt = self.conn.prepare_cached(LINKS_OF_KEY).map_err(db)?;
            stmt.query([key]).map_err(db)?
        } else {
            let idxs = int_array(in_runs);
            stmt = self
                .conn
                .prepare_cached(LINKS_OF_KEY_AND_EVENTS_AT)
                .map_err(db)?;
            stmt.query(params![key, idxs]).map_err(db)?
        };
        let mut out = Vec::new();
        let mut more = Vec::new();
        while let Some(row) = rows.next().map_err(db)? {
            out.push(stored_event(row)?);
            let first = out.last().map_or(0, |e| e.index);
            let gaps = row
                .get_ref(3)
                .map_err(db)?
                .as_blob()
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            if !gaps.is_empty() {
                let start = more.len();
                links::expand(to_i64(first, "index")?, gaps, &mut more).ok_or_else(|| {
                    StoreError::Corrupt {
                        index: first,
                        reason: "a row of the link index is damaged".into(),
                    }
                })?;
                // The first index is already read.
                more.remove(start);
            }
        }
        drop(rows);
        if more.len() <= 2 {
            for idx in more {
                if let Some(e) = self.event_at(to_u64(idx, "index")?)? {
                    out.push(e);
                }
            }
        } else {
            // One statement for all of them.
            let idxs = int_array(more);
            let mut stmt = self.conn.prepare_cached(EVENTS_AT).map_err(db)?;
            let mut rows = stmt.query([idxs]).map_err(db)?;
            while let Some(row) = rows.next().map_err(db)? {
                out.push(stored_event(row)?);
            }
        }
        // Rows of one key hold disjoint, increasing ranges; sorting keeps the log order and
        // each event once whatever the rows say.
        out.sort_by_key(|e| e.index);
        out.dedup_by_key(|e| e.index);
        Ok(out)
    }
}

/// Reads the compact range from `log_state`, checking it against the stored size.
fn read_range(conn: &Connection) -> StoreResult<CompactRange> {
    let (size, bytes): (i64, Vec<u8>) = conn
        .prepare_cached("SELECT size, compact_range FROM log_state WHERE id = 1")
        .map_err(db)?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(db)?
        .ok_or_else(|| StoreError::Corrupt {
            index: 0,
            reason: "the log state row is missing".into(),
        })?;
    batch::range_from_state(to_u64(size, "log size")?, &bytes)
}

/// A `StoredEvent` from a row `idx, body, leaf_hash`; damage is `Corrupt`, never a panic.
fn stored_event(row: &Row<'_>) -> StoreResult<StoredEvent> {
    let index = to_u64(row.get::<_, i64>(0).map_err(db)?, "index")?;
    let hash: Vec<u8> = row.get(2).map_err(db)?;
    batch::stored_event(index, row.get(1).map_err(db)?, &hash)
}

fn insert_rejected(tx: &Connection, r: &Rejected) -> StoreResult<()> {
    tx.prepare_cached(
        "INSERT INTO quarantine (file, line, reason, excerpt) VALUES (?1, ?2, ?3, ?4)",
    )
    .map_err(db)?
    .execute(params![
        r.origin.file,
        to_i64(r.origin.line, "line number")?,
        r.reason,
        r.excerpt
    ])
    .map_err(db)?;
    Ok(())
}

impl Store for SqliteStore {
    fn append_lean(
        &mut self,
        events: &[LeanEvent],
        rejected: &[Rejected],
    ) -> StoreResult<BatchOutcome> {
        // One transaction; on error it is rolled back and nothing is written. No hash is
        // checked: a `LeanEvent`'s leaf hash is made from its bytes.
        // The runs are read again inside the batch's transaction (the duplicate check reads
        // them) and after it, whether it commits or not: this connection's own commits do
        // not change `data_version`.
        self.run_cache.get_mut().forget();
        let outcome = self.append_batch_once(events, rejected);
        self.run_cache.get_mut().forget();
        outcome
    }

    fn size(&self) -> StoreResult<u64> {
        Ok(read_range(&self.conn)?.size())
    }

    fn root(&self) -> StoreResult<Hash> {
        Ok(read_range(&self.conn)?.root())
    }

    fn event_at(&self, index: u64) -> StoreResult<Option<StoredEvent>> {
        let Ok(idx) = i64::try_from(index) else {
            return Ok(None);
        };
        let mut stmt = self
            .conn
            .prepare_cached("SELECT idx, body, leaf_hash FROM events WHERE idx = ?1")
            .map_err(db)?;
        let mut rows = stmt.query([idx]).map_err(db)?;
        match rows.next().map_err(db)? {
            Some(row) => stored_event(row).map(Some),
            None => Ok(None),
        }
    }

    fn get(&self, key: &EventKey) -> StoreResult<Option<StoredEvent>> {
        // Every event with this id (the key can collide too), checked against the source.
        Ok(self
            .linked(links::link_key(links::Tag::Id, &key.id))?
            .into_iter()
            .find(|e| e.event.key == *key))
    }

    fn maintain(&self) -> StoreResult<()> {
        // PASSIVE: copies what no reader still needs, never waits, never blocks the writer.
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .map_err(db)
    }

    fn defer_maintenance(&mut self) -> StoreResult<()> {
        self.conn
            .execute_batch("PRAGMA wal_autocheckpoint = 0")
            .map_err(db)?;
        if self.path.is_some() {
            // After the pragma, which removes any WAL hook.
            self.conn.wal_hook(Some(note_wal_frames));
            self.restart_at = Some(self.restart_frames);
        }
        Ok(())
    }

    fn read_snapshot(&self, f: &mut dyn FnMut() -> StoreResult<()>) -> StoreResult<()> {
        if !self.conn.is_autocommit() {
            return f(); // already inside a transaction: its snapshot holds
        }
        self.conn.execute_batch("BEGIN DEFERRED").map_err(db)?;
        // The runs cannot change within it: read once, they serve every lookup of it.
        let snapshots = self.snapshots.get().wrapping_add(1);
        self.snapshots.set(snapshots);
        self.snapshot.set(Some(snapshots));
        let result = f();
        self.snapshot.set(None);
        // A read transaction: committing it writes nothing.
        let end = self.conn.execute_batch("COMMIT").map_err(db);
        result.and(end)
    }

    fn lookup(&self, by: Lookup<'_>) -> StoreResult<Vec<StoredEvent>> {
        // A link key can collide: every candidate is checked against its typed fields.
        let mut out = self.linked(links::key_of_lookup(by))?;
        out.retain(|e| links::matches(&e.event, by));
        Ok(out)
    }

    fn leaf_hashes(&self, start: u64, end: u64) -> StoreResult<Vec<Hash>> {
        let size = self.size()?;
        if start > end || end > size {
            return Err(StoreError::Backend(format!(
                "leaf range {start}..{end} is outside the log of size {size}"
            )));
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT idx, leaf_hash FROM events WHERE idx >= ?1 AND idx < ?2 ORDER BY idx",
            )
            .map_err(db)?;
        let mut rows = stmt
            .query([to_i64(start, "index")?, to_i64(end, "index")?])
            .map_err(db)?;
        let mut out = Vec::with_capacity(usize::try_from(end - start).unwrap_or(0));
        let mut expected = start;
        while let Some(row) = rows.next().map_err(db)? {
            let index = to_u64(row.get::<_, i64>(0).map_err(db)?, "index")?;
            if index != expected {
                return Err(StoreError::Corrupt {
                    index: expected,
                    reason: "the event at this index is missing".into(),
                });
            }
            let bytes = blob_at(row, 1, index, "leaf hash")?;
            out.push(hash_from(bytes, index, "leaf hash")?);
            expected += 1;
        }
        if expected != end {
            return Err(StoreError::Corrupt {
                index: expected,
                reason: "the event at this index is missing".into(),
            });
        }
        Ok(out)
    }

    fn scan(
        &self,
        start: u64,
        f: &mut dyn FnMut(u64, &[u8], &Hash) -> StoreResult<()>,
    ) -> StoreResult<()> {
        let Ok(start) = i64::try_from(start) else {
            return Ok(());
        };
        let mut stmt = self
            .conn
            .prepare_cached("SELECT idx, body, leaf_hash FROM events WHERE idx >= ?1 ORDER BY idx")
            .map_err(db)?;
        let mut rows = stmt.query([start]).map_err(db)?;
        while let Some(row) = rows.next().map_err(db)? {
            let index = to_u64(row.get::<_, i64>(0).map_err(db)?, "index")?;
            let body = blob_at(row, 1, index, "body")?;
            let hash_bytes = blob_at(row, 2, index, "leaf hash")?;
            let hash = hash_from(hash_bytes, index, "leaf hash")?;
            f(index, body, &hash)?;
        }
        Ok(())
    }

    fn add_checkpoint(&mut self, checkpoint: &StoredCheckpoint) -> StoreResult<()> {
        let size = to_i64(checkpoint.size, "checkpoint size")?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let stored: Option<(Vec<u8>, String)> = tx
            .prepare_cached("SELECT root, note FROM checkpoints WHERE size = ?1")
            .map_err(db)?
            .query_row([size], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(db)?;
        match stored {
            Some((root, note)) if root == checkpoint.root && note == checkpoint.note => {}
            Some(_) => {
                return Err(StoreError::Backend(format!(
                    "a different checkpoint for size {} is already stored",
                    checkpoint.size
                )))
            }
            None => {
                tx.prepare_cached("INSERT INTO checkpoints (size, root, note) VALUES (?1, ?2, ?3)")
                    .map_err(db)?
                    .execute(params![size, &checkpoint.root[..], checkpoint.note])
                    .map_err(db)?;
            }
        }
        tx.commit().map_err(db)
    }

    fn latest_checkpoint(&self) -> StoreResult<Option<StoredCheckpoint>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT size, root, note FROM checkpoints ORDER BY size DESC LIMIT 1")
            .map_err(db)?;
        let mut rows = stmt.query([]).map_err(db)?;
        match rows.next().map_err(db)? {
            Some(row) => checkpoint_from(row).map(Some),
            None => Ok(None),
        }
    }

    fn checkpoints(&self) -> StoreResult<Vec<StoredCheckpoint>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT size, root, note FROM checkpoints ORDER BY size")
            .map_err(db)?;
        let mut rows = stmt.query([]).map_err(db)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(db)? {
            out.push(checkpoint_from(row)?);
        }
        Ok(out)
    }

    fn quarantine(&self) -> StoreResult<Vec<Rejected>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT file, line, reason, excerpt FROM quarantine ORDER BY seq")
            .map_err(db)?;
        let mut rows = stmt.query([]).map_err(db)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(db)? {
            out.push(Rejected {
                origin: LineOrigin {
                    file: row.get(0).map_err(db)?,
                    line: to_u64(row.get(1).map_err(db)?, "line number")?,
                },
                reason: row.get(2).map_err(db)?,
                excerpt: row.get(3).map_err(db)?,
            });
        }
        Ok(out)
    }
}

fn checkpoint_from(row: &Row<'_>) -> StoreResult<StoredCheckpoint> {
    let size = to_u64(row.get(0).map_err(db)?, "checkpoint size")?;
    let root: Vec<u8> = row.get(1).map_err(db)?;
    Ok(StoredCheckpoint {
        size,
        root: hash_from(&root, size, "checkpoint root")?,
        note: row.get(2).map_err(db)?,
    })
}

/// Column `col` of `row` as a blob; anything else is damage at log `index`.
fn blob_at<'r>(
    row: &'r rusqlite::Row<'_>,
    col: usize,
    index: u64,
    what: &str,
) -> StoreResult<&'r [u8]> {
    row.get_ref(col)
        .map_err(db)?
        .as_blob()
        .map_err(|e| StoreError::Corrupt {
            index,
            reason: format!("the stored {what} is not a blob: {e}"),
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn plan(store: &SqliteStore, sql: &str) -> String {
        let mut stmt = store
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        let n = stmt.parameter_count();
        for i in 1..=n {
            stmt.raw_bind_parameter(i, 1i64).unwrap();
        }
        let mut rows = stmt.raw_query();
        let mut plan = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            plan.push(row.get::<_, String>(3).unwrap());
        }
        plan.join("; ")
    }

    #[test]
    fn lookups_and_the_duplicate_check_use_the_indexes() {
        let store = SqliteStore::open_in_memory().unwrap();
        for sql in [
            LINKS_OF_KEY,
            append::LINKS_OF_KEYS,
            LINKS_OF_KEY_AND_EVENTS_AT,
        ] {
            let plan = plan(&store, sql);
            assert!(
                plan.contains("USING PRIMARY KEY (key=?)")
                    && !plan.contains("SCAN links")
                    && !plan.contains("SCAN l ")
                    && !plan.contains("TEMP B-TREE"),
                "{sql}: {plan}"
            );
        }
        // Events by index: one seek each.
        for sql in [EVENTS_AT, LINKS_OF_KEY_AND_EVENTS_AT] {
            let plan = plan(&store, sql);
            assert!(
                plan.contains("SEARCH e USING INTEGER PRIMARY KEY (rowid=?)")
                    && !plan.contains("SCAN e"),
                "{sql}: {plan}"
            );
        }
        // A run's block: one seek, no sort.
        let plan = plan(&store, runs::BLOCK_OF_KEY);
        assert!(
            plan.contains("SEARCH link_blocks USING PRIMARY KEY (run=? AND last>?)")
                && !plan.contains("TEMP B-TREE"),
            "{plan}"
        );
    }
}
