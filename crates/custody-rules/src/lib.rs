//! Findings (DESIGN §5): every rule, evaluated over the whole log from one in-memory index,
//! and the framework catalogue the findings map to.
//!
//! [`evaluate`] reads the log once (`Store::scan`), links it with the rules of DESIGN §4 (the
//! semantics of `custody-chain`: explicit references, credential issuance, parent
//! credentials, inferred same-chain and same-resource links, ambiguity) and runs every rule
//! of [`RULES`]. The result is deterministic: findings are sorted by chain, rule and first
//! event. Rule metadata (severity, title, message template, help, framework controls) is data
//! in `data/rules.toml`; the controls are in `data/frameworks.toml` ([`catalogue`]).

mod catalogue;
mod index;
mod rules;
pub mod sarif;

use std::collections::BTreeSet;

use custody_model::{EventKey, Pattern, Timestamp};
use custody_store::{Store, StoreError};
use serde_json::{json, Value};

pub use catalogue::{catalogue, Catalogue, Control, RuleInfo, Severity};

/// The rule slugs the engine evaluates (DESIGN §5). `policy-violation` (Cedar) is in the
/// catalogue but evaluated elsewhere.
pub const RULES: [&str; 16] = [
    "incomplete-chain",
    "orphan-action",
    "unknown-credential",
    "scope-escalation",
    "overreach",
    "expired-credential",
    "revoked-credential",
    "token-reuse",
    "shared-credential",
    "origin-mismatch",
    "approval-missing",
    "approval-after-action",
    "self-approval",
    "ambiguous-attribution",
    "unmanaged-secret",
    "chain-too-deep",
];

/// `[[approvals]]`: actions that need a human approval.
#[derive(Clone, Debug, PartialEq)]
pub struct ApprovalRule {
    /// Operations concerned.
    pub action: Pattern,
    /// Resources concerned.
    pub resource: Pattern,
    /// With `above`: only when `params[param] > above`.
    pub param: Option<String>,
    /// The threshold.
    pub above: Option<f64>,
}

impl ApprovalRule {
    /// A rule from the text of `custody.toml`.
    pub fn new(action: &str, resource: &str, param: Option<String>, above: Option<f64>) -> Self {
        ApprovalRule {
            action: Pattern::parse(action),
            resource: Pattern::parse(resource),
            param,
            above,
        }
    }
}

/// Organisation policy for the rules (`custody.toml`, DESIGN §5).
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// Delegation hops allowed from the human to the actor.
    pub max_depth: u32,
    /// Window for inferred effect → action links.
    pub inference_window_secs: i64,
    /// The managed secrets managers. Empty: no inventory, so `unmanaged-secret` is off.
    pub secret_managers: Vec<String>,
    /// Approval requirements.
    pub approvals: Vec<ApprovalRule>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_depth: 4,
            inference_window_secs: 60,
            secret_managers: Vec::new(),
            approvals: Vec::new(),
        }
    }
}

/// A rule a chain breaks, with its evidence.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// The rule slug.
    pub rule: &'static str,
    /// Its severity.
    pub severity: Severity,
    /// The chain id: the flagged event's `chain`, else its `source#id`.
    pub chain: String,
    /// Evidence, the flagged event first.
    pub events: Vec<EventKey>,
    /// One sentence a person can act on.
    pub message: String,
    /// Framework control ids.
    pub frameworks: Vec<String>,
    /// When the flagged event happened.
    pub time: Timestamp,
}

impl Finding {
    /// The DESIGN §10 JSON shape.
    pub fn to_json(&self) -> Value {
        json!({
            "rule": self.rule,
            "severity": self.severity.as_str(),
            "chain": self.chain,
            "events": self.events.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "message": self.message,
            "frameworks": self.frameworks,
        })
    }

    /// The flagged event.
    pub fn flagged(&self) -> Option<&EventKey> {
        self.events.first()
    }
}

/// All findings over a log, and which chains were checked.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Sorted by (chain, rule, first event).
    pub findings: Vec<Finding>,
    /// The chains checked: every action's chain id, and every finding's.
    pub chains: BTreeSet<String>,
}

impl Report {
    /// The findings as the DESIGN §10 JSON array.
    pub fn to_json(&self) -> Value {
        Value::Array(self.findings.iter().map(Finding::to_json).collect())
    }
}

/// Every finding over the whole log.
pub fn evaluate(store: &dyn Store, policy: &Policy) -> Result<Report, StoreError> {
    let index = index::Index::build(store, policy.inference_window_secs)?;
    let report = rules::run(&index, policy);
    // Freeing millions of small allocations takes a noticeable share of the run: do it on
    // another thread (a command that exits right away does not wait for it).
    let _ = std::thread::Builder::new()
        .name("custody-rules-drop".into())
        .spawn(move || drop(index));
    Ok(report)
}

/// Findings from events already in memory (tests, tools).
pub fn evaluate_events(
    events: impl IntoIterator<Item = (u64, custody_model::Event)>,
    policy: &Policy,
) -> Report {
    let nodes = events
        .into_iter()
        .map(|(index, event)| index::Node {
            index,
            event: Box::new(event),
        })
        .collect();
    let index = index::Index::from_nodes(nodes, policy.inference_window_secs);
    rules::run(&index, policy)
}
