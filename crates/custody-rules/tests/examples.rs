//! The bundled stories produce exactly the findings of examples/README.md.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};

use custody_rules::{evaluate, ApprovalRule, Policy, Report};
use custody_store::testing::new_event;
use custody_store::Store;
use custody_store_sqlite::SqliteStore;

const FILES: [&str; 5] = [
    include_str!("../../../examples/01-credential-rotation.ndjson"),
    include_str!("../../../examples/02-ci-config-push.ndjson"),
    include_str!("../../../examples/03-refund-copilot.ndjson"),
    include_str!("../../../examples/04-leaked-secret.ndjson"),
    include_str!("../../../examples/05-framework-review.ndjson"),
];

fn policy() -> Policy {
    Policy {
        max_depth: 4,
        inference_window_secs: 60,
        secret_managers: vec![
            "vault://prod".into(),
            "aws-sm:123456789012:eu-west-1".into(),
        ],
        approvals: vec![ApprovalRule::new(
            "erp:refund.*",
            "*",
            Some("amount".into()),
            Some(100.0),
        )],
    }
}

fn report(files: &[&str]) -> Report {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(&dir.path().join("c.db")).unwrap();
    let events: Vec<_> = files
        .iter()
        .flat_map(|f| f.lines())
        .filter(|l| !l.trim().is_empty())
        .map(|l| new_event(l, None))
        .collect();
    store.append_batch(&events, &[]).unwrap();
    evaluate(&store, &policy()).unwrap()
}

const CT: &str = "aws:cloudtrail:123456789012";

fn expected() -> BTreeMap<&'static str, Vec<String>> {
    let ct = |n: u32| format!("{CT}#s4-act-{n}");
    let mut m: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    m.insert("token-reuse", vec!["agent-runtime#s1-act-3".into()]);
    m.insert("expired-credential", vec!["agent-runtime#s1-act-4".into()]);
    let mut incomplete = vec![
        "github-actions#s2-act-2".to_string(),
        "github-actions#s2-act-3".into(),
        "github-actions#s4-act-2".into(),
    ];
    incomplete.extend((3..=8).map(ct));
    m.insert("incomplete-chain", incomplete);
    m.insert("unknown-credential", vec!["github-actions#s2-act-3".into()]);
    m.insert("scope-escalation", vec!["k8s-audit#s2-del-6".into()]);
    m.insert("approval-missing", vec!["agent-runtime#s3-act-2".into()]);
    m.insert(
        "approval-after-action",
        vec!["agent-runtime#s3-act-3".into()],
    );
    m.insert("self-approval", vec!["agent-runtime#s3-act-4".into()]);
    m.insert("unmanaged-secret", vec!["vault://legacy#s4-sa-1".into()]);
    let mut orphan = vec!["github-actions#s4-act-2".to_string()];
    orphan.extend((3..=8).map(ct));
    m.insert("orphan-action", orphan);
    m.insert("origin-mismatch", vec![ct(3), ct(8)]);
    m.insert("revoked-credential", vec![ct(8)]);
    m.insert("chain-too-deep", vec!["k8s-audit#s5-act-3".into()]);
    m.insert("overreach", vec!["agent-runtime#s5-act-4".into()]);
    m.insert(
        "shared-credential",
        vec![
            "agent-runtime#s5-act-5".into(),
            "agent-runtime#s5-act-6".into(),
        ],
    );
    m.insert("ambiguous-attribution", vec!["argocd#s5-eff-7".into()]);
    m
}

#[test]
fn the_bundled_stories_raise_exactly_the_expected_findings() {
    let r = report(&FILES);
    for f in &r.findings {
        eprintln!(
            "{:<24} {:<18} {}",
            f.rule,
            f.chain,
            f.events
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    let mut got: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for f in &r.findings {
        got.entry(f.rule)
            .or_default()
            .insert(f.events[0].to_string());
    }
    let want = expected();
    for (rule, flagged) in &want {
        let g = got.get(rule).cloned().unwrap_or_default();
        for e in flagged {
            // shared-credential: one finding per credential; its events hold every use
            let found = g.contains(e)
                || r.findings
                    .iter()
                    .any(|f| f.rule == *rule && f.events.iter().any(|k| &k.to_string() == e));
            assert!(found, "{rule} should flag {e}; got {g:?}");
        }
    }
    let rules: BTreeSet<&str> = got.keys().copied().collect();
    let wanted: BTreeSet<&str> = want.keys().copied().collect();
    assert_eq!(rules, wanted, "no other rule fires");
    for (rule, g) in &got {
        let w: BTreeSet<String> = want[rule].iter().cloned().collect();
        for e in g {
            assert!(
                w.contains(e),
                "{rule} flags {e}, which examples/README.md does not expect"
            );
        }
    }
}

fn has(r: &Report, rule: &str, flagged: &str, evidence: &[&str]) {
    let f = r
        .findings
        .iter()
        .find(|f| f.rule == rule && f.events.iter().any(|e| e.to_string() == flagged))
        .unwrap_or_else(|| panic!("no {rule} on {flagged}"));
    let events: Vec<String> = f.events.iter().map(ToString::to_string).collect();
    for e in evidence {
        assert!(
            events.iter().any(|x| x == e),
            "{rule} on {flagged} lacks evidence {e}: {events:?}"
        );
    }
}

#[test]
fn findings_carry_the_readme_evidence() {
    let r = report(&FILES);
    let ct = |s: &str| format!("{CT}#{s}");
    has(
        &r,
        "token-reuse",
        "agent-runtime#s1-act-3",
        &["pam#s1-del-4", "agent-runtime#s1-act-2"],
    );
    has(
        &r,
        "expired-credential",
        "agent-runtime#s1-act-4",
        &["pam#s1-del-6"],
    );
    has(
        &r,
        "incomplete-chain",
        "github-actions#s2-act-2",
        &["k8s-audit#s2-del-4"],
    );
    has(
        &r,
        "incomplete-chain",
        "github-actions#s2-act-3",
        &["servicedesk#s2-req-3"],
    );
    has(
        &r,
        "scope-escalation",
        "k8s-audit#s2-del-6",
        &["github-actions#s2-del-5"],
    );
    has(
        &r,
        "approval-missing",
        "agent-runtime#s3-act-2",
        &["zendesk#s3-req-2"],
    );
    has(
        &r,
        "approval-after-action",
        "agent-runtime#s3-act-3",
        &["erp#s3-apr-3"],
    );
    has(
        &r,
        "self-approval",
        "agent-runtime#s3-act-4",
        &["erp#s3-apr-4", "zendesk#s3-req-4"],
    );
    has(
        &r,
        "orphan-action",
        "github-actions#s4-act-2",
        &["vault://legacy#s4-sa-1"],
    );
    has(
        &r,
        "orphan-action",
        &ct("s4-act-7"),
        &["vault://legacy#s4-sa-1", &ct("s4-del-3"), &ct("s4-del-4")],
    );
    for a in ["s4-act-3", "s4-act-8"] {
        has(
            &r,
            "origin-mismatch",
            &ct(a),
            &["vault://legacy#s4-sa-1", "github-actions#s4-act-2"],
        );
    }
    has(
        &r,
        "revoked-credential",
        &ct("s4-act-8"),
        &[&ct("s4-rev-1")],
    );
    has(
        &r,
        "chain-too-deep",
        "k8s-audit#s5-act-3",
        &[
            "idp#s5-del-3",
            "agent-runtime#s5-del-4",
            "agent-runtime#s5-del-5",
            "agent-runtime#s5-del-6",
            "k8s-audit#s5-del-7",
        ],
    );
    has(&r, "overreach", "agent-runtime#s5-act-4", &["idp#s5-del-8"]);
    has(
        &r,
        "shared-credential",
        "agent-runtime#s5-act-5",
        &["agent-runtime#s5-act-6", &ct("s5-del-9"), &ct("s5-del-10")],
    );
    has(
        &r,
        "ambiguous-attribution",
        "argocd#s5-eff-7",
        &["agent-runtime#s5-act-8", "agent-runtime#s5-act-9"],
    );
    let missing = |flagged: &str| {
        r.findings
            .iter()
            .find(|f| f.rule == "incomplete-chain" && f.events[0].to_string() == flagged)
            .map(|f| f.message.clone())
            .unwrap()
    };
    assert!(missing("github-actions#s2-act-2").contains("missing impact"));
    assert!(missing("github-actions#s2-act-3").contains("missing authority"));
    assert!(missing("github-actions#s4-act-2").contains("initiator"));
    // one approval finding per refund
    for a in [
        "agent-runtime#s3-act-2",
        "agent-runtime#s3-act-3",
        "agent-runtime#s3-act-4",
    ] {
        let n = r
            .findings
            .iter()
            .filter(|f| f.rule.contains("approval") && f.events[0].to_string() == a)
            .count();
        assert_eq!(n, 1, "{a}");
    }
}

#[test]
fn main_and_clean_chains_raise_nothing() {
    let r = report(&FILES);
    let clean = [
        "agent-run-8801",
        "gha-run-7712001",
        "zd-77120",
        "gha-run-8120455",
        "agent-run-9101",
        "agent-run-9102",
        "agent-run-9106",
    ];
    let mut clean_events = BTreeSet::new();
    for line in FILES.iter().flat_map(|f| f.lines()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let chain = v["chain"].as_str().unwrap_or_default();
        if clean.contains(&chain) {
            clean_events.insert(format!(
                "{}#{}",
                v["source"].as_str().unwrap(),
                v["id"].as_str().unwrap()
            ));
        }
    }
    // effects of main chains carry no chain id; they are named by caused_by
    for e in [
        "vault://prod#s1-eff-1",
        "k8s-audit#s2-eff-1",
        "erp#s3-eff-1",
        "aws:config:123456789012#s4-eff-1",
        "k8s-audit#s5-eff-1",
        "dns-audit#s5-eff-4",
    ] {
        clean_events.insert(e.to_string());
    }
    for f in &r.findings {
        assert!(!clean.contains(&f.chain.as_str()), "{f:?}");
        for e in &f.events {
            assert!(
                !clean_events.contains(&e.to_string()),
                "{} cites clean event {e}",
                f.rule
            );
        }
    }
    for c in clean {
        assert!(r.chains.contains(c), "{c} was checked");
    }
}

#[test]
fn findings_are_deterministic_in_any_ingest_order() {
    let a = report(&FILES);
    let mut reversed = FILES;
    reversed.reverse();
    let b = report(&reversed);
    let json = |r: &Report| serde_json::to_string(&r.to_json()).unwrap();
    assert_eq!(json(&a), json(&report(&FILES)));
    assert_eq!(json(&a), json(&b));
    let keys: Vec<_> = a
        .findings
        .iter()
        .map(|f| (f.chain.clone(), f.rule, f.events[0].to_string()))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
}
