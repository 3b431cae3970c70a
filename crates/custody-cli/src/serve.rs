//! `custody serve`: the HTTP API and web UI (DESIGN §11) over the session's store.

use std::net::SocketAddr;

use anyhow::{anyhow, bail, Context, Result};
use custody_server::{Options, Role, Token};

use crate::{keys, Session};

/// The default address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// The tokens of `[[server.tokens]]`, checked: 64 hex digits, known roles.
pub fn tokens(ctx: &Session) -> Result<Vec<Token>> {
    let mut out = Vec::new();
    for (i, t) in ctx.config.server.tokens.iter().enumerate() {
        let at = || format!("[[server.tokens]] #{} (`{}`)", i + 1, t.name);
        let bytes = hex::decode(t.sha256.trim())
            .map_err(|e| anyhow!("{}: sha256 is not hex: {e}", at()))?;
        let sha256: [u8; 32] = bytes.try_into().map_err(|_| {
            anyhow!(
                "{}: sha256 must be 64 hex digits (the SHA-256 of the token, never the token)",
                at()
            )
        })?;
        let roles = t
            .roles
            .iter()
            .map(|r| {
                Role::parse(r).ok_or_else(|| {
                    anyhow!("{}: unknown role `{r}` (ingest, read, gate, admin)", at())
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if roles.is_empty() {
            bail!("{}: give at least one role", at());
        }
        out.push(Token {
            name: t.name.clone(),
            sha256,
            roles,
        });
    }
    Ok(out)
}

/// `custody serve [--listen ADDR]`.
pub fn cmd_serve(ctx: &Session, listen: Option<&str>) -> Result<u8> {
    let listen = listen
        .map(str::to_owned)
        .or_else(|| ctx.config.server.listen.clone())
        .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
    let addr: SocketAddr = listen.parse().map_err(|e| {
        anyhow!("--listen `{listen}` is not an address such as 127.0.0.1:8080: {e}")
    })?;
    let tokens = tokens(ctx)?;
    custody_server::check_listen(&addr, &tokens).map_err(|e| anyhow!(e))?;
    // Policy first: a broken Cedar policy stops here.
    let gate = crate::gate::gate_for(ctx)?;
    let ledger = ctx.open_ledger(true)?;
    let redactor = keys::load_or_create_redactor(&ctx.keys.fingerprint, true)?;
    let opener_ctx = ctx.store_opener();
    let options = Options {
        tokens,
        body_limit: ctx
            .config
            .server
            .body_limit
            .unwrap_or(custody_server::DEFAULT_BODY_LIMIT),
        link: ctx.link_config(),
        inline_reads: !ctx.is_postgres(),
        ..Options::default()
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let state = custody_server::State::new(ledger, opener_ctx, redactor, gate, options)
        .context("cannot start the server")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let bound = listener.local_addr().unwrap_or(addr);
        eprintln!(
            "custody serve: listening on http://{bound} ({} token(s){}); Ctrl-C stops",
            ctx.config.server.tokens.len(),
            if ctx.config.server.tokens.is_empty() {
                ", no authentication: loopback only"
            } else {
                ""
            }
        );
        custody_server::serve(listener, state, shutdown_signal())
            .await
            .context("the server failed")?;
        eprintln!("custody serve: stopped; every acknowledged event is committed");
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(0)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
