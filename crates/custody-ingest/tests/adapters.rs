//! Real third-party samples (tests/data/realdata, see its SOURCES.md) through the adapters
//! and the `Preparer`, kept as insta snapshots; bad and irrelevant input beside good.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use custody_ingest::adapters::{self, Format};
use custody_ingest::Preparer;
use custody_model::Redactor;
use serde_json::{json, Value};

/// A real sample under tests/data/realdata, or one of this crate's fixtures
/// (`fixtures/...`, written for formats with no licensed sample).
fn data(rel: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    match rel.strip_prefix("fixtures/") {
        Some(f) => root.join("tests/fixtures").join(f),
        None => root.join("../../tests/data/realdata").join(rel),
    }
}

fn preparer() -> Preparer {
    Preparer::new(Redactor::new(b"custody-ingest-tests"))
}

struct Run {
    events: Vec<Value>,
    rejected: Vec<Value>,
    stats: adapters::Stats,
}

fn run_bytes(format: Option<Format>, bytes: Vec<u8>, name: &str) -> Run {
    let p = preparer();
    let mut records = adapters::read(format, std::io::Cursor::new(bytes), name);
    let mut events = Vec::new();
    let mut rejected = Vec::new();
    for item in records.by_ref() {
        match p.prepare_adapted(item) {
            Ok(ev) => events.push(serde_json::from_slice::<Value>(ev.canonical()).unwrap()),
            Err(r) => rejected.push(json!({"record": r.origin.line, "reason": r.reason})),
        }
    }
    Run {
        events,
        rejected,
        stats: records.stats().clone(),
    }
}

fn run(rel: &str) -> Run {
    let bytes = std::fs::read(data(rel)).unwrap();
    run_bytes(None, bytes, rel)
}

fn by_type(events: &[Value]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for e in events {
        *out.entry(e["type"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    out
}

/// The snapshot of one file: what it became, counted, and the events themselves (the
/// first `keep` of them).
fn summary(rel: &str, keep: usize) -> Value {
    let r = run(rel);
    let detected = adapters::detect(&std::fs::read(data(rel)).unwrap()).map(|f| f.name());
    json!({
        "file": rel,
        "detected": detected,
        "records": r.stats.records,
        "formats": r.stats.formats,
        "skipped": r.stats.skipped,
        "by_type": by_type(&r.events),
        "rejected": r.rejected,
        "events_shown": r.events.len().min(keep),
        "events": r.events.into_iter().take(keep).collect::<Vec<_>>(),
    })
}

macro_rules! snap {
    ($name:ident, $rel:expr) => {
        snap!($name, $rel, usize::MAX);
    };
    ($name:ident, $rel:expr, $keep:expr) => {
        #[test]
        fn $name() {
            // Keys sorted, so the snapshots do not depend on serde_json's map order.
            insta::with_settings!({ sort_maps => true }, {
                insta::assert_json_snapshot!(stringify!($name), summary($rel, $keep));
            });
        }
    };
}

const INVICTUS: &str =
    "invictus-ir-aws_dataset/CloudTrail/218007301253_CloudTrail_us-east-1_20230710T";
const STRATUS: &str = "stratus-red-team/docs/detonation-logs/aws.";

snap!(
    cloudtrail_invictus_assume_role_denied,
    &format!("{INVICTUS}1210Z_bXGZYqBeCCsqWq1U.json")
);
snap!(
    cloudtrail_invictus_service_assume_role,
    &format!("{INVICTUS}1230Z_soULWstxp7lqsODg.json")
);
snap!(
    cloudtrail_invictus_org_discovery,
    &format!("{INVICTUS}1235Z_kboLbHJlz2H6cLyo.json")
);
snap!(
    cloudtrail_invictus_two_records,
    &format!("{INVICTUS}1150Z_1vnLavRRp0ek1mP4.json")
);
snap!(
    cloudtrail_invictus_ten_records,
    &format!("{INVICTUS}1205Z_nx9Yx1FyJdBaTqKj.json")
);
snap!(
    cloudtrail_stratus_organizations_leave,
    &format!("{STRATUS}defense-evasion.organizations-leave.json")
);
snap!(
    cloudtrail_stratus_federation_token,
    &format!("{STRATUS}persistence.sts-federation-token.json")
);
snap!(
    cloudtrail_stratus_unusual_instances,
    &format!("{STRATUS}execution.ec2-launch-unusual-instances.json")
);
snap!(
    cloudtrail_stratus_create_admin_user,
    &format!("{STRATUS}persistence.iam-create-admin-user.json")
);
snap!(
    cloudtrail_stratus_batch_secrets,
    &format!("{STRATUS}credential-access.secretsmanager-batch-retrieve-secrets.json")
);
snap!(
    cloudtrail_stratus_console_login,
    &format!("{STRATUS}initial-access.console-login-without-mfa.json")
);
snap!(
    cloudtrail_awsdocs_block02,
    "awsdocs-iam-user-guide/doc_source/cloudtrail-integration.block02.json"
);
snap!(
    cloudtrail_awsdocs_block03,
    "awsdocs-iam-user-guide/doc_source/cloudtrail-integration.block03.json"
);
snap!(
    cloudtrail_awsdocs_block04,
    "awsdocs-iam-user-guide/doc_source/cloudtrail-integration.block04.json"
);
snap!(
    cloudtrail_awsdocs_block06_not_json,
    "awsdocs-iam-user-guide/doc_source/cloudtrail-integration.block06.json"
);
snap!(cloudtrail_panther_root_creds_ndjson, "panther-analysis/test_scenarios/compromised-root-creds/attacker_cloudtrail.AWS.CloudTrail.jsonl", 6);
snap!(
    gcp_loki_entry,
    "grafana-loki/clients/pkg/promtail/targets/gcplog/pull_target_test.gcpLogEntry.json"
);
snap!(
    gcp_panther_head30,
    "panther-analysis/extracted/GCP.AuditLog.tests.head30.jsonl",
    8
);
snap!(
    k8s_panther_eks_head40,
    "panther-analysis/extracted/Amazon.EKS.Audit.tests.head40.jsonl",
    8
);
snap!(
    github_panther_audit,
    "panther-analysis/extracted/GitHub.Audit.tests.jsonl",
    8
);
snap!(
    okta_panther_irrelevant,
    "panther-analysis/test_scenarios/okta-add-administrator/legit_login.Okta.SystemLog.jsonl",
    0
);
snap!(otel_proto_trace, "opentelemetry-proto/examples/trace.json");
snap!(
    otel_proto_logs_irrelevant,
    "opentelemetry-proto/examples/logs.json"
);
snap!(
    otel_anyagent_openai,
    "mozilla-ai-any-agent/tests/assets/OPENAI_trace.json"
);
snap!(
    otel_anyagent_langchain,
    "mozilla-ai-any-agent/tests/assets/LANGCHAIN_trace.json"
);
snap!(
    otel_anyagent_smolagents,
    "mozilla-ai-any-agent/tests/assets/SMOLAGENTS_trace.json"
);
snap!(vault_fixture, "fixtures/vault/audit.fixture.jsonl");
snap!(
    github_oidc_fixture,
    "fixtures/github-actions/oidc-claims.fixture.json"
);
snap!(
    otel_custody_fixture,
    "fixtures/otel-custody/agent-chain.fixture.otlp.json"
);
snap!(
    k8s_impersonation_fixture,
    "fixtures/kubernetes/impersonation.fixture.jsonl"
);

// ---- shapes, detection, gzip, bad input -------------------------------------------------

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

#[test]
fn detect_names_each_sample_format_from_its_first_bytes() {
    let cases = [
        (
            format!("{INVICTUS}1150Z_1vnLavRRp0ek1mP4.json"),
            Some(Format::CloudTrail),
        ),
        (
            format!("{STRATUS}persistence.sts-federation-token.json"),
            Some(Format::CloudTrail),
        ),
        (
            "grafana-loki/clients/pkg/promtail/targets/gcplog/pull_target_test.gcpLogEntry.json"
                .into(),
            Some(Format::GcpAudit),
        ),
        (
            "panther-analysis/extracted/Amazon.EKS.Audit.tests.head40.jsonl".into(),
            Some(Format::KubernetesAudit),
        ),
        (
            "opentelemetry-proto/examples/trace.json".into(),
            Some(Format::Otel),
        ),
        (
            "mozilla-ai-any-agent/tests/assets/OPENAI_trace.json".into(),
            Some(Format::Otel),
        ),
        (
            "fixtures/vault/audit.fixture.jsonl".into(),
            Some(Format::VaultAudit),
        ),
        (
            "fixtures/github-actions/oidc-claims.fixture.json".into(),
            Some(Format::GitHub),
        ),
        (
            "panther-analysis/extracted/GitHub.Audit.tests.jsonl".into(),
            Some(Format::GitHub),
        ),
        ("opentelemetry-proto/examples/logs.json".into(), None),
    ];
    for (rel, want) in cases {
        let bytes = std::fs::read(data(&rel)).unwrap();
        assert_eq!(adapters::detect(&bytes), want, "{rel}");
        // Only the start of a large file: the field sniffing still finds it.
        let start = &bytes[..bytes.len().min(700)];
        assert_eq!(adapters::detect(start), want, "start of {rel}");
        assert_eq!(adapters::detect(&gzip(&bytes)), want, "gzipped {rel}");
    }
    assert_eq!(adapters::detect(b""), None);
    assert_eq!(adapters::detect(b"\x1f\x8b\x08garbage"), None);
}

#[test]
fn gzip_input_reads_like_plain_input() {
    let rel = format!("{STRATUS}defense-evasion.organizations-leave.json");
    let bytes = std::fs::read(data(&rel)).unwrap();
    let plain = run_bytes(None, bytes.clone(), "x.json");
    let packed = run_bytes(None, gzip(&bytes), "x.json.gz");
    assert_eq!(plain.events, packed.events);
    assert_eq!(plain.events.len(), 5);
}

#[test]
fn records_array_ndjson_and_single_object_give_the_same_events() {
    let rel = format!("{STRATUS}persistence.sts-federation-token.json");
    let records: Vec<Value> = serde_json::from_slice(&std::fs::read(data(&rel)).unwrap()).unwrap();
    let array = run_bytes(None, serde_json::to_vec(&records).unwrap(), "a.json");
    let wrapped = run_bytes(
        None,
        serde_json::to_vec(&json!({"Records": records})).unwrap(),
        "r.json",
    );
    let pretty = run_bytes(
        None,
        serde_json::to_vec_pretty(&json!({"Records": records})).unwrap(),
        "p.json",
    );
    let ndjson: Vec<u8> = records
        .iter()
        .flat_map(|r| {
            let mut line = serde_json::to_vec(r).unwrap();
            line.push(b'\n');
            line
        })
        .collect();
    let lines = run_bytes(None, ndjson, "l.jsonl");
    assert_eq!(array.events.len(), 3);
    assert_eq!(array.events, wrapped.events);
    assert_eq!(array.events, pretty.events);
    assert_eq!(array.events, lines.events);
    let one = run_bytes(
        None,
        serde_json::to_vec_pretty(&records[1]).unwrap(),
        "o.json",
    );
    assert_eq!(one.events.len(), 1);
    assert_eq!(one.events[0], array.events[2]);
}

#[test]
fn the_session_token_and_secret_key_are_never_copied() {
    let rel = format!("{STRATUS}persistence.sts-federation-token.json");
    let mut records: Vec<Value> =
        serde_json::from_slice(&std::fs::read(data(&rel)).unwrap()).unwrap();
    records[0]["responseElements"]["credentials"]["secretAccessKey"] =
        json!("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
    let token = records[0]["responseElements"]["credentials"]["sessionToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = run_bytes(
        Some(Format::CloudTrail),
        serde_json::to_vec(&records).unwrap(),
        "t.json",
    );
    let all = serde_json::to_string(&r.events).unwrap();
    assert!(!all.contains(&token[..40]));
    assert!(!all.contains("wJalrXUtnFEMI"));
    assert!(!all.contains("sessionToken") && !all.contains("secretAccessKey"));
    let d = r.events.iter().find(|e| e["type"] == "delegation").unwrap();
    assert_eq!(d["credential"]["id"], "ASIASTJKC5GCM7ZE6LUP");
    assert_eq!(d["credential"]["expires"], "2024-11-30T20:43:17Z");
    assert_eq!(
        d["to"]["id"],
        "arn:aws:sts::742491224508:federated-user/stratus_red_team"
    );
    assert_eq!(d["parent_credential"], "AKIA6V1GNZTT65XQH36M");
    // The federated user's call uses the credential the delegation issued.
    let call = r
        .events
        .iter()
        .find(|e| e["operation"] == "sts:GetCallerIdentity")
        .unwrap();
    assert_eq!(call["credential"], d["credential"]["id"]);
    assert_eq!(call["actor"]["id"], d["to"]["id"]);
}

#[test]
fn bad_and_irrelevant_input_is_rejected_with_file_record_and_reason() {
    let input = b"{\"eventVersion\":\"1.08\",\"eventSource\":\"s3.amazonaws.com\"}\n\
        not json at all\n\
        [1, 2]\n\
        {\"hello\":\"world\"}\n\
        \"a string\"\n\
        {\"eventVersion\":\"1.08\",\"eventID\":\"e1\",\"eventName\":\"PutObject\",\"eventTime\":\"2024-01-01T00:00:00Z\",\"eventSource\":\"s3.amazonaws.com\",\"userIdentity\":{\"type\":\"IAMUser\",\"arn\":\"arn:aws:iam::1:user/u\",\"accessKeyId\":\"AKIAEXAMPLE\"},\"requestParameters\":{\"bucketName\":\"b\",\"key\":\"k\"}}\n";
    let r = run_bytes(None, input.to_vec(), "mixed.jsonl");
    let reasons: Vec<(u64, String)> = r
        .rejected
        .iter()
        .map(|x| {
            (
                x["record"].as_u64().unwrap(),
                x["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(reasons.len(), 6, "{reasons:?}");
    assert_eq!(reasons[0], (1, "cloudtrail: missing `eventID`".to_owned()));
    assert_eq!(reasons[1].0, 2);
    assert!(reasons[1].1.starts_with("malformed JSON"), "{reasons:?}");
    assert_eq!(reasons[2].0, 3);
    assert_eq!(reasons[3].0, 3);
    assert!(reasons[2].1.contains("a JSON number"), "{reasons:?}");
    assert_eq!(
        reasons[4],
        (
            4,
            "unrecognised record: no adapter knows its fields".to_owned()
        )
    );
    assert_eq!(
        reasons[5],
        (5, "unrecognised record: a JSON string".to_owned())
    );
    assert_eq!(
        by_type(&r.events),
        BTreeMap::from([("action".to_owned(), 1), ("effect".to_owned(), 1)])
    );
    assert_eq!(r.events[0]["resource"], "arn:aws:s3:::b/k");
    assert_eq!(r.stats.records, 7);
}

#[test]
fn a_forced_format_reads_records_it_would_not_detect() {
    let input = br#"{"eventID":"e2","eventName":"GetObject","eventTime":"2024-01-01T00:00:00Z","eventSource":"s3.amazonaws.com","readOnly":true,"userIdentity":{"type":"AssumedRole","arn":"arn:aws:sts::1:assumed-role/r/i-0abc","accessKeyId":"ASIAEXAMPLE"},"resources":[{"ARN":"arn:aws:s3:::b/k"}],"sourceIPAddress":"198.51.100.7","errorCode":"AccessDenied"}"#;
    assert!(run_bytes(None, input.to_vec(), "x").events.is_empty());
    let r = run_bytes(Some(Format::CloudTrail), input.to_vec(), "x");
    assert_eq!(r.events.len(), 1);
    let a = &r.events[0];
    assert_eq!(a["outcome"], "denied");
    assert_eq!(a["mutating"], false);
    assert_eq!(a["actor"]["kind"], "workload");
    assert_eq!(a["context"]["origin"], "198.51.100.7");
    assert_eq!(a["source"], "aws:cloudtrail:unknown");
}

#[test]
fn format_names_round_trip() {
    for f in Format::ALL {
        assert_eq!(Format::parse(f.name()), Some(f));
    }
    assert_eq!(Format::parse("nope"), None);
}

// ---- never panic ------------------------------------------------------------------------

fn samples() -> Vec<Vec<u8>> {
    [
        format!("{STRATUS}defense-evasion.organizations-leave.json"),
        "grafana-loki/clients/pkg/promtail/targets/gcplog/pull_target_test.gcpLogEntry.json".into(),
        "fixtures/kubernetes/impersonation.fixture.jsonl".into(),
        "fixtures/vault/audit.fixture.jsonl".into(),
        "fixtures/otel-custody/agent-chain.fixture.otlp.json".into(),
        "mozilla-ai-any-agent/tests/assets/OPENAI_trace.json".into(),
        "fixtures/github-actions/oidc-claims.fixture.json".into(),
    ]
    .iter()
    .map(|rel| std::fs::read(data(rel)).unwrap())
    .collect()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    #[test]
    fn no_adapter_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
        custody_ingest::fuzzing::all(&bytes);
    }

    #[test]
    fn no_adapter_panics_on_mutated_samples(
        which in 0usize..7,
        edits in proptest::collection::vec((proptest::num::usize::ANY, proptest::num::u8::ANY), 1..8),
        cut in proptest::num::usize::ANY,
    ) {
        let mut bytes = samples().swap_remove(which);
        for (at, b) in edits {
            let n = bytes.len();
            bytes[at % n] = b;
        }
        let keep = cut % (bytes.len() + 1);
        custody_ingest::fuzzing::all(&bytes[..keep]);
        // Whatever an adapter yields is a valid event.
        let p = preparer();
        for item in adapters::read(None, std::io::Cursor::new(bytes.clone()), "m").flatten() {
            let text = item.1.to_string();
            proptest::prop_assert!(p.prepare_value(item.1, None).is_ok(), "{}", text);
        }
        custody_ingest::fuzzing::all(&bytes);
        custody_ingest::fuzzing::all(&gzip(&bytes));
    }

    #[test]
    fn no_adapter_panics_on_json_of_the_wrong_shape(value in json_value()) {
        let text = value.to_string();
        custody_ingest::fuzzing::all(text.as_bytes());
        // Each adapter once more with its own top-level keys around the value.
        for key in ["Records", "protoPayload", "userIdentity", "resourceSpans", "spans", "request", "auth", "user", "objectRef", "impersonatedUser"] {
            let wrapped = json!({key: value.clone(), "eventVersion": "1", "eventID": "x", "eventName": "AssumeRole", "eventTime": "2024-01-01T00:00:00Z", "insertId": "i", "auditID": "a", "kind": "Event", "type": "response", "time": "2024-01-01T00:00:00Z"});
            custody_ingest::fuzzing::all(wrapped.to_string().as_bytes());
            let p = preparer();
            for f in Format::ALL.into_iter().filter(|f| *f != Format::Custody) {
                let bytes = wrapped.to_string().into_bytes();
                for item in adapters::read(Some(f), std::io::Cursor::new(bytes), "w").flatten() {
                    let text = item.1.to_string();
                    proptest::prop_assert!(p.prepare_value(item.1, None).is_ok(), "{}", text);
                }
            }
        }
    }
}

fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        "[a-zA-Z0-9:/_. -]{0,12}".prop_map(Value::from),
        Just(json!("2024-01-01T00:00:00Z")),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let keys = prop_oneof![
            Just("id".to_owned()),
            Just("arn".to_owned()),
            Just("accessKeyId".to_owned()),
            Just("credentials".to_owned()),
            Just("spans".to_owned()),
            Just("context".to_owned()),
            Just("attributes".to_owned()),
            Just("username".to_owned()),
            Just("accessor".to_owned()),
            Just("path".to_owned()),
            Just("parent".to_owned()),
            Just("scopeSpans".to_owned()),
            Just("serviceAccountDelegationInfo".to_owned()),
            Just("authorizationInfo".to_owned()),
            "[a-z]{1,6}",
        ];
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map(keys, inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn rejected_records_are_redacted_before_they_are_cut() {
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ";
    // A JWT that straddles the quarantine's excerpt limit, in a record no adapter knows.
    let pad = "x".repeat(custody_ingest::EXCERPT_BYTES - 30);
    let line = format!("{{\"pad\":\"{pad}\",\"token\":\"{jwt}\"}}\n");
    let r = run_bytes(None, line.into_bytes(), "secret.jsonl");
    assert_eq!(r.rejected.len(), 1);
    let p = preparer();
    let rejected = adapters::read(
        None,
        std::io::Cursor::new(format!("{{\"a\":\"{pad}{jwt}\"}}").into_bytes()),
        "s",
    )
    .map(|item| p.prepare_adapted(item))
    .next()
    .unwrap()
    .unwrap_err();
    assert!(
        !rejected.excerpt.contains("eyJhbGciOiJIUzI1NiJ9"),
        "{}",
        rejected.excerpt
    );
    assert!(
        !rejected.excerpt.contains(&jwt[..12]),
        "{}",
        rejected.excerpt
    );
}

#[test]
fn gcp_delegation_hops_run_in_order_to_the_principal() {
    let entry = json!({
        "insertId": "abc123",
        "logName": "projects/p1/logs/cloudaudit.googleapis.com%2Factivity",
        "timestamp": "2026-06-06T09:00:00Z",
        "protoPayload": {
            "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
            "serviceName": "secretmanager.googleapis.com",
            "methodName": "google.cloud.secretmanager.v1.SecretManagerService.AddSecretVersion",
            "resourceName": "projects/p1/secrets/orders-db",
            "authenticationInfo": {
                "principalEmail": "deployer@p1.iam.gserviceaccount.com",
                "principalSubject": "serviceAccount:deployer@p1.iam.gserviceaccount.com",
                "serviceAccountKeyName": "//iam.googleapis.com/projects/p1/serviceAccounts/deployer@p1.iam.gserviceaccount.com/keys/0a1b2c",
                "serviceAccountDelegationInfo": [
                    {"firstPartyPrincipal": {"principalEmail": "alice@example.com"}},
                    {"thirdPartyPrincipal": {"thirdPartyClaims": {"sub": "repo:octo-org/octo-repo:ref:refs/heads/main"}}},
                    {"firstPartyPrincipal": {"principalEmail": "ci@p1.iam.gserviceaccount.com"}}
                ]
            },
            "authorizationInfo": [
                {"permission": "secretmanager.versions.add", "resource": "projects/p1/secrets/orders-db", "granted": true}
            ],
            "requestMetadata": {"callerIp": "203.0.113.5"},
            "status": {}
        },
        "resource": {"type": "secretmanager.googleapis.com/Secret", "labels": {"project_id": "p1"}}
    });
    let r = run_bytes(None, entry.to_string().into_bytes(), "gcp.json");
    let hops: Vec<(String, String)> = r
        .events
        .iter()
        .filter(|e| e["type"] == "delegation")
        .map(|e| {
            (
                e["from"]["id"].as_str().unwrap().to_owned(),
                e["to"]["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        hops,
        vec![
            (
                "alice@example.com".to_owned(),
                "repo:octo-org/octo-repo:ref:refs/heads/main".to_owned()
            ),
            (
                "repo:octo-org/octo-repo:ref:refs/heads/main".to_owned(),
                "ci@p1.iam.gserviceaccount.com".to_owned()
            ),
            (
                "ci@p1.iam.gserviceaccount.com".to_owned(),
                "deployer@p1.iam.gserviceaccount.com".to_owned()
            ),
        ]
    );
    let action = r.events.iter().find(|e| e["type"] == "action").unwrap();
    assert_eq!(action["operation"], "gcp:secretmanager.versions.add");
    assert_eq!(
        action["resource"],
        "//secretmanager.googleapis.com/projects/p1/secrets/orders-db"
    );
    assert_eq!(action["parents"], json!(["abc123/hop-3"]));
    assert_eq!(action["context"]["origin"], "203.0.113.5");
    assert_eq!(
        action["attributes"]["principal_subject"],
        "serviceAccount:deployer@p1.iam.gserviceaccount.com"
    );
    assert!(action["credential"]
        .as_str()
        .unwrap()
        .ends_with("/keys/0a1b2c"));
    let effect = r.events.iter().find(|e| e["type"] == "effect").unwrap();
    assert_eq!(effect["change"], "created");
    assert_eq!(effect["caused_by"], "abc123");
}
