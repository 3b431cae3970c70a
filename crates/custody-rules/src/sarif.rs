//! SARIF 2.1.0 output: one run, the rules' metadata in `tool.driver.rules`, one result per
//! finding with the evidence events as logical locations.

use serde_json::{json, Value};

use crate::{catalogue, Finding, Severity};

/// The SARIF `level` of a severity.
pub fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    }
}

/// The `security-severity` score code-scanning viewers sort by.
fn score(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
        Severity::Info => "0.0",
    }
}

/// A SARIF 2.1.0 log of the findings. Every rule of the catalogue is described, so the
/// result's `ruleIndex` is stable whichever rules fired.
pub fn to_sarif(findings: &[Finding], version: &str) -> Value {
    let cat = catalogue();
    let rules: Vec<Value> = cat
        .rules
        .iter()
        .map(|r| {
            let controls: Vec<String> = r
                .frameworks
                .iter()
                .map(|f| match cat.control(f) {
                    Some(c) => format!("- `{}` {} ({})", c.id, c.title, c.url),
                    None => format!("- `{f}`"),
                })
                .collect();
            json!({
                "id": r.slug,
                "name": camel(&r.slug),
                "shortDescription": {"text": r.title},
                "fullDescription": {"text": format!("{}. Fires when: {}", r.title, r.message)},
                "help": {
                    "text": r.help,
                    "markdown": format!("{}\n\n**Framework controls**\n\n{}", r.help, controls.join("\n")),
                },
                "defaultConfiguration": {"level": level(r.severity)},
                "properties": {
                    "severity": r.severity.as_str(),
                    "security-severity": score(r.severity),
                    "tags": std::iter::once("security".to_owned()).chain(r.frameworks.iter().cloned()).collect::<Vec<_>>(),
                    "frameworks": r.frameworks,
                },
            })
        })
        .collect();
    let results: Vec<Value> = findings
        .iter()
        .map(|f| {
            let rule_index = cat.rules.iter().position(|r| r.slug == f.rule).unwrap_or(0);
            let locations: Vec<Value> = f
                .events
                .iter()
                .map(|e| {
                    json!({
                        "logicalLocations": [{
                            "name": e.id,
                            "fullyQualifiedName": e.to_string(),
                            "kind": "event",
                        }],
                    })
                })
                .collect();
            let first = f.events.first().map(ToString::to_string).unwrap_or_default();
            json!({
                "ruleId": f.rule,
                "ruleIndex": rule_index,
                "level": level(f.severity),
                "message": {"text": f.message},
                "locations": locations.first().cloned().into_iter().collect::<Vec<_>>(),
                "relatedLocations": locations.iter().enumerate().skip(1).map(|(n, l)| {
                    let mut l = l.clone();
                    if let Some(obj) = l.as_object_mut() {
                        obj.insert("id".into(), json!(n));
                    }
                    l
                }).collect::<Vec<_>>(),
                "partialFingerprints": {"custodyFinding/v1": format!("{}|{}|{}", f.rule, f.chain, first)},
                "properties": {
                    "severity": f.severity.as_str(),
                    "chain": f.chain,
                    "events": f.events.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "frameworks": f.frameworks,
                },
            })
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "custody",
                "version": version,
                "informationUri": "https://example.invalid/custody",
                "rules": rules,
            }},
            "results": results,
        }],
    })
}

/// `incomplete-chain` → `IncompleteChain`.
fn camel(slug: &str) -> String {
    slug.split('-')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        })
        .collect()
}
