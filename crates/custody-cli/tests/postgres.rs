//! End to end on PostgreSQL (`--db postgres://...`): two `custody ingest` processes feeding
//! different files into one throwaway database at the same time make one log that `custody
//! verify` accepts, holding every event once, and `findings` and `trace` answer as they do on
//! a SQLite file fed the same files.
//!
//! The server is `CUSTODY_TEST_PG` (default `postgres://postgres@127.0.0.1:5432/postgres`);
//! the test creates `custody_e2e_<pid>_<n>` there and drops it. When the server cannot be
//! reached the test fails, saying so: it never skips.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use postgres::{Client, NoTls};
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn admin_url() -> String {
    std::env::var("CUSTODY_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn admin() -> Client {
    let url = admin_url();
    Client::connect(&url, NoTls).unwrap_or_else(|e| {
        let cause = std::error::Error::source(&e)
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        panic!(
            "PostgreSQL is not reachable at {url} ({e}{cause}). This test needs a running server: \
             start one (trust auth for user postgres on 127.0.0.1:5432) or point \
             CUSTODY_TEST_PG at one. It never skips."
        )
    })
}

/// A database for this test, dropped at the end (also when the test fails).
struct TempDb {
    name: String,
    url: String,
}

impl TempDb {
    fn new(tag: &str) -> TempDb {
        let name = format!("custody_e2e_{}_{tag}", std::process::id());
        let mut c = admin();
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .unwrap();
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
        let base = admin_url();
        let (base, query) = match base.split_once('?') {
            Some((b, q)) => (b.to_owned(), format!("?{q}")),
            None => (base.clone(), String::new()),
        };
        let server = &base[..base.rfind('/').filter(|&i| i > 11).unwrap_or(base.len())];
        TempDb {
            url: format!("{server}/{name}{query}"),
            name,
        }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        if let Ok(mut c) = Client::connect(&admin_url(), NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// `custody --db DB --config examples/custody.toml ARGS` in `dir` (where the key files go).
fn custody(dir: &Path, db: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_custody"));
    c.current_dir(dir)
        .arg("--db")
        .arg(db)
        .arg("--config")
        .arg(repo().join("examples/custody.toml"));
    c
}

fn run(dir: &Path, db: &str, args: &[&str]) -> Output {
    custody(dir, db).args(args).output().unwrap()
}

fn ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} exited {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn json(out: &Output, what: &str) -> Value {
    ok(out, what);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{what}: stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// `v` without log indexes (they depend on the order the two ingests interleaved in).
fn without_indexes(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.contains("index"))
                .map(|(k, v)| (k.clone(), without_indexes(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_indexes).collect()),
        other => other.clone(),
    }
}

/// A list compared as a set: each element without indexes, as text, sorted.
fn as_sorted_texts(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|e| without_indexes(e).to_string())
        .collect();
    out.sort();
    out
}

#[test]
fn two_ingests_at_once_make_one_verified_log_that_answers_like_sqlite() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let db = TempDb::new("two_ingests");
    let examples = repo().join("examples");
    let file = |n: &str| examples.join(n).to_str().unwrap().to_owned();

    // Two synthetic files large enough for the two ingests to overlap in time.
    for (name, seed) in [("synth-a.ndjson", "11"), ("synth-b.ndjson", "12")] {
        let out = run(dir, "unused.db", &["gen-events", "6000", "--seed", seed]);
        ok(&out, "gen-events");
        std::fs::write(dir.join(name), &out.stdout).unwrap();
    }
    let a = vec![
        file("01-credential-rotation.ndjson"),
        dir.join("synth-a.ndjson").to_str().unwrap().to_owned(),
        file("03-refund-copilot.ndjson"),
        file("05-framework-review.ndjson"),
    ];
    let b = vec![
        file("02-ci-config-push.ndjson"),
        dir.join("synth-b.ndjson").to_str().unwrap().to_owned(),
        file("04-leaked-secret.ndjson"),
    ];

    // The first process creates the two key files; the nodes share them (docs/scale-out.md).
    let first = run(
        dir,
        &db.url,
        &["--format", "json", "ingest", "--no-progress", &a[0]],
    );
    let first = json(&first, "the first ingest");
    let spawn = |files: &[String]| {
        custody(dir, &db.url)
            .args(["--format", "json", "ingest", "--no-progress"])
            .args(files)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let pa = spawn(&a[1..]);
    let pb = spawn(&b);
    let (oa, ob) = (
        pa.wait_with_output().unwrap(),
        pb.wait_with_output().unwrap(),
    );
    let (sa, sb) = (json(&oa, "ingest a"), json(&ob, "ingest b"));
    let accepted = |v: &Value| v["accepted"].as_u64().unwrap_or_else(|| panic!("{v}"));
    let total = accepted(&first) + accepted(&sa) + accepted(&sb);
    assert_eq!(total, 110 + 12_000, "{first} {sa} {sb}");

    let verify = json(
        &run(dir, &db.url, &["--format", "json", "verify"]),
        "custody verify",
    );
    assert_eq!(verify["ok"], Value::Bool(true), "{verify}");
    assert_eq!(verify["size"].as_u64(), Some(total), "{verify}");

    // The same files into a SQLite file, one after the other.
    let sqlite = dir.join("same.db");
    let sqlite = sqlite.to_str().unwrap();
    let mut all = a.clone();
    all.extend(b.iter().cloned());
    let out = custody(dir, sqlite)
        .args(["ingest", "--no-progress"])
        .args(&all)
        .output()
        .unwrap();
    ok(&out, "the SQLite ingest");

    let findings = |db: &str| {
        json(
            &run(dir, db, &["findings", "--format", "json"]),
            "custody findings",
        )
    };
    let (pg, lite) = (findings(&db.url), findings(sqlite));
    assert!(!as_sorted_texts(&lite).is_empty());
    assert_eq!(as_sorted_texts(&pg), as_sorted_texts(&lite));

    for event in [
        "agent-runtime#s1-act-3",
        "github-actions#s2-act-1",
        "s4-act-2",
        "s3-act-1",
    ] {
        let trace = |db: &str| run(dir, db, &["--format", "json", "trace", event]);
        let (pg, lite) = (trace(&db.url), trace(sqlite));
        assert_eq!(pg.status.code(), lite.status.code(), "trace {event}");
        assert!(
            lite.status.success() || event != "agent-runtime#s1-act-3",
            "trace {event}"
        );
        if lite.status.success() {
            assert_eq!(
                without_indexes(&json(&pg, "trace")),
                without_indexes(&json(&lite, "trace")),
                "trace {event}"
            );
        }
    }
}

#[test]
fn an_unreachable_server_is_a_clear_error_naming_it_without_the_password() {
    let work = tempfile::tempdir().unwrap();
    let out = run(
        work.path(),
        "postgres://custody:hunter2@127.0.0.1:1/custody",
        &["verify"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot connect to PostgreSQL at postgres://custody@127.0.0.1:1/custody"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
