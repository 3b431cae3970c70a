//! The write path: one batch, one transaction.
//!
//! 1. The ids of the whole batch are hashed and looked up in `links` by one statement (the
//!    keys go in as one JSON array, read with `json_each`); almost always nothing comes back.
//!    A stored event with the same `source` and `id` (compared as text: keys can collide)
//!    makes the new one a duplicate (same bytes) or a conflict (other bytes); so does an
//!    earlier event of the same batch.
//! 2. The accepted events are inserted [`ROWS`] per statement at the next log indexes.
//! 3. Their link keys (see [`crate::links`]) are collected over the batch, sorted, so that
//!    the one B-tree is walked in order, grouped (one row per key and batch) and inserted
//!    [`LINK_ROWS`] per statement.
//!
//! The schema has no unique constraint on `(source, id)`: this module is the only writer,
//! and it runs inside `BEGIN IMMEDIATE`, so no other writer can slip an event in between the
//! check and the insert.

use std::collections::HashMap;
use std::fmt::Write as _;

use custody_merkle::CompactRange;
use custody_store::{BatchOutcome, LineOrigin, NewEvent, Rejected, StoreError, StoreResult};
use rusqlite::{Connection, Statement};

use crate::{db, excerpt, to_i64};
use custody_store::links::{expand, group, keys_of, link_key, Tag};

/// Events per multi-row `INSERT`.
const ROWS: usize = 32;

/// Rows of `links` per multi-row `INSERT`.
const LINK_ROWS: usize = 128;

const EVENT_HEAD: &str = "INSERT INTO events (idx, source, id, type, body, leaf_hash) VALUES ";
const EVENT_ROW: &str = "(?, ?, ?, ?, ?, ?)";
const LINK_HEAD: &str = "INSERT INTO links (key, first, more) VALUES ";
const LINK_ROW: &str = "(?, ?, ?)";

/// The `links` rows of a JSON array of keys.
pub(crate) const LINKS_OF_KEYS: &str =
    "SELECT l.first, l.more FROM json_each(?1) AS j JOIN links AS l ON l.key = j.value";

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

/// Stored events by `(source, id)`, with their index and bytes.
type Stored = HashMap<(String, String), (i64, Vec<u8>)>;

/// The stored events linked under one of `keys` (sorted), by `(source, id)`: each with its
/// index and bytes. Keys collide, and an id is linked once per source, so more come back than
/// the batch needs; the caller matches by text.
fn stored_with_keys(tx: &Connection, keys: &[i64]) -> StoreResult<Stored> {
    let mut out = HashMap::new();
    if keys.is_empty() {
        return Ok(out);
    }
    let mut json = String::with_capacity(keys.len() * 21 + 2);
    json.push('[');
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        let _ = write!(json, "{k}");
    }
    json.push(']');
    let mut idxs = Vec::new();
    {
        let mut stmt = tx.prepare_cached(LINKS_OF_KEYS).map_err(db)?;
        let mut rows = stmt.query([json]).map_err(db)?;
        while let Some(row) = rows.next().map_err(db)? {
            expand_row(row, &mut idxs)?;
        }
    }
    if idxs.is_empty() {
        return Ok(out);
    }
    let mut stmt = tx
        .prepare_cached("SELECT source, id, body FROM events WHERE idx = ?1")
        .map_err(db)?;
    for idx in idxs {
        let mut rows = stmt.query([idx]).map_err(db)?;
        if let Some(row) = rows.next().map_err(db)? {
            out.insert(
                (row.get(0).map_err(db)?, row.get(1).map_err(db)?),
                (idx, row.get(2).map_err(db)?),
            );
        }
    }
    Ok(out)
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

/// For each event of the batch, the position of the first earlier one with the same `source`
/// and `id`, if any. `by_hash` is every `(id hash, position)`, sorted by hash, then by key
/// (compared only when hashes are equal), then by position: equal keys end up side by side,
/// the first occurrence first.
fn earlier_in_batch(events: &[NewEvent], by_hash: &mut [(i64, usize)]) -> Vec<Option<usize>> {
    let key = |pos: usize| events.get(pos).map(|e| &e.event.key);
    by_hash.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| key(a.1).cmp(&key(b.1)))
            .then(a.1.cmp(&b.1))
    });
    let mut earlier = vec![None; events.len()];
    let mut first: Option<(i64, usize)> = None;
    for &(hash, pos) in by_hash.iter() {
        match first {
            Some((h, p)) if h == hash && key(p) == key(pos) => {
                if let Some(slot) = earlier.get_mut(pos) {
                    *slot = Some(p);
                }
            }
            _ => first = Some((hash, pos)),
        }
    }
    earlier
}

/// What to do with one event of the batch.
enum Verdict {
    Accept,
    Duplicate,
    Conflict(i64),
}

/// Appends `events` inside the open transaction `tx`, extending `range`; records conflicts in
/// `outcome` (the caller writes them to the quarantine).
pub(crate) fn append_events(
    tx: &Connection,
    events: &[NewEvent],
    range: &mut CompactRange,
    outcome: &mut BatchOutcome,
) -> StoreResult<()> {
    // The batch's ids by hash, with their positions: sorted, for the query and for finding
    // events of the batch that share a key.
    let mut by_hash: Vec<(i64, usize)> = events
        .iter()
        .enumerate()
        .map(|(pos, e)| (link_key(Tag::Id, &e.event.key.id), pos))
        .collect();
    let earlier = earlier_in_batch(events, &mut by_hash);
    let mut keys: Vec<i64> = by_hash.iter().map(|(k, _)| *k).collect();
    keys.dedup();
    let stored = stored_with_keys(tx, &keys)?;

    // The log index given to each event of the batch that was accepted.
    let mut given: Vec<Option<i64>> = vec![None; events.len()];
    let mut accepted: Vec<(i64, &NewEvent)> = Vec::with_capacity(events.len());
    for (pos, e) in events.iter().enumerate() {
        let (source, id) = (e.event.key.source.as_str(), e.event.key.id.as_str());
        let same_key = if stored.is_empty() {
            None
        } else {
            stored.get(&(source.to_owned(), id.to_owned()))
        };
        let verdict = if let Some((at, body)) = same_key {
            if *body == e.canonical {
                Verdict::Duplicate
            } else {
                Verdict::Conflict(*at)
            }
        } else if let Some((p, at)) = earlier
            .get(pos)
            .copied()
            .flatten()
            .and_then(|p| Some((p, given.get(p).copied().flatten()?)))
        {
            if events
                .get(p)
                .is_some_and(|first| first.canonical == e.canonical)
            {
                Verdict::Duplicate
            } else {
                Verdict::Conflict(at)
            }
        } else {
            Verdict::Accept
        };
        match verdict {
            Verdict::Duplicate => outcome.duplicates += 1,
            Verdict::Conflict(at) => outcome.conflicts.push(Rejected {
                origin: e.origin.clone().unwrap_or_else(|| LineOrigin {
                    file: "(no file)".into(),
                    line: 0,
                }),
                reason: format!(
                    "conflict: {} is already stored at index {at} with different content",
                    e.event.key
                ),
                excerpt: excerpt(&e.canonical),
            }),
            Verdict::Accept => {
                let next = to_i64(range.size(), "log index")?;
                range
                    .push(e.leaf_hash)
                    .map_err(|err| StoreError::Backend(format!("cannot extend the tree: {err}")))?;
                if let Some(g) = given.get_mut(pos) {
                    *g = Some(next);
                }
                accepted.push((next, e));
                outcome.accepted += 1;
            }
        }
    }

    // The link rows are computed on another thread while this one inserts the events
    // (for a large batch; a thread costs more than a small one).
    let rows = if accepted.len() < PARALLEL_LINKS {
        link_rows(&accepted)
    } else {
        std::thread::scope(|scope| -> StoreResult<_> {
            let rows = scope.spawn(|| link_rows(&accepted));
            insert_events(tx, &accepted)?;
            rows.join()
                .map_err(|_| StoreError::Backend("computing the link rows panicked".into()))
        })?
    };
    if accepted.len() < PARALLEL_LINKS {
        insert_events(tx, &accepted)?;
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

fn insert_events(tx: &Connection, accepted: &[(i64, &NewEvent)]) -> StoreResult<()> {
    insert_rows(
        tx,
        EVENT_HEAD,
        EVENT_ROW,
        6,
        ROWS,
        accepted,
        |stmt, at, (idx, e)| {
            stmt.raw_bind_parameter(at, *idx)?;
            stmt.raw_bind_parameter(at + 1, e.event.key.source.as_str())?;
            stmt.raw_bind_parameter(at + 2, e.event.key.id.as_str())?;
            stmt.raw_bind_parameter(at + 3, e.event.event_type().as_str())?;
            stmt.raw_bind_parameter(at + 4, e.canonical.as_slice())?;
            stmt.raw_bind_parameter(at + 5, &e.leaf_hash[..])
        },
    )
}

/// The `links` rows of the accepted events: every link key with its index, sorted (so that
/// the inserts walk the B-tree in order), each pair once (an event can name the same text
/// twice under one tag), grouped into one row per key.
fn link_rows(accepted: &[(i64, &NewEvent)]) -> Vec<(i64, i64, Vec<u8>)> {
    let mut links: Vec<(i64, i64)> = Vec::with_capacity(accepted.len() * 6);
    for (idx, e) in accepted {
        keys_of(&e.event, |k| links.push((k, *idx)));
    }
    links.sort_unstable();
    links.dedup();
    let mut rows = Vec::new();
    group(&links, |key, first, more| {
        rows.push((key, first, more.to_vec()))
    });
    rows
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
