//! `custody report`: the real binary on a real SQLite store holding the bundled stories,
//! then the page opened in headless Chromium and its screenshot checked.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

mod common;
use common::{code, repo, stderr};

fn config() -> String {
    repo().join("examples/custody.toml").display().to_string()
}

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_custody"))
        .current_dir(dir)
        .arg("--db")
        .arg(dir.join("custody.db"))
        .arg("--config")
        .arg(config())
        .args(args)
        .output()
        .unwrap()
}

/// A store holding the five stories (and, optionally, more files).
fn setup(extra: &[&Path]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["ingest".to_owned()];
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "ndjson"))
        .collect();
    files.sort();
    files.extend(extra.iter().map(|p| p.to_path_buf()));
    args.extend(files.iter().map(|p| p.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(dir.path(), &args);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    dir
}

/// Writes the report of `start` (an event, or `--credential ID`) and returns the page.
fn report(dir: &Path, start: &[&str], file: &str) -> String {
    let path = dir.join(file);
    let mut args = vec!["report"];
    args.extend_from_slice(start);
    let p = path.display().to_string();
    args.extend_from_slice(&["-o", &p]);
    let out = run(dir, &args);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    std::fs::read_to_string(&path).unwrap()
}

/// The page loads nothing and runs nothing.
fn assert_inert(html: &str) {
    let lower = html.to_lowercase();
    for bad in [
        "<script",
        "<link",
        "<img",
        "<iframe",
        "<object",
        "<embed",
        "src=",
        "href=",
        "url(",
        "@import",
        "javascript:",
    ] {
        assert!(!lower.contains(bad), "the page contains `{bad}`");
    }
    // No network reference anywhere but the SVG namespace name (an identifier, not fetched).
    let without_ns = lower.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    for scheme in ["http://", "https://"] {
        assert!(
            !without_ns.contains(scheme),
            "the page names `{scheme}` outside the SVG namespace"
        );
    }
    assert!(lower.contains("content-security-policy"));
}

const PIVOT: &str = "aws:cloudtrail:123456789012#s4-act-6";

#[test]
fn the_leaked_key_pivot_gets_a_complete_page() {
    let dir = setup(&[]);
    let html = report(dir.path(), &[PIVOT], "r.html");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_inert(&html);
    // The graph, laid out: events, principals, credentials, the gap.
    assert!(html.contains("<svg "), "no graph");
    for node in [
        "action · s4-act-6",
        "action · s4-act-7",
        "delegation · s4-del-4",
        "effect · s4-eff-5",
        "secret access · s4-sa-1",
        "AKIAZ7CIPUBL2EXAMPLE",
        "AKIAZ7BACKUP2EXAMPLE",
        "missing: initiator, authority",
        "cg-node cg-credential",
        "cg-node cg-principal",
        "cg-edge cg-missing",
    ] {
        assert!(html.contains(node), "no `{node}` in the page");
    }
    // The verdict.
    assert!(html.contains("missing links: initiator, authority"));
    // Findings on the chain's events, with their framework ids.
    for f in [
        "orphan-action",
        "incomplete-chain",
        "policy-violation",
        "CSF:PR.AA-01",
        "CSF:DE.CM-03",
        "NHI1",
        "ASI10",
    ] {
        assert!(html.contains(f), "no `{f}` in the page");
    }
    // Findings flagged on other chains are not on this page.
    assert!(
        !html.contains("origin-mismatch"),
        "a finding of another chain"
    );
    // Every event's inclusion proof verified against the signed checkpoint.
    assert!(html.contains("7/7 inclusion proofs verified"));
    assert_eq!(html.matches("✓ verified").count(), 7);
    assert!(!html.contains("✗ failed"));
    assert!(html.contains("custody.local/log"));
}

#[test]
fn json_output_names_the_file_and_the_verdict() {
    let dir = setup(&[]);
    let path = dir.path().join("r.html");
    let out = run(
        dir.path(),
        &[
            "--format",
            "json",
            "report",
            PIVOT,
            "-o",
            path.to_str().unwrap(),
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["event"], PIVOT);
    assert_eq!(v["events"], 7);
    assert_eq!(v["complete"], false);
    assert_eq!(v["missing"], serde_json::json!(["initiator", "authority"]));
    assert_eq!(v["proofs_verified"], 7);
    assert!(v["findings"].as_u64().unwrap() >= 3);
    assert!(path.exists());
}

#[test]
fn a_credential_report_shows_every_use() {
    let dir = setup(&[]);
    let html = report(
        dir.path(),
        &["--credential", "AKIAZ7BACKUP2EXAMPLE"],
        "cred.html",
    );
    assert_inert(&html);
    assert!(html.contains("credential AKIAZ7BACKUP2EXAMPLE"));
    for node in [
        "delegation · s4-del-4",
        "action · s4-act-7",
        "effect · s4-eff-5",
    ] {
        assert!(html.contains(node), "no `{node}` in the page");
    }
}

#[test]
fn hostile_labels_are_escaped() {
    let extra = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        extra.path(),
        concat!(
            r#"{"id":"h-req-1","type":"request","time":"2026-07-01T10:00:00Z","source":"evil","initiator":{"id":"<script>alert(1)</script>","kind":"human","name":"<img src=x onerror=alert(2)>"},"ticket":"T-1\" onmouseover=\"alert(3)","intent":"</title></svg><script>alert(4)</script>"}"#,
            "\n",
            r#"{"id":"h-act-1","type":"action","time":"2026-07-01T10:00:05Z","source":"evil","request":"h-req-1","actor":{"id":"bot&<b>","kind":"agent"},"credential":"cred'<i>","operation":"<style>x</style>","resource":"res<a href=\"https://evil.example\">x</a>"}"#,
            "\n"
        ),
    )
    .unwrap();
    let dir = setup(&[extra.path()]);
    let html = report(dir.path(), &["evil#h-act-1"], "h.html");
    // The hostile text is on the page, as text: no element of it survives.
    for raw in [
        "<script",
        "<img",
        "bot&<b>",
        "cred'<i>",
        "<style>x",
        "<a ",
        "</title></svg>",
        "\" onmouseover",
    ] {
        assert!(!html.contains(raw), "`{raw}` reached the page unescaped");
    }
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("bot&amp;&lt;b&gt;"));
    // Still one page, one graph.
    assert_eq!(html.matches("<svg ").count(), 1);
    assert_eq!(html.matches("</html>").count(), 1);
}

#[test]
fn unknown_starts_are_usage_errors_and_write_nothing() {
    let dir = setup(&[]);
    let path = dir.path().join("none.html");
    let p = path.to_str().unwrap();
    let out = run(dir.path(), &["report", "no-such-event", "-o", p]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no event `no-such-event`"),
        "{}",
        stderr(&out)
    );
    let out = run(dir.path(), &["report", "--credential", "NOPE", "-o", p]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("NOPE"), "{}", stderr(&out));
    let out = run(dir.path(), &["report", "-o", p]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(!path.exists());
}

/// The browser the render check uses: Debian's `chromium`.
fn chromium() -> PathBuf {
    let candidates = [
        PathBuf::from("/usr/bin/chromium"),
        PathBuf::from("/usr/bin/chromium-browser"),
    ];
    candidates
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "headless Chromium is needed to check that the report renders, and \
                 /usr/bin/chromium is missing: install it with `bash scripts/install-chromium.sh` \
                 (Debian package `chromium`)"
            )
        })
}

#[test]
fn the_page_renders_in_headless_chromium() {
    let browser = chromium();
    let dir = setup(&[]);
    let page = dir.path().join("render.html");
    report(dir.path(), &[PIVOT], "render.html");
    let shot = dir.path().join("shot.png");
    let profile = dir.path().join("chromium-profile");
    let out = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1280,2000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        shot.exists(),
        "chromium wrote no screenshot (exit {:?}): {}",
        out.status.code(),
        stderr(&out)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1280, 2000));
    let channels = info.color_type.samples();
    assert!(channels >= 3, "{:?}", info.color_type);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let pixels = &buf[..info.buffer_size()];
    let mut colours = BTreeSet::new();
    let mut white = 0usize;
    for px in pixels.chunks_exact(channels) {
        let rgb = (px[0], px[1], px[2]);
        if rgb == (255, 255, 255) {
            white += 1;
        }
        colours.insert(rgb);
    }
    let total = pixels.len() / channels;
    // A blank or unstyled page has a handful of colours; the report's node fills, badges and
    // anti-aliased text give hundreds.
    assert!(colours.len() > 200, "only {} colours", colours.len());
    assert!(white < total * 9 / 10, "{white} of {total} pixels white");
    // The graph's colours are there: the fills of actions, credentials and the gap.
    assert!(colours.contains(&(0xe8, 0xeb, 0xf7)), "no action fill");
    assert!(colours.contains(&(0xff, 0xf6, 0xdc)), "no credential fill");
    assert!(
        colours.contains(&(0xff, 0xf3, 0xf3)),
        "no missing-link fill"
    );
}

#[test]
fn an_altered_event_fails_its_proof_and_the_page_says_which() {
    let dir = setup(&[]);
    let trace = run(dir.path(), &["--format", "json", "trace", PIVOT]);
    assert_eq!(code(&trace), 0, "{}", stderr(&trace));
    let trace: Value = serde_json::from_slice(&trace.stdout).unwrap();
    let index = trace["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "aws:config:123456789012#s4-eff-4")
        .unwrap()["index"]
        .as_u64()
        .unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("custody.db")).unwrap();
    let triggers: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for name in triggers {
        conn.execute_batch(&format!("DROP TRIGGER \"{name}\""))
            .unwrap();
    }
    let changed = conn
        .execute(
            "UPDATE events SET body = CAST(replace(CAST(body AS TEXT), 'access key', 'access KEY') AS BLOB) WHERE idx = ?1",
            [index as i64],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(conn);

    let path = dir.path().join("altered.html");
    let out = run(dir.path(), &["report", PIVOT, "-o", path.to_str().unwrap()]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let html = std::fs::read_to_string(&path).unwrap();
    assert!(html.contains("6/7 inclusion proofs verified"));
    assert_eq!(html.matches("✗ failed").count(), 1);
    assert!(
        html.contains(&format!("index {index}: ")),
        "the failure is not named"
    );
    assert!(html.contains("s4-eff-4"));
}
