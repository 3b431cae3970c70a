//! Custody's shared store: one PostgreSQL database that several Custody nodes append to as one
//! log (DESIGN §9, docs/scale-out.md).
//!
//! [`PgStore`] implements [`custody_store::Store`] with the same tables and semantics as the
//! SQLite store:
//!
//! - `events`: the log, one row per event, `idx` = Merkle leaf index, the RFC 8785 bytes
//!   (`body`) and the RFC 9162 leaf hash (`source`, `id`, `type` for people, not indexed);
//! - `links`: every way an event can be found (`get`, each [`Lookup`], the duplicate check),
//!   as 64-bit keys hashed from a tag and the text (module `links`);
//! - `quarantine`, `checkpoints`;
//! - `log_state`: one row with the size and the compact range (Merkle frontier), written in the
//!   transaction of each batch, so that `root()` is one read;
//! - `custody_schema`: the migrations applied (files `migrations/NNNN_*.sql`, applied on open).
//!
//! **Sequencing.** Every batch is one transaction that first takes the transaction-scoped
//! advisory lock [`APPEND_LOCK`] (where the engine has one), then reads `log_state` with `FOR UPDATE` (the row lock alone
//! also serialises appenders, on engines whose advisory locks are no-ops), and only then looks
//! for duplicates and assigns indexes, from what is in the database, never from a cached
//! value. Appenders on any number of connections, processes or nodes therefore take turns and
//! build one log; the update of `log_state` is also conditional on the size it read, and
//! `events.idx` is a primary key, so a lost lock could only fail a batch, never fork the log.
//!
//! **Append-only.** Triggers refuse `UPDATE`, `DELETE` and `TRUNCATE` on `events`, `links`,
//! `quarantine` and `checkpoints`, and any change of `log_state` but growth. They guard
//! against mistakes, not against the tables' owner, who can drop them: what catches that is
//! the Merkle tree and the signed checkpoints (`custody verify`).

mod append;

use std::cell::{RefCell, RefMut};
use std::collections::HashMap;
use std::time::Duration;

use custody_merkle::{CompactRange, Hash};
use custody_model::EventKey;
use custody_store::batch::{self, hash_from};
use custody_store::{
    links, BatchOutcome, LeanEvent, LineOrigin, Lookup, Rejected, Store, StoreError, StoreResult,
    StoredCheckpoint, StoredEvent,
};
use postgres::error::SqlState;
use postgres::{Client, NoTls, Row, Statement};

/// The newest schema version this build knows (the number of the last migration).
pub const SCHEMA_VERSION: i32 = 1;

/// The migrations, in order: version, name, SQL. Never edit an applied one; add the next.
const MIGRATIONS: &[(i32, &str, &str)] =
    &[(1, "0001_init", include_str!("../migrations/0001_init.sql"))];

/// The advisory lock every appender holds for its batch's transaction ("CSTY", 1).
pub const APPEND_LOCK: i64 = 0x4353_5459_0000_0001;

/// The advisory lock held while migrations are checked and applied ("CSTY", 2).
pub const MIGRATION_LOCK: i64 = 0x4353_5459_0000_0002;

/// How long connecting may take when the URL does not say (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Rows read per statement by [`Store::scan`] (the callback runs between statements).
const SCAN_ROWS: i64 = 8192;

/// The `links` rows of one key with the event of each row's first index, in log order.
const LINKS_OF_KEY: &str = "SELECT e.idx, e.body, e.leaf_hash, l.more FROM links AS l \
     JOIN events AS e ON e.idx = l.first WHERE l.key = $1 ORDER BY l.first";

/// Events by a list of indexes.
const EVENTS_AT: &str = "SELECT idx, body, leaf_hash FROM events WHERE idx = ANY($1) ORDER BY idx";

const LOG_STATE: &str = "SELECT size, compact_range FROM log_state WHERE id = 1";

/// A connection with its prepared statements.
struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

impl Conn {
    /// `sql` prepared once per connection.
    fn prepared(&mut self, sql: &'static str) -> StoreResult<Statement> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql).map_err(db)?;
        self.statements.insert(sql, s.clone());
        Ok(s)
    }
}

/// The PostgreSQL store: one connection to one database.
pub struct PgStore {
    conn: RefCell<Conn>,
    target: String,
    /// Whether the engine has `pg_advisory_xact_lock` (some PostgreSQL-compatible engines
    /// do not; the `log_state` row lock then serialises appenders alone).
    advisory: bool,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// A PostgreSQL error as text: the server's message (with detail and hint) when it sent one.
pub(crate) fn db(e: postgres::Error) -> StoreError {
    StoreError::Backend(error_text(&e))
}

fn error_text(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => {
            let mut text = format!("{}: {}", d.severity(), d.message());
            if let Some(detail) = d.detail() {
                text.push_str(&format!(" ({detail})"));
            }
            if let Some(hint) = d.hint() {
                text.push_str(&format!("; hint: {hint}"));
            }
            text
        }
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                let s_text = s.to_string();
                if !text.contains(&s_text) {
                    text.push_str(&format!(": {s_text}"));
                }
                source = s.source();
            }
            text
        }
    }
}

pub(crate) fn to_i64(n: u64, what: &str) -> StoreResult<i64> {
    i64::try_from(n).map_err(|_| StoreError::Backend(format!("{what} {n} is out of range")))
}

fn to_u64(n: i64, what: &str) -> StoreResult<u64> {
    u64::try_from(n).map_err(|_| StoreError::Backend(format!("stored {what} {n} is negative")))
}

/// Whether `db` names a PostgreSQL database rather than a file (`postgres://`,
/// `postgresql://`).
pub fn is_postgres_url(db: &str) -> bool {
    let lower = db.get(..13).unwrap_or(db).to_ascii_lowercase();
    lower.starts_with("postgres://") || lower.starts_with("postgresql://")
}

/// The database a URL names, for messages: user, hosts, ports and database, never the
/// password.
pub fn describe_url(config: &postgres::Config) -> String {
    let user = config.get_user().unwrap_or("");
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                postgres::config::Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                postgres::config::Host::Unix(path) => path.display().to_string(),
            };
            match config.get_ports().get(i).or(config.get_ports().first()) {
                Some(port) => format!("{host}:{port}"),
                None => host,
            }
        })
        .collect();
    let dbname = config.get_dbname().unwrap_or(user);
    if user.is_empty() {
        format!("postgres://{}/{dbname}", hosts.join(","))
    } else {
        format!("postgres://{user}@{}/{dbname}", hosts.join(","))
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user[:password]@host[:port]/db`, or any
    /// libpq-style string the `postgres` crate reads), applying the migrations it lacks.
    /// Connections are unencrypted (no TLS support is built in): use a local socket, a
    /// loopback address or a tunnel.
    ///
    /// # Errors
    /// [`StoreError::Schema`] when the database holds a newer or unknown Custody schema, or
    /// tables of something else; [`StoreError::Corrupt`] when the stored log state and the
    /// events disagree; [`StoreError::Backend`] when the URL is invalid, the server cannot
    /// be reached or SQL fails. Messages name the server without the password.
    pub fn open(url: &str) -> StoreResult<PgStore> {
        let mut config: postgres::Config = url.parse().map_err(|e: postgres::Error| {
            StoreError::Backend(format!("invalid PostgreSQL URL: {}", error_text(&e)))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("custody");
        }
        let target = describe_url(&config);
        let client = config.connect(NoTls).map_err(|e| {
            StoreError::Backend(format!(
                "cannot connect to PostgreSQL at {target}: {}",
                error_text(&e)
            ))
        })?;
        let mut conn = Conn {
            client,
            statements: HashMap::new(),
        };
        let advisory = advisory_locks_work(&mut conn.client)?;
        migrate(&mut conn.client, &target, advisory)?;
        let store = PgStore {
            conn: RefCell::new(conn),
            target,
            advisory,
        };
        store.check_log_state()?;
        Ok(store)
    }

    /// The server and database, without the password.
    pub fn target(&self) -> &str {
        &self.target
    }

    fn conn(&self) -> StoreResult<RefMut<'_, Conn>> {
        self.conn.try_borrow_mut().map_err(|_| {
            StoreError::Backend(
                "the PostgreSQL connection is busy (a call from inside scan)".into(),
            )
        })
    }

    /// Checks, in one statement (one snapshot), that `log_state` agrees with the events.
    fn check_log_state(&self) -> StoreResult<()> {
        let mut conn = self.conn()?;
        let row = conn
            .client
            .query_one(
                "SELECT s.size, s.compact_range, \
                 (SELECT coalesce(max(idx) + 1, 0) FROM events) FROM log_state AS s WHERE s.id = 1",
                &[],
            )
            .map_err(db)?;
        let range = range_from(&row)?;
        let rows = to_u64(row.try_get(2).map_err(db)?, "index")?;
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

    fn read_range(&self) -> StoreResult<CompactRange> {
        let mut conn = self.conn()?;
        let stmt = conn.prepared(LOG_STATE)?;
        let row = conn.client.query_opt(&stmt, &[]).map_err(db)?;
        range_from(&row.ok_or_else(missing_state)?)
    }

    /// The events linked under `key`, in log order, each once.
    fn linked(&self, key: i64) -> StoreResult<Vec<StoredEvent>> {
        let mut conn = self.conn()?;
        let stmt = conn.prepared(LINKS_OF_KEY)?;
        let rows = conn.client.query(&stmt, &[&key]).map_err(db)?;
        let mut out = Vec::with_capacity(rows.len());
        let mut more = Vec::new();
        for row in &rows {
            let e = stored_event(row)?;
            let first = to_i64(e.index, "index")?;
            out.push(e);
            let gaps: &[u8] = row.try_get(3).map_err(db)?;
            if !gaps.is_empty() {
                let start = more.len();
                links::expand(first, gaps, &mut more).ok_or_else(|| StoreError::Corrupt {
                    index: u64::try_from(first).unwrap_or(0),
                    reason: "a row of the link index is damaged".into(),
                })?;
                // The first index is already read.
                more.remove(start);
            }
        }
        if !more.is_empty() {
            let stmt = conn.prepared(EVENTS_AT)?;
            for row in conn.client.query(&stmt, &[&more]).map_err(db)? {
                out.push(stored_event(&row)?);
            }
        }
        out.sort_by_key(|e| e.index);
        out.dedup_by_key(|e| e.index);
        Ok(out)
    }
}

fn missing_state() -> StoreError {
    StoreError::Corrupt {
        index: 0,
        reason: "the log state row is missing".into(),
    }
}

/// Whether `pg_advisory_xact_lock` exists: `false` when the engine says the function is
/// undefined or unsupported (CockroachDB before transaction-scoped advisory locks, for
/// instance), any other failure is an error.
fn advisory_locks_work(client: &mut Client) -> StoreResult<bool> {
    let mut tx = client.transaction().map_err(db)?;
    match tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]) {
        Ok(_) => {
            tx.commit().map_err(db)?;
            Ok(true)
        }
        Err(e)
            if e.code() == Some(&SqlState::UNDEFINED_FUNCTION)
                || e.code() == Some(&SqlState::FEATURE_NOT_SUPPORTED) =>
        {
            // Dropping the transaction rolls it back.
            Ok(false)
        }
        Err(e) => Err(db(e)),
    }
}

/// Creates or upgrades the schema: one transaction under [`MIGRATION_LOCK`] (where the engine
/// has advisory locks), so that nodes starting together apply each migration once. Without
/// them, a node that loses the race fails to open and can simply be started again.
fn migrate(client: &mut Client, target: &str, advisory: bool) -> StoreResult<()> {
    let mut tx = client.transaction().map_err(db)?;
    if advisory {
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(db)?;
    }
    let exists = |tx: &mut postgres::Transaction<'_>, table: &str| -> StoreResult<bool> {
        let n: i64 = tx
            .query_one(
                "SELECT count(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = $1",
                &[&table],
            )
            .map_err(db)?
            .try_get(0)
            .map_err(db)?;
        Ok(n > 0)
    };
    let current: i32 = if exists(&mut tx, "custody_schema")? {
        let versions: Vec<i32> = tx
            .query("SELECT version FROM custody_schema ORDER BY version", &[])
            .map_err(db)?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()
            .map_err(db)?;
        let newest = versions.last().copied().unwrap_or(0);
        if newest > SCHEMA_VERSION {
            return Err(StoreError::Schema(format!(
                "{target} has schema version {newest}, newer than this build's \
                 {SCHEMA_VERSION}: upgrade custody"
            )));
        }
        let known: Vec<i32> = MIGRATIONS
            .iter()
            .map(|(v, _, _)| *v)
            .take_while(|v| *v <= newest)
            .collect();
        if versions != known {
            return Err(StoreError::Schema(format!(
                "{target} records schema versions {versions:?}, not the sequence this build \
                 knows ({known:?})"
            )));
        }
        newest
    } else {
        if exists(&mut tx, "events")? || exists(&mut tx, "log_state")? {
            return Err(StoreError::Schema(format!(
                "{target} has custody's table names but no custody_schema table: not a \
                 custody store (use an empty database)"
            )));
        }
        tx.batch_execute(
            "CREATE TABLE custody_schema (
                version    INTEGER     PRIMARY KEY,
                name       TEXT        NOT NULL,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )
        .map_err(db)?;
        0
    };
    for (version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > current) {
        tx.batch_execute(sql).map_err(|e| {
            StoreError::Schema(format!(
                "migration {name} failed on {target}: {}",
                error_text(&e)
            ))
        })?;
        tx.execute(
            "INSERT INTO custody_schema (version, name) VALUES ($1, $2)",
            &[version, name],
        )
        .map_err(db)?;
    }
    tx.commit().map_err(db)
}

/// The compact range of a row `size, compact_range`, checked against the size.
fn range_from(row: &Row) -> StoreResult<CompactRange> {
    let size = to_u64(row.try_get(0).map_err(db)?, "log size")?;
    let bytes: &[u8] = row.try_get(1).map_err(db)?;
    batch::range_from_state(size, bytes)
}

/// A `StoredEvent` from a row `idx, body, leaf_hash`; damage is `Corrupt`, never a panic.
fn stored_event(row: &Row) -> StoreResult<StoredEvent> {
    let index = to_u64(row.try_get(0).map_err(db)?, "index")?;
    let hash: &[u8] = row.try_get(2).map_err(db)?;
    batch::stored_event(index, row.try_get(1).map_err(db)?, hash)
}

/// Writes `rejected`, then `conflicts`, to the quarantine after its last row: one statement.
fn insert_rejected(
    tx: &mut postgres::Transaction<'_>,
    rejected: &[Rejected],
    conflicts: &[Rejected],
) -> StoreResult<()> {
    if rejected.is_empty() && conflicts.is_empty() {
        return Ok(());
    }
    let next: i64 = tx
        .query_one("SELECT coalesce(max(seq) + 1, 0) FROM quarantine", &[])
        .map_err(db)?
        .try_get(0)
        .map_err(db)?;
    let all: Vec<&Rejected> = rejected.iter().chain(conflicts).collect();
    let seqs: Vec<i64> = (next..).take(all.len()).collect();
    let files: Vec<&str> = all.iter().map(|r| r.origin.file.as_str()).collect();
    let lines: Vec<i64> = all
        .iter()
        .map(|r| to_i64(r.origin.line, "line number"))
        .collect::<StoreResult<_>>()?;
    let reasons: Vec<&str> = all.iter().map(|r| r.reason.as_str()).collect();
    let excerpts: Vec<&str> = all.iter().map(|r| r.excerpt.as_str()).collect();
    tx.execute(
        "INSERT INTO quarantine (seq, file, line, reason, excerpt) \
         SELECT * FROM unnest($1::BIGINT[], $2::TEXT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[])",
        &[&seqs, &files, &lines, &reasons, &excerpts],
    )
    .map_err(db)?;
    Ok(())
}

fn checkpoint_from(row: &Row) -> StoreResult<StoredCheckpoint> {
    let size = to_u64(row.try_get(0).map_err(db)?, "checkpoint size")?;
    let root: &[u8] = row.try_get(1).map_err(db)?;
    Ok(StoredCheckpoint {
        size,
        root: hash_from(root, size, "checkpoint root")?,
        note: row.try_get(2).map_err(db)?,
    })
}

impl Store for PgStore {
    fn append_lean(
        &mut self,
        events: &[LeanEvent],
        rejected: &[Rejected],
    ) -> StoreResult<BatchOutcome> {
        // One transaction under the append lock; on error it is rolled back and nothing is
        // written. No hash is checked: a `LeanEvent`'s leaf hash is made from its bytes.
        let advisory = self.advisory;
        let mut conn = self.conn()?;
        let Conn { client, .. } = &mut *conn;
        let mut tx = client.transaction().map_err(db)?;
        if advisory {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&APPEND_LOCK])
                .map_err(db)?;
        }
        let row = tx
            .query_opt(
                "SELECT size, compact_range FROM log_state WHERE id = 1 FOR UPDATE",
                &[],
            )
            .map_err(db)?;
        let mut range = range_from(&row.ok_or_else(missing_state)?)?;
        let before = to_i64(range.size(), "log size")?;
        let mut outcome = BatchOutcome::default();
        append::append_events(&mut tx, events, &mut range, &mut outcome)?;
        insert_rejected(&mut tx, rejected, &outcome.conflicts)?;
        if outcome.accepted > 0 {
            let updated = tx
                .execute(
                    "UPDATE log_state SET size = $1, compact_range = $2 WHERE id = 1 AND size = $3",
                    &[
                        &to_i64(range.size(), "log size")?,
                        &range.to_bytes(),
                        &before,
                    ],
                )
                .map_err(db)?;
            if updated != 1 {
                return Err(StoreError::Backend(
                    "another writer changed the log during this batch (is the append lock \
                     honoured?): nothing was written"
                        .into(),
                ));
            }
        }
        tx.commit().map_err(db)?;
        outcome.quarantined = (rejected.len() + outcome.conflicts.len()) as u64;
        outcome.size = range.size();
        outcome.root = range.root();
        Ok(outcome)
    }

    fn size(&self) -> StoreResult<u64> {
        Ok(self.read_range()?.size())
    }

    fn root(&self) -> StoreResult<Hash> {
        Ok(self.read_range()?.root())
    }

    fn event_at(&self, index: u64) -> StoreResult<Option<StoredEvent>> {
        let Ok(idx) = i64::try_from(index) else {
            return Ok(None);
        };
        let mut conn = self.conn()?;
        let stmt = conn.prepared("SELECT idx, body, leaf_hash FROM events WHERE idx = $1")?;
        match conn.client.query_opt(&stmt, &[&idx]).map_err(db)? {
            Some(row) => stored_event(&row).map(Some),
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
        let mut conn = self.conn()?;
        let stmt = conn.prepared(
            "SELECT idx, leaf_hash FROM events WHERE idx >= $1 AND idx < $2 ORDER BY idx",
        )?;
        let rows = conn
            .client
            .query(&stmt, &[&to_i64(start, "index")?, &to_i64(end, "index")?])
            .map_err(db)?;
        let mut out = Vec::with_capacity(rows.len());
        let mut expected = start;
        for row in &rows {
            let index = to_u64(row.try_get(0).map_err(db)?, "index")?;
            if index != expected {
                return Err(StoreError::Corrupt {
                    index: expected,
                    reason: "the event at this index is missing".into(),
                });
            }
            let bytes: &[u8] = row.try_get(1).map_err(db)?;
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
        let Ok(mut from) = i64::try_from(start) else {
            return Ok(());
        };
        // Read in pages, the connection released while the callback runs; the events
        // appended by other nodes meanwhile are scanned too (the log only grows).
        loop {
            let rows = {
                let mut conn = self.conn()?;
                let stmt = conn.prepared(
                    "SELECT idx, body, leaf_hash FROM events WHERE idx >= $1 ORDER BY idx LIMIT $2",
                )?;
                conn.client.query(&stmt, &[&from, &SCAN_ROWS]).map_err(db)?
            };
            let Some(last) = rows.last() else {
                return Ok(());
            };
            let last: i64 = last.try_get(0).map_err(db)?;
            for row in &rows {
                let index = to_u64(row.try_get(0).map_err(db)?, "index")?;
                let body: &[u8] = row.try_get(1).map_err(db)?;
                let hash_bytes: &[u8] = row.try_get(2).map_err(db)?;
                let hash = hash_from(hash_bytes, index, "leaf hash")?;
                f(index, body, &hash)?;
            }
            if (rows.len() as i64) < SCAN_ROWS {
                return Ok(());
            }
            from = last.saturating_add(1);
        }
    }

    fn add_checkpoint(&mut self, checkpoint: &StoredCheckpoint) -> StoreResult<()> {
        let size = to_i64(checkpoint.size, "checkpoint size")?;
        let mut conn = self.conn()?;
        // Nodes may record the same checkpoint at once: the first insert wins, and an equal
        // one is a no-op.
        let inserted = conn
            .client
            .execute(
                "INSERT INTO checkpoints (size, root, note) VALUES ($1, $2, $3) \
                 ON CONFLICT (size) DO NOTHING",
                &[&size, &&checkpoint.root[..], &checkpoint.note],
            )
            .map_err(db)?;
        if inserted == 1 {
            return Ok(());
        }
        let row = conn
            .client
            .query_opt(
                "SELECT size, root, note FROM checkpoints WHERE size = $1",
                &[&size],
            )
            .map_err(db)?;
        match row.map(|r| checkpoint_from(&r)).transpose()? {
            Some(stored) if stored == *checkpoint => Ok(()),
            Some(_) => Err(StoreError::Backend(format!(
                "a different checkpoint for size {} is already stored",
                checkpoint.size
            ))),
            None => Err(StoreError::Backend(format!(
                "the checkpoint for size {} was neither stored nor found",
                checkpoint.size
            ))),
        }
    }

    fn latest_checkpoint(&self) -> StoreResult<Option<StoredCheckpoint>> {
        let mut conn = self.conn()?;
        let stmt =
            conn.prepared("SELECT size, root, note FROM checkpoints ORDER BY size DESC LIMIT 1")?;
        match conn.client.query_opt(&stmt, &[]).map_err(db)? {
            Some(row) => checkpoint_from(&row).map(Some),
            None => Ok(None),
        }
    }

    fn checkpoints(&self) -> StoreResult<Vec<StoredCheckpoint>> {
        let mut conn = self.conn()?;
        let stmt = conn.prepared("SELECT size, root, note FROM checkpoints ORDER BY size")?;
        conn.client
            .query(&stmt, &[])
            .map_err(db)?
            .iter()
            .map(checkpoint_from)
            .collect()
    }

    fn quarantine(&self) -> StoreResult<Vec<Rejected>> {
        let mut conn = self.conn()?;
        let stmt =
            conn.prepared("SELECT file, line, reason, excerpt FROM quarantine ORDER BY seq")?;
        conn.client
            .query(&stmt, &[])
            .map_err(db)?
            .iter()
            .map(|row| {
                Ok(Rejected {
                    origin: LineOrigin {
                        file: row.try_get(0).map_err(db)?,
                        line: to_u64(row.try_get(1).map_err(db)?, "line number")?,
                    },
                    reason: row.try_get(2).map_err(db)?,
                    excerpt: row.try_get(3).map_err(db)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn urls_are_recognised_and_described_without_the_password() {
        assert!(is_postgres_url("postgres://u@h/db"));
        assert!(is_postgres_url("PostgreSQL://u@h/db"));
        assert!(!is_postgres_url("custody.db"));
        assert!(!is_postgres_url("./postgres/custody.db"));
        let config: postgres::Config = "postgres://alice:s3cret@db.example:6543/custody"
            .parse()
            .unwrap();
        let text = describe_url(&config);
        assert_eq!(text, "postgres://alice@db.example:6543/custody");
        assert!(!text.contains("s3cret"));
    }

    #[test]
    fn migrations_are_numbered_in_order() {
        let versions: Vec<i32> = MIGRATIONS.iter().map(|(v, _, _)| *v).collect();
        let expected: Vec<i32> = (1..=SCHEMA_VERSION).collect();
        assert_eq!(versions, expected);
        for (v, name, _) in MIGRATIONS {
            assert!(name.starts_with(&format!("{v:04}_")), "{name}");
        }
    }
}
