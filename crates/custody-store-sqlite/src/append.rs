//! The write path: one batch, one transaction.
//!
//! 1. The ids of the whole batch are hashed and looked up in `links` by one statement (the
//!    keys go in as one array, read with rusqlite's `rarray`), and in the runs (module
//!    `runs`: a filter test per run and key, a block read where it may be there); almost
//!    always nothing comes back.
//!    A stored event with the same `source` and `id` (compared as text: keys can collide)
//!    makes the new one a duplicate (same bytes) or a conflict (other bytes); so does an
//!    earlier event of the same batch.
//! 2. The accepted events are inserted [`ROWS`] per statement at the next log indexes.
//! 3. Their link keys (see [`custody_store::links`]) are collected over the batch, sorted and
//!    grouped (one row per key and batch). A batch of at least `runs::RUN_MIN_EVENTS`
//!    accepted events (in a store of schema version 5) appends them as a run; any other
//!    inserts them into `links`, sorted so that the B-tree is walked in order, [`LINK_ROWS`]
//!    per statement.
//!
//! The schema has no unique constraint on `(source, id)`: this module is the only writer,
//! and it runs inside `BEGIN IMMEDIATE`, so no other writer can slip an event in between the
//! check and the insert.

use std::collections::HashMap;

use custody_merkle::CompactRange;
use std::cell::RefCell;

use custody_store::batch::{id_keys, link_rows, sort_out, Stored};
use custody_store::{BatchOutcome, LeanEvent, StoreError, StoreResult};
use rusqlite::{Connection, Statement};

use crate::runs::{self, RunCache};
use crate::{db, int_array};
use custody_store::links::expand;

/// Events per multi-row `INSERT`.
const ROWS: usize = 32;

/// Rows of `links` per multi-row `INSERT`.
const LINK_ROWS: usize = 128;

// `OR ROLLBACK`: a constraint failure ends the whole transaction at once, which is what this
// module does with any failure anyway. Under the default (`ABORT`) a multi-row statement
// that may fail part-way keeps a statement journal, a copy of every existing page it is
// about to change (for link rows spread over the index, most of the pages it touches).
const EVENT_HEAD: &str = "INSERT OR ROLLBACK INTO events (idx, body, leaf_hash) VALUES ";
const EVENT_ROW: &str = "(?, ?, ?)";
/// Schema version 3, whose `events` stores `source`, `id` and `type`.
const EVENT_V3_HEAD: &str =
    "INSERT OR ROLLBACK INTO events (idx, source, id, type, body, leaf_hash) VALUES ";
const EVENT_V3_ROW: &str = "(?, ?, ?, ?, ?, ?)";
const LINK_HEAD: &str = "INSERT OR ROLLBACK INTO links (key, first, more) VALUES ";
const LINK_ROW: &str = "(?, ?, ?)";

/// The `links` rows of an array of keys. An array rather than JSON text (`json_each`), which
/// SQLite had to parse and this module to format: that was two thirds of the lookup, and the
/// lookup a tenth of the writer's time (perf, 2026-12-05).
pub(crate) const LINKS_OF_KEYS: &str =
    "SELECT l.first, l.more FROM rarray(?1) AS j JOIN links AS l ON l.key = j.value";

/// `head` followed by `rows` copies of `row`, comma-separated.
fn multi_row_sql(head: &str, row: &str, rows: usize) -> String {
    let mut sql = String::with_capacity(head.len() + rows * (row.len() + 2));
    sql.push_str(head);
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push_str(row);
    }
    sql
}

/// The stored events linked under one of `keys` (sorted), by `(source, id)`: each with its
/// index and bytes. Keys collide, and an id is linked once per source, so more come back than
/// the batch needs; the caller matches by text.
fn stored_with_keys(
    tx: &Connection,
    keys: &[i64],
    runs: Option<&RefCell<RunCache>>,
) -> StoreResult<Stored> {
    let mut out = HashMap::new();
    if keys.is_empty() {
        return Ok(out);
    }
    let mut idxs = Vec::new();
    if let Some(cache) = runs {
        runs::linked_in_runs(tx, cache, None, keys, &mut idxs)?;
    }
    let keys = int_array(keys.iter().copied());
    {
        let mut stmt = tx.prepare_cached(LINKS_OF_KEYS).map_err(db)?;
        let mut rows = stmt.query([keys]).map_err(db)?;
        while let Some(row) = rows.next().map_err(db)? {
            expand_row(row, &mut idxs)?;
        }
    }
    if idxs.is_empty() {
        return Ok(out);
    }
    let mut stmt = tx
        .prepare_cached("SELECT body FROM events WHERE idx = ?1")
        .map_err(db)?;
    for idx in idxs {
        let mut rows = stmt.query([idx]).map_err(db)?;
        if let Some(row) = rows.next().map_err(db)? {
            let body: Vec<u8> = row.get(0).map_err(db)?;
            let key =
                serde_json::from_slice::<StoredKey>(&body).map_err(|e| StoreError::Corrupt {
                    index: u64::try_from(idx).unwrap_or(0),
                    reason: format!("the stored event has no readable source and id: {e}"),
                })?;
            out.insert((key.source, key.id), (idx, body));
        }
    }
    Ok(out)
}

/// The `source` and `id` of a stored body (read from it: `events` keeps only the body).
#[derive(serde::Deserialize)]
struct StoredKey {
    source: String,
    id: String,
}

/// The indexes of a `links` row `(first, more)`, appended to `out`.
pub(crate) fn expand_row(row: &rusqlite::Row<'_>, out: &mut Vec<i64>) -> StoreResult<()> {
    let first: i64 = row.get(0).map_err(db)?;
    let more = row
        .get_ref(1)
        .map_err(db)?
        .as_blob()
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    expand(first, more, out).ok_or_else(|| StoreError::Corrupt {
        index: u64::try_from(first).unwrap_or(0),
        reason: "a row of the link index is damaged".into(),
    })
}

/// Appends `events` inside the open transaction `tx`, extending `range`; records conflicts in
/// `outcome` (the caller writes them to the quarantine). `stored_keys`: the store's `events`
/// stores `source`, `id` and `type` (schema version 3). `runs`: the store has runs (schema
/// version 5): the fewest accepted events that make one, and this connection's cache of them.
pub(crate) fn append_events(
    tx: &Connection,
    events: &[LeanEvent],
    stored_keys: bool,
    runs: Option<(usize, &RefCell<RunCache>)>,
    range: &mut CompactRange,
    outcome: &mut BatchOutcome,
) -> StoreResult<()> {
    let (keys, earlier) = id_keys(events);
    let stored = stored_with_keys(tx, &keys, runs.map(|r| r.1))?;
    let accepted = sort_out(events, &earlier, &stored, range, outcome)?;

    // A large batch of a store with runs writes its rows as a run, any other into `links`.
    let as_run = runs.is_some_and(|(min, _)| accepted.len() >= min.max(1));
    // The link rows are computed on another thread while this one inserts the events
    // (for a large batch; a thread costs more than a small one).
    let rows = if accepted.len() < PARALLEL_LINKS {
        link_rows(&accepted)
    } else {
        std::thread::scope(|scope| -> StoreResult<_> {
            let rows = scope.spawn(|| link_rows(&accepted));
            insert_events(tx, &accepted, stored_keys)?;
            rows.join()
                .map_err(|_| StoreError::Backend("computing the link rows panicked".into()))
        })?
    };
    if accepted.len() < PARALLEL_LINKS {
        insert_events(tx, &accepted, stored_keys)?;
    }
    if as_run {
        return runs::append_run(tx, &rows, accepted.len());
    }
    insert_rows(
        tx,
        LINK_HEAD,
        LINK_ROW,
        3,
        LINK_ROWS,
        &rows,
        |stmt, at, (k, first, more)| {
            stmt.raw_bind_parameter(at, *k)?;
            stmt.raw_bind_parameter(at + 1, *first)?;
            stmt.raw_bind_parameter(at + 2, more.as_slice())
        },
    )?;
    Ok(())
}

/// Batches with at least this many accepted events compute their link rows on a second
/// thread.
const PARALLEL_LINKS: usize = 256;

fn insert_events(
    tx: &Connection,
    accepted: &[(i64, &LeanEvent)],
    stored_keys: bool,
) -> StoreResult<()> {
    let (head, row, params) = if stored_keys {
        (EVENT_V3_HEAD, EVENT_V3_ROW, 6)
    } else {
        (EVENT_HEAD, EVENT_ROW, 3)
    };
    insert_rows(
        tx,
        head,
        row,
        params,
        ROWS,
        accepted,
        |stmt, mut at, (idx, e)| {
            stmt.raw_bind_parameter(at, *idx)?;
            if stored_keys {
                stmt.raw_bind_parameter(at + 1, e.key().source.as_str())?;
                stmt.raw_bind_parameter(at + 2, e.key().id.as_str())?;
                stmt.raw_bind_parameter(at + 3, e.event_type().as_str())?;
                at += 3;
            }
            stmt.raw_bind_parameter(at + 1, e.canonical())?;
            stmt.raw_bind_parameter(at + 2, &e.leaf_hash()[..])
        },
    )
}

/// Inserts `rows` with `per`-row statements, then one-row statements for the rest.
fn insert_rows<T>(
    tx: &Connection,
    head: &str,
    row: &str,
    params: usize,
    per: usize,
    rows: &[T],
    bind: impl Fn(&mut Statement<'_>, usize, &T) -> rusqlite::Result<()>,
) -> StoreResult<()> {
    let mut chunks = rows.chunks_exact(per);
    if rows.len() >= per {
        let mut stmt = tx
            .prepare_cached(&multi_row_sql(head, row, per))
            .map_err(db)?;
        for chunk in chunks.by_ref() {
            for (r, item) in chunk.iter().enumerate() {
                bind(&mut stmt, r * params + 1, item).map_err(db)?;
            }
            stmt.raw_execute().map_err(db)?;
        }
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut stmt = tx
            .prepare_cached(&multi_row_sql(head, row, 1))
            .map_err(db)?;
        for item in rest {
            bind(&mut stmt, 1, item).map_err(db)?;
            stmt.raw_execute().map_err(db)?;
        }
    }
    Ok(())
}
