//! Incident response: `custody blast-radius` (what a leaked credential, a principal or a
//! secret reached), `custody export` (an evidence bundle) and `custody verify-bundle`
//! (checked offline, with nothing but the bundle and the verifier key).

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use custody_chain::{BlastConfig, BlastError, BlastRadius, BlastStart, Trace, UnverifiedBundle};
use serde_json::json;

use crate::{print_json, read_verifier, Format, Session, EXIT_NEGATIVE, EXIT_USAGE};

/// `custody blast-radius --credential ID | --principal ID | --secret PATH`.
pub fn cmd_blast_radius(ctx: &Session, start: BlastStart, max_events: usize) -> Result<u8> {
    let store = ctx.open_store(false)?;
    let config = BlastConfig { max_events };
    let radius = match BlastRadius::compute(store.as_ref(), start, &config) {
        Ok(r) => r,
        Err(
            e @ (BlastError::UnknownCredential(_)
            | BlastError::UnknownPrincipal(_)
            | BlastError::UnknownSecret(_)),
        ) => {
            eprintln!("error: {e}");
            return Ok(EXIT_USAGE);
        }
        Err(e) => return Err(e.into()),
    };
    match ctx.format {
        Format::Json => print_json(&radius.to_json())?,
        Format::Text => print!("{}", radius.render_text()),
        Format::Sarif => bail!("--format sarif is only for `custody findings`"),
    }
    Ok(0)
}

/// The start named by exactly one of the three options.
pub fn start_of(
    credential: Option<String>,
    principal: Option<String>,
    secret: Option<String>,
) -> Result<BlastStart> {
    match (credential, principal, secret) {
        (Some(c), None, None) => Ok(BlastStart::Credential(c)),
        (None, Some(p), None) => Ok(BlastStart::Principal(p)),
        (None, None, Some(s)) => Ok(BlastStart::Secret(s)),
        _ => bail!("give exactly one of --credential ID, --principal ID, --secret PATH"),
    }
}

/// `custody export EVENT -o FILE`: the event's chain, each event's bytes and inclusion
/// proof against the latest signed checkpoint (signed now if the log grew since).
pub fn cmd_export(ctx: &Session, event: &str, output: &Path) -> Result<u8> {
    let mut ledger = ctx.open_ledger(false)?;
    let trace = Trace::of_event(ledger.store(), event, &ctx.link_config())?;
    if trace.truncated {
        eprintln!(
            "warning: the chain of {} was cut at {} events; the bundle holds those",
            trace.start,
            trace.events.len()
        );
    }
    let checkpoint = ledger.checkpoint()?;
    let bundle = UnverifiedBundle::export(
        ledger.store(),
        ledger.origin(),
        &trace.start,
        trace.events.values(),
        &checkpoint,
    )?;
    let text = bundle.to_json_pretty()?;
    std::fs::write(output, format!("{text}\n"))
        .with_context(|| format!("cannot write bundle `{}`", output.display()))?;
    match ctx.format {
        Format::Json | Format::Sarif => print_json(&json!({
            "file": output.display().to_string(),
            "event": trace.start,
            "events": bundle.events.len(),
            "origin": bundle.origin,
            "size": checkpoint.size,
        }))?,
        Format::Text => println!(
            "wrote {}: {} events of the chain of {}, each with an inclusion proof against the \
             signed checkpoint of {} at size {}",
            output.display(),
            bundle.events.len(),
            trace.start,
            bundle.origin,
            checkpoint.size
        ),
    }
    Ok(0)
}

/// `custody verify-bundle FILE --key KEYFILE`: offline, without any database.
pub fn cmd_verify_bundle(ctx: &Session, file: &Path, key: &Path) -> Result<u8> {
    let bytes =
        std::fs::read(file).with_context(|| format!("cannot read bundle `{}`", file.display()))?;
    let verifier = read_verifier(key)?;
    let bundle =
        UnverifiedBundle::parse(&bytes).map_err(|e| anyhow!("`{}`: {e}", file.display()))?;
    let b64 = base64::engine::general_purpose::STANDARD;
    match bundle.verify(&verifier) {
        Ok(ok) => {
            match ctx.format {
                Format::Json | Format::Sarif => print_json(&json!({
                    "ok": true,
                    "event": ok.start,
                    "events": ok.keys().iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "origin": ok.checkpoint.origin,
                    "size": ok.checkpoint.size,
                    "root": b64.encode(ok.checkpoint.root),
                    "problems": Vec::<String>::new(),
                }))?,
                Format::Text => println!(
                    "ok: {} events of the chain of {} are in the log {} at size {} (root {}), \
                     checkpoint signed by key `{}`",
                    ok.events.len(),
                    ok.start,
                    ok.checkpoint.origin,
                    ok.checkpoint.size,
                    b64.encode(ok.checkpoint.root),
                    verifier.name()
                ),
            }
            Ok(0)
        }
        Err(failure) => {
            match ctx.format {
                Format::Json | Format::Sarif => print_json(&json!({
                    "ok": false,
                    "event": bundle.start,
                    "problems": failure.problems,
                }))?,
                Format::Text => {
                    println!("FAILED: `{}` does not verify", file.display());
                    for p in &failure.problems {
                        println!("  {p}");
                    }
                }
            }
            Ok(EXIT_NEGATIVE)
        }
    }
}

/// The secret story 4 leaked, and the attacker's last pivot, for the demo.
const DEMO_SECRET: &str = "secret/ci/ci-publisher/aws";
const DEMO_EXPORT: &str = "aws:cloudtrail:123456789012#s4-act-7";

/// The end of the demo's leaked-secret story: the secret's blast radius, then the attacker's
/// chain exported as an evidence bundle into `dir` and verified with the verifier key alone.
/// Prints in text mode; returns the JSON to add to the story's report.
pub fn demo_story4(
    ledger: &mut custody_store::Ledger,
    link: &custody_chain::LinkConfig,
    dir: &Path,
    json: bool,
) -> Result<serde_json::Value> {
    let radius = BlastRadius::compute(
        ledger.store(),
        BlastStart::Secret(DEMO_SECRET.to_owned()),
        &BlastConfig::default(),
    )?;
    let trace = Trace::of_event(ledger.store(), DEMO_EXPORT, link)?;
    let checkpoint = ledger.checkpoint()?;
    let bundle = UnverifiedBundle::export(
        ledger.store(),
        ledger.origin(),
        &trace.start,
        trace.events.values(),
        &checkpoint,
    )?;
    let file = dir.join("story4-bundle.json");
    std::fs::write(&file, format!("{}\n", bundle.to_json_pretty()?))
        .with_context(|| format!("cannot write bundle `{}`", file.display()))?;
    let verifier = custody_merkle::NoteVerifier::parse(&ledger.verifier_key())
        .map_err(|e| anyhow!("cannot read back the verifier key: {e}"))?;
    let reread = UnverifiedBundle::parse(
        &std::fs::read(&file).with_context(|| format!("cannot read `{}`", file.display()))?,
    )?;
    let verified = reread.verify(&verifier);
    if !json {
        println!("$ custody blast-radius --secret {DEMO_SECRET}");
        print!("{}", radius.render_text());
        println!("\n$ custody export {DEMO_EXPORT} -o {}", file.display());
        println!(
            "  {} events of the attacker's chain, each with an inclusion proof against the signed checkpoint at size {}",
            bundle.events.len(),
            checkpoint.size
        );
        match &verified {
            Ok(_) => println!("  verify-bundle with the verifier key alone: ok"),
            Err(f) => println!("  verify-bundle: FAILED: {f}"),
        }
        println!();
    }
    Ok(json!({
        "blast_radius": radius.to_json(),
        "bundle": {
            "file": file.display().to_string(),
            "event": trace.start,
            "events": bundle.events.len(),
            "size": checkpoint.size,
            "verified": verified.is_ok(),
            "problems": verified.err().map(|f| f.problems).unwrap_or_default(),
        },
    }))
}
