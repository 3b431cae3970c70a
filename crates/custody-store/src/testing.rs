//! The conformance suite every [`Store`] backend runs (as rustls runs one suite per crypto
//! provider): one [`Harness`] per backend, then [`run_all`], or each `check_*` function as its
//! own `#[test]`.
//!
//! Every check builds its own fresh store, drives it only through the [`Store`] trait and
//! compares what comes back with a model computed here (the leaf hashes in a `Vec`, the root
//! from `custody_merkle::root`, the expected lookup answers written out by hand). A check
//! panics with a message that names the operation and the values on the first mismatch.
//!
//! Contract points the trait's docs leave open, fixed here so that every backend agrees:
//! - `leaf_hashes(start, end)` with `start > end` or `end > size()` is an **error** (a short
//!   answer would silently shrink a proof); `start == end <= size()` is an empty list.
//! - `scan(start, ..)` with `start >= size()` visits nothing and succeeds; an error returned by
//!   the callback stops the scan and is returned as is.
//! - `event_at(i)` with `i >= size()` and `get` of an unknown key are `Ok(None)`.
//! - The quarantine holds a batch's `rejected` lines first, in the order given, then its
//!   conflicts in the order of the batch's events; a conflict keeps the event's origin, its
//!   reason names the stored event (`source#id`) and says "conflict", and its excerpt is the
//!   start of the conflicting canonical bytes.
//! - Re-adding an identical checkpoint is a no-op; checkpoints are listed by size.
//!
//! Helpers a backend's own tests can reuse: [`sample_events`] (one realistic chain plus
//! noise, with the expected answer of every lookup in [`sample_lookups`]),
//! [`synthetic_events`] (realistic events in any number, also what the benches append), and
//! [`model_lookup`] (what any [`Lookup`] must return, computed from the typed events alone).
//!
//! Redaction and canonicalisation are not the store's job: [`new_event`] only canonicalises
//! (RFC 8785) and hashes (RFC 9162 leaf) the JSON it is given.
#![allow(
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use custody_merkle::{leaf_hash, root, Hash, EMPTY_ROOT};
use std::collections::HashMap;

use custody_model::{canonical_json, Event, EventBody, EventKey, EventType, Timestamp};
use serde_json::Value;

use crate::{
    BatchOutcome, LineOrigin, Lookup, NewEvent, Rejected, Store, StoreError, StoredCheckpoint,
    StoredEvent,
};

/// How the suite gets stores of one backend.
pub trait Harness {
    /// The backend under test.
    type S: Store;
    /// A new, empty store that shares nothing with any other store this harness made.
    fn fresh(&self) -> Self::S;
    /// Closes `store` (dropping every handle it holds) and opens the same storage again, as a
    /// new process would.
    fn reopen(&self, store: Self::S) -> Self::S;
}

/// Runs every check, panicking on the first failure.
pub fn run_all<H: Harness>(h: &H) {
    check_empty_store(h);
    check_empty_batch(h);
    check_append_and_read_back(h);
    check_get_distinguishes_sources(h);
    check_root_matches_merkle_after_each_batch(h);
    check_duplicates_change_nothing(h);
    check_conflict_is_quarantined(h);
    check_duplicate_and_conflict_in_one_batch(h);
    check_rejected_lines_are_quarantined_in_order(h);
    check_lookups(h);
    check_large_batches_with_duplicates_and_conflicts(h);
    check_leaf_hashes(h);
    check_scan(h);
    check_checkpoints(h);
    check_everything_survives_reopen(h);
    check_many_batches_match_the_model(h);
}

/// One `#[test]` per check of the suite, each on a fresh `$harness` (an expression that
/// builds a [`Harness`]), so a backend's test run names the check that failed:
/// `custody_store::conformance_tests!(MyHarness::new());` in its tests. The list is the one
/// [`run_all`] runs, so every backend runs the same checks.
#[macro_export]
macro_rules! conformance_tests {
    ($harness:expr) => {
        $crate::conformance_tests!(@each $harness;
            check_empty_store,
            check_empty_batch,
            check_append_and_read_back,
            check_get_distinguishes_sources,
            check_root_matches_merkle_after_each_batch,
            check_duplicates_change_nothing,
            check_conflict_is_quarantined,
            check_duplicate_and_conflict_in_one_batch,
            check_rejected_lines_are_quarantined_in_order,
            check_lookups,
            check_large_batches_with_duplicates_and_conflicts,
            check_leaf_hashes,
            check_scan,
            check_checkpoints,
            check_everything_survives_reopen,
            check_many_batches_match_the_model,
        );
    };
    (@each $harness:expr; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                $crate::testing::$check(&$harness);
            }
        )*
    };
}

// ---------------------------------------------------------------------------------------------
// Building events

/// A [`NewEvent`] from one JSON line: parsed, canonicalised (RFC 8785), hashed (RFC 9162
/// leaf), and typed from the canonical bytes. Panics on invalid input: this is test support.
pub fn new_event(line: &str, origin: Option<LineOrigin>) -> NewEvent {
    let value: Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("test event is not JSON ({e}): {line}"));
    let canonical = canonical_json(&value)
        .unwrap_or_else(|e| panic!("test event has no canonical form ({e}): {line}"));
    let reparsed: Value = serde_json::from_slice(&canonical)
        .unwrap_or_else(|e| panic!("canonical JSON does not parse back ({e}): {line}"));
    let event = Event::from_value(&reparsed)
        .unwrap_or_else(|e| panic!("test event is not a valid event ({e}): {line}"));
    NewEvent::new(event, canonical, origin)
}

/// The lines of [`sample_events`]: one realistic chain (a credential rotation by an agent)
/// plus the noise that every lookup must leave out. The comments give each line's index.
pub const SAMPLE_LINES: [&str; 13] = [
    // 0: the human request; its `target` is the resource, which `Lookup::Resource` ignores.
    r#"{"id":"req-1","type":"request","time":"2026-06-06T09:00:00Z","source":"servicedesk","initiator":{"id":"alice@example.com","kind":"human"},"ticket":"SEC-4411","intent":"Rotate the orders-db password","target":"postgres://orders-db"}"#,
    // 1: alice delegates to the agent (credential jti:1); refers to req-1 twice, by source#id.
    r#"{"id":"del-1","type":"delegation","time":"2026-06-06T09:00:05Z","source":"idp","parents":["servicedesk#req-1"],"request":"servicedesk#req-1","from":{"id":"alice@example.com","kind":"human"},"to":{"id":"rotation-agent","kind":"agent"},"via":"token_exchange","credential":{"id":"jti:1","kind":"oauth_token","issuer":"https://idp.example.com","expires":"2026-06-06T09:15:00Z"},"scope":[{"action":"db:*","resource":"postgres://orders-db"}]}"#,
    // 2: just-in-time grant acc:2 obtained with jti:1; refers to req-1 by a bare id.
    r#"{"id":"del-2","type":"delegation","time":"2026-06-06T09:00:07Z","source":"pam","request":"req-1","from":{"id":"rotation-agent","kind":"agent"},"to":{"id":"rotation-agent","kind":"agent"},"via":"jit_grant","parent_credential":"jti:1","credential":{"id":"acc:2","kind":"db_role","issuer":"pam","max_uses":1},"scope":[{"action":"db:password.rotate","resource":"postgres://orders-db"}]}"#,
    // 3: bob approves req-1 (bare id).
    r#"{"id":"apr-1","type":"approval","time":"2026-06-06T09:00:30Z","source":"servicedesk","approver":{"id":"bob@example.com","kind":"human"},"approves":"req-1","decision":"approved"}"#,
    // 4: the action, with acc:2 on the resource, in chain run-1.
    r#"{"id":"act-1","type":"action","time":"2026-06-06T09:01:00Z","source":"agent-runtime","chain":"run-1","parents":["pam#del-2"],"actor":{"id":"rotation-agent","kind":"agent"},"credential":"acc:2","operation":"db:password.rotate","resource":"postgres://orders-db","context":{"orchestrator":"agent-runtime","run":"run-1","tool":"db_rotate"},"outcome":"success"}"#,
    // 5: its effect.
    r#"{"id":"eff-1","type":"effect","time":"2026-06-06T09:01:01Z","source":"postgres","chain":"run-1","system":"postgres://orders-db","resource":"postgres://orders-db","change":"rotated","record":"pg_authid 16384","caused_by":"agent-runtime#act-1"}"#,
    // 6: acc:2 is revoked.
    r#"{"id":"rev-1","type":"revocation","time":"2026-06-06T09:02:00Z","source":"pam","credential":"acc:2","by":{"id":"alice@example.com","kind":"human"}}"#,
    // 7: the agent reads secret prod/db and obtains sm:3.
    r#"{"id":"sa-1","type":"secret_access","time":"2026-06-06T09:03:00Z","source":"vault://prod","chain":"run-1","principal":{"id":"rotation-agent","kind":"agent"},"manager":"vault://prod","secret":"prod/db","credential":"sm:3"}"#,
    // 8: noise: another `act-1`, in a source that sorts before `agent-runtime`.
    r#"{"id":"act-1","type":"action","time":"2026-06-06T09:04:00Z","source":"actions-runner","chain":"run-2","actor":"build-bot","credential":"gh:9","operation":"git:push","resource":"git://config-repo","outcome":"success"}"#,
    // 9: noise: an effect on the same resource with no cause.
    r#"{"id":"eff-2","type":"effect","time":"2026-06-06T09:05:00Z","source":"postgres","system":"postgres://orders-db","resource":"postgres://orders-db","change":"updated"}"#,
    // 10: jti:1 used directly, on a resource that merely starts like the other one.
    r#"{"id":"act-2","type":"action","time":"2026-06-06T09:06:00Z","source":"agent-runtime","chain":"run-1","request":"servicedesk#req-1","actor":{"id":"rotation-agent","kind":"agent"},"credential":"jti:1","operation":"db:password.read","resource":"postgres://orders-db/users"}"#,
    // 11: noise: another secret whose name starts like prod/db.
    r#"{"id":"sa-2","type":"secret_access","time":"2026-06-06T09:07:00Z","source":"vault://prod","principal":"bob@example.com","manager":"vault://prod","secret":"prod/db-replica","credential":"sm:4"}"#,
    // 12: acc:5 derived from acc:2; names del-2 twice (bare and source#id).
    r#"{"id":"del-3","type":"delegation","time":"2026-06-06T09:08:00Z","source":"idp","parents":["del-2","pam#del-2"],"from":{"id":"rotation-agent","kind":"agent"},"to":{"id":"build-bot","kind":"service"},"via":"impersonation","parent_credential":"acc:2","credential":{"id":"acc:5"}}"#,
];

/// [`SAMPLE_LINES`] as events, with origins `sample.ndjson:1..`.
pub fn sample_events() -> Vec<NewEvent> {
    SAMPLE_LINES
        .iter()
        .zip(1u64..)
        .map(|(line, n)| new_event(line, Some(origin("sample.ndjson", n))))
        .collect()
}

/// One realistic synthetic event line, number `i` (each run of six is one chain: request,
/// delegation, just-in-time grant, action, effect, secret access). Keys are unique per `i`.
pub fn synthetic_line(i: u64) -> String {
    let run = i / 6;
    let base = Timestamp::parse("2026-06-06T00:00:00Z")
        .map(|t| t.unix_nanos())
        .unwrap_or(0);
    let time = Timestamp::from_unix_nanos(base + i128::from(i) * 1_000_000_000)
        .map(|t| t.to_string())
        .unwrap_or_else(|| "2026-06-06T00:00:00Z".to_owned());
    let user = run % 50;
    let agent = run % 20;
    let db = run % 100;
    match i % 6 {
        0 => format!(
            r#"{{"id":"req-{run}","type":"request","time":"{time}","source":"servicedesk","initiator":{{"id":"user{user}@example.com","kind":"human","name":"User {user}"}},"ticket":"SEC-{run}","intent":"Rotate the password of db-{db} after the quarterly review","target":"postgres://db-{db}/orders"}}"#
        ),
        1 => format!(
            r#"{{"id":"del-{run}","type":"delegation","time":"{time}","source":"idp","request":"servicedesk#req-{run}","from":{{"id":"user{user}@example.com","kind":"human"}},"to":{{"id":"agent-{agent}","kind":"agent"}},"via":"token_exchange","credential":{{"id":"jti:{run:x}","kind":"oauth_token","issuer":"https://idp.example.com","expires":"2026-12-31T00:00:00Z"}},"scope":[{{"action":"db:*","resource":"postgres://db-{db}/*"}}],"attributes":{{"client_id":"rotation-agent","grant_type":"urn:ietf:params:oauth:grant-type:token-exchange"}}}}"#
        ),
        2 => format!(
            r#"{{"id":"jit-{run}","type":"delegation","time":"{time}","source":"pam","request":"servicedesk#req-{run}","from":{{"id":"agent-{agent}","kind":"agent"}},"to":{{"id":"agent-{agent}","kind":"agent"}},"via":"jit_grant","parent_credential":"jti:{run:x}","credential":{{"id":"acc:{run:x}","kind":"db_role","issuer":"pam","max_uses":1}},"scope":[{{"action":"db:password.rotate","resource":"postgres://db-{db}/orders","limits":{{"rows":1000}}}}]}}"#
        ),
        3 => format!(
            r#"{{"id":"act-{run}","type":"action","time":"{time}","source":"agent-runtime","chain":"run-{run}","parents":["pam#jit-{run}"],"actor":{{"id":"agent-{agent}","kind":"agent"}},"credential":"acc:{run:x}","operation":"db:password.rotate","resource":"postgres://db-{db}/orders","params":{{"rows":{rows}}},"context":{{"orchestrator":"agent-runtime","run":"run-{run}","step":"3","tool":"db_rotate","origin":"10.0.{agent}.17"}},"outcome":"success","request":"servicedesk#req-{run}"}}"#,
            rows = run % 1000
        ),
        4 => format!(
            r#"{{"id":"eff-{run}","type":"effect","time":"{time}","source":"postgres","chain":"run-{run}","system":"postgres://db-{db}","resource":"postgres://db-{db}/orders","change":"rotated","record":"lsn 0/{i:X}","caused_by":"agent-runtime#act-{run}"}}"#
        ),
        _ => format!(
            r#"{{"id":"sa-{run}","type":"secret_access","time":"{time}","source":"vault://prod","chain":"run-{run}","principal":{{"id":"agent-{agent}","kind":"agent"}},"manager":"vault://prod","secret":"prod/db-{db}","credential":"vault-accessor:{run:x}","attributes":{{"request_id":"{i:032x}","remote_address":"10.0.{agent}.17"}}}}"#
        ),
    }
}

/// Synthetic events `first..first + count` (see [`synthetic_line`]), with origins
/// `synthetic.ndjson:i+1`.
pub fn synthetic_events(first: u64, count: u64) -> Vec<NewEvent> {
    (first..first + count)
        .map(|i| new_event(&synthetic_line(i), Some(origin("synthetic.ndjson", i + 1))))
        .collect()
}

fn origin(file: &str, line: u64) -> LineOrigin {
    LineOrigin {
        file: file.to_owned(),
        line,
    }
}

fn rejected(file: &str, line: u64, reason: &str, excerpt: &str) -> Rejected {
    Rejected {
        origin: origin(file, line),
        reason: reason.to_owned(),
        excerpt: excerpt.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn ok<T>(what: &str, r: Result<T, StoreError>) -> T {
    r.unwrap_or_else(|e| panic!("{what} failed: {e}"))
}

fn append<S: Store>(s: &mut S, events: &[NewEvent], rejected: &[Rejected]) -> BatchOutcome {
    ok(
        &format!(
            "append_batch({} events, {} rejected)",
            events.len(),
            rejected.len()
        ),
        s.append_batch(events, rejected),
    )
}

fn hex(h: &Hash) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// Asserts size and root (both as reported by the store and by `outcome`, if any) against
/// the model's leaves.
fn assert_log<S: Store>(s: &S, model: &[Hash], outcome: Option<&BatchOutcome>, when: &str) {
    let want_size = model.len() as u64;
    let want_root = root(model);
    let size = ok("size()", s.size());
    assert_eq!(
        size, want_size,
        "{when}: size() is {size}, the model has {want_size} leaves"
    );
    let got_root = ok("root()", s.root());
    assert_eq!(
        got_root,
        want_root,
        "{when}: root() is {} but the Merkle root of the model's {want_size} leaves is {}",
        hex(&got_root),
        hex(&want_root)
    );
    if let Some(out) = outcome {
        assert_eq!(out.size, want_size, "{when}: BatchOutcome.size");
        assert_eq!(
            out.root,
            want_root,
            "{when}: BatchOutcome.root is {} but the model's root is {}",
            hex(&out.root),
            hex(&want_root)
        );
    }
}

/// Asserts that `got` is the stored form of `want` at `index`.
fn assert_stored(got: &StoredEvent, want: &NewEvent, index: u64, what: &str) {
    assert_eq!(got.index, index, "{what}: index of {}", want.event.key);
    assert_eq!(got.key(), &want.event.key, "{what}: key at index {index}");
    assert!(
        got.canonical == want.canonical,
        "{what}: canonical bytes of {} differ:\n stored {}\n given  {}",
        want.event.key,
        String::from_utf8_lossy(&got.canonical),
        String::from_utf8_lossy(&want.canonical)
    );
    assert_eq!(
        got.leaf_hash, want.leaf_hash,
        "{what}: leaf hash of {}",
        want.event.key
    );
    assert_eq!(
        got.leaf_hash,
        leaf_hash(&got.canonical),
        "{what}: stored leaf hash of {} is not the leaf hash of its stored bytes",
        want.event.key
    );
    assert_eq!(
        got.event, want.event,
        "{what}: typed event {}",
        want.event.key
    );
}

fn keys(events: &[StoredEvent]) -> Vec<(u64, String)> {
    events
        .iter()
        .map(|e| (e.index, e.key().to_string()))
        .collect()
}

fn all_leaves(events: &[NewEvent]) -> Vec<Hash> {
    events.iter().map(|e| e.leaf_hash).collect()
}

// ---------------------------------------------------------------------------------------------
// Checks

/// A fresh store is empty: size 0, the empty root, nothing to read, find or scan.
pub fn check_empty_store<H: Harness>(h: &H) {
    let s = h.fresh();
    assert_log(&s, &[], None, "fresh store");
    assert_eq!(
        ok("root()", s.root()),
        EMPTY_ROOT,
        "empty root is SHA-256(\"\")"
    );
    assert!(
        ok("event_at(0)", s.event_at(0)).is_none(),
        "event_at(0) on an empty log"
    );
    assert!(
        ok("get", s.get(&EventKey::new("servicedesk", "req-1"))).is_none(),
        "get on an empty log"
    );
    assert!(ok("lookup", s.lookup(Lookup::Id("req-1"))).is_empty());
    assert!(ok("leaf_hashes(0, 0)", s.leaf_hashes(0, 0)).is_empty());
    assert!(
        s.leaf_hashes(0, 1).is_err(),
        "leaf_hashes(0, 1) on an empty log must fail"
    );
    let mut visited = 0u64;
    ok(
        "scan(0)",
        s.scan(0, &mut |_, _, _| {
            visited += 1;
            Ok(())
        }),
    );
    assert_eq!(visited, 0, "scan of an empty log visited events");
    assert!(ok("quarantine()", s.quarantine()).is_empty());
    assert!(ok("latest_checkpoint()", s.latest_checkpoint()).is_none());
    assert!(ok("checkpoints()", s.checkpoints()).is_empty());
}

/// An empty batch is fine on an empty and on a non-empty log, and changes nothing.
pub fn check_empty_batch<H: Harness>(h: &H) {
    let mut s = h.fresh();
    let out = append(&mut s, &[], &[]);
    assert_eq!(
        out,
        BatchOutcome {
            accepted: 0,
            duplicates: 0,
            conflicts: vec![],
            quarantined: 0,
            size: 0,
            root: EMPTY_ROOT
        },
        "empty batch on an empty log"
    );
    let events = sample_events();
    append(&mut s, &events[..4], &[]);
    let out = append(&mut s, &[], &[]);
    assert_eq!((out.accepted, out.duplicates, out.quarantined), (0, 0, 0));
    assert_log(
        &s,
        &all_leaves(&events[..4]),
        Some(&out),
        "empty batch after 4 events",
    );
    assert!(ok("quarantine()", s.quarantine()).is_empty());
}

/// Appended events read back identically by index and by key.
pub fn check_append_and_read_back<H: Harness>(h: &H) {
    let mut s = h.fresh();
    let events = sample_events();
    let out = append(&mut s, &events, &[]);
    assert_eq!(out.accepted, events.len() as u64, "accepted");
    assert_eq!(out.duplicates, 0, "duplicates");
    assert!(out.conflicts.is_empty(), "conflicts: {:?}", out.conflicts);
    assert_eq!(out.quarantined, 0, "quarantined");
    assert_log(
        &s,
        &all_leaves(&events),
        Some(&out),
        "after the sample batch",
    );
    for (i, want) in (0u64..).zip(&events) {
        let by_index = ok("event_at", s.event_at(i))
            .unwrap_or_else(|| panic!("event_at({i}) is None, expected {}", want.event.key));
        assert_stored(&by_index, want, i, "event_at");
        let by_key = ok("get", s.get(&want.event.key))
            .unwrap_or_else(|| panic!("get({}) is None", want.event.key));
        assert_stored(&by_key, want, i, "get");
    }
    let n = events.len() as u64;
    assert!(
        ok("event_at(size)", s.event_at(n)).is_none(),
        "event_at(size) must be None"
    );
    assert!(
        ok("event_at(huge)", s.event_at(u64::MAX)).is_none(),
        "event_at(u64::MAX)"
    );
    assert!(ok("quarantine()", s.quarantine()).is_empty());
}

/// `get` keys on source and id together; unknown keys are `None`.
pub fn check_get_distinguishes_sources<H: Harness>(h: &H) {
    let mut s = h.fresh();
    let events = sample_events();
    append(&mut s, &events, &[]);
    let a =
        ok("get", s.get(&EventKey::new("agent-runtime", "act-1"))).expect("agent-runtime#act-1");
    assert_stored(&a, &events[4], 4, "get(agent-runtime#act-1)");
    let b =
        ok("get", s.get(&EventKey::new("actions-runner", "act-1"))).expect("actions-runner#act-1");
    assert_stored(&b, &events[8], 8, "get(actions-runner#act-1)");
    for missing in [
        EventKey::new("servicedesk", "act-1"),
        EventKey::new("agent-runtime", "act-9"),
        EventKey::new("agent-runtim", "act-1"),
        EventKey::new("agent-runtime", "act-"),
    ] {
        assert!(
            ok("get", s.get(&missing)).is_none(),
            "get({missing}) must be None"
        );
    }
}

/// After each of several batches of different sizes, size and root equal the model's.
pub fn check_root_matches_merkle_after_each_batch<H: Harness>(h: &H) {
    let mut s = h.fresh();
    let events = synthetic_events(0, 1 + 2 + 3 + 5 + 8 + 13 + 21 + 34 + 1);
    let mut model: Vec<Hash> = Vec::new();
    let mut at = 0usize;
    for n in [1usize, 2, 3, 5, 8, 13, 21, 34, 1] {
        let batch = &events[at..at + n];
        let out = append(&mut s, batch, &[]);
        assert_eq!(out.accepted, n as u64, "batch of {n}: accepted");
        model.extend(all_leaves(batch));
        assert_log(
            &s,
            &model,
            Some(&out),
            &format!("after a batch of {n} (size {})", model.len()),
        );
        at += n;
    }
}

/// Re-appending stored events counts them as duplicates and changes nothing.
pub fn check_duplicates_change_nothing<H: Harness>(h: &H) {
    let mut s = h.fresh();
    let events = sample_events();
    append(&mut s, &events, &[]);
    let model = all_leaves(&events);
    let out = append(&mut s, &events, &[]);
    assert_eq!(out.accepted, 0, "re-append: accepted");
    assert_eq!(out.duplicates, events.len() as u64, "re-append: duplicates");
    assert!(
        out.conflicts.is_empty(),
        "re-append: conflicts {:?}",
        out.conflicts
    );
    assert_eq!(out.quarantined, 0, "re-append: quarantined");
    assert_log(&s, &model, Some(&out), "after re-appending every event");
    // A duplicate with another origin is still a duplicate (origin is not content).
    let mut again = events[3].clone();
    again.origin = Some(origin("other.ndjson", 99));
    let out = append(&mut s, &[again], &[]);
    assert_eq!((out.accepted, out.duplicates, out.quarantined), (0, 1, 0));
    assert_log(
        &s,
        &model,
        Some(&out),
        "after a duplicate from another file",
    );
    assert!(
        ok("quarantine()", s.quarantine()).is_empty(),
        "duplicates are not quarantined"
    );
    let stored = ok("event_at(3)", s.event_at(3)).expect("event 3");
    assert_stored(&stored, &events[3], 3, "event_at(3) after duplicates");
}

/// A stored `source#id` with other bytes is a conflict: quarantined with the line's origin
/// and a reason naming the stored event, never stored; the original stays intact.
pub fn check_conflict_is_quarantined<H: Harness>(h: &H) {
    let mut s = h.fresh();
    let events = sample_events();
    append(&mut s, &events[..3], &[]);
    let model = all_leaves(&events[..3]);
    let line = SAMPLE_LINES[1].replace("2026-06-06T09:15:00Z", "2026-06-07T09:15:00Z");
    let conflicting = new_event(&line, Some(origin("second.ndjson", 7)));
    assert_eq!(conflicting.event.key, events[1].event.key);
    assert_ne!(conflicting.canonical, events[1].canonical);

    let out = append(&mut s, std::slice::from_ref(&conflicting), &[]);
    assert_eq!(out.accepted, 0, "conflict: accepted");
    assert_eq!(out.duplicates, 0, "conflict: duplicates");
    assert_eq!(out.quarantined, 1, "conflict: quarantined");
    assert_eq!(
        out.conflicts.len(),
        1,
        "conflict: conflicts {:?}",
        out.conflicts
    );
    let c = &out.conflicts[0];
    assert_conflict(c, &conflicting, "idp#del-1", &origin("second.ndjson", 7));
    assert_log(&s, &model, Some(&out), "after a conflict");
    assert_eq!(
        ok("quarantine()", s.quarantine()),
        vec![c.clone()],
        "quarantine after a conflict"
    );
    let kept = ok("get", s.get(&events[1].event.key)).expect("idp#del-1 after the conflict");
    assert_stored(&kept, &events[1], 1, "the original after a conflict");
}

fn assert_conflict(c: &Rejected, offending: &NewEvent, key: &str, from: &LineOrigin) {
    assert_eq!(&c.origin, from, "a conflict keeps the event's origin");
    assert!(
        c.reason.contains(key),
        "conflict reason must name {key}: {:?}",
        c.reason
    );
    assert!(
        c.reason.to_lowercase().contains("conflict"),
        "conflict reason must say conflict: {:?}",
        c.reason
    );
    assert!(
        !c.reason.ends_with('.'),
        "reasons have no trailing period: {:?}",
        c.reason
    );
    let text = String::from_utf8_lossy(&offending.canonical);
    let excerpt = c.excerpt.trim_end_matches('…').trim_end_matches("...");
    assert!(
        !excerpt.is_empty() && text.starts_with(excerpt),
        "the excerpt must be the start of the conflicting canonical bytes: {:?}",
        c.excerpt
    );
    assert!(
        c.excerpt.len() <= 1024,
        "excerpt is {} bytes long",
        c.excerpt.len()
    );
}

/// Inside one batch: a repeat is a duplicate, other bytes under the same key a conflict;
/// and against stored events in the same batch as new ones.
pub fn check_duplicate_and_conflict_in_one_batch<H: Harness>(h: &H) {
    let mut s = h.fresh();
    let events = sample_events();
    let conflicting = new_event(
        &SAMPLE_LINES[0].replace("SEC-4411", "SEC-9999"),
        Some(origin("batch.ndjson", 4)),
    );
    let batch = vec![
        events[0].clone(),
        events[1].clone(),
        events[0].clone(),
        conflicting.clone(),
        events[2].clone(),
    ];
    let out = append(&mut s, &batch, &[]);
    assert_eq!(out.accepted, 3, "accepted in {:?}", out);
    assert_eq!(out.duplicates, 1, "duplicates");
    assert_eq!(out.quarantined, 1, "quarantined");
    assert_eq!(out.conflicts.len(), 1, "conflicts");
    assert_conflict(
        &out.conflicts[0],
        &conflicting,
        "servicedesk#req-1",
        &origin("batch.ndjson", 4),
    );
    let model = all_leaves(&events[..3]);
    assert_log(
        &s,
        &model,
        Some(&out),
        "after a batch with a duplicate and a conflict",
    );
    for i in 0..3u64 {
        let e = ok("event_at", s.event_at(i)).expect("stored");
        assert_stored(&e, &events[i as usize], i, "in-batch duplicate/conflict");
    }

    // Stored events, new events, and a conflict against a stored one, all in one batch.
    let conflicting2 = new_event(
        &SAMPLE_LINES[2].replace("\"max_uses\":1", "\"max_uses\":2"),
        Some(origin("batch.ndjson", 9)),
    );
    let batch = vec![
        events[3].clone(),
        events[1].clone(),
        conflicting2.clone(),
        events[4].clone(),
        events[3].clone(),
    ];
    let out = append(&mut s, &batch, &[]);
    assert_eq!(
        (out.accepted, out.duplicates, out.quarantined),
        (2, 2, 1),
        "{out:?}"
    );
    assert_conflict(
        &out.conflicts[0],
        &conflicting2,
        "pam#del-2",
        &origin("batch.ndjson", 9),
    );
    assert_log(
        &s,
        &all_leaves(&events[..5]),
        Some(&out),
        "second mixed batch",
    );
    let q = ok("quarantine()", s.quarantine());
    assert_eq!(q.len(), 2, "quarantine {q:?}");
    assert!(
        q[0].reason.contains("servicedesk#req-1"),
        "first conflict first: {q:?}"
    );
    assert_eq!(q[1], out.conflicts[0], "second conflict second");
}

/// Rejected lines go to the quarantine in order (before the batch's conflicts), do not
/// touch the log, and survive reopening.
pub fn check_rejected_lines_are_quarantined_in_order<H: Harness>(h: &H) {
    let mut s = h.fresh();
    let r1 = rejected(
        "in.ndjson",
        2,
        "line is not json: expected value at column 1",
        "{oops",
    );
    let r2 = rejected(
        "in.ndjson",
        5,
        "missing required field `time`",
        "{\"id\":\"x\"}",
    );
    let r3 = rejected(
        "-",
        1,
        "unknown event type `coffee`",
        "{\"type\":\"coffee\"}",
    );
    let out = append(&mut s, &[], &[r1.clone(), r2.clone()]);
    assert_eq!(
        (out.accepted, out.duplicates, out.quarantined),
        (0, 0, 2),
        "{out:?}"
    );
    assert!(out.conflicts.is_empty(), "rejected lines are not conflicts");
    assert_log(&s, &[], Some(&out), "after rejected lines only");
    assert_eq!(
        ok("quarantine()", s.quarantine()),
        vec![r1.clone(), r2.clone()]
    );

    let events = sample_events();
    let conflicting = new_event(
        &SAMPLE_LINES[0].replace("Rotate", "Reset"),
        Some(origin("in.ndjson", 8)),
    );
    let out = append(
        &mut s,
        &[events[0].clone(), conflicting.clone(), events[1].clone()],
        std::slice::from_ref(&r3),
    );
    assert_eq!(
        (out.accepted, out.duplicates, out.quarantined),
        (2, 0, 2),
        "{out:?}"
    );
    assert_log(
        &s,
        &all_leaves(&events[..2]),
        Some(&out),
        "after events and a rejected line",
    );
    let q = ok("quarantine()", s.quarantine());
    assert_eq!(q.len(), 4, "quarantine {q:?}");
    assert_eq!(
        &q[..3],
        &[r1.clone(), r2.clone(), r3.clone()],
        "rejected lines in order"
    );
    assert_eq!(q[3], out.conflicts[0], "then the batch's conflict");

    let s = h.reopen(s);
    assert_eq!(
        ok("quarantine()", s.quarantine()),
        q,
        "quarantine after reopen"
    );
    assert_log(&s, &all_leaves(&events[..2]), None, "after reopen");
}

/// The expected answer of every lookup over [`sample_events`], as log indexes.
pub fn sample_lookups() -> Vec<(Lookup<'static>, Vec<u64>)> {
    use Lookup::*;
    vec![
        (Id("act-1"), vec![4, 8]),
        (Id("req-1"), vec![0]),
        (Id("del-2"), vec![2]),
        (Id("act"), vec![]),
        (Issued("jti:1"), vec![1]),
        (Issued("acc:2"), vec![2]),
        (Issued("sm:3"), vec![7]),
        (Issued("acc:5"), vec![12]),
        (Issued("gh:9"), vec![]),
        (Used("acc:2"), vec![4]),
        (Used("jti:1"), vec![10]),
        (Used("gh:9"), vec![8]),
        (Used("sm:3"), vec![]),
        (Revoked("acc:2"), vec![6]),
        (Revoked("jti:1"), vec![]),
        (DerivedFrom("jti:1"), vec![2]),
        (DerivedFrom("acc:2"), vec![12]),
        (DerivedFrom("acc:5"), vec![]),
        (Chain("run-1"), vec![4, 5, 7, 10]),
        (Chain("run-2"), vec![8]),
        (Chain("run"), vec![]),
        (Resource("postgres://orders-db"), vec![4, 5, 9]),
        (Resource("postgres://orders-db/users"), vec![10]),
        (Resource("postgres://"), vec![]),
        (ReferencesId("req-1"), vec![1, 2, 3, 10]),
        (ReferencesId("act-1"), vec![5]),
        (ReferencesId("del-2"), vec![4, 12]),
        (ReferencesId("eff-1"), vec![]),
        (ReferencesId("servicedesk#req-1"), vec![]),
        (Principal("alice@example.com"), vec![0, 1, 6]),
        (Principal("rotation-agent"), vec![1, 2, 4, 7, 10, 12]),
        (Principal("bob@example.com"), vec![3, 11]),
        (Principal("build-bot"), vec![8, 12]),
        (Principal("alice"), vec![]),
        (Secret("prod/db"), vec![7]),
        (Secret("prod/db-replica"), vec![11]),
        (Secret("prod"), vec![]),
    ]
}

fn assert_lookups<S: Store>(s: &S, events: &[NewEvent], when: &str) {
    for (by, want) in sample_lookups() {
        let got = ok(&format!("lookup({by:?})"), s.lookup(by));
        let want_keys: Vec<(u64, String)> = want
            .iter()
            .map(|&i| (i, events[i as usize].event.key.to_string()))
            .collect();
        assert_eq!(
            keys(&got),
            want_keys,
            "{when}: lookup({by:?}) (index, key) in log order"
        );
        for e in &got {
            assert_stored(
                e,
                &events[e.index as usize],
                e.index,
                &format!("lookup({by:?})"),
            );
        }
    }
}

/// Every [`Lookup`] variant returns exactly the right events, in log order.
pub fn check_lookups<H: Harness>(h: &H) {
    let mut s = h.fresh();
    let events = sample_events();
    // Two batches, so that lookups span batches.
    append(&mut s, &events[..5], &[]);
    append(&mut s, &events[5..], &[]);
    for (by, want) in sample_lookups() {
        assert_eq!(
            model_lookup(&events, by),
            want,
            "the suite's own table disagrees with its model for {by:?}"
        );
    }
    assert_lookups(&s, &events, "sample chain");
    // Duplicates and conflicts add nothing to any index.
    let conflicting = new_event(
        &SAMPLE_LINES[4].replace("\"chain\":\"run-1\"", "\"chain\":\"run-3\""),
        Some(origin("x.ndjson", 1)),
    );
    let out = append(&mut s, &[events[4].clone(), conflicting], &[]);
    assert_eq!(
        (out.accepted, out.duplicates, out.quarantined),
        (0, 1, 1),
        "{out:?}"
    );
    assert!(
        ok("lookup", s.lookup(Lookup::Chain("run-3"))).is_empty(),
        "a conflict was indexed"
    );
    assert_lookups(&s, &events, "after a duplicate and a conflict");
}

/// `leaf_hashes` returns exact ranges; empty ranges are empty; out-of-range is an error.
pub fn check_leaf_hashes<H: Harness>(h: &H) {
    let mut s = h.fresh();
    let events = synthetic_events(0, 37);
    append(&mut s, &events[..20], &[]);
    append(&mut s, &events[20..], &[]);
    let model = all_leaves(&events);
    let n = model.len() as u64;
    for (a, b) in [
        (0, n),
        (0, 1),
        (2, 5),
        (19, 21),
        (36, 37),
        (0, 20),
        (20, 37),
    ] {
        let got = ok(&format!("leaf_hashes({a}, {b})"), s.leaf_hashes(a, b));
        assert_eq!(got, model[a as usize..b as usize], "leaf_hashes({a}, {b})");
    }
    for a in [0, 5, n] {
        assert!(
            ok("leaf_hashes(a, a)", s.leaf_hashes(a, a)).is_empty(),
            "leaf_hashes({a}, {a}) must be empty"
        );
    }
    for (a, b) in [
        (0, n + 1),
        (n, n + 1),
        (n + 1, n + 1),
        (5, 3),
        (n + 5, n + 9),
        (0, u64::MAX),
    ] {
        assert!(
            s.leaf_hashes(a, b).is_err(),
            "leaf_hashes({a}, {b}) on a log of size {n} must be an error"
        );
    }
}

/// `scan` visits every event from `start`, in order, with stored bytes and leaf hashes;
/// a callback error stops it and comes back.
pub fn check_scan<H: Harness>(h: &H) {
    let mut s = h.fresh();
    let events = synthetic_events(0, 25);
    append(&mut s, &events[..10], &[]);
    append(&mut s, &events[10..], &[]);
    for start in [0u64, 1, 10, 24, 25, 26, 1000] {
        let mut seen: Vec<(u64, Vec<u8>, Hash)> = Vec::new();
        ok(
            &format!("scan({start})"),
            s.scan(start, &mut |i, bytes, hash| {
                seen.push((i, bytes.to_vec(), *hash));
                Ok(())
            }),
        );
        let want: Vec<(u64, Vec<u8>, Hash)> = (0u64..)
            .zip(&events)
            .skip(start as usize)
            .map(|(i, e)| (i, e.canonical.clone(), e.leaf_hash))
            .collect();
        assert_eq!(
            seen.len(),
            want.len(),
            "scan({start}) visited {} events",
            seen.len()
        );
        assert!(
            seen == want,
            "scan({start}) visited other indexes, bytes or hashes"
        );
    }
    let mut visited = 0u64;
    let r = s.scan(0, &mut |i, _, _| {
        visited += 1;
        if i == 2 {
            Err(StoreError::Backend("stop here".into()))
        } else {
            Ok(())
        }
    });
    match r {
        Err(e) => assert!(
            e.to_string().contains("stop here"),
            "scan returned another error: {e}"
        ),
        Ok(()) => panic!("scan swallowed the callback's error"),
    }
    assert_eq!(visited, 3, "scan went on after the callback failed");
}

/// Checkpoints: latest is the largest size, the list is sorted by size, identical re-adds
/// are no-ops, and they survive reopening.
pub fn check_checkpoints<H: Harness>(h: &H) {
    let mut s = h.fresh();
    let events = synthetic_events(0, 12);
    append(&mut s, &events, &[]);
    let model = all_leaves(&events);
    let cp = |size: usize| StoredCheckpoint {
        size: size as u64,
        root: root(&model[..size]),
        note: format!(
            "custody.example/log\n{size}\n{}\n\n— custody.example/log AAAA{size:04}\n",
            hex(&root(&model[..size]))
        ),
    };
    assert!(ok("latest_checkpoint()", s.latest_checkpoint()).is_none());
    for size in [3, 12, 7] {
        ok("add_checkpoint", s.add_checkpoint(&cp(size)));
    }
    assert_eq!(
        ok("latest_checkpoint()", s.latest_checkpoint()),
        Some(cp(12)),
        "latest"
    );
    assert_eq!(
        ok("checkpoints()", s.checkpoints()),
        vec![cp(3), cp(7), cp(12)],
        "sorted"
    );
    ok(
        "re-adding an identical checkpoint",
        s.add_checkpoint(&cp(7)),
    );
    assert_eq!(
        ok("checkpoints()", s.checkpoints()).len(),
        3,
        "an identical re-add is a no-op"
    );
    let s = h.reopen(s);
    assert_eq!(
        ok("latest_checkpoint()", s.latest_checkpoint()),
        Some(cp(12)),
        "after reopen"
    );
    assert_eq!(
        ok("checkpoints()", s.checkpoints()),
        vec![cp(3), cp(7), cp(12)],
        "after reopen"
    );
}

/// Size, root, events, lookups, quarantine and checkpoints survive reopening, and appends
/// after reopening extend the same tree.
pub fn check_everything_survives_reopen<H: Harness>(h: &H) {
    let mut s = h.fresh();
    let events = sample_events();
    let r1 = rejected("a.ndjson", 3, "line is not json", "nope");
    append(&mut s, &events[..6], std::slice::from_ref(&r1));
    append(&mut s, &events[6..], &[]);
    let model = all_leaves(&events);
    let checkpoint = StoredCheckpoint {
        size: model.len() as u64,
        root: root(&model),
        note: "custody.example/log\n13\nroot\n".into(),
    };
    ok("add_checkpoint", s.add_checkpoint(&checkpoint));

    let mut s = h.reopen(s);
    assert_log(&s, &model, None, "after reopen");
    for (i, want) in (0u64..).zip(&events) {
        let got = ok("event_at", s.event_at(i)).unwrap_or_else(|| panic!("event {i} lost"));
        assert_stored(&got, want, i, "after reopen");
    }
    assert_lookups(&s, &events, "after reopen");
    assert_eq!(
        ok("quarantine()", s.quarantine()),
        vec![r1],
        "quarantine after reopen"
    );
    assert_eq!(
        ok("checkpoints()", s.checkpoints()),
        vec![checkpoint.clone()]
    );

    // Appends after reopening continue the same tree (the stored frontier is right).
    let more = synthetic_events(600, 7);
    let out = append(&mut s, &more, &[]);
    let mut model = model;
    model.extend(all_leaves(&more));
    assert_log(&s, &model, Some(&out), "append after reopen");
    let out = append(&mut s, &events, &[]);
    assert_eq!(
        out.duplicates,
        events.len() as u64,
        "duplicates after reopen"
    );
    let s = h.reopen(s);
    assert_log(&s, &model, None, "second reopen");
    assert_eq!(
        ok("latest_checkpoint()", s.latest_checkpoint()),
        Some(checkpoint)
    );
}

/// 50 batches of 100: after each, the log root equals the Merkle root of the model
/// `Vec<Leaf>`; at the end every leaf hash matches, and a few events read back.
pub fn check_many_batches_match_the_model<H: Harness>(h: &H) {
    let mut s = h.fresh();
    let mut model: Vec<Hash> = Vec::new();
    let mut all: Vec<NewEvent> = Vec::new();
    for b in 0..50u64 {
        let batch = synthetic_events(b * 100, 100);
        let out = append(&mut s, &batch, &[]);
        assert_eq!(out.accepted, 100, "batch {b}: accepted");
        model.extend(all_leaves(&batch));
        assert_log(&s, &model, Some(&out), &format!("after batch {b}"));
        all.extend(batch);
        // Lookups stay exact over many batches, not only after two: a backend may keep its
        // latest batches' index apart and fold it in now and then.
        if b % 3 == 0 || b == 49 {
            assert_lookups_match_the_model(&s, &all, &format!("after batch {b}"));
        }
    }
    let n = model.len() as u64;
    assert_eq!(
        ok("leaf_hashes", s.leaf_hashes(0, n)),
        model,
        "every leaf hash"
    );
    for i in [0u64, 1, 99, 100, 2500, 4999] {
        let got = ok("event_at", s.event_at(i)).unwrap_or_else(|| panic!("event {i} missing"));
        assert_stored(&got, &all[i as usize], i, "many batches");
    }
    let s = h.reopen(s);
    assert_log(&s, &model, None, "many batches, after reopen");
}

// ---------------------------------------------------------------------------------------------
// The model

/// Whether `event` is found by `by`: the meaning of each [`Lookup`], computed from the typed
/// event alone.
pub fn lookup_matches(event: &Event, by: Lookup<'_>) -> bool {
    let t = event.event_type();
    match by {
        Lookup::Id(id) => event.key.id == id,
        Lookup::Issued(c) => {
            matches!(t, EventType::Delegation | EventType::SecretAccess)
                && event.credential_id() == Some(c)
        }
        Lookup::Used(c) => t == EventType::Action && event.credential_id() == Some(c),
        Lookup::Revoked(c) => t == EventType::Revocation && event.credential_id() == Some(c),
        Lookup::DerivedFrom(c) => event.parent_credential() == Some(c),
        Lookup::Chain(c) => event.chain.as_deref() == Some(c),
        Lookup::Resource(r) => {
            matches!(t, EventType::Action | EventType::Effect) && event.resource() == Some(r)
        }
        Lookup::ReferencesId(id) => event.references().iter().any(|(_, r)| r.id == id),
        Lookup::Principal(p) => model_principals(event).contains(&p),
        Lookup::Secret(secret) => {
            matches!(&event.body, EventBody::SecretAccess(a) if a.secret == secret)
        }
    }
}

/// The principals an event names (actor, initiator, delegator, delegate, approver, secret
/// reader, revoker).
pub fn model_principals(event: &Event) -> Vec<&str> {
    match &event.body {
        EventBody::Request(r) => vec![r.initiator.id.as_str()],
        EventBody::Delegation(d) => vec![d.from.id.as_str(), d.to.id.as_str()],
        EventBody::Approval(a) => vec![a.approver.id.as_str()],
        EventBody::Action(a) => vec![a.actor.id.as_str()],
        EventBody::SecretAccess(a) => vec![a.principal.id.as_str()],
        EventBody::Revocation(r) => r.by.iter().map(|p| p.id.as_str()).collect(),
        EventBody::Effect(_) | EventBody::Decision(_) => vec![],
    }
}

/// The log indexes `by` must return over `log` (the accepted events, in log order).
pub fn model_lookup(log: &[NewEvent], by: Lookup<'_>) -> Vec<u64> {
    (0u64..)
        .zip(log)
        .filter(|(_, e)| lookup_matches(&e.event, by))
        .map(|(i, _)| i)
        .collect()
}

/// Every lookup of a few events of `log` (the first two, the last two and some between)
/// returns what the model says, in log order.
pub fn assert_lookups_match_the_model<S: Store>(s: &S, log: &[NewEvent], when: &str) {
    let n = log.len();
    for i in [0, 1, n / 3, n / 2, n.saturating_sub(2), n.saturating_sub(1)] {
        let Some(e) = log.get(i) else { continue };
        for by in lookups_of(&e.event) {
            let got: Vec<u64> = ok("lookup", s.lookup(by)).iter().map(|e| e.index).collect();
            assert_eq!(got, model_lookup(log, by), "{when}: lookup({by:?})");
        }
    }
}

/// Every lookup an event's own fields give rise to.
fn lookups_of(event: &Event) -> Vec<Lookup<'_>> {
    let mut out = vec![Lookup::Id(&event.key.id)];
    if let Some(c) = event.credential_id() {
        out.extend([
            Lookup::Issued(c),
            Lookup::Used(c),
            Lookup::Revoked(c),
            Lookup::DerivedFrom(c),
        ]);
    }
    if let Some(c) = event.parent_credential() {
        out.extend([Lookup::Issued(c), Lookup::DerivedFrom(c)]);
    }
    if let Some(c) = &event.chain {
        out.push(Lookup::Chain(c));
    }
    if let Some(r) = event.resource() {
        out.push(Lookup::Resource(r));
    }
    for (_, r) in event.references() {
        out.push(Lookup::ReferencesId(&r.id));
    }
    out.extend(model_principals(event).into_iter().map(Lookup::Principal));
    if let EventBody::SecretAccess(a) = &event.body {
        out.push(Lookup::Secret(&a.secret));
    }
    out
}

/// The log as the model sees it: accepted events in order, and where each key is.
#[derive(Default)]
struct Model {
    log: Vec<NewEvent>,
    at: HashMap<EventKey, usize>,
    quarantine: Vec<(LineOrigin, String)>,
}

impl Model {
    /// Appends `batch` to the model and to the store, and compares the outcomes.
    fn append<S: Store>(&mut self, s: &mut S, batch: &[NewEvent], when: &str) {
        let (mut accepted, mut duplicates) = (0u64, 0u64);
        let mut conflicts: Vec<(LineOrigin, String)> = Vec::new();
        for e in batch {
            match self.at.get(&e.event.key) {
                Some(&i) if self.log[i].canonical == e.canonical => duplicates += 1,
                Some(_) => conflicts.push((
                    e.origin.clone().expect("model events have origins"),
                    e.event.key.to_string(),
                )),
                None => {
                    self.at.insert(e.event.key.clone(), self.log.len());
                    self.log.push(e.clone());
                    accepted += 1;
                }
            }
        }
        let out = append(s, batch, &[]);
        assert_eq!(
            (out.accepted, out.duplicates, out.quarantined),
            (accepted, duplicates, conflicts.len() as u64),
            "{when}: (accepted, duplicates, quarantined)"
        );
        assert_eq!(out.conflicts.len(), conflicts.len(), "{when}: conflicts");
        for (got, (origin, key)) in out.conflicts.iter().zip(&conflicts) {
            assert_eq!(&got.origin, origin, "{when}: conflicts in batch order");
            assert!(
                got.reason.contains(key.as_str()),
                "{when}: {:?} must name {key}",
                got.reason
            );
        }
        self.quarantine.extend(conflicts);
        assert_log(s, &all_leaves(&self.log), Some(&out), when);
    }

    fn check_store<S: Store>(&self, s: &S, when: &str) {
        assert_log(s, &all_leaves(&self.log), None, when);
        let q = ok("quarantine()", s.quarantine());
        let got: Vec<&LineOrigin> = q.iter().map(|r| &r.origin).collect();
        let want: Vec<&LineOrigin> = self.quarantine.iter().map(|(o, _)| o).collect();
        assert_eq!(got, want, "{when}: quarantine origins in order");
        // Every lookup that every 23rd event gives rise to, against the model.
        for e in self.log.iter().step_by(23) {
            for by in lookups_of(&e.event) {
                let got: Vec<u64> = ok("lookup", s.lookup(by)).iter().map(|e| e.index).collect();
                assert_eq!(got, model_lookup(&self.log, by), "{when}: lookup({by:?})");
            }
        }
        for (i, e) in (0u64..).zip(&self.log).step_by(41) {
            let got = ok("event_at", s.event_at(i)).unwrap_or_else(|| panic!("event {i} missing"));
            assert_stored(&got, e, i, when);
        }
    }
}

/// A copy of `e` with other content under the same key.
fn conflicting_copy(e: &NewEvent, n: u64) -> NewEvent {
    let text = String::from_utf8(e.canonical.clone()).expect("canonical JSON is UTF-8");
    let line = text.replacen('{', &format!("{{\"note\":\"conflicting copy {n}\","), 1);
    new_event(&line, Some(origin("conflicts.ndjson", n)))
}

/// Batches of hundreds of events with duplicates and conflicts scattered through them, of
/// stored events and of events earlier in the same batch (the bulk paths of a backend),
/// checked against a model: outcome, size, root, quarantine order and every lookup.
pub fn check_large_batches_with_duplicates_and_conflicts<H: Harness>(h: &H) {
    let mut s = h.fresh();
    let mut model = Model::default();
    let stored = synthetic_events(0, 150);
    model.append(&mut s, &stored, "first batch");
    let fresh = synthetic_events(150, 300);
    let mut batch: Vec<NewEvent> = Vec::new();
    for (k, e) in (0u64..).zip(&fresh) {
        let k_ = k as usize;
        batch.push(e.clone());
        if k % 7 == 3 {
            batch.push(stored[k_ % 150].clone());
        }
        if k % 11 == 5 {
            batch.push(conflicting_copy(&stored[(k_ * 3) % 150], k));
        }
        if k % 13 == 8 {
            batch.push(fresh[k_ / 2].clone());
        }
        if k % 17 == 9 {
            batch.push(conflicting_copy(&fresh[k_ / 2], 1000 + k));
        }
    }
    assert!(batch.len() > 400, "the mixed batch is large");
    model.append(&mut s, &batch, "mixed batch");
    model.append(&mut s, &batch, "the mixed batch again");
    model.check_store(&s, "after the mixed batches");
    let s = h.reopen(s);
    model.check_store(&s, "after reopen");
}
