//! The gate (DESIGN §2 "decision", §5 "Policy", §10 `check`): may this action run?
//!
//! [`Gate::decide`] answers for one [`ProposedAction`] from what the log records about the
//! credential it presents ([`FactIndex`]): the credential must be known (issued by a recorded
//! delegation or secret access), valid at the decision time, not revoked (nor any credential
//! it was derived from), presented by the principal it was issued to, under `max_uses`; the
//! action must be covered by the credential's scope and by every ancestor's scope; the
//! approvals `custody.toml` requires must be present and valid; the chain must be no deeper
//! than `max_depth`; and the organisation's Cedar policy ([`CedarPolicy`]) must allow it.
//! Every deny reason carries a rule slug of DESIGN §5.
//!
//! The decision is pure: the same facts, proposal, time and policy give the same decision.
//! [`Gate::decision_event`] turns it into a `decision` event for the log, so that the decision
//! is itself evidence. [`policy_violations`] replays the Cedar policy over recorded actions.

pub mod facts;
pub mod policy;

use std::collections::{BTreeMap, BTreeSet};

use custody_model::{
    canonical_json, Action, ApprovalDecision, Event, EventBody, EventKey, Principal, Reason,
    Redactor, Timestamp, Verdict,
};
use custody_rules::{catalogue, Finding, Policy};
use custody_store::{Store, StoreError};
use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

pub use facts::{FactIndex, Issuance, IssuedBy};
pub use policy::{operation_groups, CedarOutcome, CedarPolicy, CedarRequest, Fact, PolicyError};

/// The `source` of the decision events the gate writes.
pub const DECISION_SOURCE: &str = "custody-gate";

/// Fields a proposed action may carry besides the `action` fields of DESIGN §3.
const COMMON_FIELDS: [&str; 7] = [
    "id",
    "source",
    "type",
    "time",
    "chain",
    "parents",
    "attributes",
];
const ACTION_FIELDS: [&str; 9] = [
    "actor",
    "credential",
    "operation",
    "resource",
    "params",
    "mutating",
    "context",
    "outcome",
    "request",
];

/// Bad input to the gate (exit 2): the message says which field and why.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// An action someone wants to run, as presented to the gate (redacted).
#[derive(Clone, Debug)]
pub struct ProposedAction {
    /// `source#id`, when the proposal names itself (an approval may then approve it).
    pub key: Option<EventKey>,
    /// The source its references are read from (`key`'s source, else `proposed`).
    pub source: String,
    /// The decision time, when given (default: now).
    pub time: Option<Timestamp>,
    /// The `chain` id, when given.
    pub chain: Option<String>,
    /// The action fields.
    pub action: Action,
    /// The proposal as presented, after redaction: recorded in the decision event.
    pub value: Value,
}

impl ProposedAction {
    /// Parses a proposal: the `action` fields of DESIGN §3 (`actor`, `operation` and
    /// `resource` required), and optionally `id` with `source`, `time`, `chain`. Secrets are
    /// replaced by fingerprints first (with the installation's key), so a raw token presented
    /// as the credential is looked up by the fingerprint the log holds.
    pub fn parse(mut value: Value, redactor: &Redactor) -> Result<ProposedAction, BadInput> {
        let Some(object) = value.as_object() else {
            return Err(BadInput(format!(
                "a proposed action is a JSON object, not {}",
                json_kind(&value)
            )));
        };
        for k in object.keys() {
            if !COMMON_FIELDS.contains(&k.as_str()) && !ACTION_FIELDS.contains(&k.as_str()) {
                return Err(BadInput(format!(
                    "unknown field `{k}` (a proposed action has the `action` fields of DESIGN §3: {}, and optionally id, source, time, chain)",
                    ACTION_FIELDS.join(", ")
                )));
            }
        }
        if let Some(t) = object.get("type") {
            if t.as_str() != Some("action") {
                return Err(BadInput(format!("`type` must be \"action\", not {t}")));
            }
        }
        for required in ["actor", "operation", "resource"] {
            if object.get(required).is_none() {
                return Err(BadInput(format!("missing required field `{required}`")));
            }
        }
        redactor.redact_value(&mut value);
        let action: Action = serde_json::from_value(value.clone())
            .map_err(|e| BadInput(format!("invalid proposed action: {e}")))?;
        let text = |name: &str| -> Result<Option<String>, BadInput> {
            match value.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
                Some(other) => Err(BadInput(format!(
                    "`{name}` must be a non-empty string, not {other}"
                ))),
            }
        };
        let time = text("time")?
            .map(|t| Timestamp::parse(&t).map_err(BadInput))
            .transpose()?;
        let chain = text("chain")?;
        let key = match (text("id")?, text("source")?) {
            (Some(id), Some(source)) => Some(EventKey::new(source, id)),
            (Some(_), None) => {
                return Err(BadInput(
                    "`id` needs a `source` too: the proposal is named `source#id`".into(),
                ))
            }
            _ => None,
        };
        let source = key
            .as_ref()
            .map_or_else(|| "proposed".to_owned(), |k| k.source.clone());
        Ok(ProposedAction {
            key,
            source,
            time,
            chain,
            action,
            value,
        })
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The facts of the chain behind a proposal, as the decision saw them (recorded with it).
#[derive(Clone, Debug, Default, Serialize)]
pub struct ChainFacts {
    /// Who the chain starts at, if anyone.
    pub initiator: Option<Principal>,
    /// Delegation hops from the initiator to the actor.
    pub depth: usize,
    /// The issuing events, top (nearest the human) first.
    pub hops: Vec<String>,
    /// `delegation`, `secret_access` or `none`.
    pub credential_source: &'static str,
    /// Seconds since the credential was issued.
    pub credential_age_secs: Option<i64>,
    /// Recorded uses of the credential before this one.
    pub uses: u64,
    /// Whether the action is within the credential's scope and every ancestor's.
    pub scope_covered: bool,
    /// Whether `custody.toml` requires an approval for it.
    pub approval_required: bool,
    /// The valid approvals.
    pub approvals: Vec<String>,
}

/// The gate's answer.
#[derive(Clone, Debug)]
pub struct GateDecision {
    /// Allow or deny.
    pub verdict: Verdict,
    /// Why not (empty on allow).
    pub reasons: Vec<Reason>,
    /// The Cedar policies that determined the Cedar part of the decision.
    pub policies: Vec<String>,
    /// What the decision was based on.
    pub facts: ChainFacts,
}

/// The gate: built-in chain checks and, when configured, Cedar.
#[derive(Debug)]
pub struct Gate {
    policy: Policy,
    cedar: Option<CedarPolicy>,
}

fn reason(rule: &str, message: String) -> Reason {
    Reason {
        rule: rule.to_owned(),
        message,
    }
}

/// Hour of day (0–23) and ISO weekday (1 = Monday) in UTC.
fn clock(t: Timestamp) -> (i64, i64) {
    let secs = t.unix_seconds();
    let days = secs.div_euclid(86_400);
    let hour = secs.rem_euclid(86_400) / 3_600;
    // 1970-01-01 was a Thursday (ISO 4).
    let weekday = (days + 3).rem_euclid(7) + 1;
    (hour, weekday)
}

/// A numeric parameter in whole units, rounded up (so `> limit` stays safe).
fn whole(v: f64) -> Option<i64> {
    let c = v.ceil();
    (c.is_finite() && c >= i64::MIN as f64 && c <= i64::MAX as f64).then_some(c as i64)
}

impl Gate {
    /// A gate with the `custody.toml` policy and, optionally, Cedar policies.
    pub fn new(policy: Policy, cedar: Option<CedarPolicy>) -> Gate {
        Gate { policy, cedar }
    }

    /// The Cedar policies, when configured.
    pub fn cedar(&self) -> Option<&CedarPolicy> {
        self.cedar.as_ref()
    }

    /// The issuance of `cred` the chain runs through: one issued to `holder` if any, else
    /// the first recorded.
    fn issuance<'f>(facts: &'f FactIndex, cred: &str, holder: &str) -> Option<&'f Issuance> {
        let all = facts.issuances(cred);
        all.iter()
            .find(|i| i.to.id == holder)
            .or_else(|| all.first())
    }

    /// Decides on `proposed` at time `at` from `facts`.
    pub fn decide(
        &self,
        facts: &FactIndex,
        proposed: &ProposedAction,
        at: Timestamp,
    ) -> GateDecision {
        let a = &proposed.action;
        let params = a.numeric_params();
        let mut reasons = Vec::new();
        let mut f = ChainFacts {
            credential_source: "none",
            ..ChainFacts::default()
        };

        // The hops: the presented credential's issuance, then up through parent credentials
        // until a delegation from a human (or the top).
        let mut hops: Vec<&Issuance> = Vec::new();
        let presented = a.credential.as_deref();
        if let Some(cred) = presented {
            let mut current = Gate::issuance(facts, cred, &a.actor.id);
            let mut seen = BTreeSet::new();
            while let Some(i) = current {
                if hops.len() >= facts::MAX_HOPS || !seen.insert(&i.key) {
                    break;
                }
                hops.push(i);
                if i.from.as_ref().is_some_and(Principal::is_human) {
                    break;
                }
                current = match (&i.parent_credential, &i.from) {
                    (Some(p), Some(from)) => Gate::issuance(facts, p, &from.id),
                    _ => None,
                };
            }
        }
        let own = hops.first().copied();
        hops.reverse();
        f.depth = hops.iter().filter(|h| h.by == IssuedBy::Delegation).count();
        f.hops = hops.iter().map(|h| h.key.to_string()).collect();

        // Initiator: a request named by the proposal or any hop, else the top delegator
        // when human, else a human actor acting for itself.
        let mut request_keys: Vec<EventKey> = Vec::new();
        let mut requesters: BTreeSet<&str> = BTreeSet::new();
        let mut initiator: Option<Principal> = None;
        let mut consider = |r: &custody_model::EventRef, src: &str| {
            if let Some(req) = facts.request(r, src) {
                if initiator.is_none() {
                    initiator = Some(req.initiator.clone());
                }
                request_keys.push(req.key.clone());
                requesters.insert(req.initiator.id.as_str());
            }
        };
        if let Some(r) = &a.request {
            consider(r, &proposed.source);
        }
        for h in &hops {
            if let Some(r) = &h.request {
                consider(r, &h.key.source);
            }
        }
        if initiator.is_none() {
            initiator = hops
                .first()
                .and_then(|h| h.from.clone())
                .filter(Principal::is_human)
                .or_else(|| hops.first().and_then(|h| h.from.clone()))
                .or_else(|| a.actor.is_human().then(|| a.actor.clone()));
        }
        f.initiator = initiator;

        match (presented, own) {
            (None, _) => reasons.push(reason(
                "unknown-credential",
                format!(
                    "{} presents no credential; every delegated action must present one that a recorded delegation or secret access issued.",
                    a.actor.id
                ),
            )),
            (Some(cred), None) => reasons.push(reason(
                "unknown-credential",
                format!(
                    "credential {cred} was never issued by a recorded delegation or secret access; record its issuance or use a credential that was."
                ),
            )),
            (Some(cred), Some(own)) => {
                f.credential_source = own.by.as_str();
                f.credential_age_secs = Some(at.unix_seconds() - own.time.unix_seconds());
                if own.to.id != a.actor.id {
                    reasons.push(reason(
                        "token-reuse",
                        format!(
                            "credential {cred} was issued to {} ({}) but is presented by {}.",
                            own.to.id, own.key, a.actor.id
                        ),
                    ));
                }
                let bounds: Vec<_> = facts
                    .issuances(cred)
                    .iter()
                    .filter_map(|i| i.credential.as_ref())
                    .filter(|c| c.not_before.is_some() || c.expires.is_some())
                    .collect();
                if !bounds.is_empty()
                    && !bounds.iter().any(|c| {
                        c.not_before.is_none_or(|nb| at >= nb) && c.expires.is_none_or(|x| at <= x)
                    })
                {
                    let c = bounds.first();
                    let show = |t: Option<Timestamp>| t.map_or("-".into(), |t| t.to_string());
                    reasons.push(reason(
                        "expired-credential",
                        format!(
                            "credential {cred} is valid from {} to {}, not at {at}; obtain a fresh credential through a recorded delegation.",
                            show(c.and_then(|c| c.not_before)),
                            show(c.and_then(|c| c.expires))
                        ),
                    ));
                }
                if let Some(r) = facts.revoked_at(cred, at) {
                    reasons.push(reason(
                        "revoked-credential",
                        format!("credential {cred} was revoked at {} ({}).", r.time, r.key),
                    ));
                }
                for h in hops.iter().rev().skip(1) {
                    let Some(c) = h.credential.as_ref() else { continue };
                    if let Some(r) = facts.revoked_at(&c.id, at) {
                        reasons.push(reason(
                            "revoked-credential",
                            format!(
                                "credential {cred} derives from {}, which was revoked at {} ({}).",
                                c.id, r.time, r.key
                            ),
                        ));
                    }
                }
                f.uses = facts.uses_before(cred, at, proposed.key.as_ref());
                let max_uses = facts
                    .issuances(cred)
                    .iter()
                    .filter_map(|i| i.credential.as_ref().and_then(|c| c.max_uses))
                    .max();
                if let Some(max) = max_uses {
                    if f.uses >= max {
                        reasons.push(reason(
                            "token-reuse",
                            format!(
                                "credential {cred} allows {max} use(s) and has been used {} time(s) already.",
                                f.uses
                            ),
                        ));
                    }
                }
                // Scope: the credential's own, then every ancestor's (attenuation).
                match &own.scope {
                    None => reasons.push(reason(
                        "overreach",
                        format!(
                            "credential {cred} was issued ({}) with no recorded scope, so {} on {} cannot be shown to be within it.",
                            own.key, a.operation, a.resource
                        ),
                    )),
                    Some(s) if !s.allows(&a.operation, &a.resource, &params) => {
                        reasons.push(reason(
                            "overreach",
                            format!(
                                "{} on {} is outside the scope of credential {cred} ({}).",
                                a.operation, a.resource, own.key
                            ),
                        ))
                    }
                    Some(_) => {}
                }
                let mut covered = own
                    .scope
                    .as_ref()
                    .is_some_and(|s| s.allows(&a.operation, &a.resource, &params));
                for h in hops.iter().rev().skip(1) {
                    if let Some(s) = &h.scope {
                        if !s.allows(&a.operation, &a.resource, &params) {
                            covered = false;
                            let id = h.credential.as_ref().map_or("?", |c| c.id.as_str());
                            reasons.push(reason(
                                "scope-escalation",
                                format!(
                                    "{} on {} is outside the scope of ancestor credential {id} ({}); a later hop granted more than it held.",
                                    a.operation, a.resource, h.key
                                ),
                            ));
                        }
                    }
                }
                f.scope_covered = covered;
            }
        }

        // Approvals (DESIGN §5): required by custody.toml, valid when approved by a human
        // who is neither a requester nor the actor, before the decision, naming the action,
        // its request or a hop, with a scope (if any) that covers the action.
        f.approval_required = self.policy.approvals.iter().any(|r| {
            r.action.matches(&a.operation)
                && r.resource.matches(&a.resource)
                && match (&r.param, r.above) {
                    (Some(p), Some(above)) => params.get(p).is_some_and(|v| *v > above),
                    _ => true,
                }
        });
        for h in &hops {
            if let Some(from) = h.from.as_ref().filter(|p| p.is_human()) {
                requesters.insert(from.id.as_str());
            }
        }
        let mut targets: Vec<EventKey> = proposed.key.iter().cloned().collect();
        targets.extend(request_keys.iter().cloned());
        targets.extend(hops.iter().map(|h| h.key.clone()));
        let mut approvers: BTreeSet<String> = BTreeSet::new();
        let mut rejected: Vec<String> = Vec::new();
        for t in &targets {
            for ap in facts.approvals_of(t) {
                let why_not = if ap.decision != ApprovalDecision::Approved {
                    Some("denied")
                } else if !ap.approver.is_human() {
                    Some("not by a human")
                } else if requesters.contains(ap.approver.id.as_str())
                    || ap.approver.id == a.actor.id
                {
                    Some("by the requester or the actor")
                } else if ap.time > at {
                    Some("later than the action")
                } else if ap
                    .scope
                    .as_ref()
                    .is_some_and(|s| !s.allows(&a.operation, &a.resource, &params))
                {
                    Some("its scope does not cover the action")
                } else {
                    None
                };
                match why_not {
                    None => {
                        if !f.approvals.contains(&ap.key.to_string()) {
                            f.approvals.push(ap.key.to_string());
                        }
                        approvers.insert(ap.approver.id.clone());
                    }
                    Some(w) => rejected.push(format!("{} ({w})", ap.key)),
                }
            }
        }
        if f.approval_required && f.approvals.is_empty() {
            let detail = if rejected.is_empty() {
                String::new()
            } else {
                format!(
                    " Approvals on record that do not count: {}.",
                    rejected.join(", ")
                )
            };
            reasons.push(reason(
                "approval-missing",
                format!(
                    "{} on {} needs a human approval (custody.toml [[approvals]]) and none valid is recorded.{detail}",
                    a.operation, a.resource
                ),
            ));
        }
        if u32::try_from(f.depth).unwrap_or(u32::MAX) > self.policy.max_depth {
            reasons.push(reason(
                "chain-too-deep",
                format!(
                    "the chain has {} delegation hops; policy allows {}.",
                    f.depth, self.policy.max_depth
                ),
            ));
        }

        let mut policies = Vec::new();
        if let Some(cedar) = &self.cedar {
            let outcome = self.cedar_outcome(cedar, proposed, at, &f, own, &approvers);
            policies = outcome.determining.clone();
            for (id, e) in &outcome.errors {
                reasons.push(reason(
                    "policy-violation",
                    format!(
                        "Cedar policy `{id}` could not be evaluated ({e}); the gate fails closed."
                    ),
                ));
            }
            if !outcome.allowed {
                if outcome.determining.is_empty() {
                    reasons.push(reason(
                        "policy-violation",
                        format!(
                            "no Cedar policy permits {} on {} by {}.",
                            a.operation, a.resource, a.actor.id
                        ),
                    ));
                } else {
                    reasons.push(reason(
                        "policy-violation",
                        format!(
                            "Cedar policy {} forbids {} on {} by {}.",
                            outcome
                                .determining
                                .iter()
                                .map(|p| format!("`{p}`"))
                                .collect::<Vec<_>>()
                                .join(", "),
                            a.operation,
                            a.resource,
                            a.actor.id
                        ),
                    ));
                }
            }
        }
        GateDecision {
            verdict: if reasons.is_empty() {
                Verdict::Allow
            } else {
                Verdict::Deny
            },
            reasons,
            policies,
            facts: f,
        }
    }

    fn cedar_outcome(
        &self,
        cedar: &CedarPolicy,
        proposed: &ProposedAction,
        at: Timestamp,
        f: &ChainFacts,
        own: Option<&Issuance>,
        approvers: &BTreeSet<String>,
    ) -> CedarOutcome {
        let a = &proposed.action;
        let s = Fact::Str;
        let (hour, weekday) = clock(at);
        let (ini_id, ini_kind) = match &f.initiator {
            Some(p) => (p.id.as_str(), p.kind.as_str()),
            None => ("", "none"),
        };
        let mut groups: BTreeSet<String> = BTreeSet::new();
        for ap in approvers {
            groups.extend(cedar.groups_of(ap));
        }
        let credential = Fact::Record(vec![
            ("id", s(a.credential.as_deref().unwrap_or(""))),
            ("source", s(f.credential_source)),
            (
                "via",
                s(own.and_then(|o| o.via).map_or("", |v| via_name(v))),
            ),
            (
                "issuer",
                s(own
                    .and_then(|o| {
                        o.credential
                            .as_ref()
                            .and_then(|c| c.issuer.as_deref())
                            .or(o.manager.as_deref())
                    })
                    .unwrap_or("")),
            ),
            ("age_secs", Fact::Long(f.credential_age_secs.unwrap_or(0))),
        ]);
        let initiator = Fact::Record(vec![("id", s(ini_id)), ("kind", s(ini_kind))]);
        let context: Vec<(&'static str, Fact)> = vec![
            ("time", Fact::Long(at.unix_seconds())),
            ("hour", Fact::Long(hour)),
            ("weekday", Fact::Long(weekday)),
            ("operation", s(&a.operation)),
            ("mutating", Fact::Bool(a.is_mutating())),
            ("initiator", initiator),
            (
                "depth",
                Fact::Long(i64::try_from(f.depth).unwrap_or(i64::MAX)),
            ),
            ("credential", credential),
            ("scope_covered", Fact::Bool(f.scope_covered)),
            ("approved", Fact::Bool(!f.approvals.is_empty())),
            (
                "approvers",
                Fact::Set(approvers.iter().map(String::as_str).collect()),
            ),
            (
                "approver_groups",
                Fact::Set(groups.iter().map(String::as_str).collect()),
            ),
            ("tool", s(a.context.tool.as_deref().unwrap_or(""))),
            (
                "orchestrator",
                s(a.context.orchestrator.as_deref().unwrap_or("")),
            ),
            ("origin", s(a.context.origin.as_deref().unwrap_or(""))),
        ];
        let params: Vec<(String, i64)> = a
            .numeric_params()
            .into_iter()
            .filter_map(|(k, v)| whole(v).map(|w| (k, w)))
            .collect();
        let request = CedarRequest {
            actor: (
                &a.actor.id,
                a.actor.kind.as_str(),
                a.actor.name.as_deref().unwrap_or(""),
            ),
            operation: &a.operation,
            resource: &a.resource,
            params,
            mutating: a.is_mutating(),
            context,
        };
        cedar.decide(request).unwrap_or_else(|e| CedarOutcome {
            allowed: false,
            determining: Vec::new(),
            errors: vec![("(request)".into(), e)],
        })
    }

    /// The `decision` event recording `decision` on `proposed` at `at`, made against a log
    /// of `log_size` events. Its id is derived from the proposal, the time, the log size and
    /// the Cedar policy digest, so asking the same question of the same log under the same
    /// policy records one event, not several.
    pub fn decision_event(
        &self,
        proposed: &ProposedAction,
        decision: &GateDecision,
        at: Timestamp,
        log_size: u64,
    ) -> Value {
        let mut h = Sha256::new();
        h.update(canonical_json(&proposed.value).unwrap_or_default());
        h.update(at.to_string().as_bytes());
        h.update(log_size.to_be_bytes());
        if let Some(c) = &self.cedar {
            h.update(c.digest());
        }
        let digest = hex::encode(h.finalize());
        let id = format!("dec-{}", digest.get(..24).unwrap_or(&digest));
        let mut e = Map::new();
        e.insert("id".into(), json!(id));
        e.insert("type".into(), json!("decision"));
        e.insert("time".into(), json!(at.to_string()));
        e.insert("source".into(), json!(DECISION_SOURCE));
        if let Some(c) = &proposed.chain {
            e.insert("chain".into(), json!(c));
        }
        if let Some(r) = &proposed.action.request {
            e.insert(
                "parents".into(),
                json!([r.key_in(&proposed.source).to_string()]),
            );
        }
        e.insert(
            "decision".into(),
            json!(match decision.verdict {
                Verdict::Allow => "allow",
                Verdict::Deny => "deny",
            }),
        );
        e.insert("proposed".into(), proposed.value.clone());
        e.insert(
            "reasons".into(),
            serde_json::to_value(&decision.reasons).unwrap_or(Value::Null),
        );
        e.insert("policies".into(), json!(decision.policies));
        e.insert(
            "attributes".into(),
            json!({
                "facts": decision.facts,
                "log_size": log_size,
                "policy_digest": self.cedar.as_ref().map(|c| hex::encode(c.digest())),
            }),
        );
        Value::Object(e)
    }
}

fn via_name(v: custody_model::Via) -> &'static str {
    use custody_model::Via::*;
    match v {
        TokenExchange => "token_exchange",
        AssumeRole => "assume_role",
        JitGrant => "jit_grant",
        Impersonation => "impersonation",
        OauthConsent => "oauth_consent",
        SecretIssue => "secret_issue",
        ServiceAccountKey => "service_account_key",
        Other => "other",
    }
}

/// Replays the Cedar policy over every recorded action that ran (outcome `success` or not
/// given): an action the policy denies is a `policy-violation` finding naming the policies.
/// Each action is judged with the facts as of its own time (uses and approvals before it).
pub fn policy_violations(store: &dyn Store, gate: &Gate) -> Result<Vec<Finding>, StoreError> {
    let Some(cedar) = gate.cedar() else {
        return Ok(Vec::new());
    };
    let Some(info) = catalogue().rule("policy-violation") else {
        return Ok(Vec::new());
    };
    let mut facts = FactIndex::new();
    let mut actions: Vec<Event> = Vec::new();
    store.scan(0, &mut |index, bytes, _| {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
            index,
            reason: e.to_string(),
        })?;
        let event = Event::from_value(&value).map_err(|e| StoreError::Corrupt {
            index,
            reason: e.to_string(),
        })?;
        facts.observe(&event);
        if matches!(&event.body, EventBody::Action(a) if !matches!(a.outcome, Some(custody_model::Outcome::Failure | custody_model::Outcome::Denied)))
        {
            actions.push(event);
        }
        Ok(())
    })?;
    let cedar_only = Gate::new(
        Policy {
            approvals: Vec::new(),
            max_depth: u32::MAX,
            ..gate.policy.clone()
        },
        None,
    );
    let mut out = Vec::new();
    for event in actions {
        let EventBody::Action(a) = &event.body else {
            continue;
        };
        let proposed = ProposedAction {
            key: Some(event.key.clone()),
            source: event.key.source.clone(),
            time: Some(event.time),
            chain: event.chain.clone(),
            action: a.clone(),
            value: Value::Null,
        };
        let d = cedar_only.decide(&facts, &proposed, event.time);
        let mut approvers = BTreeSet::new();
        for k in &d.facts.approvals {
            if let Some(ap) = EventKey::parse(k)
                .and_then(|k| facts.approvals_of(&k).next().map(|x| x.approver.id.clone()))
            {
                approvers.insert(ap);
            }
        }
        let own = a
            .credential
            .as_deref()
            .and_then(|c| Gate::issuance(&facts, c, &a.actor.id));
        let outcome = gate.cedar_outcome(cedar, &proposed, event.time, &d.facts, own, &approvers);
        if outcome.allowed && outcome.errors.is_empty() {
            continue;
        }
        let policy = if outcome.determining.is_empty() {
            "no policy permits it".to_owned()
        } else {
            outcome.determining.join(", ")
        };
        let chain = event.chain.clone().unwrap_or_else(|| event.key.to_string());
        let values: BTreeMap<&str, String> = BTreeMap::from([
            ("action", event.key.to_string()),
            ("operation", a.operation.clone()),
            ("resource", a.resource.clone()),
            ("actor", a.actor.id.clone()),
            ("policy", policy),
            ("chain", chain.clone()),
        ]);
        let mut message = info.message.clone();
        for (k, v) in &values {
            message = message.replace(&format!("{{{k}}}"), v);
        }
        let mut events = vec![event.key.clone()];
        events.extend(d.facts.hops.iter().filter_map(|h| EventKey::parse(h)));
        out.push(Finding {
            rule: "policy-violation",
            severity: info.severity,
            chain,
            events,
            message,
            frameworks: info.frameworks.clone(),
            time: event.time,
        });
    }
    Ok(out)
}

/// Every finding over a store: the rules of DESIGN §5 and, when the gate has Cedar policies,
/// the `policy-violation` findings of the policy replayed over recorded actions, in the
/// rules' order (chain, rule, events, message). The CLI's `findings` and the server's
/// `GET /v1/findings` both answer from this.
pub fn findings(store: &dyn Store, gate: &Gate) -> Result<custody_rules::Report, StoreError> {
    let mut report = custody_rules::evaluate(store, &gate.policy)?;
    if gate.cedar.is_some() {
        let violations = policy_violations(store, gate)?;
        report
            .chains
            .extend(violations.iter().map(|f| f.chain.clone()));
        report.findings.extend(violations);
        let key = |f: &Finding| {
            (
                f.chain.clone(),
                f.rule,
                f.events.iter().map(ToString::to_string).collect::<Vec<_>>(),
                f.message.clone(),
            )
        };
        report.findings.sort_by_cached_key(key);
    }
    Ok(report)
}

impl GateDecision {
    /// The decision as the DESIGN §10 JSON shape (`custody check --format json`, `POST
    /// /v1/authorize`): verdict, reasons, the decision event as stored and its log index,
    /// the Cedar policies and the chain facts.
    pub fn to_json(&self, event: &Value, index: Option<u64>) -> Value {
        json!({
            "decision": match self.verdict { Verdict::Allow => "allow", Verdict::Deny => "deny" },
            "reasons": self.reasons,
            "decision_event": event,
            "decision_index": index,
            "policies": self.policies,
            "facts": self.facts,
        })
    }
}
