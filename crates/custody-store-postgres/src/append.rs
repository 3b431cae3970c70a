//! The write path: one batch, one transaction, under the append lock (the caller holds it).
//!
//! 1. The ids of the whole batch are hashed and looked up in `links` by one statement
//!    (`key = ANY($1)`); almost always nothing comes back. A stored event with the same
//!    `source` and `id` (compared as text: keys can collide) makes the new one a duplicate
//!    (same bytes) or a conflict (other bytes); so does an earlier event of the same batch.
//! 2. The accepted events go in with one `COPY ... FROM STDIN (FORMAT binary)` at the next log
//!    indexes, while a second thread computes their link rows.
//! 3. The link rows (see [`crate::links`]: one row per key and batch) go in with a second
//!    `COPY`, sorted by key.
//!
//! The schema has no unique constraint on `(source, id)`: this module is the only writer, and
//! it runs under the append lock, so no other writer can slip an event in between the check
//! and the insert. The verdicts are the SQLite store's (custody-store-sqlite `append.rs`),
//! which the shared conformance suite checks on both.

use std::collections::HashMap;

use custody_merkle::CompactRange;
use custody_store::{BatchOutcome, LineOrigin, NewEvent, Rejected, StoreError, StoreResult};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use postgres::Transaction;

use crate::{db, excerpt, to_i64};
use custody_store::links::{expand, group, keys_of, link_key, Tag};

/// Batches with at least this many accepted events compute their link rows on a second
/// thread.
const PARALLEL_LINKS: usize = 256;

/// Stored events by `(source, id)`, with their index and bytes.
type Stored = HashMap<(String, String), (i64, Vec<u8>)>;

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
    tx: &mut Transaction<'_>,
    events: &[NewEvent],
    range: &mut CompactRange,
    outcome: &mut BatchOutcome,
) -> StoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
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
fn copy_events(tx: &mut Transaction<'_>, accepted: &[(i64, &NewEvent)]) -> StoreResult<()> {
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
        let row: [&(dyn ToSql + Sync); 6] = [
            idx,
            &e.event.key.source,
            &e.event.key.id,
            &e.event.event_type().as_str(),
            &e.canonical,
            &&e.leaf_hash[..],
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
