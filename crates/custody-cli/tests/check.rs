//! `custody check` end to end: the real binary, a real SQLite store holding the bundled
//! stories, the bundled Cedar policies. Exit codes, the DESIGN §10 JSON shape, bad input,
//! a broken policy, and the decision recorded in a log that still verifies.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

mod common;
use common::{code, json, repo, stderr};

fn run(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_custody"))
        .current_dir(dir)
        .arg("--db")
        .arg(dir.join("custody.db"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().unwrap()
}

/// A store with the five stories, and the path of the examples' config.
fn setup() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["ingest".to_owned()];
    for entry in std::fs::read_dir(repo().join("examples")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|x| x == "ndjson") {
            args.push(p.display().to_string());
        }
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(dir.path(), &args, None);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let cfg = repo().join("examples/custody.toml").display().to_string();
    (dir, cfg)
}

fn proposal(name: &str) -> String {
    repo()
        .join("examples/proposals")
        .join(name)
        .display()
        .to_string()
}

fn size(dir: &Path) -> u64 {
    let out = run(dir, &["verify", "--format", "json"], None);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    json(&out)["size"].as_u64().unwrap()
}

#[test]
fn every_bundled_proposal_gets_the_documented_decision() {
    let (dir, cfg) = setup();
    let expected = [
        ("01-allow-read-inventory-secret.json", 0, vec![]),
        ("02-deny-reused-vault-token.json", 1, vec!["token-reuse"]),
        ("03-deny-outside-scope.json", 1, vec!["overreach"]),
        ("04-allow-approved-refund.json", 0, vec![]),
        (
            "05-deny-unapproved-large-refund.json",
            1,
            vec!["approval-missing", "policy-violation"],
        ),
        (
            "06-deny-leaked-key-no-human.json",
            1,
            vec!["policy-violation"],
        ),
    ];
    let before = size(dir.path());
    for (n, (file, exit, rules)) in expected.iter().enumerate() {
        let out = run(
            dir.path(),
            &[
                "--config",
                &cfg,
                "--format",
                "json",
                "check",
                "--action",
                &proposal(file),
            ],
            None,
        );
        assert_eq!(code(&out), *exit, "{file}: {}", stderr(&out));
        let v = json(&out);
        assert_eq!(v["decision"], if *exit == 0 { "allow" } else { "deny" });
        let got: Vec<&str> = v["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["rule"].as_str().unwrap())
            .collect();
        assert_eq!(&got, rules, "{file}");
        for r in v["reasons"].as_array().unwrap() {
            assert!(!r["message"].as_str().unwrap().is_empty());
        }
        // The decision event, as stored, at the index given.
        let ev = &v["decision_event"];
        assert_eq!(ev["type"], "decision");
        assert_eq!(ev["source"], "custody-gate");
        assert_eq!(ev["decision"], v["decision"]);
        assert_eq!(ev["reasons"], v["reasons"]);
        assert_eq!(v["decision_index"].as_u64().unwrap(), before + n as u64);
    }
    assert_eq!(size(dir.path()), before + 6, "six decisions recorded");
    // The recorded decision has an inclusion proof like any event.
    let out = run(
        dir.path(),
        &["proof", "--index", &before.to_string(), "--format", "json"],
        None,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let leaf: Value = serde_json::from_str(json(&out)["leaf"].as_str().unwrap()).unwrap();
    assert_eq!(leaf["type"], "decision");
    assert_eq!(leaf["decision"], "allow");
}

#[test]
fn asking_again_of_a_grown_log_is_a_new_record_and_text_says_why() {
    let (dir, cfg) = setup();
    let p = proposal("03-deny-outside-scope.json");
    let first = run(
        dir.path(),
        &[
            "--config", &cfg, "--format", "json", "check", "--action", &p,
        ],
        None,
    );
    let second = run(
        dir.path(),
        &[
            "--config", &cfg, "--format", "json", "check", "--action", &p,
        ],
        None,
    );
    assert_eq!((code(&first), code(&second)), (1, 1));
    // The second was asked of a log that had grown by the first: a new record.
    assert_ne!(
        json(&first)["decision_event"]["id"],
        json(&second)["decision_event"]["id"]
    );
    // Text output says what and why.
    let text = run(
        dir.path(),
        &["--config", &cfg, "check", "--action", &p],
        None,
    );
    let s = String::from_utf8_lossy(&text.stdout);
    assert!(s.starts_with("DENY\n"), "{s}");
    assert!(s.contains("overreach: "), "{s}");
    assert!(s.contains("recorded as custody-gate#dec-"), "{s}");
}

#[test]
fn proposals_from_standard_input_and_inline_json() {
    let (dir, cfg) = setup();
    let text = std::fs::read_to_string(proposal("01-allow-read-inventory-secret.json")).unwrap();
    let out = run(
        dir.path(),
        &["--config", &cfg, "check", "--action", "-"],
        Some(&text),
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = run(
        dir.path(),
        &["--config", &cfg, "check", "--action", text.trim()],
        None,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn bad_input_is_exit_2_with_the_reason_and_records_nothing() {
    let (dir, cfg) = setup();
    let before = size(dir.path());
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\n  \"actor\": \"a\",\n  \"operation\": \n}\n").unwrap();
    let out = run(
        dir.path(),
        &["--config", &cfg, "check", "--action", bad.to_str().unwrap()],
        None,
    );
    assert_eq!(code(&out), 2);
    let e = stderr(&out);
    assert!(e.contains("bad.json:4:1: malformed JSON"), "{e}");
    let cases = [
        (
            r#"{"actor":"a","operation":"o"}"#,
            "missing required field `resource`",
        ),
        (
            r#"{"actor":"a","operation":"o","resource":"r","colour":1}"#,
            "unknown field `colour`",
        ),
        (
            r#"{"actor":"a","operation":"o","resource":"r","time":"soon"}"#,
            "RFC 3339",
        ),
        (r#"[1]"#, "JSON object"),
    ];
    for (input, reason) in cases {
        let out = run(
            dir.path(),
            &["--config", &cfg, "check", "--action", "-"],
            Some(input),
        );
        assert_eq!(code(&out), 2, "{input}");
        assert!(stderr(&out).contains(reason), "{input}: {}", stderr(&out));
    }
    let out = run(
        dir.path(),
        &["check", "--action", "/no/such/file.json"],
        None,
    );
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("/no/such/file.json"),
        "{}",
        stderr(&out)
    );
    assert_eq!(size(dir.path()), before, "nothing recorded for bad input");
}

#[test]
fn a_broken_policy_stops_with_file_and_line() {
    let (dir, _) = setup();
    let cfgdir = dir.path().join("cfg");
    std::fs::create_dir_all(cfgdir.join("policies")).unwrap();
    std::fs::write(
        cfgdir.join("custody.toml"),
        "[gate]\npolicies = \"policies\"\n",
    )
    .unwrap();
    std::fs::write(
        cfgdir.join("policies/a.cedar"),
        "permit (principal, action, resource);\n",
    )
    .unwrap();
    std::fs::write(
        cfgdir.join("policies/b.cedar"),
        "// agents only by day\nforbid (principal, action, resource)\n  when { context.hours > 18 };\n",
    )
    .unwrap();
    let cfg = cfgdir.join("custody.toml").display().to_string();
    let before = size(dir.path());
    let p = proposal("01-allow-read-inventory-secret.json");
    let out = run(
        dir.path(),
        &["--config", &cfg, "check", "--action", &p],
        None,
    );
    assert_eq!(code(&out), 2);
    let e = stderr(&out);
    assert!(e.contains("b.cedar:3:"), "{e}");
    assert!(e.contains("hours"), "{e}");
    // Findings refuse to run on a broken policy too, rather than silently skipping it.
    let out = run(dir.path(), &["--config", &cfg, "findings"], None);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("b.cedar:3:"), "{}", stderr(&out));
    std::fs::write(
        cfgdir.join("policies/b.cedar"),
        "forbid (principal, action, resource) when { context.hour > 18 && context.mutating };\n",
    )
    .unwrap();
    let out = run(
        dir.path(),
        &["--config", &cfg, "check", "--action", &p],
        None,
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(size(dir.path()), before + 1);
    // A policy folder named in the config must exist.
    std::fs::write(cfgdir.join("custody.toml"), "[gate]\npolicies = \"nope\"\n").unwrap();
    let out = run(
        dir.path(),
        &["--config", &cfg, "check", "--action", &p],
        None,
    );
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("nope"), "{}", stderr(&out));
}

#[test]
fn a_raw_token_presented_to_the_gate_is_never_stored() {
    let (dir, cfg) = setup();
    let raw = "ghp_Zz0123456789abcdefghijklmnopqrstuvwx";
    let input = format!(
        r#"{{"time":"2026-06-01T11:30:00Z","actor":"rotation-agent","credential":"{raw}","operation":"vault:secret.read","resource":"vault://prod/secret/inventory-db"}}"#
    );
    let out = run(
        dir.path(),
        &[
            "--config", &cfg, "--format", "json", "check", "--action", "-",
        ],
        Some(&input),
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let v = json(&out);
    assert_eq!(v["reasons"][0]["rule"], "unknown-credential");
    assert!(!String::from_utf8_lossy(&out.stdout).contains(raw));
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("custody.db")
        {
            let bytes = std::fs::read(&p).unwrap();
            assert!(
                !bytes.windows(raw.len()).any(|w| w == raw.as_bytes()),
                "{} holds the raw token",
                p.display()
            );
        }
    }
    let verify = run(dir.path(), &["verify"], None);
    assert_eq!(code(&verify), 0, "{}", stderr(&verify));
}
