//! The write path: one batch, one transaction.
//!
//! Each event is inserted with `ON CONFLICT (id, source) DO NOTHING` at the next log index;
//! when nothing was inserted, the stored row with that key tells a duplicate (same bytes)
//! from a conflict (other bytes). Stored or earlier in the same batch makes no difference:
//! the batch's own rows are visible inside its transaction.
//!
//! The rows of `refs` and `principals` are collected over the batch, sorted by key (so that
//! each B-tree is walked in order, which keeps the pages a batch touches together once the
//! indexes outgrow the cache) and inserted [`LINK_ROWS`] per statement.
//!
//! Measured (callgrind, 10k events): SQLite's own work is about 30k instructions per event,
//! almost all of it B-tree inserts: the row, the `(id, source)` key, on average 1.8 partial
//! index entries, 0.8 refs and 1 principal. Multi-row `INSERT ... RETURNING` for the events
//! themselves was tried and cost more than it saved.

use custody_merkle::CompactRange;
use custody_model::{Event, EventBody};
use custody_store::{BatchOutcome, LineOrigin, NewEvent, Rejected, StoreError, StoreResult};
use rusqlite::{params, Connection, Statement};

use crate::{db, excerpt, to_i64};

/// Rows of `refs` or `principals` per multi-row `INSERT`.
const LINK_ROWS: usize = 64;

const INSERT_EVENT: &str = "INSERT INTO events (idx, source, id, type, time_ns, chain, \
     credential, parent_credential, resource, secret, body, leaf_hash) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
     ON CONFLICT (id, source) DO NOTHING";

const REF_HEAD: &str = "INSERT INTO refs (target_id, idx, n, kind, target_source) VALUES ";
const REF_ROW: &str = "(?, ?, ?, ?, ?)";
const PRINCIPAL_HEAD: &str = "INSERT INTO principals (principal_id, idx) VALUES ";
const PRINCIPAL_ROW: &str = "(?, ?)";

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

struct RefRow<'a> {
    target_id: &'a str,
    idx: i64,
    n: i64,
    kind: &'static str,
    target_source: Option<&'a str>,
}

/// The principals an event names, each once.
pub(crate) fn principals_of(event: &Event) -> impl Iterator<Item = &str> {
    let (a, b) = match &event.body {
        EventBody::Request(r) => (Some(&r.initiator), None),
        EventBody::Delegation(d) => (Some(&d.from), (d.to.id != d.from.id).then_some(&d.to)),
        EventBody::Approval(a) => (Some(&a.approver), None),
        EventBody::Action(a) => (Some(&a.actor), None),
        EventBody::SecretAccess(s) => (Some(&s.principal), None),
        EventBody::Revocation(r) => (r.by.as_ref(), None),
        EventBody::Effect(_) | EventBody::Decision(_) => (None, None),
    };
    a.into_iter().chain(b).map(|p| p.id.as_str())
}

fn secret_of(event: &Event) -> Option<&str> {
    match &event.body {
        EventBody::SecretAccess(s) => Some(s.secret.as_str()),
        _ => None,
    }
}

/// Inserts one event at `idx`; `false` when its `(id, source)` is already stored.
fn insert_event(stmt: &mut Statement<'_>, idx: i64, e: &NewEvent) -> StoreResult<bool> {
    let ev = &e.event;
    let time_ns = i64::try_from(ev.time.unix_nanos()).ok();
    stmt.execute(params![
        idx,
        ev.key.source,
        ev.key.id,
        ev.event_type().as_str(),
        time_ns,
        ev.chain,
        ev.credential_id(),
        ev.parent_credential(),
        ev.resource(),
        secret_of(ev),
        e.canonical,
        &e.leaf_hash[..],
    ])
    .map(|n| n == 1)
    .map_err(db)
}

/// Appends `events` inside the open transaction `tx`, extending `range`; records conflicts in
/// `outcome` (the caller writes them to the quarantine).
pub(crate) fn append_events(
    tx: &Connection,
    events: &[NewEvent],
    range: &mut CompactRange,
    outcome: &mut BatchOutcome,
) -> StoreResult<()> {
    let mut refs: Vec<RefRow<'_>> = Vec::new();
    let mut principals: Vec<(&str, i64)> = Vec::new();
    let mut insert = tx.prepare_cached(INSERT_EVENT).map_err(db)?;
    let mut existing = tx
        .prepare_cached("SELECT idx, body FROM events WHERE id = ?1 AND source = ?2")
        .map_err(db)?;
    for e in events {
        let next = to_i64(range.size(), "log index")?;
        if !insert_event(&mut insert, next, e)? {
            let (at, body): (i64, Vec<u8>) = existing
                .query_row([&e.event.key.id, &e.event.key.source], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .map_err(db)?;
            if body == e.canonical {
                outcome.duplicates += 1;
            } else {
                outcome.conflicts.push(Rejected {
                    origin: e.origin.clone().unwrap_or_else(|| LineOrigin {
                        file: "(no file)".into(),
                        line: 0,
                    }),
                    reason: format!(
                        "conflict: {} is already stored at index {at} with different content",
                        e.event.key
                    ),
                    excerpt: excerpt(&e.canonical),
                });
            }
            continue;
        }
        for (n, (kind, target)) in (0i64..).zip(e.event.references()) {
            refs.push(RefRow {
                target_id: &target.id,
                idx: next,
                n,
                kind: kind.as_str(),
                target_source: target.source.as_deref(),
            });
        }
        principals.extend(principals_of(&e.event).map(|p| (p, next)));
        range
            .push(e.leaf_hash)
            .map_err(|err| StoreError::Backend(format!("cannot extend the tree: {err}")))?;
        outcome.accepted += 1;
    }

    // Sorted by key, the index inserts walk each B-tree in order.
    refs.sort_unstable_by(|a, b| (a.target_id, a.idx, a.n).cmp(&(b.target_id, b.idx, b.n)));
    insert_links(tx, REF_HEAD, REF_ROW, 5, &refs, |stmt, at, r| {
        stmt.raw_bind_parameter(at, r.target_id)?;
        stmt.raw_bind_parameter(at + 1, r.idx)?;
        stmt.raw_bind_parameter(at + 2, r.n)?;
        stmt.raw_bind_parameter(at + 3, r.kind)?;
        stmt.raw_bind_parameter(at + 4, r.target_source)
    })?;
    principals.sort_unstable();
    insert_links(
        tx,
        PRINCIPAL_HEAD,
        PRINCIPAL_ROW,
        2,
        &principals,
        |stmt, at, p| {
            stmt.raw_bind_parameter(at, p.0)?;
            stmt.raw_bind_parameter(at + 1, p.1)
        },
    )?;
    Ok(())
}

/// Inserts `rows` with [`LINK_ROWS`]-row statements, then one-row statements for the rest.
fn insert_links<T>(
    tx: &Connection,
    head: &str,
    row: &str,
    params: usize,
    rows: &[T],
    bind: impl Fn(&mut Statement<'_>, usize, &T) -> rusqlite::Result<()>,
) -> StoreResult<()> {
    let mut chunks = rows.chunks_exact(LINK_ROWS);
    if rows.len() >= LINK_ROWS {
        let mut stmt = tx
            .prepare_cached(&multi_row_sql(head, row, LINK_ROWS))
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
