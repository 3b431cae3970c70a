//! The web UI in a real browser: headless Chromium (Debian `chromium`) loads pages from a
//! running server, runs their script against the API, and the test asserts on the DOM it
//! rendered. A screenshot of the chain page is kept at `target/ui-chain.png` as an artefact.
//! Without Chromium the test fails and says how to install it (`scripts/install-chromium.sh`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "Chromium is needed for the web UI test: run `bash scripts/install-chromium.sh` \
         (Debian package `chromium`) or set CHROMIUM"
    );
    path
}

/// Renders `url` headless and returns the DOM after its scripts ran.
fn dom(url: &str, profile: &Path, screenshot: Option<&Path>) -> String {
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        "--window-size=1400,1600",
        "--virtual-time-budget=15000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    match screenshot {
        Some(p) => cmd.arg(format!("--screenshot={}", p.display())),
        None => cmd.arg("--dump-dom"),
    };
    let out = cmd.arg(url).output().expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed on {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// As [`dom`], retried until the page says it finished (`data-ready` on `<main>`): under
/// load Chromium's virtual time can run out before the API has answered.
fn rendered(url: &str, profile: &Path) -> String {
    let mut last = String::new();
    for _ in 0..5 {
        last = dom(url, profile, None);
        if last.contains("data-ready=") {
            return last;
        }
    }
    panic!("{url} never finished rendering: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_findings_blast_and_status_pages_render_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ui.db");
    let state = state_over(&db, Options::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(custody_server::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    let profile = dir.path().join("profile");
    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../ui-chain.png");
    let base = format!("http://{addr}/");
    let (chain, findings, blast, status, missing) = tokio::task::spawn_blocking(move || {
        let chain = dom(
            &format!("{base}#/chain/agent-runtime%23s1-act-2"),
            &profile,
            None,
        );
        dom(
            &format!("{base}#/chain/agent-runtime%23s1-act-2"),
            &profile,
            Some(&shot),
        );
        let findings = rendered(&format!("{base}#/findings/NHI"), &profile);
        let blast = rendered(
            &format!("{base}#/blast/secret/secret%2Fci%2Fci-publisher%2Faws"),
            &profile,
        );
        let status = rendered(&format!("{base}#/status"), &profile);
        let missing = rendered(&format!("{base}#/chain/no-such-event"), &profile);
        (chain, findings, blast, status, missing)
    })
    .await
    .unwrap();
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();

    // The chain page: its verdict, the graph (an <svg> with the agent and the human), the
    // actions and the events, each event a link to its own chain.
    assert!(chain.contains("id=\"chain\""), "{chain}");
    assert!(chain.contains("Chain of"), "{chain}");
    assert!(chain.contains("agent-runtime#s1-act-2"));
    let graph = chain
        .split("id=\"graph\"")
        .nth(1)
        .expect("the graph container");
    assert!(graph.contains("<svg"), "the graph is drawn: {graph}");
    assert!(graph.contains("rotation-agent"));
    assert!(
        graph.contains("ben@example.com"),
        "the initiating human is drawn"
    );
    assert!(chain.contains("href=\"#/chain/"));
    assert!(chain.contains("Findings on this chain"));
    assert!(
        chain.contains("token-reuse"),
        "story 1's finding shows on its chain"
    );

    // Findings filtered to the OWASP NHI Top 10: every row names an NHI control.
    assert!(findings.contains("id=\"findings\""), "{findings}");
    let rows = findings.matches("<tr>").count() - 1;
    assert!(rows > 0, "{findings}");
    assert!(findings.contains("NHI"));

    // Blast radius of the leaked secret: the human and the changed systems.
    assert!(blast.contains("id=\"blast\""), "{blast}");
    assert!(blast.contains("Humans whose authority was borrowed"));
    assert!(blast.contains("Timeline"));

    // Log status: the size and the signed note.
    assert!(status.contains("id=\"status\""), "{status}");
    assert!(status.contains("server.test/log"));
    assert!(
        status.contains("— server.test/log"),
        "the signed note is shown"
    );

    // An unknown event: the API's message, shown.
    assert!(missing.contains("id=\"error\""), "{missing}");
    assert!(missing.contains("no-such-event"));

    let png = std::fs::read(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("../ui-chain.png"))
        .expect("the screenshot was written");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    assert!(png.len() > 20_000, "not a blank page: {} bytes", png.len());
}
