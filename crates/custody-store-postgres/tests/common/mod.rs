//! Throwaway databases on the test server: `CUSTODY_TEST_PG` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) is the maintenance database where each test
//! creates `custody_test_<pid>_<n>` and drops it (`WITH (FORCE)`) when done. A server that
//! cannot be reached fails the test with a message saying so: these tests never skip.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    dead_code,
    reason = "test support"
)]

use std::sync::atomic::{AtomicU64, Ordering};

use postgres::{Client, NoTls};

/// The maintenance database URL.
pub fn admin_url() -> String {
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
            "PostgreSQL is not reachable at {url} ({e}{cause}). These tests need a running server: \
             start one (trust auth for user postgres on 127.0.0.1:5432) or point \
             CUSTODY_TEST_PG at one. They never skip."
        )
    })
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A database created for one test, dropped when this is dropped.
pub struct TempDb {
    pub name: String,
    pub url: String,
}

impl TempDb {
    pub fn new() -> TempDb {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!("custody_test_{}_{n}_{nanos}", std::process::id());
        admin()
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("cannot create the test database {name}: {e}"));
        let url = with_dbname(&admin_url(), &name);
        TempDb { name, url }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        // Best effort while unwinding too: a leftover database is named after the test run.
        if let Ok(mut c) = Client::connect(&admin_url(), NoTls) {
            let _ = c.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// `url` with its database replaced by `name`.
pub fn with_dbname(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}
