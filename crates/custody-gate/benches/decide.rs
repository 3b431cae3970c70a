//! The gate's decision time, warm and in process: a 4-hop chain (human → agent → agent →
//! agent → agent) with 20 Cedar policies, against an index of 100,000 other events, beside a
//! bare Cedar `is_authorized` with the same policies on a request built once. Prints p50 and
//! p99 of single decisions and the ratio, then runs the criterion groups.
//!
//! `cargo bench -p custody-gate --bench decide`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use cedar_policy::{
    Authorizer, Context, Entities, Entity, EntityUid, Request, RestrictedExpression,
};
use criterion::{criterion_group, Criterion};
use custody_gate::{CedarPolicy, FactIndex, Gate, ProposedAction};
use custody_model::{Event, Redactor, Timestamp, Verdict};
use custody_rules::Policy;
use serde_json::json;

// As in the `custody` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const OTHER_EVENTS: u64 = 100_000;
const SAMPLES: usize = 200_000;

fn policies() -> String {
    let mut p = String::from(
        r#"@id("baseline") permit (principal, action, resource);
@id("chains-start-at-a-human") forbid (principal, action, resource) when { context.mutating } unless { context.initiator.kind == "human" };
@id("agents-no-delete-after-hours") forbid (principal, action, resource) when { principal.kind == "agent" && context.mutating && context.operation like "*delete*" && (context.hour < 8 || context.hour >= 18 || context.weekday >= 6) };
@id("large-refunds-need-finance") forbid (principal, action in Custody::Action::"erp:refund.*", resource) when { context.call.hasTag("amount") && context.call.getTag("amount") > 200 } unless { context.approver_groups.contains("finance") };
@id("max-depth-agents") forbid (principal, action, resource) when { principal.kind == "agent" && context.depth > 6 };
@id("fresh-credentials") forbid (principal, action, resource) when { context.credential.age_secs > 86400 };
@id("scope-covered") forbid (principal, action, resource) unless { context.scope_covered };
@id("no-secret-manager-writes") forbid (principal, action, resource) when { context.credential.source == "secret_access" && context.mutating };
"#,
    );
    for i in 0..12 {
        p.push_str(&format!(
            "@id(\"system-{i}-freeze\") forbid (principal, action in Custody::Action::\"sys{i}:*\", resource) when {{ resource.id like \"sys{i}://prod/*\" && context.weekday == 7 }};\n"
        ));
    }
    p
}

fn setup() -> (Gate, FactIndex, ProposedAction, Timestamp) {
    let cedar = CedarPolicy::from_sources(
        &[("bench.cedar".into(), policies())],
        &BTreeMap::from([("finance".to_owned(), vec!["fatima@example.com".to_owned()])]),
    )
    .unwrap();
    assert_eq!(cedar.ids().len(), 20);
    let gate = Gate::new(Policy::default(), Some(cedar));
    let mut ix = FactIndex::new();
    let ev = |v: serde_json::Value| Event::from_value(&v).unwrap();
    ix.observe(&ev(json!({"id":"req","type":"request","time":"2026-06-03T10:00:00Z","source":"desk","initiator":{"id":"alice@example.com","kind":"human"}})));
    let scope =
        json!([{"action":"erp:refund.*","resource":"erp://orders/*","limits":{"amount":500}}]);
    let mut parent: Option<String> = None;
    let hops = [
        "alice@example.com",
        "planner",
        "router",
        "worker",
        "copilot",
    ];
    for (n, pair) in hops.windows(2).enumerate() {
        let cred = format!("tok:{n}");
        let mut d = json!({"id":format!("del-{n}"),"type":"delegation","time":"2026-06-03T10:00:05Z","source":"idp","request":"desk#req",
            "from":{"id":pair[0],"kind":if n == 0 {"human"} else {"agent"}},"to":{"id":pair[1],"kind":"agent"},"via":"token_exchange",
            "credential":{"id":cred,"expires":"2026-06-03T11:00:00Z","max_uses":1000},"scope":scope});
        if let Some(p) = &parent {
            d["parent_credential"] = json!(p);
        }
        ix.observe(&ev(d));
        parent = Some(cred);
    }
    for i in 0..OTHER_EVENTS {
        let e = match i % 4 {
            0 => {
                json!({"id":format!("o{i}"),"type":"delegation","time":"2026-06-03T09:00:00Z","source":"idp","from":"svc","to":"svc2","via":"other","credential":{"id":format!("other:{i}")},"scope":scope})
            }
            1 => {
                json!({"id":format!("o{i}"),"type":"action","time":"2026-06-03T09:00:01Z","source":"rt","actor":"svc2","credential":format!("other:{}", i - 1),"operation":"erp:refund.create","resource":"erp://orders/x"})
            }
            2 => {
                json!({"id":format!("o{i}"),"type":"request","time":"2026-06-03T09:00:00Z","source":"desk","initiator":{"id":"bob","kind":"human"}})
            }
            _ => {
                json!({"id":format!("o{i}"),"type":"approval","time":"2026-06-03T09:00:00Z","source":"desk","approver":{"id":"carol","kind":"human"},"approves":format!("o{}", i - 1),"decision":"approved"})
            }
        };
        ix.observe(&ev(e));
    }
    let proposed = ProposedAction::parse(
        json!({"actor":{"id":"copilot","kind":"agent"},"credential":"tok:3","operation":"erp:refund.create",
               "resource":"erp://orders/A","params":{"amount":150},"request":"desk#req","context":{"tool":"erp_refund"}}),
        &Redactor::new(b"bench"),
    )
    .unwrap();
    let at = Timestamp::parse("2026-06-03T10:15:00Z").unwrap();
    (gate, ix, proposed, at)
}

/// The request the gate builds, built once, for the bare Cedar call.
fn bare_request() -> (Request, Entities) {
    let uid = |t: &str, id: &str| -> EntityUid { format!("{t}::{id:?}").parse().unwrap() };
    let s = |v: &str| RestrictedExpression::new_string(v.to_owned());
    let principal = uid("Custody::Principal", "copilot");
    let resource = uid("Custody::Resource", "erp://orders/A");
    let action = uid("Custody::Action", "erp:refund.create");
    let call = uid("Custody::Call", "proposed");
    let entities = Entities::from_entities(
        [
            Entity::new(
                principal.clone(),
                [
                    ("id".into(), s("copilot")),
                    ("kind".into(), s("agent")),
                    ("name".into(), s("")),
                ]
                .into(),
                Default::default(),
            )
            .unwrap(),
            Entity::new(
                resource.clone(),
                [("id".into(), s("erp://orders/A"))].into(),
                Default::default(),
            )
            .unwrap(),
            Entity::new_with_tags(
                call.clone(),
                [
                    ("operation".into(), s("erp:refund.create")),
                    ("resource".into(), s("erp://orders/A")),
                    ("mutating".into(), RestrictedExpression::new_bool(true)),
                ],
                [],
                [("amount".into(), RestrictedExpression::new_long(150))],
            )
            .unwrap(),
            Entity::new_no_attrs(
                action.clone(),
                ["erp:*", "erp:refund.*", "*"]
                    .iter()
                    .map(|g| uid("Custody::Action", g))
                    .collect(),
            ),
        ],
        None,
    )
    .unwrap();
    let rec = |pairs: Vec<(&str, RestrictedExpression)>| {
        RestrictedExpression::new_record(pairs.into_iter().map(|(k, v)| (k.to_owned(), v))).unwrap()
    };
    let context = Context::from_pairs([
        ("time".into(), RestrictedExpression::new_long(1_780_481_700)),
        ("hour".into(), RestrictedExpression::new_long(10)),
        ("weekday".into(), RestrictedExpression::new_long(3)),
        ("operation".into(), s("erp:refund.create")),
        ("mutating".into(), RestrictedExpression::new_bool(true)),
        ("call".into(), RestrictedExpression::new_entity_uid(call)),
        (
            "initiator".into(),
            rec(vec![("id", s("alice@example.com")), ("kind", s("human"))]),
        ),
        ("depth".into(), RestrictedExpression::new_long(4)),
        (
            "credential".into(),
            rec(vec![
                ("id", s("tok:3")),
                ("source", s("delegation")),
                ("via", s("token_exchange")),
                ("issuer", s("")),
                ("age_secs", RestrictedExpression::new_long(895)),
            ]),
        ),
        ("scope_covered".into(), RestrictedExpression::new_bool(true)),
        ("approved".into(), RestrictedExpression::new_bool(false)),
        ("approvers".into(), RestrictedExpression::new_set([])),
        ("approver_groups".into(), RestrictedExpression::new_set([])),
        ("tool".into(), s("erp_refund")),
        ("orchestrator".into(), s("")),
        ("origin".into(), s("")),
    ])
    .unwrap();
    (
        Request::new(principal, action, resource, context, None).unwrap(),
        entities,
    )
}

fn percentiles(mut ns: Vec<u128>) -> (f64, f64) {
    ns.sort_unstable();
    let at = |q: f64| ns[((ns.len() as f64 - 1.0) * q) as usize] as f64 / 1000.0;
    (at(0.50), at(0.99))
}

fn report() {
    let (gate, ix, proposed, at) = setup();
    let d = gate.decide(&ix, &proposed, at);
    assert_eq!(d.verdict, Verdict::Allow, "{:?}", d.reasons);
    assert_eq!(d.facts.depth, 4);
    let cedar = gate.cedar().unwrap();
    let (req, entities) = bare_request();
    let authorizer = Authorizer::new();
    assert_eq!(
        authorizer
            .is_authorized(&req, cedar.policy_set(), &entities)
            .decision(),
        cedar_policy::Decision::Allow
    );
    for _ in 0..20_000 {
        black_box(gate.decide(&ix, &proposed, at));
        black_box(authorizer.is_authorized(&req, cedar.policy_set(), &entities));
    }
    // Interleaved, so both see the same machine.
    let mut ours = Vec::with_capacity(SAMPLES);
    let mut bare = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let t = Instant::now();
        black_box(gate.decide(black_box(&ix), black_box(&proposed), at));
        ours.push(t.elapsed().as_nanos());
        let t = Instant::now();
        black_box(authorizer.is_authorized(black_box(&req), cedar.policy_set(), &entities));
        bare.push(t.elapsed().as_nanos());
    }
    let (o50, o99) = percentiles(ours);
    let (b50, b99) = percentiles(bare);
    println!("gate decision, 4-hop chain, 20 Cedar policies, {OTHER_EVENTS} other events indexed, {SAMPLES} samples:");
    println!("  Gate::decide            p50 {o50:8.2} µs   p99 {o99:8.2} µs");
    println!("  bare Cedar is_authorized p50 {b50:8.2} µs   p99 {b99:8.2} µs   (request and entities built once)");
    println!(
        "  ratio                    p50 {:8.2}×     p99 {:8.2}×",
        o50 / b50,
        o99 / b99
    );
}

fn bench(c: &mut Criterion) {
    let (gate, ix, proposed, at) = setup();
    let (req, entities) = bare_request();
    let authorizer = Authorizer::new();
    let cedar = gate.cedar().unwrap();
    let mut g = c.benchmark_group("gate");
    g.bench_function("decide_4_hops_20_policies", |b| {
        b.iter(|| gate.decide(black_box(&ix), black_box(&proposed), at))
    });
    g.bench_function("bare_cedar_is_authorized_20_policies", |b| {
        b.iter(|| authorizer.is_authorized(black_box(&req), cedar.policy_set(), &entities))
    });
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    report();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
