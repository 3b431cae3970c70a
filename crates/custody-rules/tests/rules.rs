//! Each rule: a case where it must fire and a near miss where it must not.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use custody_rules::{evaluate, ApprovalRule, Policy};
use custody_store::testing::new_event;
use custody_store::Store;
use custody_store_sqlite::SqliteStore;

const REQ: &str = r#"{"id":"req-1","type":"request","time":"2026-06-06T09:00:00Z","source":"servicedesk","chain":"run-1","initiator":{"id":"alice@example.com","kind":"human"},"ticket":"SEC-1","intent":"Rotate","target":"vault://prod/secret/db"}"#;
const DEL1: &str = r#"{"id":"del-1","type":"delegation","time":"2026-06-06T09:00:05Z","source":"idp","chain":"run-1","request":"servicedesk#req-1","from":{"id":"alice@example.com","kind":"human"},"to":{"id":"agent","kind":"agent"},"via":"token_exchange","credential":{"id":"jti:1","expires":"2026-06-06T09:15:00Z"},"scope":[{"action":"vault:secret.*","resource":"vault://prod/secret/db"}]}"#;
const DEL2: &str = r#"{"id":"del-2","type":"delegation","time":"2026-06-06T09:00:07Z","source":"pam","chain":"run-1","request":"servicedesk#req-1","from":{"id":"agent","kind":"agent"},"to":{"id":"agent","kind":"agent"},"via":"jit_grant","parent_credential":"jti:1","credential":{"id":"acc:2","not_before":"2026-06-06T09:00:07Z","expires":"2026-06-06T09:05:07Z","max_uses":1},"scope":[{"action":"vault:secret.rotate","resource":"vault://prod/secret/db","limits":{"n":5}}]}"#;
const ACT: &str = r#"{"id":"act-1","type":"action","time":"2026-06-06T09:01:00Z","source":"rt","chain":"run-1","actor":{"id":"agent","kind":"agent"},"credential":"acc:2","operation":"vault:secret.rotate","resource":"vault://prod/secret/db","params":{"n":3},"context":{"origin":"10.0.0.1"},"outcome":"success"}"#;
const EFF: &str = r#"{"id":"eff-1","type":"effect","time":"2026-06-06T09:01:01Z","source":"vault","system":"vault","resource":"vault://prod/secret/db","change":"rotated","caused_by":"rt#act-1"}"#;

fn clean() -> Vec<String> {
    [REQ, DEL1, DEL2, ACT, EFF]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn policy() -> Policy {
    Policy {
        secret_managers: vec!["vault://prod".into()],
        ..Policy::default()
    }
}

/// (rule, flagged event) of every finding.
fn run_with(lines: &[String], policy: &Policy) -> Vec<(String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&dir.path().join("t.db")).unwrap();
    let events: Vec<_> = lines.iter().map(|l| new_event(l, None)).collect();
    store.append_batch(&events, &[]).unwrap();
    evaluate(&store, policy)
        .unwrap()
        .findings
        .iter()
        .map(|f| (f.rule.to_string(), f.events[0].to_string()))
        .collect()
}

fn run(lines: &[String]) -> Vec<(String, String)> {
    run_with(lines, &policy())
}

fn fires(found: &[(String, String)], rule: &str, flagged: &str) {
    assert!(
        found.iter().any(|(r, e)| r == rule && e == flagged),
        "{rule} should flag {flagged}: {found:?}"
    );
}

fn silent(found: &[(String, String)], rule: &str) {
    assert!(
        !found.iter().any(|(r, _)| r == rule),
        "{rule} should not fire: {found:?}"
    );
}

fn with(lines: &[String], i: usize, from: &str, to: &str) -> Vec<String> {
    let mut out = lines.to_vec();
    assert!(out[i].contains(from), "{from} not in line {i}");
    out[i] = out[i].replace(from, to);
    out
}

#[test]
fn a_complete_clean_chain_raises_nothing() {
    assert_eq!(run(&clean()), Vec::<(String, String)>::new());
}

#[test]
fn incomplete_chain() {
    let no_effect = clean()[..4].to_vec();
    fires(&run(&no_effect), "incomplete-chain", "rt#act-1");
    // near miss: an uncaused effect on the same resource 20 s later is linked by inference
    let inferred = with(&clean(), 4, r#","caused_by":"rt#act-1""#, "");
    let inferred = with(&inferred, 4, "09:01:01Z", "09:01:20Z");
    assert!(run(&inferred).is_empty(), "{:?}", run(&inferred));
    // a read needs no effect
    let read = with(
        &no_effect,
        3,
        r#""outcome""#,
        r#""mutating":false,"outcome""#,
    );
    silent(&run(&read), "incomplete-chain");
}

#[test]
fn orphan_action() {
    let mut l = with(&clean(), 0, r#""kind":"human""#, r#""kind":"service""#);
    l = with(
        &l,
        1,
        r#"{"id":"alice@example.com","kind":"human"}"#,
        r#"{"id":"alice@example.com","kind":"service"}"#,
    );
    let found = run(&l);
    fires(&found, "orphan-action", "rt#act-1");
    fires(&found, "incomplete-chain", "rt#act-1");
    // near miss: an unknown credential, but the action names a human's request
    let l = with(
        &clean(),
        3,
        r#""credential":"acc:2""#,
        r#""credential":"acc:zz","request":"servicedesk#req-1""#,
    );
    let found = run(&l);
    silent(&found, "orphan-action");
    fires(&found, "incomplete-chain", "rt#act-1");
}

#[test]
fn unknown_credential() {
    let l = with(&clean(), 3, "acc:2", "acc:zz");
    fires(&run(&l), "unknown-credential", "rt#act-1");
    // near miss: the credential comes from a recorded secret access
    let mut l = with(&clean(), 3, "acc:2", "sm:1");
    l.push(r#"{"id":"sa-1","type":"secret_access","time":"2026-06-06T09:00:30Z","source":"vault://prod","principal":{"id":"agent","kind":"agent"},"manager":"vault://prod","secret":"s","credential":"sm:1"}"#.into());
    silent(&run(&l), "unknown-credential");
}

#[test]
fn scope_escalation() {
    let l = with(
        &clean(),
        2,
        r#""action":"vault:secret.rotate","resource":"vault://prod/secret/db""#,
        r#""action":"vault:*","resource":"vault://prod/*""#,
    );
    fires(&run(&l), "scope-escalation", "pam#del-2");
    // near miss: the parent credential came from a secret access (no scope: undecidable)
    let mut l = with(
        &l,
        2,
        r#""parent_credential":"jti:1""#,
        r#""parent_credential":"sm:1""#,
    );
    l.push(r#"{"id":"sa-1","type":"secret_access","time":"2026-06-06T09:00:01Z","source":"vault://prod","principal":{"id":"agent","kind":"agent"},"manager":"vault://prod","secret":"s","credential":"sm:1"}"#.into());
    silent(&run(&l), "scope-escalation");
}

#[test]
fn overreach() {
    let l = with(&clean(), 3, r#""n":3"#, r#""n":9"#);
    fires(&run(&l), "overreach", "rt#act-1");
    let l = with(
        &clean(),
        3,
        r#""operation":"vault:secret.rotate""#,
        r#""operation":"vault:secret.delete""#,
    );
    fires(&run(&l), "overreach", "rt#act-1");
    // near miss: at the limit
    let l = with(&clean(), 3, r#""n":3"#, r#""n":5"#);
    silent(&run(&l), "overreach");
}

#[test]
fn expired_credential() {
    let late = with(
        &with(&clean(), 3, "09:01:00Z", "09:06:00Z"),
        4,
        "09:01:01Z",
        "09:06:01Z",
    );
    fires(&run(&late), "expired-credential", "rt#act-1");
    let early = with(&clean(), 3, "09:01:00Z", "09:00:06Z");
    fires(&run(&early), "expired-credential", "rt#act-1");
    // near miss: at the last valid second
    let edge = with(
        &with(&clean(), 3, "09:01:00Z", "09:05:07Z"),
        4,
        "09:01:01Z",
        "09:05:08Z",
    );
    silent(&run(&edge), "expired-credential");
}

#[test]
fn revoked_credential() {
    let rev = |t: &str| {
        format!(
            r#"{{"id":"rev-1","type":"revocation","time":"{t}","source":"pam","credential":"acc:2","by":{{"id":"bob@example.com","kind":"human"}}}}"#
        )
    };
    let mut l = clean();
    l.push(rev("2026-06-06T09:00:30Z"));
    fires(&run(&l), "revoked-credential", "rt#act-1");
    // near miss: revoked after the use
    let mut l = clean();
    l.push(rev("2026-06-06T09:02:00Z"));
    assert!(run(&l).is_empty());
}

#[test]
fn token_reuse() {
    let second = ACT
        .replace("act-1", "act-2")
        .replace("09:01:00Z", "09:02:00Z");
    let second_eff = EFF
        .replace("act-1", "act-2")
        .replace("eff-1", "eff-2")
        .replace("09:01:01Z", "09:02:01Z");
    let mut l = clean();
    l.push(second.clone());
    l.push(second_eff.clone());
    let found = run(&l);
    fires(&found, "token-reuse", "rt#act-2");
    assert!(!found
        .iter()
        .any(|(r, e)| r == "token-reuse" && e == "rt#act-1"));
    // near miss: two uses allowed
    let l2 = with(&l, 2, r#""max_uses":1"#, r#""max_uses":2"#);
    silent(&run(&l2), "token-reuse");
    // used by a principal it was not issued to
    let other = second.replace(r#""actor":{"id":"agent""#, r#""actor":{"id":"intruder""#);
    let mut l3 = with(&clean(), 2, r#""max_uses":1"#, r#""max_uses":2"#);
    l3.push(other);
    l3.push(second_eff);
    fires(&run(&l3), "token-reuse", "rt#act-2");
}

#[test]
fn shared_credential() {
    let mut l = clean();
    l.push(
        DEL2.replace("del-2", "del-9")
            .replace(r#""to":{"id":"agent""#, r#""to":{"id":"agent-b""#),
    );
    fires(&run(&l), "shared-credential", "rt#act-1");
    // near miss: the same credential id issued twice to the same principal
    let mut l = clean();
    l.push(DEL2.replace("del-2", "del-9"));
    silent(&run(&l), "shared-credential");
}

const SA_WORKLOAD: &str = r#"{"id":"sa-1","type":"secret_access","time":"2026-06-06T02:00:00Z","source":"vault://prod","chain":"night-1","principal":{"id":"ci","kind":"workload"},"manager":"vault://prod","secret":"ci/aws","credential":"AKIA1"}"#;

fn workload_use(id: &str, chain: &str, origin: &str, time: &str) -> String {
    format!(
        r#"{{"id":"{id}","type":"action","time":"2026-06-06T{time}Z","source":"ct","chain":"{chain}","actor":{{"id":"ci","kind":"workload"}},"credential":"AKIA1","operation":"s3:ListBuckets","resource":"s3","mutating":false,"context":{{"origin":"{origin}"}}}}"#
    )
}

#[test]
fn origin_mismatch() {
    let l = vec![
        SA_WORKLOAD.to_string(),
        workload_use("a-1", "night-1", "10.0.0.7", "02:00:30"),
        workload_use("a-2", "ir-1", "203.0.113.9", "03:00:00"),
        workload_use("a-3", "ir-1", "203.0.113.9", "03:10:00"),
    ];
    let found = run(&l);
    fires(&found, "origin-mismatch", "ct#a-2");
    fires(&found, "origin-mismatch", "ct#a-3");
    assert!(!found
        .iter()
        .any(|(r, e)| r == "origin-mismatch" && e == "ct#a-1"));
    // near miss: a later run of the same workload from its own address
    let l = vec![
        SA_WORKLOAD.to_string(),
        workload_use("a-1", "night-1", "10.0.0.7", "02:00:30"),
        workload_use("a-2", "night-2", "10.0.0.7", "03:00:00"),
    ];
    silent(&run(&l), "origin-mismatch");
    // near miss: an agent's credential is not bound to a workload
    let l: Vec<String> = vec![
        SA_WORKLOAD.replace(r#""kind":"workload""#, r#""kind":"agent""#),
        workload_use("a-1", "night-1", "10.0.0.7", "02:00:30"),
        workload_use("a-2", "ir-1", "203.0.113.9", "03:00:00"),
    ];
    silent(&run(&l), "origin-mismatch");
}

fn approval(id: &str, approver: &str, time: &str, extra: &str) -> String {
    format!(
        r#"{{"id":"{id}","type":"approval","time":"2026-06-06T{time}Z","source":"erp","approver":{{"id":"{approver}","kind":"human"}},"approves":"servicedesk#req-1","decision":"approved"{extra}}}"#
    )
}

#[test]
fn approvals() {
    let p = Policy {
        approvals: vec![ApprovalRule::new(
            "vault:secret.*",
            "*",
            Some("n".into()),
            Some(2.0),
        )],
        ..policy()
    };
    let approval_rules = |found: &[(String, String)]| -> Vec<String> {
        found
            .iter()
            .filter(|(r, _)| r.contains("approval"))
            .map(|(r, _)| r.clone())
            .collect()
    };
    let case = |extra: Option<String>| {
        let mut l = clean();
        l.extend(extra);
        approval_rules(&run_with(&l, &p))
    };
    assert_eq!(case(None), ["approval-missing"]);
    assert!(case(Some(approval(
        "apr-1",
        "fatima@example.com",
        "09:00:30",
        ""
    )))
    .is_empty());
    assert_eq!(
        case(Some(approval(
            "apr-1",
            "fatima@example.com",
            "09:30:00",
            ""
        ))),
        ["approval-after-action"]
    );
    assert_eq!(
        case(Some(approval("apr-1", "alice@example.com", "09:00:30", ""))),
        ["self-approval"]
    );
    assert_eq!(
        case(Some(approval("apr-1", "agent", "09:00:30", ""))),
        ["self-approval"]
    );
    // a scope that does not cover the action, or a denial, does not count
    let narrow = r#","scope":[{"action":"vault:secret.rotate","resource":"vault://prod/secret/db","limits":{"n":2}}]"#;
    assert_eq!(
        case(Some(approval(
            "apr-1",
            "fatima@example.com",
            "09:00:30",
            narrow
        ))),
        ["approval-missing"]
    );
    let denied =
        approval("apr-1", "fatima@example.com", "09:00:30", "").replace("approved", "denied");
    assert_eq!(case(Some(denied)), ["approval-missing"]);
    // an approval of a delegation in the chain counts
    let of_delegation = approval("apr-1", "fatima@example.com", "09:00:30", "")
        .replace("servicedesk#req-1", "pam#del-2");
    assert!(case(Some(of_delegation)).is_empty());
    // near miss: below the threshold no approval is needed
    let small = with(&clean(), 3, r#""n":3"#, r#""n":2"#);
    assert!(approval_rules(&run_with(&small, &p)).is_empty());
}

#[test]
fn ambiguous_attribution() {
    let other = ACT
        .replace("act-1", "act-9")
        .replace("09:01:00Z", "09:01:10Z");
    let uncaused = EFF
        .replace(r#","caused_by":"rt#act-1""#, "")
        .replace("eff-1", "eff-9")
        .replace("09:01:01Z", "09:01:30Z");
    let mut l = clean();
    l.push(other);
    l.push(uncaused.clone());
    fires(&run(&l), "ambiguous-attribution", "vault#eff-9");
    // near miss: one candidate only
    let mut l = clean();
    l.push(uncaused);
    silent(&run(&l), "ambiguous-attribution");
    // an action whose chain reaches two humans: Bob's request, Alice's authority
    let mut l = with(
        &clean(),
        3,
        r#""outcome""#,
        r#""request":"servicedesk#req-2","outcome""#,
    );
    l.push(
        REQ.replace("req-1", "req-2")
            .replace("alice@", "bob@")
            .replace("run-1", "run-2"),
    );
    fires(&run(&l), "ambiguous-attribution", "rt#act-1");
}

#[test]
fn unmanaged_secret() {
    let mut l = with(&clean(), 3, "acc:2", "sm:1");
    l.push(r#"{"id":"sa-1","type":"secret_access","time":"2026-06-06T09:00:30Z","source":"vault://legacy","principal":{"id":"agent","kind":"agent"},"manager":"vault://legacy","secret":"s","credential":"sm:1"}"#.into());
    fires(&run(&l), "unmanaged-secret", "vault://legacy#sa-1");
    // near miss: no inventory configured, or the manager is in it
    silent(&run_with(&l, &Policy::default()), "unmanaged-secret");
    let p = Policy {
        secret_managers: vec!["vault://legacy".into()],
        ..Policy::default()
    };
    silent(&run_with(&l, &p), "unmanaged-secret");
}

#[test]
fn chain_too_deep() {
    let p = |max_depth| Policy {
        max_depth,
        ..policy()
    };
    fires(&run_with(&clean(), &p(1)), "chain-too-deep", "rt#act-1");
    silent(&run_with(&clean(), &p(2)), "chain-too-deep");
}

#[test]
fn a_credential_used_thousands_of_times_stays_cheap_and_cited_briefly() {
    let mut lines = clean();
    for n in 0..3000u32 {
        lines.push(ACT.replace("act-1", &format!("act-x{n}")).replace(
            "09:01:00Z",
            &format!("09:{:02}:{:02}Z", 1 + n / 60 % 3, n % 60),
        ));
    }
    let events = lines.iter().enumerate().map(|(i, l)| {
        let e = new_event(l, None).event;
        (i as u64, e)
    });
    let started = std::time::Instant::now();
    let report = custody_rules::evaluate_events(events, &policy());
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    let reuse: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.rule == "token-reuse")
        .collect();
    assert_eq!(reuse.len(), 3000);
    assert!(report.findings.iter().all(|f| f.events.len() <= 50));
}

#[test]
fn cycles_dangling_and_ambiguous_references_neither_hang_nor_panic() {
    let lines: Vec<String> = [
        // two delegations whose credentials are each other's parents, an action using one
        r#"{"id":"d-a","type":"delegation","time":"2026-06-06T09:00:00Z","source":"s","parents":["d-b","nowhere#x"],"from":"p","to":"q","via":"other","parent_credential":"c-b","credential":{"id":"c-a"},"scope":[{"action":"*","resource":"*"}]}"#,
        r#"{"id":"d-b","type":"delegation","time":"2026-06-06T09:00:01Z","source":"s","parents":["d-a"],"from":"q","to":"p","via":"other","parent_credential":"c-a","credential":{"id":"c-b"},"scope":[{"action":"x","resource":"y"}]}"#,
        r#"{"id":"a-1","type":"action","time":"2026-06-06T09:00:02Z","source":"s","chain":"c","parents":["a-1","dup"],"actor":"q","credential":"c-a","operation":"x","resource":"y"}"#,
        // a bare id two sources share: an ambiguous reference
        r#"{"id":"dup","type":"request","time":"2026-06-06T09:00:00Z","source":"t","initiator":"h"}"#,
        r#"{"id":"dup","type":"request","time":"2026-06-06T09:00:00Z","source":"u","initiator":"h"}"#,
        r#"{"id":"e-1","type":"effect","time":"2026-06-06T09:00:03Z","source":"s","system":"y","resource":"y","change":"other","caused_by":"missing"}"#,
        r#"{"id":"r-1","type":"revocation","time":"2026-06-06T09:00:00Z","source":"s","credential":"never-issued"}"#,
        r#"{"id":"ap-1","type":"approval","time":"2026-06-06T09:00:00Z","source":"s","approver":"h","approves":"ap-1","decision":"approved"}"#,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let found = run(&lines);
    fires(&found, "orphan-action", "s#a-1");
    fires(&found, "scope-escalation", "s#d-a");
    fires(&found, "ambiguous-attribution", "s#a-1");
}
