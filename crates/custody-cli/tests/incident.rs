//! Incident response end to end: the real binary on a real SQLite store holding the bundled
//! stories. `blast-radius` from a credential, a secret and a principal; unknown starts.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

mod common;
use common::{code, json, repo, stderr, stdout};

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

/// Exports story 4's attacker action, copies the bundle and the verifier key into a folder
/// with no database, and returns that folder.
fn exported() -> (tempfile::TempDir, tempfile::TempDir, Value) {
    let dir = setup();
    let bundle = dir.path().join("bundle.json");
    let out = run(
        dir.path(),
        &[
            "export",
            "aws:cloudtrail:123456789012#s4-act-7",
            "-o",
            bundle.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let key = run(dir.path(), &["checkpoint", "--key"]);
    assert_eq!(code(&key), 0, "{}", stderr(&key));
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::copy(&bundle, elsewhere.path().join("bundle.json")).unwrap();
    std::fs::write(elsewhere.path().join("key.txt"), &key.stdout).unwrap();
    let v: Value = serde_json::from_slice(&std::fs::read(&bundle).unwrap()).unwrap();
    (dir, elsewhere, v)
}

/// `verify-bundle FILE --key key.txt` in `dir`, with a --db that does not exist.
fn verify_in(dir: &Path, file: &str) -> Output {
    let missing = dir.join("no-such-dir").join("custody.db");
    let out = run_db(dir, &missing, &["verify-bundle", file, "--key", "key.txt"]);
    assert!(!missing.exists() && !dir.join("no-such-dir").exists());
    out
}

fn write_altered(dir: &Path, name: &str, v: &Value) {
    std::fs::write(dir.join(name), serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

fn flip_b64(text: &str) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut bytes = b64.decode(text).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    b64.encode(bytes)
}

#[test]
fn an_exported_bundle_verifies_offline_without_the_database() {
    let (_db, off, v) = exported();
    assert_eq!(v["format"], "custody-bundle/1");
    let events = v["events"].as_array().unwrap();
    let names: Vec<String> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    // The whole chain: the leaked key's secret access up to the attacker's last pivot.
    for id in [
        "s4-sa-1", "s4-del-3", "s4-act-6", "s4-del-4", "s4-act-7", "s4-eff-5",
    ] {
        assert!(has_event(&names, id), "{id} not in {names:?}");
    }
    for e in events {
        assert!(e["index"].is_u64() && e["canonical"].is_string() && e["proof"].is_array());
    }
    let out = verify_in(off.path(), "bundle.json");
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).starts_with("ok: "), "{}", stdout(&out));

    let out = run_db(
        off.path(),
        &off.path().join("nothing.db"),
        &[
            "verify-bundle",
            "bundle.json",
            "--key",
            "key.txt",
            "--format",
            "json",
        ],
    );
    assert_eq!(code(&out), 0);
    let j = json(&out);
    assert_eq!(j["ok"], true);
    assert_eq!(j["events"].as_array().unwrap().len(), events.len());
}

#[test]
fn an_altered_event_proof_or_checkpoint_fails_naming_what() {
    let (_db, off, good) = exported();
    let dir = off.path();
    let target = good["events"][2]["event"].as_str().unwrap().to_owned();

    // One byte of an event's canonical bytes.
    let mut v = good.clone();
    let canonical = v["events"][2]["canonical"].as_str().unwrap();
    let at = canonical.find("\"time\":\"2026").unwrap() + "\"time\":\"202".len();
    let mut bytes = canonical.as_bytes().to_vec();
    bytes[at] = b'7';
    v["events"][2]["canonical"] = Value::String(String::from_utf8(bytes).unwrap());
    write_altered(dir, "event.json", &v);

    // One byte of one proof hash.
    let mut v = good.clone();
    let h = v["events"][2]["proof"][0].as_str().unwrap().to_owned();
    v["events"][2]["proof"][0] = Value::String(flip_b64(&h));
    write_altered(dir, "proof.json", &v);

    // One byte of the checkpoint's signature, then of its root.
    let note = good["checkpoint"].as_str().unwrap();
    let (body, sig) = note.rsplit_once(' ').unwrap();
    let mut v = good.clone();
    v["checkpoint"] = Value::String(format!("{body} {}\n", flip_b64(sig.trim_end())));
    write_altered(dir, "signature.json", &v);
    let lines: Vec<&str> = note.split('\n').collect();
    let mut altered: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    altered[2] = flip_b64(lines[2]);
    let mut v = good.clone();
    v["checkpoint"] = Value::String(altered.join("\n"));
    write_altered(dir, "root.json", &v);

    for (file, expect) in [
        ("event.json", target.as_str()),
        ("proof.json", target.as_str()),
        (
            "signature.json",
            "checkpoint: the signature does not verify",
        ),
        ("root.json", "checkpoint: the signature does not verify"),
    ] {
        let out = verify_in(dir, file);
        assert_eq!(code(&out), 1, "{file}: {}{}", stdout(&out), stderr(&out));
        let said = stdout(&out);
        assert!(
            said.contains("FAILED") && said.contains(expect),
            "{file}: {said}"
        );
    }
    // The event and proof failures name only the altered event.
    let said = stdout(&verify_in(dir, "event.json"));
    assert_eq!(
        said.matches("inclusion proof does not lead").count(),
        1,
        "{said}"
    );
}

#[test]
fn a_malformed_bundle_or_key_is_exit_2() {
    let (_db, off, good) = exported();
    let dir = off.path();
    std::fs::write(
        dir.join("broken.json"),
        b"{\"format\": \"custody-bundle/1\", ",
    )
    .unwrap();
    let out = verify_in(dir, "broken.json");
    assert_eq!(code(&out), 2, "{}", stdout(&out));
    assert!(stderr(&out).contains("broken.json"), "{}", stderr(&out));

    let mut v = good.clone();
    v.as_object_mut().unwrap().remove("events");
    write_altered(dir, "no-events.json", &v);
    assert_eq!(code(&verify_in(dir, "no-events.json")), 2);

    let out = verify_in(dir, "missing.json");
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("missing.json"), "{}", stderr(&out));

    std::fs::write(dir.join("key.txt"), "not a key").unwrap();
    assert_eq!(code(&verify_in(dir, "bundle.json")), 2);
}

#[test]
fn exporting_an_unknown_event_is_exit_2() {
    let dir = setup();
    let out = run(dir.path(), &["export", "nowhere#nothing", "-o", "b.json"]);
    assert_eq!(code(&out), 2, "{}", stdout(&out));
    assert!(stderr(&out).contains("nowhere#nothing"), "{}", stderr(&out));
    assert!(!dir.path().join("b.json").exists());
}

#[test]
fn the_demo_ends_story_4_with_its_blast_radius_and_a_verified_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["demo", "--dir", "demo"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    let story4 = text
        .split("━━ Story 4.")
        .nth(1)
        .and_then(|s| s.split("━━ Story 5.").next())
        .unwrap();
    assert!(story4.contains("$ custody blast-radius --secret secret/ci/ci-publisher/aws"));
    assert!(story4.contains("credential AKIAZ7BACKUP2EXAMPLE via service_account_key"));
    assert!(
        story4.contains("verify-bundle with the verifier key alone: ok"),
        "{story4}"
    );
    assert!(dir.path().join("demo/story4-bundle.json").exists());

    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["demo", "--dir", "demo", "--format", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v = json(&out);
    let s4 = &v["stories"][3];
    assert!(strings(&s4["blast_radius"], "credentials").contains(&"ASIAZ7PRODDEPEXAMPLE".into()));
    assert_eq!(s4["bundle"]["verified"], true);
    assert!(s4["findings"].is_array() && s4["traces"].is_array());
    assert!(v["stories"][2].get("bundle").is_none());
}
