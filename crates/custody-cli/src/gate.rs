//! `custody check` (DESIGN §10): the gate, from the command line. Also loads the Cedar
//! policies from the configuration folder for every command that needs them.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use custody_gate::{CedarPolicy, FactIndex, Gate, GateDecision, ProposedAction};
use custody_ingest::Preparer;
use custody_model::{Redactor, Timestamp, Verdict};
use custody_store::Ledger;
use custody_store::LineOrigin;
use serde_json::Value;

use crate::{keys, print_json, Config, Format, Session, EXIT_NEGATIVE, EXIT_USAGE};

/// The folder the Cedar policies are read from: `[gate] policies` (relative to the config
/// file's folder), else the config file's folder. No config file: no Cedar policies.
pub fn policy_dir(config: &Config, config_path: Option<&Path>) -> Option<(PathBuf, bool)> {
    let base = config_path?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    match &config.gate.policies {
        Some(p) => Some((base.join(p), true)),
        None => Some((base, false)),
    }
}

/// Reads every `*.cedar` file of `dir`, by name. `explicit`: the folder was named in the
/// config, so its absence is an error.
pub fn read_policy_files(dir: &Path, explicit: bool) -> Result<Vec<(String, String)>> {
    if !dir.is_dir() {
        if explicit {
            bail!(
                "[gate] policies: `{}` is not a folder of *.cedar files",
                dir.display()
            );
        }
        return Ok(Vec::new());
    }
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read policy folder `{}`", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "cedar") && p.is_file())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p)
                .with_context(|| format!("cannot read policy file `{}`", p.display()))?;
            Ok((p.display().to_string(), text))
        })
        .collect()
}

/// The Cedar policies of the configuration, validated; `None` when there are none. A policy
/// error stops the command with the file and line.
pub fn load_cedar(config: &Config, config_path: Option<&Path>) -> Result<Option<CedarPolicy>> {
    let Some((dir, explicit)) = policy_dir(config, config_path) else {
        return Ok(None);
    };
    let sources = read_policy_files(&dir, explicit)?;
    cedar_from_sources(&sources, config)
}

/// As [`load_cedar`], from policy texts already read.
pub fn cedar_from_sources(
    sources: &[(String, String)],
    config: &Config,
) -> Result<Option<CedarPolicy>> {
    if sources.is_empty() {
        return Ok(None);
    }
    CedarPolicy::from_sources(sources, &config.groups)
        .map(Some)
        .map_err(|e| anyhow!("policy error: {e}"))
}

/// The gate of a session: `custody.toml` and its Cedar policies.
pub fn gate_for(ctx: &Session) -> Result<Gate> {
    let cedar = load_cedar(&ctx.config, ctx.config_path.as_deref())?;
    Ok(Gate::new(crate::findings::policy(&ctx.config), cedar))
}

fn read_input(input: &str) -> Result<String> {
    let mut text = String::new();
    if input == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the proposed action from standard input")?;
    } else if input.trim_start().starts_with('{') {
        text = input.to_owned();
    } else {
        text = std::fs::read_to_string(input)
            .with_context(|| format!("cannot read the proposed action from `{input}`"))?;
    }
    Ok(text)
}

/// The decision as the DESIGN §10 JSON shape, plus `policies`, `facts` and the decision
/// event's log `index`.
pub fn decision_json(d: &GateDecision, event: &Value, index: Option<u64>) -> Value {
    d.to_json(event, index)
}

/// Prints a decision for people.
pub fn print_text(d: &GateDecision, key: &str, index: Option<u64>) {
    match d.verdict {
        Verdict::Allow => println!("ALLOW"),
        Verdict::Deny => println!("DENY"),
    }
    for r in &d.reasons {
        println!("  {}: {}", r.rule, r.message);
    }
    let f = &d.facts;
    let initiator = f.initiator.as_ref().map_or("none".to_owned(), |p| {
        format!("{} ({})", p.id, p.kind.as_str())
    });
    println!(
        "  chain: initiator {initiator}, {} hop(s){}, credential from {}, {} earlier use(s), scope {}",
        f.depth,
        if f.hops.is_empty() { String::new() } else { format!(" [{}]", f.hops.join(" → ")) },
        f.credential_source,
        f.uses,
        if f.scope_covered { "covered at every hop" } else { "not covered" }
    );
    if f.approval_required || !f.approvals.is_empty() {
        println!(
            "  approvals: {}",
            if f.approvals.is_empty() {
                "none valid".to_owned()
            } else {
                f.approvals.join(", ")
            }
        );
    }
    if !d.policies.is_empty() {
        println!("  cedar policies: {}", d.policies.join(", "));
    }
    match index {
        Some(i) => println!("  recorded as {key} at log index {i}"),
        None => println!("  recorded as {key} (already in the log)"),
    }
}

/// Decides on `proposed` from the log's indexes and appends the decision event (with a
/// checkpoint): the decision, the event as stored, and its log index. Used by `custody
/// check` and the demo.
pub fn decide_and_record(
    gate: &Gate,
    ledger: &mut Ledger,
    redactor: &Redactor,
    proposed: &ProposedAction,
) -> Result<(GateDecision, Value, u64)> {
    let at = proposed.time.unwrap_or_else(Timestamp::now);
    let facts = FactIndex::load_for(
        ledger.store(),
        &proposed.action,
        &proposed.source,
        proposed.key.as_ref(),
    )?;
    let decision = gate.decide(&facts, proposed, at);
    let size = ledger.store().size()?;
    let event = gate.decision_event(proposed, &decision, at, size);
    let prepared = Preparer::new(redactor.clone())
        .prepare_value(
            event,
            Some(LineOrigin {
                file: "custody check".into(),
                line: 1,
            }),
        )
        .map_err(|e| anyhow!("cannot record the decision: {e}"))?;
    let stored = serde_json::from_slice::<Value>(prepared.canonical())?;
    let outcome = ledger.append(std::slice::from_ref(&prepared), &[])?;
    if !outcome.conflicts.is_empty() {
        bail!(
            "cannot record the decision: {} is already stored with other content",
            prepared.event.key
        );
    }
    let index = match outcome.accepted {
        1 => outcome.size - 1,
        _ => ledger
            .store()
            .get(&prepared.event.key)?
            .map(|e| e.index)
            .ok_or_else(|| anyhow!("the decision {} is not in the log", prepared.event.key))?,
    };
    Ok((decision, stored, index))
}

/// `custody check --action FILE|-|JSON`.
pub fn cmd_check(ctx: &Session, input: &str) -> Result<u8> {
    // Policy first: a broken policy stops here, before anything is read or written.
    let gate = gate_for(ctx)?;
    let text = read_input(input)?;
    let name = if input == "-" || input.trim_start().starts_with('{') {
        "-"
    } else {
        input
    };
    let value: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            eprintln!(
                "error: {name}:{}:{}: malformed JSON: {e}",
                e.line(),
                e.column()
            );
            return Ok(EXIT_USAGE);
        }
    };
    let mut ledger = ctx.open_ledger(false)?;
    let redactor = keys::load_or_create_redactor(&ctx.keys.fingerprint, false)?;
    let proposed = match ProposedAction::parse(value, &redactor) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {name}: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    let (decision, stored, index) = decide_and_record(&gate, &mut ledger, &redactor, &proposed)?;
    let key = format!(
        "{}#{}",
        custody_gate::DECISION_SOURCE,
        stored.get("id").and_then(Value::as_str).unwrap_or_default()
    );
    match ctx.format {
        Format::Json | Format::Sarif => {
            print_json(&decision_json(&decision, &stored, Some(index)))?
        }
        Format::Text => print_text(&decision, &key, Some(index)),
    }
    Ok(match decision.verdict {
        Verdict::Allow => 0,
        Verdict::Deny => EXIT_NEGATIVE,
    })
}
