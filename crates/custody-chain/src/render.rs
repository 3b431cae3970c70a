//! The readable tree of a trace, for terminals.
//!
//! The graph is a DAG; each event is printed once, under one parent (recorded links before
//! inferred ones, then the latest), depth first in time order, with its other links listed
//! beside it. Approvals hang under what they approve. Inferred edges are marked.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use custody_model::{EventBody, EventKey};
use custody_store::StoredEvent;

use crate::{Edge, EdgeKind, Trace};

pub(crate) fn summary(e: &StoredEvent) -> String {
    let ev = &e.event;
    match &ev.body {
        EventBody::Request(r) => format!(
            "request by {}{}{}",
            r.initiator,
            r.ticket
                .as_ref()
                .map(|t| format!(" [{t}]"))
                .unwrap_or_default(),
            r.intent
                .as_ref()
                .map(|i| format!(" \"{i}\""))
                .unwrap_or_default()
        ),
        EventBody::Delegation(d) => {
            let via = serde_json::to_value(d.via)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            let cred = d
                .credential
                .as_ref()
                .map(|c| format!(" credential {}", c.id))
                .unwrap_or_else(|| " (no credential recorded)".into());
            let scope = match &d.scope {
                Some(s) if !s.is_empty() => format!(
                    " scope {}",
                    s.0.iter()
                        .map(|p| format!("{} on {}", p.action, p.resource))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                _ => " (no scope recorded)".into(),
            };
            format!("delegation {via}: {} → {}{cred}{scope}", d.from, d.to)
        }
        EventBody::Approval(a) => format!(
            "approval {} by {}",
            if a.decision == custody_model::ApprovalDecision::Approved {
                "approved"
            } else {
                "denied"
            },
            a.approver
        ),
        EventBody::Action(a) => format!(
            "action {} {} on {} with {}{}",
            a.actor,
            a.operation,
            a.resource,
            a.credential.as_deref().unwrap_or("no credential"),
            a.outcome
                .map(|o| format!(" → {}", format!("{o:?}").to_lowercase()))
                .unwrap_or_default()
        ),
        EventBody::Effect(f) => format!(
            "effect {} {} on {}{}",
            format!("{:?}", f.change).to_lowercase(),
            f.resource,
            f.system,
            f.record
                .as_ref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ),
        EventBody::SecretAccess(s) => format!(
            "secret access by {} to {} in {}{}",
            s.principal,
            s.secret,
            s.manager,
            s.credential
                .as_ref()
                .map(|c| format!(" → credential {c}"))
                .unwrap_or_default()
        ),
        EventBody::Revocation(r) => format!("revocation of {}", r.credential),
        EventBody::Decision(d) => {
            let proposed = |k: &str| d.proposed.get(k).and_then(|v| v.as_str()).unwrap_or("?");
            let rules: Vec<&str> = d.reasons.iter().map(|r| r.rule.as_str()).collect();
            format!(
                "decision {} on {} of {}{}",
                match d.decision {
                    custody_model::Verdict::Allow => "allow",
                    custody_model::Verdict::Deny => "deny",
                },
                proposed("operation"),
                proposed("resource"),
                if rules.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", rules.join(", "))
                }
            )
        }
    }
}

/// How an edge is drawn: approvals hang under what they approve, every other edge runs
/// from cause to consequence.
fn display_pair(edge: &Edge) -> (&EventKey, &EventKey) {
    if edge.kind == EdgeKind::Approves {
        (&edge.to, &edge.from)
    } else {
        (&edge.from, &edge.to)
    }
}

/// Renders a trace as an indented tree followed by its verdict. Each event is drawn once,
/// under its latest recorded parent; its other links are listed beside it (`also ←`).
pub fn render_text(trace: &Trace) -> String {
    let mut out = String::new();
    // Choose each event's display parent: recorded before inferred, then the latest.
    let mut parent_of: BTreeMap<&EventKey, (&Edge, &StoredEvent)> = BTreeMap::new();
    for edge in &trace.edges {
        let (parent, child) = display_pair(edge);
        let Some(parent_event) = trace.event(parent) else {
            continue;
        };
        let rank = |e: &Edge, p: &StoredEvent| (!e.inferred(), p.event.time, p.index);
        let better = match parent_of.get(child) {
            None => true,
            Some((e, p)) => rank(edge, parent_event) > rank(e, p),
        };
        if better && parent != child {
            parent_of.insert(child, (edge, parent_event));
        }
    }
    // Break cycles: a node whose display-parent chain returns to itself becomes a root.
    let mut roots: Vec<&StoredEvent> = Vec::new();
    for e in trace.events.values() {
        let mut seen: BTreeSet<&EventKey> = BTreeSet::new();
        let mut k = e.key();
        let mut is_root = true;
        while let Some((_, p)) = parent_of.get(k) {
            if !seen.insert(k) {
                break;
            }
            is_root = false;
            k = p.key();
            if k == e.key() {
                is_root = true;
                break;
            }
        }
        if is_root {
            roots.push(e);
        }
    }
    for r in &roots {
        parent_of.remove(r.key());
    }
    roots.sort_by_key(|e| (e.event.time, e.index));
    let mut printed: BTreeSet<EventKey> = BTreeSet::new();
    for root in roots {
        render_node(
            trace,
            &parent_of,
            root,
            "",
            "",
            None,
            &mut printed,
            &mut out,
        );
    }
    let missing = trace.missing();
    if missing.is_empty() {
        out.push_str("complete: yes (initiator, authority, context, impact)\n");
    } else {
        let names: Vec<&str> = missing.iter().map(|l| l.as_str()).collect();
        let _ = writeln!(out, "complete: no, missing {}", names.join(", "));
    }
    for c in trace.actions.iter().filter(|c| !c.missing.is_empty()) {
        let names: Vec<&str> = c.missing.iter().map(|l| l.as_str()).collect();
        let _ = writeln!(out, "  {} misses {}", c.action, names.join(", "));
    }
    for a in &trace.ambiguities {
        let cands: Vec<String> = a.candidates.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            out,
            "ambiguous: {} ({}) has {} candidates: {}",
            a.event,
            a.link,
            cands.len(),
            cands.join(", ")
        );
    }
    for d in &trace.dangling {
        let _ = writeln!(
            out,
            "unresolved: {} {} names `{}`, which is not in the log",
            d.event, d.field, d.target
        );
    }
    if trace.truncated {
        out.push_str("(trace stopped at its size limit; narrow the start)\n");
    }
    out
}

fn edge_label(edge: &Edge) -> String {
    if edge.inferred() {
        format!("┄{} (inferred)┄ ", edge.kind.as_str())
    } else {
        format!("─{}─ ", edge.kind.as_str())
    }
}

#[allow(clippy::too_many_arguments)]
fn render_node(
    trace: &Trace,
    parent_of: &BTreeMap<&EventKey, (&Edge, &StoredEvent)>,
    node: &StoredEvent,
    lead: &str,
    child_lead: &str,
    via: Option<&Edge>,
    printed: &mut BTreeSet<EventKey>,
    out: &mut String,
) {
    if !printed.insert(node.key().clone()) {
        return;
    }
    // Every link from the parent it is drawn under makes the label; other links are listed.
    let into: Vec<&Edge> = trace
        .edges
        .iter()
        .filter(|e| display_pair(e).1 == node.key())
        .collect();
    let drawn_from = via.map(|v| display_pair(v).0);
    let label = match via {
        Some(v) => {
            let kinds: Vec<&str> = into
                .iter()
                .filter(|e| Some(display_pair(e).0) == drawn_from && !e.inferred())
                .map(|e| e.kind.as_str())
                .collect();
            if v.inferred() || kinds.is_empty() {
                edge_label(v)
            } else {
                format!("─{}─ ", kinds.join(", "))
            }
        }
        None => String::new(),
    };
    let also: Vec<String> = into
        .iter()
        .filter(|e| Some(display_pair(e).0) != drawn_from)
        .map(|e| format!("{} {}", e.kind.as_str(), display_pair(e).0))
        .collect();
    let _ = writeln!(
        out,
        "{lead}{label}{}  {}  {}",
        node.key(),
        node.event.time,
        summary(node)
    );
    if !also.is_empty() {
        let _ = writeln!(out, "{child_lead}  (also ← {})", also.join("; "));
    }
    let mut children: Vec<(&Edge, &StoredEvent)> = parent_of
        .iter()
        .filter(|(_, (_, p))| p.key() == node.key())
        .filter_map(|(child, (edge, _))| trace.event(child).map(|c| (*edge, c)))
        .collect();
    children.sort_by_key(|(_, e)| (e.event.time, e.index));
    let n = children.len();
    for (i, (edge, child)) in children.into_iter().enumerate() {
        let last = i + 1 == n;
        let (branch, cont) = if last {
            ("└", "   ")
        } else {
            ("├", "│  ")
        };
        render_node(
            trace,
            parent_of,
            child,
            &format!("{child_lead}{branch}"),
            &format!("{child_lead}{cont}"),
            Some(edge),
            printed,
            out,
        );
    }
}
