//! Incident response end to end: the real binary on a real SQLite store holding the bundled
//! stories. `blast-radius` from a credential, a secret and a principal; unknown starts.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run_db(dir: &Path, db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_custody"))
        .current_dir(dir)
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .unwrap()
}

fn run(dir: &Path, args: &[&str]) -> Output {
    run_db(dir, &dir.join("custody.db"), args)
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(out), stderr(out)))
}

/// A store holding the five stories.
fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["ingest".to_owned()];
    for entry in std::fs::read_dir(repo().join("examples")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|x| x == "ndjson") {
            args.push(p.display().to_string());
        }
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(dir.path(), &args);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    dir
}

fn strings(v: &Value, field: &str) -> Vec<String> {
    v[field]
        .as_array()
        .unwrap_or_else(|| panic!("`{field}` is not a list: {v}"))
        .iter()
        .map(|x| x.as_str().unwrap().to_owned())
        .collect()
}

fn has_event(list: &[String], id: &str) -> bool {
    list.iter().any(|k| k.ends_with(&format!("#{id}")))
}

#[test]
fn blast_radius_of_the_leaked_key_reaches_every_pivot() {
    let dir = setup();
    let out = run(
        dir.path(),
        &[
            "blast-radius",
            "--credential",
            "AKIAZ7CIPUBL2EXAMPLE",
            "--format",
            "json",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v = json(&out);
    for key in [
        "credentials",
        "principals",
        "actions",
        "effects",
        "systems",
        "initiators",
    ] {
        assert!(v[key].is_array(), "`{key}` missing: {v}");
    }
    let creds = strings(&v, "credentials");
    for c in [
        "AKIAZ7CIPUBL2EXAMPLE",
        "ASIAZ7PRODDEPEXAMPLE",
        "AKIAZ7BACKUP2EXAMPLE",
    ] {
        assert!(creds.contains(&c.to_owned()), "{c} not in {creds:?}");
    }
    assert!(
        !creds.iter().any(|c| c == "ASIA3RELEASE7EXAMPLE"),
        "{creds:?}"
    );
    let derived = v["derived"].as_array().unwrap();
    assert!(derived.iter().any(|d| d["from"] == "AKIAZ7CIPUBL2EXAMPLE"
        && d["to"] == "ASIAZ7PRODDEPEXAMPLE"
        && d["via"] == "assume_role"
        && d["via_event"].as_str().unwrap().ends_with("#s4-del-3")));
    let actions = strings(&v, "actions");
    for a in [
        "s4-act-3", "s4-act-4", "s4-act-5", "s4-act-6", "s4-act-7", "s4-act-8",
    ] {
        assert!(has_event(&actions, a), "{a} not in {actions:?}");
    }
    assert!(
        !has_event(&actions, "s4-act-1"),
        "the release is not in the radius"
    );
    let effects = strings(&v, "effects");
    for e in ["s4-eff-3", "s4-eff-4", "s4-eff-5"] {
        assert!(has_event(&effects, e), "{e} not in {effects:?}");
    }
    let systems = strings(&v, "systems");
    assert!(
        systems.contains(&"aws:iam:123456789012".to_owned()),
        "{systems:?}"
    );
    let principals = strings(&v, "principals");
    assert!(principals.contains(&"arn:aws:iam::123456789012:user/backup-operator".to_owned()));
    assert!(v["first_use"]["event"]
        .as_str()
        .unwrap()
        .ends_with("#s4-act-2"));
    assert!(v["last_use"]["event"]
        .as_str()
        .unwrap()
        .ends_with("#s4-act-8"));
    assert_eq!(v["truncated"], false);

    let text = run(
        dir.path(),
        &["blast-radius", "--credential", "AKIAZ7CIPUBL2EXAMPLE"],
    );
    assert_eq!(code(&text), 0);
    let t = stdout(&text);
    assert!(
        t.contains("credential AKIAZ7BACKUP2EXAMPLE via service_account_key"),
        "{t}"
    );
    assert!(t.contains("timeline:"), "{t}");
}

#[test]
fn blast_radius_from_the_secret_path_has_the_same_reach() {
    let dir = setup();
    let by = |args: &[&str]| {
        let mut all = vec!["blast-radius", "--format", "json"];
        all.extend_from_slice(args);
        let out = run(dir.path(), &all);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        json(&out)
    };
    let cred = by(&["--credential", "AKIAZ7CIPUBL2EXAMPLE"]);
    let secret = by(&["--secret", "secret/ci/ci-publisher/aws"]);
    for key in ["credentials", "principals", "actions", "effects", "systems"] {
        assert_eq!(cred[key], secret[key], "{key}");
    }
    assert_eq!(secret["start"]["kind"], "secret");
}

#[test]
fn blast_radius_of_a_principal_follows_what_it_delegated() {
    let dir = setup();
    let out = run(
        dir.path(),
        &[
            "blast-radius",
            "--principal",
            "lee@example.com",
            "--format",
            "json",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v = json(&out);
    let creds = strings(&v, "credentials");
    assert!(
        creds.contains(&"ASIA3RELEASE7EXAMPLE".to_owned()),
        "{creds:?}"
    );
    assert!(has_event(&strings(&v, "actions"), "s4-act-1"));
    assert!(has_event(&strings(&v, "effects"), "s4-eff-1"));
    assert_eq!(v["initiators"][0]["id"], "lee@example.com");
    assert_eq!(v["initiators"][0]["kind"], "human");
}

#[test]
fn blast_radius_of_something_unknown_is_exit_2() {
    let dir = setup();
    for (flag, value) in [
        ("--credential", "AKIANOSUCHKEYEXAMPLE"),
        ("--principal", "nobody@example.com"),
        ("--secret", "secret/none"),
    ] {
        let out = run(dir.path(), &["blast-radius", flag, value]);
        assert_eq!(code(&out), 2, "{flag}: {}", stdout(&out));
        assert!(stderr(&out).contains(value), "{}", stderr(&out));
    }
    let out = run(dir.path(), &["blast-radius"]);
    assert_eq!(code(&out), 2);
}
