//! Linking rules of DESIGN §4 on small logs held in a real (in-memory) SQLite store.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use custody_chain::{render_text, EdgeKind, LinkConfig, Trace, TraceError};
use custody_ingest::Preparer;
use custody_model::Redactor;
use custody_store::{LineOrigin, Store};
use custody_store_sqlite::SqliteStore;

fn store(lines: &str) -> SqliteStore {
    let mut store = SqliteStore::open_in_memory().unwrap();
    let p = Preparer::new(Redactor::new(b"k"));
    let events: Vec<_> = lines
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            p.prepare_line(
                l,
                LineOrigin {
                    file: "t".into(),
                    line: i as u64 + 1,
                },
            )
            .unwrap_or_else(|r| panic!("line {}: {}", i + 1, r.reason))
        })
        .collect();
    let out = store.append_batch(&events, &[]).unwrap();
    assert_eq!(out.accepted as usize, events.len());
    store
}

fn trace(store: &SqliteStore, name: &str) -> Trace {
    Trace::of_event(store, name, &LinkConfig::default()).unwrap()
}

fn has_edge(t: &Trace, from: &str, to: &str, kind: EdgeKind) -> bool {
    t.edges
        .iter()
        .any(|e| e.from.to_string() == from && e.to.to_string() == to && e.kind == kind)
}

const T: &str = r#""time":"2026-06-06T09:00:00Z""#;

#[test]
fn a_bare_id_resolves_in_the_same_source_first_then_anywhere() {
    let s = store(&format!(
        r#"{{"id":"r1","type":"request",{T},"source":"desk","initiator":{{"id":"h","kind":"human"}}}}
{{"id":"a1","type":"action",{T},"source":"rt","actor":"bot","operation":"x:read","resource":"r","request":"r1"}}"#
    ));
    let t = trace(&s, "rt#a1");
    assert!(has_edge(&t, "desk#r1", "rt#a1", EdgeKind::Request));
    assert_eq!(t.human_initiators()[0].id, "h");
}

#[test]
fn a_bare_id_naming_two_events_is_ambiguous_and_links_nothing() {
    let s = store(&format!(
        r#"{{"id":"r1","type":"request",{T},"source":"desk-a","initiator":{{"id":"h1","kind":"human"}}}}
{{"id":"r1","type":"request",{T},"source":"desk-b","initiator":{{"id":"h2","kind":"human"}}}}
{{"id":"a1","type":"action",{T},"source":"rt","actor":"bot","operation":"x:read","resource":"r","request":"r1"}}"#
    ));
    let t = trace(&s, "rt#a1");
    assert_eq!(t.ambiguities.len(), 1);
    assert_eq!(t.ambiguities[0].candidates.len(), 2);
    assert!(t.edges.is_empty());
    assert!(t.missing().contains(&custody_chain::Link::Initiator));
    // Naming the start by a bare id that two events share is an error that lists them.
    match Trace::of_event(&s, "r1", &LinkConfig::default()) {
        Err(TraceError::AmbiguousEvent { candidates, .. }) => assert_eq!(candidates.len(), 2),
        other => panic!("expected ambiguity, got {other:?}"),
    }
}

#[test]
fn an_unlinked_event_joins_its_chain_by_inference() {
    let s = store(
        r#"{"id":"r1","type":"request","time":"2026-06-06T09:00:00Z","source":"desk","chain":"run-7","initiator":{"id":"h","kind":"human"}}
{"id":"a1","type":"action","time":"2026-06-06T09:00:10Z","source":"ci","chain":"run-7","actor":"pipe","operation":"x:list","resource":"r"}"#,
    );
    let t = trace(&s, "ci#a1");
    let edge = t
        .edges
        .iter()
        .find(|e| e.kind == EdgeKind::Chain)
        .expect("a chain edge");
    assert!(edge.inferred());
    assert_eq!(edge.from.to_string(), "desk#r1");
    assert!(render_text(&t).contains("┄chain (inferred)┄"));
}

#[test]
fn reference_cycles_terminate() {
    let s = store(&format!(
        r#"{{"id":"a","type":"request",{T},"source":"s","parents":["b"],"initiator":"x"}}
{{"id":"b","type":"request",{T},"source":"s","parents":["a"],"initiator":"y"}}"#
    ));
    let t = trace(&s, "s#a");
    assert_eq!(t.events.len(), 2);
    assert!(!render_text(&t).is_empty());
}

#[test]
fn a_hop_without_scope_breaks_authority_and_reads_need_no_effect() {
    let s = store(&format!(
        r#"{{"id":"d1","type":"delegation",{T},"source":"idp","from":{{"id":"h","kind":"human"}},"to":"bot","via":"token_exchange","credential":{{"id":"c1"}}}}
{{"id":"a1","type":"action",{T},"source":"rt","actor":"bot","credential":"c1","operation":"db:rows.list","resource":"db://x"}}
{{"id":"a2","type":"action",{T},"source":"rt","actor":"bot","credential":"c1","operation":"db:rows.delete","resource":"db://x","outcome":"failure"}}"#
    ));
    let t = trace(&s, "rt#a1");
    let names: Vec<&str> = t.missing().iter().map(|l| l.as_str()).collect();
    assert_eq!(
        names,
        ["authority"],
        "a read needs no effect; the hop has no scope"
    );
    let t = trace(&s, "rt#a2");
    let names: Vec<&str> = t.missing().iter().map(|l| l.as_str()).collect();
    assert_eq!(names, ["authority"], "a failed write needs no effect");
}

#[test]
fn an_unknown_credential_is_dangling_not_an_error() {
    let s = store(&format!(
        r#"{{"id":"a1","type":"action",{T},"source":"rt","actor":"bot","credential":"ghost","operation":"x:write","resource":"r"}}"#
    ));
    let t = trace(&s, "rt#a1");
    assert_eq!(t.dangling.len(), 1);
    assert_eq!(t.dangling[0].target, "ghost");
    let names: Vec<&str> = t.missing().iter().map(|l| l.as_str()).collect();
    assert_eq!(names, ["initiator", "authority", "impact"]);
    assert!(matches!(
        Trace::of_credential(&s, "nothing", &LinkConfig::default()),
        Err(TraceError::UnknownCredential(_))
    ));
    assert!(s.size().unwrap() == 1);
}

#[test]
fn an_action_above_the_start_keeps_its_recorded_impact() {
    // act-1 creates a key (eff-1 records it); the key's issuance names act-1 as a parent,
    // and act-2 uses the key. Walking up from act-2 reaches act-1: its effect must come
    // with it, or act-1 would be judged as missing an impact that is recorded.
    let s = store(
        r#"{"id":"req","type":"request","time":"2026-06-01T00:00:00Z","source":"t","initiator":{"id":"h@example.com","kind":"human"}}
{"id":"del-1","type":"delegation","time":"2026-06-01T00:00:01Z","source":"t","from":{"id":"h@example.com","kind":"human"},"to":{"id":"svc","kind":"service"},"via":"token_exchange","request":"req","credential":{"id":"tok-1"},"scope":[{"action":"*","resource":"*"}]}
{"id":"act-1","type":"action","time":"2026-06-01T00:00:02Z","source":"t","actor":{"id":"svc","kind":"service"},"credential":"tok-1","operation":"iam:CreateAccessKey","resource":"iam://user/b","request":"req"}
{"id":"eff-1","type":"effect","time":"2026-06-01T00:00:03Z","source":"t","system":"iam","resource":"iam://user/b","change":"created","caused_by":"act-1"}
{"id":"del-2","type":"delegation","time":"2026-06-01T00:00:04Z","source":"t","from":{"id":"svc","kind":"service"},"to":{"id":"b","kind":"service"},"via":"service_account_key","parents":["act-1"],"parent_credential":"tok-1","credential":{"id":"key-2"},"scope":[{"action":"*","resource":"*"}]}
{"id":"act-2","type":"action","time":"2026-06-01T00:00:05Z","source":"t","actor":{"id":"b","kind":"service"},"credential":"key-2","operation":"s3:GetObject","resource":"s3://x","request":"req"}"#,
    );
    let t = trace(&s, "act-2");
    assert!(
        t.events.values().any(|e| e.key().id == "eff-1"),
        "{:?}",
        t.to_json()
    );
    assert!(has_edge(&t, "t#act-1", "t#eff-1", EdgeKind::CausedBy));
    let chains = t.to_json()["chains"].clone();
    let act1 = chains
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["action"] == "t#act-1")
        .expect("act-1 is judged");
    assert!(
        !act1["missing"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "impact"),
        "{act1}"
    );
}
