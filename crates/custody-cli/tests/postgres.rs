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

use std::path::Path;
use std::process::{Command, Output, Stdio};

use postgres::{Client, NoTls};
use serde_json::Value;

mod common;
use common::repo;

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

/// `files` ingested into a new SQLite file in `dir`, one after the other: its path.
fn sqlite_fed(dir: &Path, files: &[String]) -> String {
    let sqlite = dir.join("same.db").to_str().unwrap().to_owned();
    let out = custody(dir, &sqlite)
        .args(["ingest", "--no-progress"])
        .args(files)
        .output()
        .unwrap();
    ok(&out, "the SQLite ingest");
    sqlite
}

/// `findings` on `pg` equal those on `lite` (as sets, indexes aside), and are not empty.
fn same_findings(dir: &Path, pg: &str, lite: &str) {
    let findings = |db: &str| {
        json(
            &run(dir, db, &["findings", "--format", "json"]),
            "custody findings",
        )
    };
    let (pg, lite) = (findings(pg), findings(lite));
    assert!(!as_sorted_texts(&lite).is_empty());
    assert_eq!(as_sorted_texts(&pg), as_sorted_texts(&lite));
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
    let mut all = a.clone();
    all.extend(b.iter().cloned());
    let sqlite = sqlite_fed(dir, &all);
    let sqlite = sqlite.as_str();
    same_findings(dir, &db.url, sqlite);

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

/// `custody serve` on `db` in `dir`, listening on a free loopback port: the child and its
/// address (read from its first line on stderr).
fn serve(dir: &Path, db: &str) -> (std::process::Child, std::net::SocketAddr) {
    use std::io::BufRead as _;
    let mut child = custody(dir, db)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("custody serve printed where it listens")
            .unwrap();
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    // Keep draining its log so the pipe never fills.
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

/// POST `body` with `Connection: close`: the status and the JSON answer (`Null` if none).
fn post(addr: std::net::SocketAddr, path: &str, ctype: &str, body: &str) -> (u16, Value) {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let status = answer.split(' ').nth(1).unwrap().parse().unwrap();
    let json = answer.split_once("\r\n\r\n").unwrap().1;
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
}

fn stop(mut child: std::process::Child) {
    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "custody serve stopped with {status}");
}

#[test]
fn two_serve_nodes_on_one_database_make_one_log_that_answers_like_sqlite() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let db = TempDb::new("two_nodes");
    let examples = repo().join("examples");
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();

    // The deployment's keys first (both nodes must share them), with story 1.
    let first = json(
        &run(
            dir,
            &db.url,
            &[
                "--format",
                "json",
                "ingest",
                "--no-progress",
                examples
                    .join("01-credential-rotation.ndjson")
                    .to_str()
                    .unwrap(),
            ],
        ),
        "the first ingest",
    );
    let (node_a, addr_a) = serve(dir, &db.url);
    let (node_b, addr_b) = serve(dir, &db.url);

    // Node A takes stories 2 and 3 and one synthetic file, node B stories 4 and 5 and
    // another; story 5 goes to both at once (stored once, the other copy a duplicate).
    let synth = |seed: &str| {
        let out = run(dir, "unused.db", &["gen-events", "3000", "--seed", seed]);
        ok(&out, "gen-events");
        String::from_utf8(out.stdout).unwrap()
    };
    let chunks = |text: &str| -> Vec<String> {
        let lines: Vec<&str> = text.lines().collect();
        lines.chunks(250).map(|c| c.join("\n") + "\n").collect()
    };
    let story = |n: &str| read(&examples.join(n));
    let mut for_a = vec![
        story("02-ci-config-push.ndjson"),
        story("03-refund-copilot.ndjson"),
        story("05-framework-review.ndjson"),
    ];
    for_a.extend(chunks(&synth("21")));
    let mut for_b = vec![
        story("04-leaked-secret.ndjson"),
        story("05-framework-review.ndjson"),
    ];
    for_b.extend(chunks(&synth("22")));
    let all_synth = [synth("21"), synth("22")];

    // Three clients per node, all at once.
    let send = |addr: std::net::SocketAddr, bodies: Vec<String>| {
        let per_client: Vec<Vec<String>> = (0..3)
            .map(|k| bodies.iter().skip(k).step_by(3).cloned().collect())
            .collect();
        per_client
            .into_iter()
            .map(move |mine| {
                std::thread::spawn(move || {
                    let mut accepted = 0;
                    let mut duplicates = 0;
                    for body in mine {
                        let (status, answer) =
                            post(addr, "/v1/events", "application/x-ndjson", &body);
                        assert_eq!(status, 200, "{answer}");
                        assert_eq!(answer["quarantined"], 0, "{answer}");
                        accepted += answer["accepted"].as_u64().unwrap();
                        duplicates += answer["duplicates"].as_u64().unwrap();
                    }
                    (accepted, duplicates)
                })
            })
            .collect::<Vec<_>>()
    };
    let mut clients = send(addr_a, for_a);
    clients.extend(send(addr_b, for_b));
    let (mut accepted, mut duplicates) = (first["accepted"].as_u64().unwrap(), 0);
    for c in clients {
        let (a, d) = c.join().unwrap();
        accepted += a;
        duplicates += d;
    }
    // The gate on both nodes: each decision is recorded in the shared log.
    let proposal = read(&examples.join("proposals/01-allow-read-inventory-secret.json"));
    let mut decisions = 0;
    for addr in [addr_a, addr_b] {
        let (status, body) = post(addr, "/v1/authorize", "application/json", &proposal);
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["decision"], "allow", "{body}");
        decisions = decisions.max(body["decision_index"].as_u64().unwrap() + 1);
    }
    stop(node_a);
    stop(node_b);
    let story5 = story("05-framework-review.ndjson").lines().count() as u64;
    assert_eq!(duplicates, story5, "story 5 was sent twice and stored once");
    assert_eq!(accepted, 110 + 6000, "every event stored once");

    let verify = json(
        &run(dir, &db.url, &["--format", "json", "verify"]),
        "custody verify",
    );
    assert_eq!(verify["ok"], Value::Bool(true), "{verify}");
    assert_eq!(
        verify["size"].as_u64(),
        Some(decisions),
        "the events and the decisions after them: {verify}"
    );
    assert!(decisions > accepted && decisions <= accepted + 2);

    // The same input into a SQLite file through the CLI.
    for (i, text) in all_synth.iter().enumerate() {
        std::fs::write(dir.join(format!("synth-{i}.ndjson")), text).unwrap();
    }
    let mut files: Vec<String> = [
        "01-credential-rotation.ndjson",
        "02-ci-config-push.ndjson",
        "03-refund-copilot.ndjson",
        "04-leaked-secret.ndjson",
        "05-framework-review.ndjson",
    ]
    .iter()
    .map(|n| examples.join(n).to_str().unwrap().to_owned())
    .collect();
    files.push(dir.join("synth-0.ndjson").to_str().unwrap().to_owned());
    files.push(dir.join("synth-1.ndjson").to_str().unwrap().to_owned());
    let sqlite = sqlite_fed(dir, &files);
    let sqlite = sqlite.as_str();
    same_findings(dir, &db.url, sqlite);
    for event in [
        "agent-runtime#s1-act-3",
        "github-actions#s2-act-1",
        "s4-act-7",
    ] {
        let trace = |db: &str| {
            json(
                &run(dir, db, &["--format", "json", "trace", event]),
                "trace",
            )
        };
        assert_eq!(
            without_indexes(&trace(&db.url)),
            without_indexes(&trace(sqlite)),
            "trace {event}"
        );
    }
}
