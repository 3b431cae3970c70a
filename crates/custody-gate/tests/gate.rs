//! The gate against a real SQLite store: allow, and deny for every reason; the same answer
//! from store lookups (`custody check`) and from an index kept current as events arrive;
//! Cedar; bad input; decisions recorded and provable; the policy replayed over the log.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeMap;

use custody_gate::{policy_violations, CedarPolicy, FactIndex, Gate, GateDecision, ProposedAction};
use custody_ingest::Preparer;
use custody_merkle::{NoteSigner, NoteVerifier};
use custody_model::{Redactor, Timestamp, Verdict};
use custody_rules::{ApprovalRule, Policy};
use custody_store::Ledger;
use custody_store_sqlite::SqliteStore;
use serde_json::{json, Value};

const KEY: &[u8] = b"gate-test-key";

/// A chain: alice (human) asks; the idp gives the agent `jti:top` (refunds up to 500 on
/// orders/*, valid 10:00–11:00); the PAM narrows it to `tok:leaf` (refund.create on
/// orders/A, up to 300, three uses, two of them recorded) for the agent. Plus odds and ends the tests use.
const LOG: &str = r#"
{"id":"req-1","type":"request","time":"2026-06-03T10:00:00Z","source":"desk","initiator":{"id":"alice@example.com","kind":"human"},"ticket":"T-1","intent":"refund order A"}
{"id":"del-1","type":"delegation","time":"2026-06-03T10:00:05Z","source":"idp","request":"desk#req-1","from":{"id":"alice@example.com","kind":"human"},"to":{"id":"copilot","kind":"agent"},"via":"token_exchange","credential":{"id":"jti:top","not_before":"2026-06-03T10:00:00Z","expires":"2026-06-03T11:00:00Z"},"scope":[{"action":"erp:refund.*","resource":"erp://orders/*","limits":{"amount":500}}]}
{"id":"del-2","type":"delegation","time":"2026-06-03T10:00:10Z","source":"pam","request":"desk#req-1","from":{"id":"copilot","kind":"agent"},"to":{"id":"copilot","kind":"agent"},"via":"jit_grant","parent_credential":"jti:top","credential":{"id":"tok:leaf","max_uses":3,"expires":"2026-06-03T10:30:00Z"},"scope":[{"action":"erp:refund.create","resource":"erp://orders/A","limits":{"amount":300}}]}
{"id":"del-3","type":"delegation","time":"2026-06-03T10:00:20Z","source":"pam","from":{"id":"copilot","kind":"agent"},"to":{"id":"helper","kind":"agent"},"via":"jit_grant","parent_credential":"jti:top","credential":{"id":"tok:wide"},"scope":[{"action":"erp:*","resource":"*"}]}
{"id":"del-4","type":"delegation","time":"2026-06-03T10:00:30Z","source":"pam","from":{"id":"copilot","kind":"agent"},"to":{"id":"copilot","kind":"agent"},"via":"jit_grant","parent_credential":"jti:top","credential":{"id":"tok:revoked"},"scope":[{"action":"erp:refund.create","resource":"erp://orders/*"}]}
{"id":"rev-1","type":"revocation","time":"2026-06-03T10:05:00Z","source":"pam","credential":"tok:revoked"}
{"id":"del-5","type":"delegation","time":"2026-06-03T10:00:40Z","source":"idp","from":{"id":"bob@example.com","kind":"human"},"to":{"id":"copilot","kind":"agent"},"via":"token_exchange","credential":{"id":"jti:parent-revoked"},"scope":[{"action":"erp:*","resource":"*"}]}
{"id":"del-6","type":"delegation","time":"2026-06-03T10:00:50Z","source":"pam","from":{"id":"copilot","kind":"agent"},"to":{"id":"copilot","kind":"agent"},"via":"jit_grant","parent_credential":"jti:parent-revoked","credential":{"id":"tok:child"},"scope":[{"action":"erp:refund.create","resource":"*"}]}
{"id":"rev-2","type":"revocation","time":"2026-06-03T10:06:00Z","source":"idp","credential":"jti:parent-revoked"}
{"id":"sa-1","type":"secret_access","time":"2026-06-03T10:01:00Z","source":"vault://legacy","principal":{"id":"cron","kind":"service"},"manager":"vault://legacy","secret":"kv/erp","credential":"erp-key-1"}
{"id":"act-1","type":"action","time":"2026-06-03T10:10:00Z","source":"agent","actor":{"id":"copilot","kind":"agent"},"credential":"tok:leaf","operation":"erp:refund.create","resource":"erp://orders/A","params":{"amount":100},"request":"desk#req-1","outcome":"success"}
{"id":"act-2","type":"action","time":"2026-06-03T10:12:00Z","source":"agent","actor":{"id":"copilot","kind":"agent"},"credential":"tok:leaf","operation":"erp:refund.create","resource":"erp://orders/A","params":{"amount":120},"request":"desk#req-1","outcome":"success"}
{"id":"act-3","type":"action","time":"2026-06-03T10:20:00Z","source":"agent","actor":{"id":"cron","kind":"service"},"credential":"erp-key-1","operation":"erp:refund.create","resource":"erp://orders/Z","params":{"amount":900},"outcome":"success"}
"#;

struct Fixture {
    _dir: tempfile::TempDir,
    ledger: Ledger,
    redactor: Redactor,
}

fn fixture(extra: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("g.db")).unwrap();
    let signer = NoteSigner::generate("gate.test/log", [9; 32]).unwrap();
    let mut ledger = Ledger::new(Box::new(store), signer, "gate.test/log");
    let preparer = Preparer::new(Redactor::new(KEY));
    let events: Vec<_> = LOG
        .lines()
        .chain(extra.lines())
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            preparer
                .prepare_value(serde_json::from_str(l).unwrap(), None)
                .unwrap()
        })
        .collect();
    let outcome = ledger.append(&events, &[]).unwrap();
    assert_eq!(outcome.accepted as usize, events.len());
    Fixture {
        _dir: dir,
        ledger,
        redactor: Redactor::new(KEY),
    }
}

fn policy() -> Policy {
    Policy {
        max_depth: 4,
        approvals: vec![ApprovalRule::new(
            "erp:refund.*",
            "*",
            Some("amount".into()),
            Some(250.0),
        )],
        ..Policy::default()
    }
}

/// Decides twice, from store lookups and from an index of the whole log, and checks both
/// agree.
fn decide_with(fx: &Fixture, gate: &Gate, proposal: Value) -> GateDecision {
    let p = ProposedAction::parse(proposal, &fx.redactor).unwrap();
    let at = p.time.unwrap_or_else(Timestamp::now);
    let loaded =
        FactIndex::load_for(fx.ledger.store(), &p.action, &p.source, p.key.as_ref()).unwrap();
    let a = gate.decide(&loaded, &p, at);
    let mut full = FactIndex::new();
    let size = fx.ledger.store().size().unwrap();
    for i in 0..size {
        full.observe(&fx.ledger.store().event_at(i).unwrap().unwrap().event);
    }
    let b = gate.decide(&full, &p, at);
    assert_eq!(a.verdict, b.verdict, "lookups and full index disagree");
    assert_eq!(a.reasons, b.reasons, "lookups and full index disagree");
    a
}

fn decide(fx: &Fixture, proposal: Value) -> GateDecision {
    decide_with(fx, &Gate::new(policy(), None), proposal)
}

fn rules(d: &GateDecision) -> Vec<&str> {
    d.reasons.iter().map(|r| r.rule.as_str()).collect()
}

fn refund(credential: &str, actor: &str, amount: f64, resource: &str, time: &str) -> Value {
    json!({
        "time": time,
        "actor": {"id": actor, "kind": "agent"},
        "credential": credential,
        "operation": "erp:refund.create",
        "resource": resource,
        "params": {"amount": amount},
        "request": "desk#req-1",
    })
}

#[test]
fn a_covered_action_on_a_complete_chain_is_allowed() {
    let fx = fixture("");
    let d = decide(
        &fx,
        refund(
            "tok:leaf",
            "copilot",
            50.0,
            "erp://orders/A",
            "2026-06-03T10:15:00Z",
        ),
    );
    assert_eq!(d.verdict, Verdict::Allow, "{:?}", d.reasons);
    assert!(d.reasons.is_empty());
    assert_eq!(d.facts.depth, 2);
    assert_eq!(d.facts.hops, ["idp#del-1", "pam#del-2"]);
    assert_eq!(d.facts.initiator.as_ref().unwrap().id, "alice@example.com");
    assert_eq!(d.facts.uses, 2);
    assert!(d.facts.scope_covered);
}

#[test]
fn unknown_credentials_are_denied() {
    let fx = fixture("");
    let d = decide(
        &fx,
        refund(
            "tok:nobody-issued",
            "copilot",
            5.0,
            "erp://orders/A",
            "2026-06-03T10:15:00Z",
        ),
    );
    assert_eq!(rules(&d), ["unknown-credential"]);
    let mut none = refund(
        "x",
        "copilot",
        5.0,
        "erp://orders/A",
        "2026-06-03T10:15:00Z",
    );
    none.as_object_mut().unwrap().remove("credential");
    let d = decide(&fx, none);
    assert_eq!(rules(&d), ["unknown-credential"]);
    assert!(d.reasons[0].message.contains("presents no credential"));
}

#[test]
fn credentials_outside_their_validity_are_denied() {
    let fx = fixture("");
    let late = decide(
        &fx,
        refund(
            "tok:leaf",
            "copilot",
            5.0,
            "erp://orders/A",
            "2026-06-03T10:31:00Z",
        ),
    );
    assert_eq!(rules(&late), ["expired-credential"]);
    let early = decide(
        &fx,
        json!({"time":"2026-06-03T09:59:00Z","actor":{"id":"copilot","kind":"agent"},"credential":"jti:top","operation":"erp:refund.create","resource":"erp://orders/B","params":{"amount":5}}),
    );
    assert_eq!(rules(&early), ["expired-credential"]);
}

#[test]
fn revoked_credentials_and_children_of_revoked_ones_are_denied() {
    let fx = fixture("");
    let before = decide(
        &fx,
        refund(
            "tok:revoked",
            "copilot",
            5.0,
            "erp://orders/B",
            "2026-06-03T10:04:00Z",
        ),
    );
    assert_eq!(before.verdict, Verdict::Allow, "{:?}", before.reasons);
    let after = decide(
        &fx,
        refund(
            "tok:revoked",
            "copilot",
            5.0,
            "erp://orders/B",
            "2026-06-03T10:05:00Z",
        ),
    );
    assert_eq!(rules(&after), ["revoked-credential"]);
    let child = decide(
        &fx,
        refund(
            "tok:child",
            "copilot",
            5.0,
            "erp://orders/B",
            "2026-06-03T10:07:00Z",
        ),
    );
    assert_eq!(rules(&child), ["revoked-credential"]);
    assert!(child.reasons[0].message.contains("jti:parent-revoked"));
}

#[test]
fn a_credential_presented_by_another_principal_or_used_up_is_denied() {
    let fx = fixture("");
    let other = decide(
        &fx,
        refund(
            "tok:leaf",
            "intruder",
            5.0,
            "erp://orders/A",
            "2026-06-03T10:15:00Z",
        ),
    );
    assert_eq!(rules(&other), ["token-reuse"]);
    assert!(other.reasons[0].message.contains("issued to copilot"));
    let third = fixture(
        r#"{"id":"act-9","type":"action","time":"2026-06-03T10:13:00Z","source":"agent","actor":{"id":"copilot","kind":"agent"},"credential":"tok:leaf","operation":"erp:refund.create","resource":"erp://orders/A","params":{"amount":1},"outcome":"failure"}"#,
    );
    let used_up = decide(
        &third,
        refund(
            "tok:leaf",
            "copilot",
            5.0,
            "erp://orders/A",
            "2026-06-03T10:15:00Z",
        ),
    );
    assert_eq!(rules(&used_up), ["token-reuse"]);
    assert!(used_up.reasons[0].message.contains("allows 3 use(s)"));
    // Before the second recorded use, one remains.
    let earlier = decide(
        &fx,
        refund(
            "tok:leaf",
            "copilot",
            5.0,
            "erp://orders/A",
            "2026-06-03T10:11:00Z",
        ),
    );
    assert_eq!(earlier.verdict, Verdict::Allow, "{:?}", earlier.reasons);
}

#[test]
fn actions_outside_the_scope_or_its_limits_are_overreach() {
    let fx = fixture("");
    let other_resource = decide(
        &fx,
        refund(
            "tok:leaf",
            "copilot",
            5.0,
            "erp://orders/B",
            "2026-06-03T10:15:00Z",
        ),
    );
    assert_eq!(rules(&other_resource), ["overreach"]);
    let over_limit = decide(
        &fx,
        refund(
            "tok:leaf",
            "copilot",
            301.0,
            "erp://orders/A",
            "2026-06-03T10:15:00Z",
        ),
    );
    assert!(
        rules(&over_limit).contains(&"overreach"),
        "{:?}",
        over_limit.reasons
    );
    // A credential from a secrets manager carries no scope: the gate fails closed.
    let unscoped = decide(
        &fx,
        json!({"time":"2026-06-03T10:15:00Z","actor":{"id":"cron","kind":"service"},"credential":"erp-key-1","operation":"erp:refund.create","resource":"erp://orders/Z","params":{"amount":1}}),
    );
    assert_eq!(rules(&unscoped), ["overreach"]);
    assert_eq!(unscoped.facts.credential_source, "secret_access");
}

#[test]
fn a_hop_wider_than_its_parent_is_scope_escalation() {
    let fx = fixture("");
    // tok:wide allows erp:* on *, but its parent jti:top only refunds on orders/*.
    let d = decide(
        &fx,
        json!({"time":"2026-06-03T10:15:00Z","actor":{"id":"helper","kind":"agent"},"credential":"tok:wide","operation":"erp:invoice.delete","resource":"erp://invoices/9"}),
    );
    assert_eq!(rules(&d), ["scope-escalation"]);
    assert!(!d.facts.scope_covered);
    assert!(d.reasons[0].message.contains("jti:top"));
}

#[test]
fn required_approvals_must_be_valid() {
    // Above 250 needs a human approval that is neither the requester nor the actor.
    let big = || {
        refund(
            "tok:top-big",
            "copilot",
            280.0,
            "erp://orders/A",
            "2026-06-03T10:20:00Z",
        )
    };
    let chain = r#"{"id":"del-9","type":"delegation","time":"2026-06-03T10:00:05Z","source":"idp","request":"desk#req-1","from":{"id":"alice@example.com","kind":"human"},"to":{"id":"copilot","kind":"agent"},"via":"token_exchange","credential":{"id":"tok:top-big"},"scope":[{"action":"erp:refund.*","resource":"erp://orders/*","limits":{"amount":500}}]}"#;
    let none = decide(&fixture(chain), big());
    assert_eq!(rules(&none), ["approval-missing"]);

    let own = format!(
        "{chain}\n{}",
        r#"{"id":"apr-1","type":"approval","time":"2026-06-03T10:01:00Z","source":"desk","approver":{"id":"alice@example.com","kind":"human"},"approves":"req-1","decision":"approved"}"#
    );
    let d = decide(&fixture(&own), big());
    assert_eq!(rules(&d), ["approval-missing"]);
    assert!(
        d.reasons[0].message.contains("requester"),
        "{}",
        d.reasons[0].message
    );

    let late = format!(
        "{chain}\n{}",
        r#"{"id":"apr-2","type":"approval","time":"2026-06-03T10:30:00Z","source":"desk","approver":{"id":"fatima@example.com","kind":"human"},"approves":"req-1","decision":"approved"}"#
    );
    let d = decide(&fixture(&late), big());
    assert_eq!(rules(&d), ["approval-missing"]);
    assert!(
        d.reasons[0].message.contains("later"),
        "{}",
        d.reasons[0].message
    );

    let narrow = format!(
        "{chain}\n{}",
        r#"{"id":"apr-3","type":"approval","time":"2026-06-03T10:02:00Z","source":"desk","approver":{"id":"fatima@example.com","kind":"human"},"approves":"req-1","decision":"approved","scope":[{"action":"erp:refund.create","resource":"*","limits":{"amount":200}}]}"#
    );
    let d = decide(&fixture(&narrow), big());
    assert_eq!(rules(&d), ["approval-missing"]);

    let good = format!(
        "{chain}\n{}",
        r#"{"id":"apr-4","type":"approval","time":"2026-06-03T10:02:00Z","source":"desk","approver":{"id":"fatima@example.com","kind":"human"},"approves":"desk#req-1","decision":"approved","scope":[{"action":"erp:refund.create","resource":"*","limits":{"amount":300}}]}"#
    );
    let d = decide(&fixture(&good), big());
    assert_eq!(d.verdict, Verdict::Allow, "{:?}", d.reasons);
    assert_eq!(d.facts.approvals, ["desk#apr-4"]);

    // An approval may name the proposed action itself (`source#id` given in the proposal).
    let of_action = format!(
        "{chain}\n{}",
        r#"{"id":"apr-5","type":"approval","time":"2026-06-03T10:02:00Z","source":"desk","approver":{"id":"fatima@example.com","kind":"human"},"approves":"agent#act-77","decision":"approved"}"#
    );
    let mut named = big();
    named["id"] = json!("act-77");
    named["source"] = json!("agent");
    let d = decide(&fixture(&of_action), named);
    assert_eq!(d.verdict, Verdict::Allow, "{:?}", d.reasons);
}

#[test]
fn chains_deeper_than_max_depth_are_denied() {
    let fx = fixture("");
    let shallow = Gate::new(
        Policy {
            max_depth: 1,
            ..policy()
        },
        None,
    );
    let d = decide_with(
        &fx,
        &shallow,
        refund(
            "tok:leaf",
            "copilot",
            5.0,
            "erp://orders/A",
            "2026-06-03T10:15:00Z",
        ),
    );
    assert_eq!(rules(&d), ["chain-too-deep"]);
}

fn cedar(src: &str) -> CedarPolicy {
    CedarPolicy::from_sources(
        &[("org.cedar".into(), src.into())],
        &BTreeMap::from([("finance".to_owned(), vec!["fatima@example.com".to_owned()])]),
    )
    .unwrap()
}

const ORG: &str = r#"
@id("baseline") permit (principal, action, resource);
@id("human-first") forbid (principal, action, resource) when { context.mutating } unless { context.initiator.kind == "human" };
@id("big-refunds") forbid (principal, action in Custody::Action::"erp:refund.*", resource)
  when { context.call.hasTag("amount") && context.call.getTag("amount") > 100 }
  unless { context.approver_groups.contains("finance") };
@id("shallow-agents") forbid (principal, action, resource) when { principal.kind == "agent" && context.depth > 3 };
"#;

#[test]
fn cedar_policy_denies_with_its_id_and_allows_otherwise() {
    let fx = fixture("");
    let gate = Gate::new(policy(), Some(cedar(ORG)));
    let ok = decide_with(
        &fx,
        &gate,
        refund(
            "tok:leaf",
            "copilot",
            50.0,
            "erp://orders/A",
            "2026-06-03T10:15:00Z",
        ),
    );
    assert_eq!(ok.verdict, Verdict::Allow, "{:?}", ok.reasons);
    assert_eq!(ok.policies, ["baseline"]);
    // 100.5 rounds up to 101 > 100.
    let big = decide_with(
        &fx,
        &gate,
        refund(
            "tok:leaf",
            "copilot",
            100.5,
            "erp://orders/A",
            "2026-06-03T10:15:00Z",
        ),
    );
    assert_eq!(rules(&big), ["policy-violation"]);
    assert_eq!(big.policies, ["big-refunds"]);
    assert!(big.reasons[0].message.contains("`big-refunds`"));
    // No human behind a secrets-manager credential: forbidden too (besides overreach).
    let orphan = decide_with(
        &fx,
        &gate,
        json!({"time":"2026-06-03T10:15:00Z","actor":{"id":"cron","kind":"service"},"credential":"erp-key-1","operation":"erp:refund.create","resource":"erp://orders/Z","params":{"amount":1}}),
    );
    assert_eq!(rules(&orphan), ["overreach", "policy-violation"]);
    assert_eq!(orphan.policies, ["human-first"]);
    // Without a permit, Cedar denies everything.
    let strict = Gate::new(
        policy(),
        Some(cedar(
            "@id(\"only\") forbid (principal, action == Custody::Action::\"x\", resource);",
        )),
    );
    let d = decide_with(
        &fx,
        &strict,
        refund(
            "tok:leaf",
            "copilot",
            5.0,
            "erp://orders/A",
            "2026-06-03T10:15:00Z",
        ),
    );
    assert_eq!(rules(&d), ["policy-violation"]);
    assert!(d.reasons[0].message.contains("no Cedar policy permits"));
}

#[test]
fn bad_proposals_are_refused_with_the_reason() {
    let r = Redactor::new(KEY);
    let cases = [
        (json!([1, 2]), "JSON object"),
        (
            json!({"actor":"a","operation":"o"}),
            "missing required field `resource`",
        ),
        (
            json!({"actor":"a","operation":"o","resource":"r","colour":"red"}),
            "unknown field `colour`",
        ),
        (
            json!({"actor":"a","operation":"o","resource":"r","time":"yesterday"}),
            "RFC 3339",
        ),
        (
            json!({"actor":"a","operation":"o","resource":"r","id":"x"}),
            "needs a `source`",
        ),
        (
            json!({"actor":"a","operation":"o","resource":"r","type":"effect"}),
            "\"action\"",
        ),
        (
            json!({"actor":{"id":"a","kind":"robot"},"operation":"o","resource":"r"}),
            "kind one of",
        ),
    ];
    for (input, expected) in cases {
        let err = ProposedAction::parse(input.clone(), &r)
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{input}: {err}");
    }
}

#[test]
fn decisions_are_recorded_redacted_and_provable() {
    let mut fx = fixture("");
    let gate = Gate::new(policy(), Some(cedar(ORG)));
    let raw = "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB";
    let p = ProposedAction::parse(
        json!({"time":"2026-06-03T10:15:00Z","actor":"copilot","credential":raw,"operation":"erp:refund.create","resource":"erp://orders/A"}),
        &fx.redactor,
    )
    .unwrap();
    assert!(p.action.credential.as_deref().unwrap().starts_with("fp:"));
    let at = p.time.unwrap();
    let facts = FactIndex::load_for(fx.ledger.store(), &p.action, &p.source, None).unwrap();
    let d = gate.decide(&facts, &p, at);
    // No recorded issuance, so no human behind it either.
    assert_eq!(rules(&d), ["unknown-credential", "policy-violation"]);
    let size = fx.ledger.store().size().unwrap();
    let event = gate.decision_event(&p, &d, at, size);
    let same = gate.decision_event(&p, &d, at, size);
    assert_eq!(event, same, "the decision event is deterministic");
    let prepared = Preparer::new(Redactor::new(KEY))
        .prepare_value(event, None)
        .unwrap();
    assert!(!String::from_utf8_lossy(prepared.canonical()).contains(raw));
    let outcome = fx
        .ledger
        .append(std::slice::from_ref(&prepared), &[])
        .unwrap();
    assert_eq!(outcome.accepted, 1);
    // Asking again is a duplicate, not a second record.
    let again = fx
        .ledger
        .append(std::slice::from_ref(&prepared), &[])
        .unwrap();
    assert_eq!((again.accepted, again.duplicates), (0, 1));
    let stored = fx.ledger.store().event_at(size).unwrap().unwrap();
    let custody_model::EventBody::Decision(dec) = &stored.event.body else {
        panic!("not a decision: {:?}", stored.event.body)
    };
    assert_eq!(dec.decision, Verdict::Deny);
    assert_eq!(dec.reasons[0].rule, "unknown-credential");
    let proof = fx.ledger.inclusion_proof(size, None).unwrap();
    assert_eq!(proof.leaf_hash, prepared.leaf_hash());
    custody_merkle::verify_inclusion(
        &proof.leaf_hash,
        proof.index,
        proof.size,
        &proof.proof,
        &proof.root,
    )
    .unwrap();
    let verifier = NoteVerifier::parse(&fx.ledger.verifier_key()).unwrap();
    assert!(fx.ledger.verify(&verifier).unwrap().ok);
}

#[test]
fn the_policy_replayed_over_the_log_finds_actions_that_ran_against_it() {
    let fx = fixture("");
    let gate = Gate::new(policy(), Some(cedar(ORG)));
    let findings = policy_violations(fx.ledger.store(), &gate).unwrap();
    let flagged: Vec<String> = findings.iter().map(|f| f.events[0].to_string()).collect();
    // act-1 (100) is within the policy; act-2 (120) is a big refund without finance;
    // act-3 is a 900 refund by a service with a secrets-manager key: no human, no finance.
    assert_eq!(flagged, ["agent#act-2", "agent#act-3"], "{findings:#?}");
    assert_eq!(findings[0].rule, "policy-violation");
    assert!(
        findings[0].message.contains("(big-refunds)"),
        "{}",
        findings[0].message
    );
    assert!(
        findings[1].message.contains("big-refunds, human-first"),
        "{}",
        findings[1].message
    );
    assert!(findings[0].frameworks.contains(&"CSF:PR.AA-05".to_owned()));
    // Without Cedar there is nothing to replay.
    assert!(
        policy_violations(fx.ledger.store(), &Gate::new(policy(), None))
            .unwrap()
            .is_empty()
    );
}
