//! `custody ingest --iam-snapshot`: an IAM policy snapshot gives CloudTrail delegations the
//! scope of the role they hand out, so a real CloudTrail chain (Stratus Red Team's
//! `organizations:LeaveOrganization` detonation) is checked for overreach.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

mod common;
use common::repo;

const TRAIL: &str =
    "tests/data/realdata/stratus-red-team/docs/detonation-logs/aws.defense-evasion.organizations-leave.json";
const SNAPSHOT: &str = "tests/data/iam/authorization-details.json";

fn custody(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_custody"))
        .current_dir(repo())
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap()
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success() || out.status.code() == Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn overreach_on_leave(db: &Path) -> Vec<Value> {
    let findings = json(&custody(
        db,
        &["--format", "json", "findings", "--rule", "overreach"],
    ));
    findings
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            f["message"]
                .as_str()
                .unwrap_or("")
                .contains("LeaveOrganization")
        })
        .cloned()
        .collect()
}

#[test]
fn a_snapshot_scopes_assumed_roles_and_finds_overreach() {
    let dir = tempfile::tempdir().unwrap();

    // Without a snapshot the role's session has no recorded scope: no overreach to find.
    let plain = dir.path().join("plain.db");
    let out = custody(&plain, &["ingest", "--no-progress", TRAIL]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(overreach_on_leave(&plain).is_empty());

    let scoped = dir.path().join("scoped.db");
    let out = custody(
        &scoped,
        &["ingest", "--no-progress", "--iam-snapshot", SNAPSHOT, TRAIL],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The AssumeRole delegation carries the role's scope: the inline (URL-encoded) policy
    // and the managed policy's default version, not its older `*`.
    let trace = json(&custody(
        &scoped,
        &[
            "--format",
            "json",
            "trace",
            "--credential",
            "ASIA36EV31F1RB3OA8IG",
        ],
    ));
    let scope = trace["hops"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["credential"] == "ASIA36EV31F1RB3OA8IG")
        .map(|h| h["scope"].clone())
        .unwrap_or_else(|| panic!("no hop issues the session key: {trace}"));
    let actions: Vec<&str> = scope
        .as_array()
        .unwrap_or_else(|| panic!("the hop has no scope: {trace}"))
        .iter()
        .map(|p| p["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["organizations:Describe*", "organizations:List*"],
        "{scope}"
    );

    let found = overreach_on_leave(&scoped);
    assert_eq!(
        found.len(),
        1,
        "LeaveOrganization is outside the role's scope: {found:?}"
    );
}

#[test]
fn a_bad_snapshot_is_a_clear_error_and_nothing_is_ingested() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bad.db");
    let not_json = dir.path().join("broken.json");
    std::fs::write(&not_json, "{\"RoleDetailList\": [").unwrap();
    let out = custody(
        &db,
        &[
            "ingest",
            "--no-progress",
            "--iam-snapshot",
            not_json.to_str().unwrap(),
            TRAIL,
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("broken.json:1:") && stderr.contains("not JSON"),
        "{stderr}"
    );

    let other = dir.path().join("other.json");
    std::fs::write(&other, "{\"Records\": []}").unwrap();
    let out = custody(
        &db,
        &[
            "ingest",
            "--no-progress",
            "--iam-snapshot",
            other.to_str().unwrap(),
            TRAIL,
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("not an IAM authorization snapshot"),
        "{stderr}"
    );
    assert!(!db.exists(), "nothing was created");
}
