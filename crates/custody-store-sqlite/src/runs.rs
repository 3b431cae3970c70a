//! The link index of large batches, appended as runs of blocks (schema version 5).
//!
//! Into one B-tree of `(key, first)`, a batch's link rows land all over the index: their
//! keys are hashes. A batch of 20,000 events has about 140,000 of them, so each batch
//! rewrote most of the index's pages (through the WAL, then again in the checkpoint), and
//! the more events a store held, the more pages that was: 27% of an ingest into an empty
//! store, 45% into one of 2M events (perf and alternating rounds, 2026-12-05).
//!
//! So a batch of at least [`RUN_MIN_EVENTS`] accepted events writes its rows, sorted, as one
//! *run*: blocks of rows (`custody_store::blocks`) in `link_blocks`, keyed by the run and
//! the block's last key, appended at the end of the table, and a Bloom filter of the run's
//! keys (`link_runs.filter`). A lookup, and the duplicate check of each batch (its id keys),
//! tests each run's filter (read once per connection, and again only for new runs) and
//! reads one block, found by one seek, of each run that may hold the key.
//!
//! Runs are merged so that there are few of them. A run's level is its size class
//! ([`size_class`]: level 0 below [`FANOUT`] × [`RUN_MIN_EVENTS`] events, and each level
//! [`FANOUT`] times larger than the one below); when a level holds [`FANOUT`] runs, they
//! become one run of the next level, unless that run would hold more than
//! [`MAX_RUN_EVENTS`] events. By size rather than by how often a run was merged: an ingest's
//! first batches grow from 1,024 events and its last ones halve, and counted as runs of the
//! batch size they made eight unequal runs, and a merge, due in every ingest of about 90,000
//! events (a 100k ingest 0.45 → 0.42 s, the same at 200k and 1M; alternating rounds,
//! 2026-12-05). A level holds runs of similar sizes, as in size-tiered compaction.
//!
//! A merge reads and writes blocks, not B-tree rows, one part of the key space at a time
//! (memory stays bounded), in the transaction of the batch that made it due.
//!
//! `link_runs` and `link_blocks` are derived data, like `links`: merges delete and
//! rewrite them. The log (`events`) is what the Merkle tree protects.

use std::cell::RefCell;

use custody_store::batch::LinkRow;
use custody_store::blocks::{rows_of, FilterProbe, KeyFilter, Packer};
use custody_store::links::expand;
use custody_store::{StoreError, StoreResult};
use rusqlite::{params, Connection};

use crate::db;

/// The tables of the runs, in a store of schema version 5.
pub(crate) const RUNS_SCHEMA: &str = "
-- The link index of large batches (custody_store_sqlite::runs): runs of blocks of
-- link rows, each run sorted by key. `level`: the run's size class (runs::size_class).
CREATE TABLE link_runs (
    run    INTEGER PRIMARY KEY,
    level  INTEGER NOT NULL,
    events INTEGER NOT NULL,
    filter BLOB    NOT NULL
);
CREATE TABLE link_blocks (
    run  INTEGER NOT NULL,
    last INTEGER NOT NULL,
    rows BLOB    NOT NULL,
    PRIMARY KEY (run, last)
) WITHOUT ROWID;
";

/// The fewest accepted events for which a batch writes a run. Smaller batches (`custody
/// serve` commits one decision at a time) insert all their rows into `links`, as a store of
/// schema version 4 does: a run per decision would make lookups slow until merged.
pub const RUN_MIN_EVENTS: usize = 512;

/// Runs of one level that are merged into one of the next, and how many times larger the
/// runs of a level are than those of the level below.
pub const FANOUT: usize = 8;

/// The level of a run of `events` events: 0 below `FANOUT * RUN_MIN_EVENTS`, then one more
/// for each factor of [`FANOUT`]. So eight runs of a level (each at least its lower bound)
/// make a run of the next.
pub(crate) fn size_class(events: i64) -> i64 {
    let fanout = FANOUT as i64;
    let mut bound = (RUN_MIN_EVENTS as i64).checked_mul(fanout);
    let mut level = 0;
    while let Some(b) = bound.filter(|&b| events >= b) {
        level += 1;
        bound = b.checked_mul(fanout);
    }
    level
}

/// No merge makes a run of more events than this. The larger a run, the longer the batch
/// that merges it waits (a merge of 1.3M events' rows rewrites about 100 MB); past it, runs
/// of the top level only accumulate, one per this many events or so.
pub const MAX_RUN_EVENTS: i64 = 2_000_000;

/// A merge holds the rows of about this many events at once: it goes through the key space
/// in as many parts as that takes.
const MERGE_PART_EVENTS: i64 = 200_000;

/// The block of a run that holds a key if the run does: the first whose last key is not
/// below it.
pub(crate) const BLOCK_OF_KEY: &str =
    "SELECT rows FROM link_blocks WHERE run = ?1 AND last >= ?2 ORDER BY last LIMIT 1";

const BLOCKS_FROM: &str =
    "SELECT rows FROM link_blocks WHERE run = ?1 AND last >= ?2 ORDER BY last";

fn damaged(run: i64) -> StoreError {
    StoreError::Corrupt {
        index: 0,
        reason: format!("a block of run {run} of the link index is damaged"),
    }
}

/// Appends `rows` (sorted by key, from a batch of `events` accepted events) as a new run,
/// then merges what that makes due.
pub(crate) fn append_run(tx: &Connection, rows: &[LinkRow], events: usize) -> StoreResult<()> {
    append_run_parted(tx, rows, events, MERGE_PART_EVENTS)
}

/// [`append_run`], merging `part_events` events' rows at a time.
fn append_run_parted(
    tx: &Connection,
    rows: &[LinkRow],
    events: usize,
    part_events: i64,
) -> StoreResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let run = next_run(tx)?;
    let events = i64::try_from(events).unwrap_or(i64::MAX);
    let level = size_class(events);
    write_run(tx, run, level, events, rows.len(), |push| {
        rows.iter()
            .try_for_each(|(key, first, more)| push(*key, *first, more))
    })?;
    merge_due(tx, level, part_events)
}

/// A row of a run being written: key, first index, `more`.
type Push<'p> = dyn FnMut(i64, i64, &[u8]) -> StoreResult<()> + 'p;

/// Writes run `run` of `level`: `fill` pushes its rows, sorted by key, which are packed into
/// blocks as they come; then the run's row in `link_runs`, with a filter sized for `keys`
/// keys.
fn write_run(
    tx: &Connection,
    run: i64,
    level: i64,
    events: i64,
    keys: usize,
    fill: impl FnOnce(&mut Push<'_>) -> StoreResult<()>,
) -> StoreResult<()> {
    let mut filter = KeyFilter::with_capacity(keys);
    let mut insert = tx
        .prepare_cached("INSERT OR ROLLBACK INTO link_blocks (run, last, rows) VALUES (?1, ?2, ?3)")
        .map_err(db)?;
    let mut packer = Packer::new(|last: i64, block: &[u8]| {
        insert.execute(params![run, last, block]).map(|_| ())
    });
    fill(&mut |key, first, more| {
        packer.push(key, first, more).map_err(db)?;
        filter.insert(key);
        Ok(())
    })?;
    packer.finish().map_err(db)?;
    drop(insert);
    tx.prepare_cached(
        "INSERT OR ROLLBACK INTO link_runs (run, level, events, filter) VALUES (?1, ?2, ?3, ?4)",
    )
    .map_err(db)?
    .execute(params![run, level, events, filter.to_bytes()])
    .map_err(db)?;
    Ok(())
}

/// The id of the next run: above every run there is. A merge adds its run before it removes
/// the ones it merged, so no id is ever used twice (which the filters cached by id rely on).
fn next_run(tx: &Connection) -> StoreResult<i64> {
    tx.prepare_cached("SELECT coalesce(max(run), 0) + 1 FROM link_runs")
        .map_err(db)?
        .query_row([], |r| r.get(0))
        .map_err(db)
}

/// Merges the oldest [`FANOUT`] runs of `level` into one of the next level, if there are as
/// many and the merged run would not be too large; then the next level, likewise.
fn merge_due(tx: &Connection, level: i64, part_events: i64) -> StoreResult<()> {
    let runs: Vec<(i64, i64, usize)> = {
        let mut stmt = tx
            .prepare_cached(
                "SELECT run, events, length(filter) FROM link_runs WHERE level = ?1 ORDER BY run",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map([level], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(db)?;
        rows.take(FANOUT)
            .collect::<rusqlite::Result<_>>()
            .map_err(db)?
    };
    let events: i64 = runs.iter().map(|r| r.1).fold(0, i64::saturating_add);
    if runs.len() < FANOUT || events > MAX_RUN_EVENTS {
        return Ok(());
    }
    let merged = next_run(tx)?;
    // Above `level` even when the runs were smaller than their level says (runs of stores
    // written before levels were size classes, or below `RUN_MIN_EVENTS` in tests).
    let merged_level = size_class(events).max(level + 1);
    // Sized for every key of every run merged; a key in several runs is counted for each.
    let bytes_of_filters: usize = runs.iter().map(|r| r.2).sum();
    let keys = bytes_of_filters * 8 / custody_store::blocks::FILTER_BITS_PER_KEY;
    let parts = (events / part_events.max(1) + 1).clamp(1, 1 << 16);
    write_run(tx, merged, merged_level, events, keys, |push| {
        // Each part's rows: (key, first, where `more` lies in `bytes`).
        let mut rows: Vec<(i64, i64, usize, usize)> = Vec::new();
        let mut bytes: Vec<u8> = Vec::new();
        for part in 0..parts {
            let (lo, hi) = part_bounds(part, parts);
            rows.clear();
            bytes.clear();
            for &(run, _, _) in &runs {
                read_part(tx, run, lo, hi, &mut rows, &mut bytes)?;
            }
            rows.sort_unstable_by_key(|r| (r.0, r.1));
            for &(key, first, start, end) in &rows {
                let more = bytes.get(start..end).ok_or_else(|| damaged(merged))?;
                push(key, first, more)?;
            }
        }
        Ok(())
    })?;
    for &(run, _, _) in &runs {
        tx.prepare_cached("DELETE FROM link_blocks WHERE run = ?1")
            .map_err(db)?
            .execute([run])
            .map_err(db)?;
        tx.prepare_cached("DELETE FROM link_runs WHERE run = ?1")
            .map_err(db)?
            .execute([run])
            .map_err(db)?;
    }
    merge_due(tx, merged_level, part_events)
}

/// The keys `lo..=hi` of part `part` of `parts` equal parts of the key space.
fn part_bounds(part: i64, parts: i64) -> (i64, i64) {
    let span = (i128::from(i64::MAX) - i128::from(i64::MIN) + 1) / i128::from(parts);
    let lo = i128::from(i64::MIN) + span * i128::from(part);
    let hi = if part + 1 >= parts {
        i128::from(i64::MAX)
    } else {
        lo + span - 1
    };
    (
        i64::try_from(lo).unwrap_or(i64::MIN),
        i64::try_from(hi).unwrap_or(i64::MAX),
    )
}

/// Appends the rows of `run` with keys in `lo..=hi` to `rows`, their `more` to `bytes`.
fn read_part(
    tx: &Connection,
    run: i64,
    lo: i64,
    hi: i64,
    rows: &mut Vec<(i64, i64, usize, usize)>,
    bytes: &mut Vec<u8>,
) -> StoreResult<()> {
    let mut stmt = tx.prepare_cached(BLOCKS_FROM).map_err(db)?;
    let mut blocks = stmt.query(params![run, lo]).map_err(db)?;
    while let Some(block) = blocks.next().map_err(db)? {
        let block = block
            .get_ref(0)
            .map_err(db)?
            .as_blob()
            .map_err(|_| damaged(run))?;
        let mut past = false;
        rows_of(block, |key, first, more| {
            if key > hi {
                past = true;
            } else if key >= lo {
                let start = bytes.len();
                bytes.extend_from_slice(block.get(more).unwrap_or_default());
                rows.push((key, first, start, bytes.len()));
            }
        })
        .ok_or_else(|| damaged(run))?;
        if past {
            break;
        }
    }
    Ok(())
}

/// The runs of a store and their filters, as one connection last read them.
#[derive(Default)]
pub(crate) struct RunCache {
    /// `PRAGMA data_version` when read; `None` when to be read again.
    version: Option<i64>,
    /// The read snapshot (`SqliteStore::read_snapshot`) in which it was checked last.
    snapshot: Option<u64>,
    runs: Vec<(i64, KeyFilter)>,
}

impl RunCache {
    /// To be read again before the next lookup (after this connection wrote).
    pub(crate) fn forget(&mut self) {
        self.version = None;
        self.snapshot = None;
    }
}

/// Brings `cache` up to date: the runs there are now, with their filters (read only for runs
/// not read before: a run never changes once written).
///
/// In a read snapshot, once: the first time, the runs are listed whatever `data_version`
/// says, and that listing begins the snapshot if nothing in it has read yet, so the runs
/// listed are the snapshot's; nothing changes in it after. Otherwise, when `data_version`
/// says another connection has committed since (this connection's own commits call
/// [`RunCache::forget`]).
fn refresh(conn: &Connection, cache: &mut RunCache, snapshot: Option<u64>) -> StoreResult<()> {
    if snapshot.is_some() {
        if cache.snapshot != snapshot {
            list_runs(conn, cache)?;
            cache.version = None;
            cache.snapshot = snapshot;
        }
        return Ok(());
    }
    let version: i64 = conn
        .prepare_cached("PRAGMA data_version")
        .map_err(db)?
        .query_row([], |r| r.get(0))
        .map_err(db)?;
    if cache.version != Some(version) {
        list_runs(conn, cache)?;
        cache.version = Some(version);
        cache.snapshot = None;
    }
    Ok(())
}

/// Lists the runs there are now into `cache`, reading the filters of new ones.
fn list_runs(conn: &Connection, cache: &mut RunCache) -> StoreResult<()> {
    let ids: Vec<i64> = {
        let mut stmt = conn
            .prepare_cached("SELECT run FROM link_runs ORDER BY run")
            .map_err(db)?;
        let rows = stmt.query_map([], |r| r.get(0)).map_err(db)?;
        rows.collect::<rusqlite::Result<_>>().map_err(db)?
    };
    let mut old = std::mem::take(&mut cache.runs);
    for run in ids {
        if let Some(at) = old.iter().position(|(r, _)| *r == run) {
            cache.runs.push(old.swap_remove(at));
            continue;
        }
        let bytes: Vec<u8> = conn
            .prepare_cached("SELECT filter FROM link_runs WHERE run = ?1")
            .map_err(db)?
            .query_row([run], |r| r.get(0))
            .map_err(db)?;
        let filter = KeyFilter::from_bytes(&bytes).ok_or_else(|| StoreError::Corrupt {
            index: 0,
            reason: format!("the filter of run {run} of the link index is damaged"),
        })?;
        cache.runs.push((run, filter));
    }
    Ok(())
}

/// Appends to `out` the indexes linked under any of `keys` in every run.
/// `snapshot`: the read snapshot open now, if any.
pub(crate) fn linked_in_runs(
    conn: &Connection,
    cache: &RefCell<RunCache>,
    snapshot: Option<u64>,
    keys: &[i64],
    out: &mut Vec<i64>,
) -> StoreResult<()> {
    let mut cache = cache.borrow_mut();
    refresh(conn, &mut cache, snapshot)?;
    if cache.runs.is_empty() {
        return Ok(());
    }
    let mut stmt = conn.prepare_cached(BLOCK_OF_KEY).map_err(db)?;
    for &key in keys {
        let probe = FilterProbe::of(key);
        for (run, filter) in &cache.runs {
            if !filter.may_contain_probe(&probe) {
                continue;
            }
            let mut blocks = stmt.query(params![run, key]).map_err(db)?;
            let Some(block) = blocks.next().map_err(db)? else {
                continue;
            };
            let block = block
                .get_ref(0)
                .map_err(db)?
                .as_blob()
                .map_err(|_| damaged(*run))?;
            let mut bad = false;
            rows_of(block, |k, first, more| {
                if k == key && !bad {
                    bad = expand(first, block.get(more).unwrap_or_default(), out).is_none();
                }
            })
            .ok_or_else(|| damaged(*run))?;
            if bad {
                return Err(damaged(*run));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use custody_store::links::group;

    /// `runs` runs of `per` events each, event `i` linked under keys `i % 97` and
    /// `i % 13 * 1e15` (hashes spread over the key space in real use), appended with merges
    /// of `part_events` events at a time.
    fn appended(runs: i64, per: i64, part_events: i64) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(RUNS_SCHEMA).unwrap();
        for r in 0..runs {
            let mut pairs: Vec<(i64, i64)> = (r * per..(r + 1) * per)
                .flat_map(|i| [(key_a(i), i), (key_b(i), i)])
                .collect();
            pairs.sort_unstable();
            pairs.dedup(); // as `link_rows` does: the two keys are equal for some events
            let mut rows = Vec::new();
            group(&pairs, |k, f, m| rows.push((k, f, m.to_vec())));
            append_run_parted(&conn, &rows, per as usize, part_events).unwrap();
        }
        conn
    }

    fn key_a(i: i64) -> i64 {
        (i % 97 - 48) * (i64::MAX / 50)
    }

    fn key_b(i: i64) -> i64 {
        i % 13 * 1_000_000_000_000_000
    }

    fn levels(conn: &Connection) -> Vec<(i64, i64, i64)> {
        let mut stmt = conn
            .prepare("SELECT level, count(*), sum(events) FROM link_runs GROUP BY level")
            .unwrap();
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)));
        rows.unwrap().collect::<rusqlite::Result<_>>().unwrap()
    }

    #[test]
    fn runs_merge_by_eights_in_parts_and_every_key_finds_its_events() {
        let n = 17 * 300;
        let conn = appended(17, 300, 700);
        assert_eq!(levels(&conn), vec![(0, 1, 300), (1, 2, 4_800)]);
        let orphans: i64 = conn
            .query_row(
                "SELECT count(*) FROM link_blocks WHERE run NOT IN (SELECT run FROM link_runs)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(orphans, 0, "the merged runs' blocks are gone");
        let cache = RefCell::new(RunCache::default());
        for key in (0..97).map(key_a).chain((0..13).map(key_b)) {
            let mut got = Vec::new();
            linked_in_runs(&conn, &cache, None, &[key], &mut got).unwrap();
            got.sort_unstable();
            let want: Vec<i64> = (0..n)
                .filter(|&i| key_a(i) == key || key_b(i) == key)
                .collect();
            assert_eq!(got, want, "key {key}");
        }
        let mut none = Vec::new();
        linked_in_runs(&conn, &cache, None, &[12_345], &mut none).unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn a_run_past_the_largest_merge_is_not_made() {
        let per = MAX_RUN_EVENTS / 8 + 1;
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(RUNS_SCHEMA).unwrap();
        for r in 0..8 {
            let rows = vec![(r, r, Vec::new())];
            append_run_parted(&conn, &rows, per as usize, MERGE_PART_EVENTS).unwrap();
        }
        let level = size_class(per);
        assert_eq!(levels(&conn), vec![(level, 8, 8 * per)]);
    }

    #[test]
    fn a_level_is_a_size_class_of_eightfold_steps() {
        let min = RUN_MIN_EVENTS as i64;
        for (events, level) in [
            (1, 0),
            (min, 0),
            (8 * min - 1, 0),
            (8 * min, 1),
            (64 * min - 1, 1),
            (64 * min, 2),
            (MAX_RUN_EVENTS, 3),
            (i64::MAX, 17),
        ] {
            assert_eq!(size_class(events), level, "{events} events");
        }
    }

    /// The batches of one 100k ingest (growing from 1,024, halving at the end): runs of two
    /// levels, seven and five, and no merge; an eighth run of the upper level merges its
    /// level into one run of the next.
    #[test]
    fn runs_of_unequal_sizes_merge_only_with_their_size_class() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(RUNS_SCHEMA).unwrap();
        let mut next_key = 0;
        let mut append = |events: i64| {
            let rows = vec![(next_key, next_key, Vec::new())];
            next_key += 1;
            append_run_parted(&conn, &rows, events as usize, MERGE_PART_EVENTS).unwrap();
        };
        let ingest = [
            1_024, 2_048, 4_096, 8_192, 16_384, 20_480, 20_480, 13_824, 7_168, 3_584, 1_536, 1_024,
        ];
        ingest.into_iter().for_each(&mut append);
        let small: i64 = [1_024, 2_048, 3_584, 1_536, 1_024].iter().sum();
        let large: i64 = ingest.iter().sum::<i64>() - small;
        assert_eq!(levels(&conn), vec![(0, 5, small), (1, 7, large)]);
        append(20_480);
        assert_eq!(
            levels(&conn),
            vec![(0, 5, small), (2, 1, large + 20_480)],
            "eight runs of level 1 make one of level 2"
        );
        let blocks: i64 = conn
            .query_row("SELECT count(*) FROM link_blocks", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            blocks, 6,
            "five small runs and the merged one, a block each"
        );
    }

    #[test]
    fn a_damaged_block_is_a_corrupt_error() {
        let conn = appended(2, 50, MERGE_PART_EVENTS);
        let cache = RefCell::new(RunCache::default());
        let mut out = Vec::new();
        linked_in_runs(&conn, &cache, None, &[key_a(3)], &mut out).unwrap();
        assert_eq!(out, vec![3]);
        conn.execute("UPDATE link_blocks SET rows = x'0102'", [])
            .unwrap();
        cache.borrow_mut().forget();
        assert!(matches!(
            linked_in_runs(&conn, &cache, None, &[key_a(3)], &mut out),
            Err(StoreError::Corrupt { .. })
        ));
        conn.execute("UPDATE link_runs SET filter = x'01'", [])
            .unwrap();
        *cache.borrow_mut() = RunCache::default();
        assert!(matches!(
            linked_in_runs(&conn, &cache, None, &[key_a(3)], &mut out),
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[test]
    fn parts_cover_the_key_space_without_overlap() {
        for parts in [1, 2, 3, 7, 64] {
            let mut next = i128::from(i64::MIN);
            for p in 0..parts {
                let (lo, hi) = part_bounds(p, parts);
                assert_eq!(
                    i128::from(lo),
                    next,
                    "part {p} of {parts} starts where the last ended"
                );
                assert!(lo <= hi);
                next = i128::from(hi) + 1;
            }
            assert_eq!(
                next,
                i128::from(i64::MAX) + 1,
                "{parts} parts end at the top"
            );
        }
    }
}
