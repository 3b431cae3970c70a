//! The write path: one batch, one transaction, under the append lock (the caller holds it).
//!
//! 1. The ids of the whole batch are hashed and looked up in `links` by one statement
//!    (`key = ANY($1)`); almost always nothing comes back. A stored event with the same
//!    `source` and `id` (compared as text: keys can collide) makes the new one a duplicate
//!    (same bytes) or a conflict (other bytes); so does an earlier event of the same batch.
//! 2. The accepted events go in with one `COPY ... FROM STDIN (FORMAT binary)` at the next log
//!    indexes, while a second thread computes their link rows.
//! 3. The link rows (see [`custody_store::links`]: one row per key and batch) go in with a second
//!    `COPY`, sorted by key.
//!
//! The schema has no unique constraint on `(source, id)`: this module is the only writer, and
//! it runs under the append lock, so no other writer can slip an event in between the check
//! and the insert. The verdicts and link rows are the
//! shared ones of [`custody_store::batch`], as in the SQLite store.

use std::collections::HashMap;

use custody_merkle::CompactRange;
use custody_store::batch::{id_keys, link_rows, sort_out, Stored};
use custody_store::{BatchOutcome, LeanEvent, StoreError, StoreResult};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use postgres::Transaction;

use crate::db;
use custody_store::links::expand;

/// Batches with at least this many accepted events compute their link rows on a second
/// thread.
const PARALLEL_LINKS: usize = 256;

/// The stored events linked under one of `keys`, by `(source, id)`: each with its index and
/// bytes. Keys collide, and an id is linked once per source, so more come back than the batch
/// needs; the caller matches by text.
fn stored_with_keys(tx: &mut Transaction<'_>, keys: &[i64]) -> StoreResult<Stored> {
    let mut out = HashMap::new();
    if keys.is_empty() {
        return Ok(out);
    }
    let mut idxs = Vec::new();
    for row in tx
        .query(
            "SELECT first, more FROM links WHERE key = ANY($1)",
            &[&keys],
        )
        .map_err(db)?
    {
        let first: i64 = row.try_get(0).map_err(db)?;
        let more: &[u8] = row.try_get(1).map_err(db)?;
        expand(first, more, &mut idxs).ok_or_else(|| StoreError::Corrupt {
            index: u64::try_from(first).unwrap_or(0),
            reason: "a row of the link index is damaged".into(),
        })?;
    }
    if idxs.is_empty() {
        return Ok(out);
    }
    idxs.sort_unstable();
    idxs.dedup();
    for row in tx
        .query(
            "SELECT idx, source, id, body FROM events WHERE idx = ANY($1)",
            &[&idxs],
        )
        .map_err(db)?
    {
        out.insert(
            (row.try_get(1).map_err(db)?, row.try_get(2).map_err(db)?),
            (row.try_get(0).map_err(db)?, row.try_get(3).map_err(db)?),
        );
    }
    Ok(out)
}

/// Appends `events` inside the open transaction `tx` (the caller holds the append lock),
/// extending `range`; records conflicts in `outcome` (the caller writes them to the
/// quarantine). The verdicts are [`custody_store::batch::sort_out`]'s, shared with SQLite.
pub(crate) fn append_events(
    tx: &mut Transaction<'_>,
    events: &[LeanEvent],
    range: &mut CompactRange,
    outcome: &mut BatchOutcome,
) -> StoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let (keys, earlier) = id_keys(events);
    let stored = stored_with_keys(tx, &keys)?;
    let accepted = sort_out(events, &earlier, &stored, range, outcome)?;
    if accepted.is_empty() {
        return Ok(());
    }

    let rows = if accepted.len() < PARALLEL_LINKS {
        copy_events(tx, &accepted)?;
        link_rows(&accepted)
    } else {
        std::thread::scope(|scope| -> StoreResult<_> {
            let rows = scope.spawn(|| link_rows(&accepted));
            copy_events(tx, &accepted)?;
            rows.join()
                .map_err(|_| StoreError::Backend("computing the link rows panicked".into()))
        })?
    };
    copy_links(tx, &rows)
}

/// One `COPY` of the accepted events.
fn copy_events(tx: &mut Transaction<'_>, accepted: &[(i64, &LeanEvent)]) -> StoreResult<()> {
    let sink = tx
        .copy_in("COPY events (idx, source, id, type, body, leaf_hash) FROM STDIN (FORMAT binary)")
        .map_err(db)?;
    let types = [
        Type::INT8,
        Type::TEXT,
        Type::TEXT,
        Type::TEXT,
        Type::BYTEA,
        Type::BYTEA,
    ];
    let mut writer = BinaryCopyInWriter::new(sink, &types);
    for (idx, e) in accepted {
        let (canonical, leaf_hash) = (e.canonical(), e.leaf_hash());
        let row: [&(dyn ToSql + Sync); 6] = [
            idx,
            &e.key().source,
            &e.key().id,
            &e.event_type().as_str(),
            &canonical,
            &&leaf_hash[..],
        ];
        writer.write(&row).map_err(db)?;
    }
    writer.finish().map_err(db)?;
    Ok(())
}

/// One `COPY` of the link rows.
fn copy_links(tx: &mut Transaction<'_>, rows: &[(i64, i64, Vec<u8>)]) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let sink = tx
        .copy_in("COPY links (key, first, more) FROM STDIN (FORMAT binary)")
        .map_err(db)?;
    let mut writer = BinaryCopyInWriter::new(sink, &[Type::INT8, Type::INT8, Type::BYTEA]);
    for (key, first, more) in rows {
        writer.write(&[key, first, more]).map_err(db)?;
    }
    writer.finish().map_err(db)?;
    Ok(())
}
