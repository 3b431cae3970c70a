//! End-to-end tests of the `custody` binary, run as a user would: a real SQLite file in a
//! temporary folder, real processes, real signals.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{code, json as json_of, repo};

fn data(name: &str) -> PathBuf {
    repo().join("tests/data").join(name)
}

/// Runs `custody --db DB ARGS` in `dir` (so no stray ./custody.toml is read).
fn custody(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_custody"))
        .current_dir(dir)
        .arg("--db")
        .arg(dir.join("custody.db"))
        .args(args)
        .output()
        .expect("run custody")
}

fn ingest_examples(dir: &Path) {
    let mut args = vec!["ingest".to_owned(), "--format".into(), "json".into()];
    for n in [
        "01-credential-rotation",
        "02-ci-config-push",
        "03-refund-copilot",
        "04-leaked-secret",
        "05-framework-review",
    ] {
        args.push(
            repo()
                .join(format!("examples/{n}.ndjson"))
                .display()
                .to_string(),
        );
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = custody(dir, &args);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn bad_lines_are_quarantined_with_file_line_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let input = data("bad-input.ndjson");
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(data("bad-input.expected.json")).unwrap())
            .unwrap();
    let bad = expected["bad"].as_array().unwrap();
    let good = expected["good"].as_u64().unwrap();

    let out = custody(
        dir.path(),
        &["ingest", "--format", "json", input.to_str().unwrap()],
    );
    assert_eq!(code(&out), 3, "exit 3 when lines were quarantined");
    let summary = json_of(&out);
    assert_eq!(summary["accepted"], good);
    assert_eq!(summary["quarantined"].as_u64().unwrap(), bad.len() as u64);
    let errors = summary["errors"].as_array().unwrap();
    assert_eq!(errors.len(), bad.len());
    for want in bad {
        let line = want["line"].as_u64().unwrap();
        let got = errors
            .iter()
            .find(|e| e["line"] == line)
            .unwrap_or_else(|| panic!("no error for line {line}: {errors:?}"));
        assert_eq!(got["file"], input.to_str().unwrap());
        let reason = got["reason"].as_str().unwrap().to_lowercase();
        let needle = want["reason_contains"].as_str().unwrap().to_lowercase();
        assert!(
            reason.contains(&needle),
            "line {line}: `{reason}` lacks `{needle}`"
        );
    }
    let before = json_of(&custody(dir.path(), &["verify", "--format", "json"]));
    assert_eq!(before["ok"], true);
    assert_eq!(before["size"], good);

    // Re-ingest: every good line is a counted duplicate, nothing in the log changes.
    let again = custody(
        dir.path(),
        &["ingest", "--format", "json", input.to_str().unwrap()],
    );
    assert_eq!(code(&again), 3);
    let summary = json_of(&again);
    assert_eq!(summary["accepted"], 0);
    assert_eq!(summary["duplicates"], good);
    let after = json_of(&custody(dir.path(), &["verify", "--format", "json"]));
    assert_eq!(after["size"], before["size"]);
    assert_eq!(after["root"], before["root"]);
    assert_eq!(after["ok"], true);
}

#[test]
fn unreadable_input_is_exit_2_and_other_files_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let story = repo().join("examples/01-credential-rotation.ndjson");
    let out = custody(
        dir.path(),
        &[
            "ingest",
            "--format",
            "json",
            "no-such-file.ndjson",
            story.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&out), 2);
    let summary = json_of(&out);
    assert!(summary["accepted"].as_u64().unwrap() > 0);
    assert_eq!(summary["errors"][0]["file"], "no-such-file.ndjson");
}

#[test]
fn ingest_reads_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_custody"))
        .current_dir(dir.path())
        .args(["--db", "custody.db", "ingest", "--format", "json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let text =
        std::fs::read_to_string(repo().join("examples/01-credential-rotation.ndjson")).unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 0);
    let lines = text.lines().filter(|l| !l.trim().is_empty()).count() as u64;
    assert_eq!(json_of(&out)["accepted"], lines);
}

#[test]
fn a_killed_ingest_keeps_what_it_committed_and_a_rerun_completes() {
    let dir = tempfile::tempdir().unwrap();
    let total: u64 = 150_000;
    let input = dir.path().join("big.ndjson");
    let gen = Command::new(env!("CARGO_BIN_EXE_custody"))
        .current_dir(dir.path())
        .args(["gen-events", &total.to_string()])
        .output()
        .unwrap();
    assert!(gen.status.success());
    std::fs::write(&input, &gen.stdout).unwrap();

    let db = dir.path().join("custody.db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_custody"))
        .current_dir(dir.path())
        .args([
            "--db",
            "custody.db",
            "ingest",
            "--format",
            "json",
            "big.ndjson",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the first committed batch, then SIGKILL.
    let start = Instant::now();
    let committed = loop {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no batch committed"
        );
        std::thread::sleep(Duration::from_millis(20));
        if let Ok(conn) = rusqlite::Connection::open(&db) {
            if let Ok(n) = conn.query_row("SELECT count(*) FROM events", [], |r| r.get::<_, i64>(0))
            {
                if n > 0 {
                    break n;
                }
            }
        }
    };
    assert!(
        child.try_wait().unwrap().is_none(),
        "ingest finished before it could be killed; raise `total`"
    );
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    // The log verifies, and holds exactly a prefix of the input, in order.
    let verify = custody(dir.path(), &["verify", "--format", "json"]);
    assert_eq!(
        code(&verify),
        0,
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    let report = json_of(&verify);
    let kept = report["size"].as_u64().unwrap();
    assert!(
        kept >= committed as u64 && kept < total,
        "kept {kept} of {total}"
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut stmt = conn
        .prepare("SELECT source, id FROM readable_events ORDER BY idx")
        .unwrap();
    let stored: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let text = String::from_utf8(gen.stdout).unwrap();
    for ((source, id), line) in stored.iter().zip(text.lines()) {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            (v["source"].as_str().unwrap(), v["id"].as_str().unwrap()),
            (source.as_str(), id.as_str())
        );
    }

    // Re-running completes with the rest: what was stored counts as duplicates.
    let rerun = custody(dir.path(), &["ingest", "--format", "json", "big.ndjson"]);
    assert_eq!(code(&rerun), 0);
    let summary = json_of(&rerun);
    assert_eq!(summary["accepted"].as_u64().unwrap(), total - kept);
    assert_eq!(summary["duplicates"].as_u64().unwrap(), kept);
    let verify = json_of(&custody(dir.path(), &["verify", "--format", "json"]));
    assert_eq!(verify["ok"], true);
    assert_eq!(verify["size"], total);
}

fn drop_triggers(conn: &rusqlite::Connection) {
    let names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(!names.is_empty(), "the schema has append-only triggers");
    for name in names {
        conn.execute_batch(&format!("DROP TRIGGER \"{name}\""))
            .unwrap();
    }
}

#[test]
fn the_schema_refuses_update_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    ingest_examples(dir.path());
    let conn = rusqlite::Connection::open(dir.path().join("custody.db")).unwrap();
    let update = conn.execute("UPDATE events SET body = x'7b7d' WHERE idx = 0", []);
    assert!(update.is_err(), "UPDATE must be refused");
    let delete = conn.execute("DELETE FROM events WHERE idx = 0", []);
    assert!(delete.is_err(), "DELETE must be refused");
}

#[test]
fn verify_names_the_first_changed_event() {
    let dir = tempfile::tempdir().unwrap();
    ingest_examples(dir.path());
    let ok = custody(dir.path(), &["verify", "--format", "json"]);
    assert_eq!(code(&ok), 0);

    let conn = rusqlite::Connection::open(dir.path().join("custody.db")).unwrap();
    drop_triggers(&conn);
    let changed = conn
        .execute(
            "UPDATE events SET body = CAST(replace(CAST(body AS TEXT), '\"time\":\"2026', '\"time\":\"2027') AS BLOB) WHERE idx IN (5, 9)",
            [],
        )
        .unwrap();
    assert_eq!(changed, 2);
    let out = custody(dir.path(), &["verify", "--format", "json"]);
    assert_eq!(code(&out), 1);
    let report = json_of(&out);
    assert_eq!(report["ok"], false);
    assert_eq!(report["first_mismatch"], 5);
    let text = custody(dir.path(), &["verify"]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("first bad index: 5"));
}

#[test]
fn verify_catches_a_rewrite_that_also_fixes_the_leaf_hash() {
    let dir = tempfile::tempdir().unwrap();
    ingest_examples(dir.path());
    let conn = rusqlite::Connection::open(dir.path().join("custody.db")).unwrap();
    drop_triggers(&conn);
    let body: Vec<u8> = conn
        .query_row("SELECT body FROM events WHERE idx = 3", [], |r| r.get(0))
        .unwrap();
    let forged = String::from_utf8(body)
        .unwrap()
        .replace("2026", "2025")
        .into_bytes();
    let hash = custody_merkle::leaf_hash(&forged);
    conn.execute(
        "UPDATE events SET body = ?1, leaf_hash = ?2 WHERE idx = 3",
        rusqlite::params![forged, hash.to_vec()],
    )
    .unwrap();
    let out = custody(dir.path(), &["verify", "--format", "json"]);
    assert_eq!(code(&out), 1);
    let report = json_of(&out);
    // Only the signed checkpoints can tell; the mismatch lies at or before index 3.
    let first = report["first_mismatch"].as_u64().unwrap();
    assert!(first <= 3, "first_mismatch {first}");
}

#[test]
fn secrets_never_reach_the_database_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = custody(
        dir.path(),
        &[
            "ingest",
            "--format",
            "json",
            data("secrets.ndjson").to_str().unwrap(),
        ],
    );
    let summary = json_of(&out);
    assert!(summary["accepted"].as_u64().unwrap() > 0, "{summary}");
    // Force the WAL into the main file too, then read every file of the database.
    let conn = rusqlite::Connection::open(dir.path().join("custody.db")).unwrap();
    let stored: i64 = conn
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored as u64, summary["accepted"].as_u64().unwrap());
    drop(conn);
    let secrets: Vec<String> = std::fs::read_to_string(data("secrets.list"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    assert!(secrets.len() >= 4);
    let mut files = 0;
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("custody.db") || name.ends_with("-key") {
            continue;
        }
        files += 1;
        let bytes = std::fs::read(&path).unwrap();
        for secret in &secrets {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "`{secret}` found in {name}"
            );
        }
    }
    assert!(files >= 1);
    // Fingerprints took their place.
    let trace_input = std::fs::read_to_string(data("secrets.ndjson")).unwrap();
    assert!(!trace_input.is_empty());
}

#[cfg(unix)]
#[test]
fn key_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    ingest_examples(dir.path());
    for key in ["custody.db.signing-key", "custody.db.fp-key"] {
        let mode = std::fs::metadata(dir.path().join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }
}

#[test]
fn checkpoint_key_and_proofs_agree() {
    let dir = tempfile::tempdir().unwrap();
    ingest_examples(dir.path());
    let cp = custody(dir.path(), &["checkpoint"]);
    assert_eq!(code(&cp), 0);
    let note = String::from_utf8(cp.stdout).unwrap();
    let mut lines = note.lines();
    assert_eq!(lines.next(), Some("custody.local/log"));
    let size: u64 = lines.next().unwrap().parse().unwrap();
    let key = String::from_utf8(custody(dir.path(), &["checkpoint", "--key"]).stdout).unwrap();
    assert!(key.trim().starts_with("custody.local/log+"), "{key}");
    let verifier = custody_merkle::NoteVerifier::parse(key.trim()).unwrap();
    let checkpoint = custody_merkle::UnverifiedCheckpoint::parse(note.as_bytes())
        .unwrap()
        .verify(&verifier)
        .unwrap();
    assert_eq!(checkpoint.size, size);

    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    for index in [0, size / 2, size - 1] {
        let proof = json_of(&custody(
            dir.path(),
            &["proof", "--index", &index.to_string(), "--format", "json"],
        ));
        let leaf: [u8; 32] = b64
            .decode(proof["leaf_hash"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let path: Vec<[u8; 32]> = proof["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| b64.decode(h.as_str().unwrap()).unwrap().try_into().unwrap())
            .collect();
        custody_merkle::verify_inclusion(&leaf, index, size, &path, &checkpoint.root).unwrap();
        // The text form is the same hashes, one per line.
        let text = custody(dir.path(), &["proof", "--index", &index.to_string()]);
        let lines: Vec<String> = String::from_utf8(text.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(lines.len(), path.len());
    }
    let consistency = json_of(&custody(
        dir.path(),
        &["proof", "--from", "3", "--format", "json"],
    ));
    let path: Vec<[u8; 32]> = consistency["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| b64.decode(h.as_str().unwrap()).unwrap().try_into().unwrap())
        .collect();
    let old: [u8; 32] = b64
        .decode(consistency["from_root"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    custody_merkle::verify_consistency(3, size, &old, &checkpoint.root, &path).unwrap();
}

#[test]
fn the_demo_runs_every_story_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_custody"))
        .current_dir(dir.path())
        .args(["demo", "--dir", "demo"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        code(&out),
        0,
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for n in 1..=5 {
        assert!(
            stdout.contains(&format!("━━ Story {n}.")),
            "story {n} missing"
        );
    }
    assert!(stdout.contains("complete: yes"));
    assert!(stdout.contains("complete: no"));
    assert!(
        stdout.contains("— custody.local/log "),
        "signed checkpoint printed"
    );
    assert!(stdout.contains("\nok: "));
    // Each story shows its deliberate violation as a finding.
    let stories: Vec<&str> = stdout.split("━━ Story ").skip(1).take(5).collect();
    let expected = [
        "token-reuse  agent-runtime#s1-act-3",
        "scope-escalation  k8s-audit#s2-del-6",
        "self-approval  agent-runtime#s3-act-4",
        "origin-mismatch  aws:cloudtrail:123456789012#s4-act-8",
        "chain-too-deep  k8s-audit#s5-act-3",
    ];
    for (story, finding) in stories.iter().zip(expected) {
        assert!(story.contains("findings ("), "{story}");
        assert!(story.contains(finding), "{finding} in {story}");
    }
    // The demo leaves a store a user can explore.
    assert!(dir.path().join("demo/custody.db").exists());
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(code(&custody(dir.path(), &["trace"])), 2);
    assert_eq!(code(&custody(dir.path(), &["no-such-command"])), 2);
    // Reading a log that does not exist is an error, not an empty answer.
    let out = custody(dir.path(), &["trace", "x#y"]);
    assert_eq!(code(&out), 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no database"));
}

#[test]
fn a_bad_config_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("custody.toml"),
        "[chain]\nmax_depth = 4\nwindow = 3\n",
    )
    .unwrap();
    let out = custody(dir.path(), &["verify"]);
    assert_eq!(code(&out), 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("custody.toml:3:"), "{err}");
}

/// `trace` of every action in the bundled stories, against examples/README.md.
#[test]
fn traces_of_the_stories_match_the_examples_spec() {
    let dir = tempfile::tempdir().unwrap();
    ingest_examples(dir.path());
    let ct = "aws:cloudtrail:123456789012";
    let cases: Vec<(String, &[&str], Option<&str>)> = vec![
        (
            "agent-runtime#s1-act-1".into(),
            &[],
            Some("alice@example.com"),
        ),
        (
            "agent-runtime#s1-act-3".into(),
            &[],
            Some("ben@example.com"),
        ),
        (
            "agent-runtime#s1-act-4".into(),
            &[],
            Some("alice@example.com"),
        ),
        (
            "github-actions#s2-act-1".into(),
            &[],
            Some("dana@example.com"),
        ),
        (
            "github-actions#s2-act-2".into(),
            &["impact"],
            Some("dana@example.com"),
        ),
        (
            "github-actions#s2-act-3".into(),
            &["authority"],
            Some("farid@example.com"),
        ),
        (
            "agent-runtime#s3-act-1".into(),
            &[],
            Some("sam@example.com"),
        ),
        (format!("{ct}#s4-act-1"), &[], Some("lee@example.com")),
        (
            "github-actions#s4-act-2".into(),
            &["initiator", "authority"],
            None,
        ),
        (format!("{ct}#s4-act-5"), &["initiator", "authority"], None),
        (format!("{ct}#s4-act-8"), &["initiator", "authority"], None),
        (
            "agent-runtime#s5-act-1".into(),
            &[],
            Some("omar@example.com"),
        ),
        ("k8s-audit#s5-act-3".into(), &[], Some("hana@example.com")),
        (
            "agent-runtime#s5-act-7".into(),
            &[],
            Some("ines@example.com"),
        ),
    ];
    for (event, missing, human) in cases {
        let out = custody(dir.path(), &["trace", &event, "--format", "json"]);
        assert_eq!(
            code(&out),
            0,
            "{event}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let t = json_of(&out);
        assert_eq!(t["event"], event.as_str());
        let got: Vec<&str> = t["missing"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap())
            .collect();
        assert_eq!(got, missing, "{event}: missing");
        assert_eq!(t["complete"], missing.is_empty(), "{event}: complete");
        let humans: Vec<&str> = t["initiators"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["kind"] == "human")
            .map(|p| p["id"].as_str().unwrap())
            .collect();
        assert_eq!(humans.first().copied(), human, "{event}: initiator");
        assert!(t["actions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == event.as_str()));
    }

    // Story 1's main chain in full: two hops, one action, one effect, explicit edges only.
    let t = json_of(&custody(
        dir.path(),
        &["trace", "agent-runtime#s1-act-1", "--format", "json"],
    ));
    let hops: Vec<&str> = t["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["event"].as_str().unwrap())
        .collect();
    assert_eq!(hops, ["idp#s1-del-1", "pam#s1-del-2"]);
    assert_eq!(t["hops"][1]["credential"], "vault-accessor:0b7d41e2");
    assert_eq!(t["effects"], serde_json::json!(["vault://prod#s1-eff-1"]));
    assert!(t["edges"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["inferred"] == false));
    assert!(t["edges"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["from"] == "pam#s1-del-2"
            && e["to"] == "agent-runtime#s1-act-1"
            && e["kind"] == "credential"));

    // Story 5: an effect without caused_by is linked by inference, marked as such.
    let t = json_of(&custody(
        dir.path(),
        &["trace", "agent-runtime#s5-act-7", "--format", "json"],
    ));
    assert!(t["edges"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["to"] == "dns-audit#s5-eff-4"
            && e["kind"] == "same_resource"
            && e["inferred"] == true));
    // ... and one with two candidates gets no edge but an ambiguity.
    let t = json_of(&custody(
        dir.path(),
        &["trace", "argocd#s5-eff-7", "--format", "json"],
    ));
    assert_eq!(t["ambiguous"][0]["candidates"].as_array().unwrap().len(), 2);
    assert!(t["edges"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["to"] != "argocd#s5-eff-7"));

    // By credential: the leaked key's issuance and every use of it.
    let t = json_of(&custody(
        dir.path(),
        &[
            "trace",
            "--credential",
            "AKIAZ7CIPUBL2EXAMPLE",
            "--format",
            "json",
        ],
    ));
    let actions: Vec<&str> = t["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    for a in [
        "github-actions#s4-act-2",
        "aws:cloudtrail:123456789012#s4-act-3",
        "aws:cloudtrail:123456789012#s4-act-8",
    ] {
        assert!(actions.contains(&a), "{a} in {actions:?}");
    }
    assert_eq!(t["complete"], false);
    // Unknown things are errors, not empty answers.
    assert_eq!(
        code(&custody(dir.path(), &["trace", "--credential", "nope"])),
        2
    );
    assert_eq!(code(&custody(dir.path(), &["trace", "nope#nope"])), 2);
}

fn examples_config() -> String {
    repo().join("examples/custody.toml").display().to_string()
}

#[test]
fn findings_json_has_the_design_shape_and_the_expected_rules() {
    let dir = tempfile::tempdir().unwrap();
    ingest_examples(dir.path());
    let cfg = examples_config();
    let out = custody(
        dir.path(),
        &["--config", &cfg, "findings", "--format", "json"],
    );
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let v = json_of(&out);
    let list = v.as_array().unwrap();
    // 31 from the rules of DESIGN §5, 5 `policy-violation` from examples/policies/*.cedar
    assert_eq!(list.len(), 36);
    for f in list {
        let mut keys: Vec<&str> = f.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "chain",
                "events",
                "frameworks",
                "message",
                "rule",
                "severity"
            ]
        );
    }
    let rules: std::collections::BTreeSet<&str> =
        list.iter().map(|f| f["rule"].as_str().unwrap()).collect();
    assert_eq!(rules.len(), 17, "{rules:?}");
    let violations: Vec<&str> = list
        .iter()
        .filter(|f| f["rule"] == "policy-violation")
        .map(|f| f["events"][0].as_str().unwrap())
        .collect();
    assert_eq!(
        violations,
        [
            "github-actions#s4-act-2",
            "aws:cloudtrail:123456789012#s4-act-5",
            "aws:cloudtrail:123456789012#s4-act-6",
            "aws:cloudtrail:123456789012#s4-act-7",
            "agent-runtime#s3-act-2",
        ]
    );
    assert!(list.iter().any(|f| f["rule"] == "origin-mismatch"
        && f["events"][0] == "aws:cloudtrail:123456789012#s4-act-8"
        && f["frameworks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "NHI2")));

    // filters: rule, framework (by alias), since
    let out = custody(
        dir.path(),
        &[
            "--config",
            &cfg,
            "findings",
            "--format",
            "json",
            "--rule",
            "self-approval",
        ],
    );
    let v = json_of(&out);
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["events"][0], "agent-runtime#s3-act-4");
    let out = custody(
        dir.path(),
        &[
            "--config",
            &cfg,
            "findings",
            "--format",
            "json",
            "--framework",
            "PR.AC-4",
        ],
    );
    let v = json_of(&out);
    assert!(v.as_array().unwrap().iter().all(|f| f["frameworks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "CSF:PR.AA-05")));
    // 6 from the rules, 5 `policy-violation` (mapped to CSF:PR.AA-05 too)
    assert_eq!(v.as_array().unwrap().len(), 11);
    let out = custody(
        dir.path(),
        &[
            "--config",
            &cfg,
            "findings",
            "--format",
            "json",
            "--since",
            "2026-06-05T00:00:00Z",
        ],
    );
    let v = json_of(&out);
    assert_eq!(v.as_array().unwrap().len(), 4, "story 5 only");

    // bad filters are usage errors
    for bad in [
        ["--rule", "nope"],
        ["--framework", "NHI99"],
        ["--since", "yesterday"],
        ["--fail-on", "dire"],
    ] {
        let out = custody(dir.path(), &["--config", &cfg, "findings", bad[0], bad[1]]);
        assert_eq!(code(&out), 2, "{bad:?}");
    }
}

#[test]
fn findings_fail_on_and_text() {
    let dir = tempfile::tempdir().unwrap();
    ingest_examples(dir.path());
    let cfg = examples_config();
    let out = custody(
        dir.path(),
        &["--config", &cfg, "findings", "--fail-on", "critical"],
    );
    assert_eq!(code(&out), 1);
    let out = custody(
        dir.path(),
        &[
            "--config",
            &cfg,
            "findings",
            "--rule",
            "chain-too-deep",
            "--fail-on",
            "high",
        ],
    );
    assert_eq!(code(&out), 0, "chain-too-deep is medium");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("chain agent-run-9103"), "{text}");
    assert!(
        text.contains("[MEDIUM] chain-too-deep  k8s-audit#s5-act-3"),
        "{text}"
    );
    assert!(text.contains("evidence: idp#s5-del-3"), "{text}");
    // sarif is only for findings
    let out = custody(dir.path(), &["--format", "sarif", "verify"]);
    assert_eq!(code(&out), 2);
}

#[test]
fn findings_sarif_is_valid_sarif_2_1_0() {
    let dir = tempfile::tempdir().unwrap();
    ingest_examples(dir.path());
    let cfg = examples_config();
    let out = custody(
        dir.path(),
        &["--config", &cfg, "findings", "--format", "sarif"],
    );
    assert_eq!(code(&out), 0);
    let v = json_of(&out);
    assert_eq!(v["version"], "2.1.0");
    let run = &v["runs"][0];
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 17);
    for r in rules {
        for k in [
            "id",
            "name",
            "shortDescription",
            "fullDescription",
            "help",
            "properties",
        ] {
            assert!(r.get(k).is_some(), "{k} in {r}");
        }
        assert!(r["help"]["markdown"]
            .as_str()
            .unwrap()
            .contains("Framework controls"));
    }
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 36);
    for res in results {
        let idx = res["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[idx]["id"], res["ruleId"]);
        assert!(["error", "warning", "note"].contains(&res["level"].as_str().unwrap()));
        assert!(res["locations"][0]["logicalLocations"][0]["fullyQualifiedName"].is_string());
    }
    // the OASIS schema, when Python's jsonschema is there (scripts/test.sh always runs it)
    let path = dir.path().join("f.sarif");
    std::fs::write(&path, &out.stdout).unwrap();
    let has_jsonschema = Command::new("python3")
        .args(["-c", "import jsonschema"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_jsonschema {
        let check = Command::new("python3")
            .arg(repo().join("scripts/check-sarif.py"))
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
    } else {
        eprintln!("python3 jsonschema missing: SARIF schema check skipped here");
    }
}

#[test]
fn frameworks_reports_coverage_per_control() {
    let dir = tempfile::tempdir().unwrap();
    ingest_examples(dir.path());
    let cfg = examples_config();
    let out = custody(
        dir.path(),
        &["--config", &cfg, "frameworks", "--format", "json"],
    );
    assert_eq!(code(&out), 0);
    let v = json_of(&out);
    assert_eq!(v.as_array().unwrap().len(), 33);
    let out = custody(
        dir.path(),
        &[
            "--config",
            &cfg,
            "frameworks",
            "--format",
            "json",
            "--framework",
            "NHI-02",
        ],
    );
    let v = json_of(&out);
    assert_eq!(v.as_array().unwrap().len(), 1);
    let row = &v[0];
    assert_eq!(row["control"], "NHI2");
    assert_eq!(row["findings"], 3);
    let rules: Vec<&str> = row["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(rules, ["origin-mismatch", "unmanaged-secret"]);
    let checked = row["chains_checked"].as_u64().unwrap();
    assert!(checked >= 20);
    assert_eq!(row["chains_clean"].as_u64().unwrap(), checked - 2);
    let out = custody(dir.path(), &["--config", &cfg, "frameworks"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("CSF:PR.AA-05"), "{text}");
    let out = custody(dir.path(), &["frameworks", "--framework", "XYZ"]);
    assert_eq!(code(&out), 2);
}

/// Third-party logs go through the adapters: detected per record, gzip unpacked, role chains
/// linked, and `--input-format` forces a format.
#[test]
fn real_cloudtrail_becomes_linked_chains() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let sample = data("realdata/stratus-red-team/docs/detonation-logs/aws.defense-evasion.organizations-leave.json");
    let out = custody(
        dir.path(),
        &["ingest", "--format", "json", sample.to_str().unwrap()],
    );
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let summary = json_of(&out);
    assert_eq!(summary["formats"]["cloudtrail"], 3);
    assert_eq!(
        summary["accepted"], 5,
        "2 delegations and 3 actions: {summary}"
    );

    // The denied LeaveOrganization was made with the assumed role's key: its chain reaches
    // the AssumeRole that issued that key.
    let conn = rusqlite::Connection::open(dir.path().join("custody.db")).unwrap();
    let action: String = conn
        .query_row(
            "SELECT source || '#' || id FROM readable_events WHERE type = 'action' AND body LIKE '%LeaveOrganization%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let t = json_of(&custody(
        dir.path(),
        &["trace", &action, "--format", "json"],
    ));
    assert!(!t["hops"].as_array().unwrap().is_empty(), "{t}");
    assert!(t["edges"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "credential"));

    // The same file gzipped: detected, unpacked, every record a duplicate.
    let gz = dir.path().join("sample.json.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::default(),
    );
    enc.write_all(&std::fs::read(&sample).unwrap()).unwrap();
    enc.finish().unwrap();
    let again = json_of(&custody(
        dir.path(),
        &["ingest", "--format", "json", gz.to_str().unwrap()],
    ));
    assert_eq!(again["accepted"], 0);
    assert_eq!(again["duplicates"], 5);

    // Forcing the wrong format quarantines instead of guessing.
    let forced = custody(
        dir.path(),
        &[
            "ingest",
            "--input-format",
            "vault-audit",
            "--format",
            "json",
            sample.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&forced), 3);
    assert_eq!(json_of(&forced)["accepted"], 0);
}

/// Every real third-party sample bundled under tests/data/realdata goes through ingest and
/// findings without a panic, and the real CloudTrail chains raise findings.
#[test]
fn real_data_produces_findings_without_panics() {
    fn files(dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files(&path, out);
            } else if matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("json" | "ndjson" | "jsonl")
            ) && !path.to_string_lossy().contains("index")
            {
                out.push(path.display().to_string());
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let mut inputs = Vec::new();
    files(&data("realdata"), &mut inputs);
    assert!(inputs.len() >= 10, "{inputs:?}");
    let mut args = vec!["ingest", "--format", "json"];
    args.extend(inputs.iter().map(String::as_str));
    let out = custody(dir.path(), &args);
    assert!(
        matches!(code(&out), 0 | 3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = json_of(&out);
    assert!(summary["accepted"].as_u64().unwrap() > 100, "{summary}");

    let out = custody(dir.path(), &["findings", "--format", "json"]);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let findings = json_of(&out);
    let findings = findings.as_array().unwrap();
    assert!(!findings.is_empty());
    assert!(findings
        .iter()
        .all(|f| f["rule"].is_string() && !f["events"].as_array().unwrap().is_empty()));
    let text = custody(dir.path(), &["findings"]);
    assert_eq!(code(&text), 0);
    let sarif = custody(dir.path(), &["findings", "--format", "sarif"]);
    assert_eq!(code(&sarif), 0);
    assert_eq!(json_of(&sarif)["version"], "2.1.0");
}
