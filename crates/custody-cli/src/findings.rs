//! `custody findings` and `custody frameworks` (DESIGN §5, §10).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use anyhow::{anyhow, bail, Result};
use custody_model::Timestamp;
use custody_rules::{catalogue, ApprovalRule, Finding, Policy, Report, Severity};
use custody_store::Store;
use serde_json::{json, Value};

use crate::{print_json, Config, Format, Session, EXIT_NEGATIVE};

/// The rules' policy from `custody.toml`.
pub fn policy(config: &Config) -> Policy {
    Policy {
        max_depth: config.chain.max_depth,
        inference_window_secs: i64::from(config.chain.inference_window_secs),
        secret_managers: config.inventory.secret_managers.clone(),
        approvals: config
            .approvals
            .iter()
            .map(|a| ApprovalRule::new(&a.action, &a.resource, a.param.clone(), a.above))
            .collect(),
    }
}

/// `custody findings` filters.
#[derive(Debug, Default)]
pub struct Filter {
    pub rule: Option<String>,
    pub framework: Option<String>,
    pub since: Option<String>,
    pub fail_on: Option<String>,
}

/// A control id (or alias) in its canonical form; an error names the unknown id.
pub fn control_id(name: &str) -> Result<String> {
    catalogue()
        .control(name)
        .map(|c| c.id.clone())
        .ok_or_else(|| {
            anyhow!("unknown framework control `{name}` (see `custody frameworks` for the ids)")
        })
}

fn severity(name: &str) -> Result<Severity> {
    Severity::parse(name).ok_or_else(|| {
        anyhow!("unknown severity `{name}`: use info, low, medium, high or critical")
    })
}

pub fn cmd_findings(ctx: &Session, filter: &Filter) -> Result<u8> {
    if let Some(rule) = &filter.rule {
        if catalogue().rule(rule).is_none() {
            bail!(
                "unknown rule `{rule}`: one of {}",
                catalogue()
                    .rules
                    .iter()
                    .map(|r| r.slug.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let framework = filter.framework.as_deref().map(control_id).transpose()?;
    let since = filter
        .since
        .as_deref()
        .map(|s| Timestamp::parse(s).map_err(|e| anyhow!("--since: {e}")))
        .transpose()?;
    let fail_on = filter.fail_on.as_deref().map(severity).transpose()?;
    let cedar = crate::gate::load_cedar(&ctx.config, ctx.config_path.as_deref())?;
    let store = ctx.open_store(false)?;
    let report = evaluate(store.as_ref(), &ctx.config, cedar)?;
    let findings: Vec<Finding> = report
        .findings
        .into_iter()
        .filter(|f| filter.rule.as_deref().is_none_or(|r| f.rule == r))
        .filter(|f| {
            framework
                .as_deref()
                .is_none_or(|c| f.frameworks.iter().any(|x| x == c))
        })
        .filter(|f| since.is_none_or(|s| f.time >= s))
        .collect();
    match ctx.format {
        Format::Json => print_json(&Value::Array(
            findings.iter().map(Finding::to_json).collect(),
        ))?,
        Format::Sarif => print_json(&custody_rules::sarif::to_sarif(
            &findings,
            env!("CARGO_PKG_VERSION"),
        ))?,
        Format::Text => print!("{}", render_text(&findings)),
    }
    let failed = fail_on.is_some_and(|min| findings.iter().any(|f| f.severity >= min));
    Ok(if failed { EXIT_NEGATIVE } else { 0 })
}

/// Findings for people: grouped by chain, the flagged event, the message, the evidence.
pub fn render_text(findings: &[Finding]) -> String {
    let mut out = String::new();
    if findings.is_empty() {
        out.push_str("no findings\n");
        return out;
    }
    let mut by_chain: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
    for f in findings {
        by_chain.entry(f.chain.as_str()).or_default().push(f);
    }
    for (chain, list) in &by_chain {
        let _ = writeln!(out, "chain {chain}");
        for f in list {
            let flagged = f.flagged().map(ToString::to_string).unwrap_or_default();
            let _ = writeln!(
                out,
                "  [{}] {}  {}",
                f.severity.as_str().to_uppercase(),
                f.rule,
                flagged
            );
            let _ = writeln!(out, "      {}", f.message);
            if f.events.len() > 1 {
                let evidence: Vec<String> =
                    f.events.iter().skip(1).map(ToString::to_string).collect();
                let _ = writeln!(out, "      evidence: {}", evidence.join(", "));
            }
            let _ = writeln!(out, "      frameworks: {}", f.frameworks.join(", "));
        }
        out.push('\n');
    }
    let mut counts: BTreeMap<Severity, usize> = BTreeMap::new();
    for f in findings {
        *counts.entry(f.severity).or_default() += 1;
    }
    let counts: Vec<String> = counts
        .iter()
        .rev()
        .map(|(s, n)| format!("{n} {s}"))
        .collect();
    let _ = writeln!(
        out,
        "{} findings in {} chains ({})",
        findings.len(),
        by_chain.len(),
        counts.join(", ")
    );
    out
}

/// One control's coverage.
fn coverage(report: &Report, control: &custody_rules::Control) -> Value {
    let rules: Vec<&str> = catalogue()
        .rules_for(&control.id)
        .iter()
        .map(|r| r.slug.as_str())
        .collect();
    let hits: Vec<&Finding> = report
        .findings
        .iter()
        .filter(|f| f.frameworks.iter().any(|c| c == &control.id))
        .collect();
    let dirty: BTreeSet<&str> = hits.iter().map(|f| f.chain.as_str()).collect();
    json!({
        "control": control.id,
        "framework": control.framework,
        "title": control.title,
        "rules": rules,
        "chains_checked": report.chains.len(),
        "chains_clean": report.chains.len().saturating_sub(dirty.len()),
        "findings": hits.len(),
    })
}

pub fn cmd_frameworks(ctx: &Session, framework: Option<&str>) -> Result<u8> {
    let wanted = framework.map(control_id).transpose()?;
    let cedar = crate::gate::load_cedar(&ctx.config, ctx.config_path.as_deref())?;
    let store = ctx.open_store(false)?;
    let report = evaluate(store.as_ref(), &ctx.config, cedar)?;
    print_coverage(ctx.format, &report, wanted.as_deref())?;
    Ok(0)
}

pub fn print_coverage(format: Format, report: &Report, wanted: Option<&str>) -> Result<()> {
    let rows: Vec<Value> = catalogue()
        .controls
        .iter()
        .filter(|c| wanted.is_none_or(|w| c.id == w))
        .map(|c| coverage(report, c))
        .collect();
    match format {
        Format::Json | Format::Sarif => print_json(&Value::Array(rows))?,
        Format::Text => {
            println!(
                "{:<14} {:>8} {:>6} {:>9}  {:<44} rules",
                "control", "checked", "clean", "findings", "title"
            );
            for r in &rows {
                let s = |k: &str| r.get(k).map(|v| v.to_string()).unwrap_or_default();
                let title: String = r
                    .get("title")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .chars()
                    .take(44)
                    .collect();
                let rules: Vec<&str> = r
                    .get("rules")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                println!(
                    "{:<14} {:>8} {:>6} {:>9}  {:<44} {}",
                    r.get("control").and_then(Value::as_str).unwrap_or_default(),
                    s("chains_checked"),
                    s("chains_clean"),
                    s("findings"),
                    title,
                    if rules.is_empty() {
                        "(no rule gives evidence)".to_owned()
                    } else {
                        rules.join(", ")
                    }
                );
            }
        }
    }
    Ok(())
}

/// Findings over a store: the rules of DESIGN §5 and, with Cedar policies, the
/// `policy-violation` findings of the policy replayed over recorded actions.
pub fn evaluate(
    store: &dyn Store,
    config: &Config,
    cedar: Option<custody_gate::CedarPolicy>,
) -> Result<Report> {
    let gate = custody_gate::Gate::new(policy(config), cedar);
    Ok(custody_gate::findings(store, &gate)?)
}
