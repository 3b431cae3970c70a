//! `custody report EVENT | --credential ID -o FILE.html`: one self-contained page for an
//! incident ticket. The chain drawn as a graph (`custody_chain::chain_svg`, laid out by
//! `layout-rs`), the verdict (complete, or the links it misses), the findings on the chain's
//! events with their framework ids, every event in a table, and the proof status: each
//! event's inclusion proof against the latest signed checkpoint, checked here with the
//! verifier key, as `verify-bundle` would.
//!
//! The page is inert and offline: inline CSS and SVG only, no script, no URL, and a
//! Content-Security-Policy that forbids loading anything. Every text from the log is
//! escaped. With `--credential` the chain is `trace --credential`'s: the hops down to the
//! credential's issuance, every action that used it, and their effects.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use base64::Engine as _;
use custody_chain::{
    chain_svg, escape_xml as esc, event_summary, LinkConfig, Trace, UnverifiedBundle,
};
use custody_merkle::{NoteVerifier, UnverifiedCheckpoint};
use custody_model::{EventBody, EventKey, EventType, Timestamp};
use custody_rules::{catalogue, Finding};
use custody_store::{Ledger, StoredCheckpoint, StoredEvent};
use serde_json::json;

use crate::{print_json, Config, Format, Session, EXIT_NEGATIVE};

/// What was written, for the command's output and the demo.
#[derive(Debug)]
pub struct ReportSummary {
    /// The chain's start (`source#id` or `credential ID`).
    pub start: String,
    /// Events in the chain.
    pub events: usize,
    /// Whether every action's chain is complete.
    pub complete: bool,
    /// The links missed (DESIGN §4 names).
    pub missing: Vec<String>,
    /// Findings on the chain's events.
    pub findings: usize,
    /// Events whose inclusion proof verified.
    pub proofs_verified: usize,
    /// The checkpoint's size.
    pub size: u64,
    /// The log's origin.
    pub origin: String,
}

impl ReportSummary {
    fn to_json(&self, file: &Path) -> serde_json::Value {
        json!({
            "file": file.display().to_string(),
            "event": self.start,
            "events": self.events,
            "complete": self.complete,
            "missing": self.missing,
            "findings": self.findings,
            "proofs_verified": self.proofs_verified,
            "size": self.size,
            "origin": self.origin,
        })
    }

    /// Whether every event's proof verified.
    pub fn proofs_ok(&self) -> bool {
        self.proofs_verified == self.events
    }
}

/// `custody report EVENT | --credential ID -o FILE`. Exit 0 when written and every proof
/// verified; 1 when written but a proof failed (the page says which); 2 for an unknown
/// event or credential, like `trace`.
pub fn cmd_report(
    ctx: &Session,
    event: Option<&str>,
    credential: Option<&str>,
    output: &Path,
) -> Result<u8> {
    let mut ledger = ctx.open_ledger(false)?;
    let link = ctx.link_config();
    let trace = match (event, credential) {
        (_, Some(cred)) => Trace::of_credential(ledger.store(), cred, &link)?,
        (Some(event), None) => Trace::of_event(ledger.store(), event, &link)?,
        (None, None) => return Err(anyhow!("give an event or --credential")),
    };
    let cedar = crate::gate::load_cedar(&ctx.config, ctx.config_path.as_deref())?;
    let summary = write_report(&mut ledger, &ctx.config, cedar, &trace, output)?;
    match ctx.format {
        Format::Json | Format::Sarif => print_json(&summary.to_json(output))?,
        Format::Text => println!("{}", summary_line(&summary, output)),
    }
    Ok(if summary.proofs_ok() {
        0
    } else {
        EXIT_NEGATIVE
    })
}

fn summary_line(s: &ReportSummary, output: &Path) -> String {
    format!(
        "wrote {}: chain of {}, {} events, {}, {} findings, {}/{} inclusion proofs verified \
         against the signed checkpoint of {} at size {}",
        output.display(),
        s.start,
        s.events,
        if s.complete {
            "complete".to_owned()
        } else {
            format!("missing {}", s.missing.join(", "))
        },
        s.findings,
        s.proofs_verified,
        s.events,
        s.origin,
        s.size
    )
}

/// Builds the page for `trace` and writes it to `output`; the latest checkpoint is signed
/// first if the log grew.
pub fn write_report(
    ledger: &mut Ledger,
    config: &Config,
    cedar: Option<custody_gate::CedarPolicy>,
    trace: &Trace,
    output: &Path,
) -> Result<ReportSummary> {
    let keys: BTreeSet<String> = trace.events.values().map(|e| e.key().to_string()).collect();
    let mut findings: Vec<Finding> = crate::findings::evaluate(ledger.store(), config, cedar)?
        .findings
        .into_iter()
        .filter(|f| f.flagged().is_some_and(|k| keys.contains(&k.to_string())))
        .collect();
    findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.rule.cmp(b.rule)));
    let checkpoint = ledger.checkpoint()?;
    let verifier = NoteVerifier::parse(&ledger.verifier_key())
        .map_err(|e| anyhow!("cannot read the log's verifier key: {e}"))?;
    let proofs = prove(ledger, trace, &checkpoint, &verifier);
    let html = render_page(trace, &findings, &proofs);
    std::fs::write(output, html)
        .with_context(|| format!("cannot write report `{}`", output.display()))?;
    Ok(ReportSummary {
        start: trace.start.clone(),
        events: trace.events.len(),
        complete: trace.complete(),
        missing: trace
            .missing()
            .iter()
            .map(|l| l.as_str().to_owned())
            .collect(),
        findings: findings.len(),
        proofs_verified: proofs.verified(),
        size: proofs.size,
        origin: proofs.origin.clone(),
    })
}

/// The demo's report: story 4's attacker chain, written beside its bundle.
pub fn demo_report(
    ledger: &mut Ledger,
    config: &Config,
    cedar: Option<custody_gate::CedarPolicy>,
    link: &LinkConfig,
    event: &str,
    dir: &Path,
    json: bool,
) -> Result<serde_json::Value> {
    let trace = Trace::of_event(ledger.store(), event, link)?;
    let file = dir.join("story4-report.html");
    let summary = write_report(ledger, config, cedar, &trace, &file)?;
    if !json {
        println!("$ custody report {event} -o {}", file.display());
        println!("  {}", summary_line(&summary, &file));
        println!();
    }
    Ok(summary.to_json(&file))
}

/// The proof status of every event of the chain.
struct Proofs {
    origin: String,
    size: u64,
    root: String,
    note: String,
    /// The checkpoint's signature, checked with the verifier key: the key's name, or why not.
    signature: Result<String, String>,
    /// Per log index: verified, or the problems.
    events: BTreeMap<u64, Result<(), String>>,
}

impl Proofs {
    fn verified(&self) -> usize {
        self.events.values().filter(|r| r.is_ok()).count()
    }
}

/// Exports the chain as a bundle against `checkpoint`, then checks each event on its own
/// (`UnverifiedBundle::verify`, the offline check) so that a failure names its event.
fn prove(
    ledger: &Ledger,
    trace: &Trace,
    checkpoint: &StoredCheckpoint,
    verifier: &NoteVerifier,
) -> Proofs {
    let b64 = base64::engine::general_purpose::STANDARD;
    let parsed = UnverifiedCheckpoint::parse(checkpoint.note.as_bytes());
    let origin = match &parsed {
        Ok(p) => p.origin().to_owned(),
        Err(_) => ledger.origin().to_owned(),
    };
    let signature = match parsed {
        Err(e) => Err(format!("the checkpoint note is malformed: {e}")),
        Ok(p) => p
            .verify(verifier)
            .map(|_| verifier.name().to_owned())
            .map_err(|e| format!("the signature does not verify: {e}")),
    };
    let mut proofs = Proofs {
        origin,
        size: checkpoint.size,
        root: b64.encode(checkpoint.root),
        note: checkpoint.note.clone(),
        signature,
        events: BTreeMap::new(),
    };
    let bundle = UnverifiedBundle::export(
        ledger.store(),
        ledger.origin(),
        &trace.start,
        trace.events.values(),
        checkpoint,
    );
    match bundle {
        Err(e) => {
            for index in trace.events.keys() {
                proofs.events.insert(*index, Err(e.to_string()));
            }
        }
        Ok(bundle) => {
            for entry in &bundle.events {
                let one = UnverifiedBundle {
                    format: bundle.format.clone(),
                    origin: bundle.origin.clone(),
                    start: entry.event.clone(),
                    checkpoint: bundle.checkpoint.clone(),
                    events: vec![entry.clone()],
                };
                let result = one.verify(verifier).map(|_| ()).map_err(|f| f.to_string());
                proofs.events.insert(entry.index, result);
            }
        }
    }
    proofs
}

/// Who an event is about, for the table.
fn actor(e: &StoredEvent) -> String {
    match &e.event.body {
        EventBody::Request(r) => r.initiator.to_string(),
        EventBody::Delegation(d) => format!("{} → {}", d.from, d.to),
        EventBody::Approval(a) => a.approver.to_string(),
        EventBody::Action(a) => a.actor.to_string(),
        EventBody::Effect(f) => f.system.clone(),
        EventBody::SecretAccess(s) => s.principal.to_string(),
        EventBody::Revocation(r) => r.by.as_ref().map(ToString::to_string).unwrap_or_default(),
        EventBody::Decision(d) => d
            .proposed
            .pointer("/actor/id")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned(),
    }
}

const CSS: &str = r#"
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f4f6f8; color: #1d2329;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", Arial, sans-serif; }
main { max-width: 1240px; margin: 0 auto; padding: 24px 28px 40px; }
header { border-bottom: 3px solid #283593; padding-bottom: 10px; margin-bottom: 18px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h1 .start { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 19px; word-break: break-all; }
h2 { font-size: 17px; margin: 28px 0 10px; color: #283593; }
.meta { color: #55616c; font-size: 13px; }
section { background: #fff; border: 1px solid #d9dee3; border-radius: 8px; padding: 14px 18px; margin-bottom: 16px; }
section > h2:first-child { margin-top: 0; }
.verdict { display: flex; gap: 14px; align-items: flex-start; }
.badge { display: inline-block; border-radius: 999px; padding: 2px 10px; font-weight: 600; font-size: 12px; white-space: nowrap; }
.big { font-size: 15px; padding: 5px 14px; }
.ok { background: #e6f4ea; color: #1e6b30; border: 1px solid #9ccaa8; }
.bad { background: #fdecea; color: #a31515; border: 1px solid #eba8a3; }
.warn { background: #fff4e0; color: #7a3e00; border: 1px solid #efc27e; }
.stats { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 10px; margin-top: 12px; }
.stat { background: #f7f9fb; border: 1px solid #e1e6ea; border-radius: 6px; padding: 8px 10px; }
.stat b { display: block; font-size: 20px; }
.stat span { color: #55616c; font-size: 12px; }
ul.plain { margin: 6px 0 0; padding-left: 18px; }
.graph { overflow-x: auto; text-align: center; padding: 6px 0; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 16px; font-size: 12px; color: #3b4650; margin-bottom: 8px; }
.legend i { display: inline-block; width: 16px; height: 11px; border: 1.5px solid; border-radius: 2px; vertical-align: -1px; margin-right: 5px; }
.legend i.line { height: 0; border-width: 1.5px 0 0; border-radius: 0; width: 22px; vertical-align: 3px; }
table { width: 100%; border-collapse: collapse; font-size: 13px; }
th, td { text-align: left; vertical-align: top; padding: 6px 8px; border-bottom: 1px solid #e4e8ec; }
th { background: #f0f3f6; font-weight: 600; color: #37424c; position: sticky; top: 0; }
tr:nth-child(even) td { background: #fafbfc; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code, .mono { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; overflow-wrap: anywhere; }
.nowrap { white-space: nowrap; }
td.key { min-width: 170px; }
.fw { display: inline-block; margin: 1px 3px 1px 0; padding: 0 6px; border-radius: 4px; background: #eef1fb; border: 1px solid #c6cdea; color: #283593; font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; }
.sev-critical { background: #7b0d0d; color: #fff; }
.sev-high { background: #c62828; color: #fff; }
.sev-medium { background: #ef8f00; color: #231500; }
.sev-low { background: #fbe27a; color: #3a3000; }
.sev-info { background: #dfe6ec; color: #24313b; }
.yes { color: #1e7b34; font-weight: 700; }
.no { color: #c62828; font-weight: 700; }
pre { background: #f7f9fb; border: 1px solid #e1e6ea; border-radius: 6px; padding: 10px; font-size: 12px; overflow-x: auto; white-space: pre-wrap; word-break: break-all; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 4px 14px; margin: 0; }
dl.kv dt { color: #55616c; }
dl.kv dd { margin: 0; }
footer { color: #6b7680; font-size: 12px; margin-top: 20px; }
@media print { body { background: #fff; } section { break-inside: avoid; border-color: #bbb; } th { position: static; } }
"#;

/// The legend: (name, fill, stroke), the colours of `chain_svg`.
const LEGEND: [(&str, &str, &str); 9] = [
    ("human", "#e6f4ea", "#1e7b34"),
    ("agent / service", "#e3f0fb", "#1c5fa8"),
    ("credential", "#fff6dc", "#a86400"),
    ("request", "#f5eafa", "#7b2a9e"),
    ("delegation", "#eeeafa", "#4b3aa8"),
    ("action", "#e8ebf7", "#283593"),
    ("effect", "#fdece6", "#b33c12"),
    ("approval", "#e2f5f2", "#00796b"),
    ("secret access", "#fbf9e0", "#827717"),
];

fn render_page(trace: &Trace, findings: &[Finding], proofs: &Proofs) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let title = format!("Custody report: chain of {}", trace.start);
    let complete = trace.complete();
    let missing: Vec<&str> = trace.missing().iter().map(|l| l.as_str()).collect();
    let times: Vec<Timestamp> = trace.events.values().map(|e| e.event.time).collect();
    let first = times.iter().min();
    let last = times.iter().max();

    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
         <meta name=\"generator\" content=\"custody {}\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n",
        env!("CARGO_PKG_VERSION"),
        esc(&title)
    );
    let _ = write!(
        h,
        "<header><h1>Chain of custody: <span class=\"start\">{}</span></h1>\
         <div class=\"meta\">Log <code>{}</code> · signed checkpoint at size {} · events from {} to {} · report generated {}</div></header>",
        esc(&trace.start),
        esc(&proofs.origin),
        proofs.size,
        first.map(ToString::to_string).unwrap_or_default(),
        last.map(ToString::to_string).unwrap_or_default(),
        Timestamp::from_unix_nanos(i128::from(Timestamp::now().unix_seconds()) * 1_000_000_000)
            .map(|t| t.to_string())
            .unwrap_or_default()
    );

    // Verdict and counts.
    h.push_str("<section id=\"verdict\"><h2>Verdict</h2><div class=\"verdict\">");
    if complete {
        h.push_str("<span class=\"badge big ok\">✓ complete chain</span><div>Every action's chain has its initiator, authority, context and impact (DESIGN §4).</div>");
    } else {
        let _ = write!(
            h,
            "<span class=\"badge big bad\">✗ missing links: {}</span><div>",
            esc(&missing.join(", "))
        );
        h.push_str("<ul class=\"plain\">");
        for c in trace.actions.iter().filter(|c| !c.missing.is_empty()) {
            let names: Vec<&str> = c.missing.iter().map(|l| l.as_str()).collect();
            let _ = write!(
                h,
                "<li><code>{}</code> misses <b>{}</b></li>",
                esc(&c.action.to_string()),
                esc(&names.join(", "))
            );
        }
        if trace.actions.is_empty() {
            h.push_str("<li>No action in this chain.</li>");
        }
        h.push_str("</ul></div>");
    }
    h.push_str("</div>");
    let notes = chain_notes(trace);
    if !notes.is_empty() {
        h.push_str("<ul class=\"plain\">");
        for n in notes {
            let _ = write!(h, "<li>{n}</li>");
        }
        h.push_str("</ul>");
    }
    let initiators = trace.initiators();
    let _ = write!(
        h,
        "<div class=\"stats\">{}{}{}{}{}</div>",
        stat(trace.events.len(), "events"),
        stat(trace.of_type(EventType::Action).len(), "actions"),
        stat(trace.of_type(EventType::Effect).len(), "effects"),
        stat(findings.len(), "findings on these events"),
        format_args!(
            "<div class=\"stat\"><b class=\"{}\">{}/{}</b><span>inclusion proofs verified</span></div>",
            if proofs.verified() == trace.events.len() { "yes" } else { "no" },
            proofs.verified(),
            trace.events.len()
        )
    );
    if !initiators.is_empty() {
        let names: Vec<String> = initiators.iter().map(|p| esc(&p.to_string())).collect();
        let _ = write!(h, "<p class=\"meta\">Initiators: {}</p>", names.join(", "));
    }
    h.push_str("</section>\n");

    // The graph.
    h.push_str("<section id=\"graph\"><h2>Chain</h2><div class=\"legend\">");
    for (name, fill, stroke) in LEGEND {
        let _ = write!(
            h,
            "<span><i style=\"background:{fill};border-color:{stroke}\"></i>{name}</span>"
        );
    }
    h.push_str(
        "<span><i class=\"line\" style=\"border-color:#4f5b66\"></i>recorded link</span>\
         <span><i class=\"line\" style=\"border-color:#7f8c99;border-top-style:dashed\"></i>inferred link</span>\
         <span><i style=\"background:#fff3f3;border-color:#d32f2f;border-style:dashed\"></i>missing link</span>",
    );
    let _ = write!(
        h,
        "</div><div class=\"graph\">{}</div></section>",
        chain_svg(trace)
    );

    // Findings.
    h.push_str("<section id=\"findings\"><h2>Findings on this chain</h2>");
    if findings.is_empty() {
        h.push_str("<p>No finding names an event of this chain.</p>");
    } else {
        h.push_str("<table><thead><tr><th>Severity</th><th>Rule</th><th>Event</th><th>Finding</th><th>Frameworks</th></tr></thead><tbody>");
        for f in findings {
            let rule_title = catalogue()
                .rule(f.rule)
                .map(|r| r.title.clone())
                .unwrap_or_default();
            let flagged = f.flagged().map(ToString::to_string).unwrap_or_default();
            let evidence: Vec<String> = f
                .events
                .iter()
                .skip(1)
                .map(|k| esc(&k.to_string()))
                .collect();
            let frameworks: Vec<String> = f
                .frameworks
                .iter()
                .map(|id| {
                    let title = catalogue()
                        .control(id)
                        .map(|c| c.title.clone())
                        .unwrap_or_default();
                    format!(
                        "<span class=\"fw\" title=\"{}\">{}</span>",
                        esc(&title),
                        esc(id)
                    )
                })
                .collect();
            let _ = write!(
                h,
                "<tr><td><span class=\"badge sev-{sev}\">{sev}</span></td><td><code class=\"nowrap\">{}</code><br><span class=\"meta\">{}</span></td><td class=\"key\"><code>{}</code></td><td>{}{}</td><td>{}</td></tr>",
                esc(f.rule),
                esc(&rule_title),
                wrap(&flagged),
                esc(&f.message),
                if evidence.is_empty() {
                    String::new()
                } else {
                    format!("<br><span class=\"meta\">evidence: <code>{}</code></span>", evidence.join("</code>, <code>"))
                },
                frameworks.join(""),
                sev = f.severity.as_str(),
            );
        }
        h.push_str("</tbody></table>");
    }
    h.push_str("</section>\n");

    // Events.
    h.push_str("<section id=\"events\"><h2>Events</h2><table><thead><tr><th class=\"num\">Index</th><th>Time</th><th>Type</th><th>Actor</th><th>Event</th><th>Summary</th><th>Proof</th></tr></thead><tbody>");
    let mut rows: Vec<&StoredEvent> = trace.events.values().collect();
    rows.sort_by_key(|e| (e.event.time, e.index));
    for e in rows {
        let proof = match proofs.events.get(&e.index) {
            Some(Ok(())) => "<span class=\"yes nowrap\" title=\"inclusion proof verified against the signed checkpoint\">✓ verified</span>".to_owned(),
            Some(Err(why)) => format!("<span class=\"no nowrap\" title=\"{}\">✗ failed</span>", esc(why)),
            None => "<span class=\"no\" title=\"no proof\">✗</span>".to_owned(),
        };
        let _ = write!(
            h,
            "<tr><td class=\"num\">{}</td><td class=\"mono nowrap\">{}</td><td>{}</td><td>{}</td><td class=\"key\"><code>{}</code></td><td>{}</td><td>{proof}</td></tr>",
            e.index,
            esc(&e.event.time.to_string()),
            esc(e.event.event_type().as_str()),
            wrap(&actor(e)),
            wrap(&e.key().to_string()),
            esc(&event_summary(e)),
        );
    }
    h.push_str("</tbody></table></section>\n");

    // Proofs.
    h.push_str("<section id=\"proofs\"><h2>Proofs</h2>");
    let verified = proofs.verified();
    let total = trace.events.len();
    let _ = write!(
        h,
        "<p><span class=\"badge big {}\">{} {verified}/{total} inclusion proofs verified</span></p>",
        if verified == total { "ok" } else { "bad" },
        if verified == total { "✓" } else { "✗" },
    );
    h.push_str("<dl class=\"kv\">");
    let _ = write!(
        h,
        "<dt>Origin</dt><dd><code>{}</code></dd><dt>Tree size</dt><dd>{}</dd><dt>Root (base64)</dt><dd><code>{}</code></dd>",
        esc(&proofs.origin),
        proofs.size,
        esc(&proofs.root)
    );
    match &proofs.signature {
        Ok(key) => {
            let _ = write!(
                h,
                "<dt>Signature</dt><dd><span class=\"yes\">✓</span> Ed25519, key <code>{}</code></dd>",
                esc(key)
            );
        }
        Err(why) => {
            let _ = write!(
                h,
                "<dt>Signature</dt><dd><span class=\"no\">✗</span> {}</dd>",
                esc(why)
            );
        }
    }
    h.push_str("</dl>");
    let failures: Vec<(&u64, &String)> = proofs
        .events
        .iter()
        .filter_map(|(i, r)| r.as_ref().err().map(|why| (i, why)))
        .collect();
    if !failures.is_empty() {
        h.push_str("<h3>Failed</h3><ul class=\"plain\">");
        for (index, why) in failures {
            let _ = write!(h, "<li>index {index}: {}</li>", esc(why));
        }
        h.push_str("</ul>");
    }
    let _ = write!(
        h,
        "<p class=\"meta\">Each event's canonical bytes (RFC 8785) were hashed as an RFC 9162 leaf and its inclusion proof checked against the root of this checkpoint; the checkpoint (C2SP signed note) was checked with the log's verifier key. To check offline, export an evidence bundle (<code>custody export EVENT -o bundle.json</code>) and run <code>custody verify-bundle bundle.json --key KEYFILE</code>.</p><pre>{}</pre></section>",
        esc(&proofs.note)
    );
    let _ = write!(
        h,
        "<footer>Written by custody {}. This page is self-contained: no script, nothing loaded from the network.</footer>\n</main>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION")
    );
    h
}

/// Escapes, and lets long identifiers (ARNs, `source#id`) break after `:`, `/` and `#`.
fn wrap(text: &str) -> String {
    let mut out = String::new();
    for part in text.split_inclusive([':', '/', '#']) {
        out.push_str(&esc(part));
        out.push_str("<wbr>");
    }
    out
}

fn stat(n: usize, what: &str) -> String {
    format!("<div class=\"stat\"><b>{n}</b><span>{what}</span></div>")
}

/// Ambiguities, unresolved references and truncation, as escaped HTML sentences.
fn chain_notes(trace: &Trace) -> Vec<String> {
    let name = |k: &EventKey| format!("<code>{}</code>", esc(&k.to_string()));
    let mut notes = Vec::new();
    for a in &trace.ambiguities {
        let cands: Vec<String> = a.candidates.iter().map(name).collect();
        notes.push(format!(
            "<span class=\"badge warn\">ambiguous</span> {} ({}) has {} candidates: {}",
            name(&a.event),
            esc(&a.link),
            cands.len(),
            cands.join(", ")
        ));
    }
    for d in &trace.dangling {
        notes.push(format!(
            "<span class=\"badge bad\">unresolved</span> {} {} names <code>{}</code>, which is not in the log",
            name(&d.event),
            esc(&d.field),
            esc(&d.target)
        ));
    }
    if trace.truncated {
        notes.push(
            "<span class=\"badge warn\">truncated</span> the trace stopped at its size limit"
                .to_owned(),
        );
    }
    notes
}
