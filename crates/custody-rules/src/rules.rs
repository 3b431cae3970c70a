//! The rules of DESIGN §5, each evaluated over the [`Index`].

use std::collections::{BTreeMap, BTreeSet};

use custody_model::{
    Action, ApprovalDecision, Event, EventBody, EventType, Outcome, Principal, PrincipalKind,
    Scope, Via,
};

use crate::index::{Edge, Index};
use crate::{catalogue, Finding, Policy, Report};

/// How many ancestors one action's walk may collect (a guard against giant chains).
const ANCESTOR_CAP: usize = 2_000;

/// The most events one finding cites (the flagged event first); a credential used a million
/// times makes a finding, not a million-line one.
const MAX_EVIDENCE: usize = 50;

struct Ctx<'a> {
    ix: &'a Index,
    policy: &'a Policy,
    out: Vec<Finding>,
}

/// What the chain of one action holds.
struct ActionFacts {
    ancestors: Vec<usize>,
    humans: BTreeSet<String>,
    human_above: bool,
    missing: Vec<&'static str>,
}

fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut out = template.to_owned();
    for (name, value) in values {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

fn ts(t: Option<custody_model::Timestamp>) -> String {
    t.map(|t| t.to_string()).unwrap_or_else(|| "-".into())
}

fn principal_list(p: &BTreeSet<String>) -> String {
    p.iter().cloned().collect::<Vec<_>>().join(", ")
}

impl<'a> Ctx<'a> {
    fn ev(&self, i: usize) -> Option<&'a Event> {
        self.ix.event(i)
    }

    fn name(&self, i: usize) -> String {
        self.ix.key(i).map(ToString::to_string).unwrap_or_default()
    }

    /// Records a finding flagged on `flagged`, with `evidence` after it (deduplicated).
    fn push(
        &mut self,
        rule: &'static str,
        flagged: usize,
        evidence: &[usize],
        values: &[(&str, String)],
    ) {
        let Some(info) = catalogue().rule(rule) else {
            return;
        };
        let Some(event) = self.ev(flagged) else {
            return;
        };
        let mut seen = BTreeSet::new();
        let mut events = Vec::new();
        for i in std::iter::once(&flagged).chain(evidence) {
            if events.len() >= MAX_EVIDENCE {
                break;
            }
            if seen.insert(*i) {
                if let Some(k) = self.ix.key(*i) {
                    events.push(k.clone());
                }
            }
        }
        let chain = event.chain.clone().unwrap_or_else(|| event.key.to_string());
        let mut values: Vec<(&str, String)> = values.to_vec();
        values.push(("chain", chain.clone()));
        self.out.push(Finding {
            rule,
            severity: info.severity,
            chain,
            events,
            message: fill(&info.message, &values),
            frameworks: info.frameworks.clone(),
            time: event.time,
        });
    }

    fn issuers(&self, cred: &str) -> &'a [usize] {
        self.ix
            .issued
            .get(cred)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// The issuers of an action's credential that issued it to the actor, else all of them.
    fn own_issuers(&self, cred: &str, actor: &Principal) -> Vec<usize> {
        let all = self.issuers(cred);
        let own: Vec<usize> = all
            .iter()
            .copied()
            .filter(|i| recipient(self.ev(*i)).is_some_and(|p| p.id == actor.id))
            .collect();
        if own.is_empty() {
            all.to_vec()
        } else {
            own
        }
    }

    fn facts(&self, i: usize, a: &Action) -> ActionFacts {
        let ancestors = self.ix.ancestors(i, ANCESTOR_CAP);
        let mut humans = BTreeSet::new();
        for j in &ancestors {
            match self.ev(*j).map(|e| &e.body) {
                Some(EventBody::Request(r)) if r.initiator.is_human() => {
                    humans.insert(r.initiator.id.clone());
                }
                Some(EventBody::Delegation(d)) if d.from.is_human() => {
                    humans.insert(d.from.id.clone());
                }
                _ => {}
            }
        }
        let human_above = !humans.is_empty() || a.actor.is_human();
        let mut missing = Vec::new();
        if !human_above {
            missing.push("initiator");
        }
        if !self.authority_holds(i, a) {
            missing.push("authority");
        }
        let named = |s: &str| !s.trim().is_empty();
        if !(named(&a.actor.id)
            && a.credential.as_deref().is_some_and(named)
            && named(&a.operation)
            && named(&a.resource))
        {
            missing.push("context");
        }
        let ran = !matches!(a.outcome, Some(Outcome::Failure | Outcome::Denied));
        let has_effect = self.ix.down.get(i).is_some_and(|d| {
            d.iter().any(|(j, _)| {
                self.ev(*j)
                    .is_some_and(|e| e.event_type() == EventType::Effect)
            })
        });
        if a.is_mutating() && ran && !has_effect {
            missing.push("impact");
        }
        ActionFacts {
            ancestors,
            humans,
            human_above,
            missing,
        }
    }

    /// DESIGN §4 `authority`: from the action's credential up through parent credentials to
    /// a delegation from a human, each with a credential and a scope.
    fn authority_holds(&self, i: usize, a: &Action) -> bool {
        if a.actor.is_human() && a.credential.is_none() {
            return true;
        }
        let up = |k: usize, kind: Edge| -> Vec<usize> {
            self.ix
                .up
                .get(k)
                .map(|u| {
                    u.iter()
                        .filter(|(_, e)| *e == kind)
                        .map(|(j, _)| *j)
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut current = up(i, Edge::Credential);
        let mut seen = BTreeSet::new();
        while !current.is_empty() {
            let mut next = Vec::new();
            for issuer in current {
                if !seen.insert(issuer) {
                    continue;
                }
                let Some(EventBody::Delegation(d)) = self.ev(issuer).map(|e| &e.body) else {
                    continue;
                };
                if d.credential.is_none() || d.scope.is_none() {
                    continue;
                }
                if d.from.is_human() {
                    return true;
                }
                next.extend(up(issuer, Edge::ParentCredential));
            }
            current = next;
        }
        false
    }

    /// The delegation hops from the action's credential up to a human (or the top), top first.
    fn hops(&self, a: &Action) -> Vec<usize> {
        let Some(cred) = &a.credential else {
            return Vec::new();
        };
        let mut hops = Vec::new();
        let mut seen = BTreeSet::new();
        let mut current = self
            .own_issuers(cred, &a.actor)
            .into_iter()
            .find(|i| matches!(self.ev(*i).map(|e| &e.body), Some(EventBody::Delegation(_))));
        while let Some(i) = current {
            if !seen.insert(i) {
                break;
            }
            hops.push(i);
            let Some(EventBody::Delegation(d)) = self.ev(i).map(|e| &e.body) else {
                break;
            };
            if d.from.is_human() {
                break;
            }
            current = d.parent_credential.as_ref().and_then(|p| {
                self.own_issuers(p, &d.from).into_iter().find(|j| {
                    matches!(self.ev(*j).map(|e| &e.body), Some(EventBody::Delegation(_)))
                })
            });
        }
        hops.reverse();
        hops
    }
}

/// Who a delegation or secret access issued its credential to.
fn recipient(e: Option<&Event>) -> Option<&Principal> {
    match &e?.body {
        EventBody::Delegation(d) => Some(&d.to),
        EventBody::SecretAccess(s) => Some(&s.principal),
        _ => None,
    }
}

fn credential_bounds(e: Option<&Event>) -> Option<&custody_model::Credential> {
    match &e?.body {
        EventBody::Delegation(d) => d.credential.as_ref(),
        _ => None,
    }
}

fn scope_of(e: Option<&Event>) -> Option<&Scope> {
    match &e?.body {
        EventBody::Delegation(d) => d.scope.as_ref(),
        _ => None,
    }
}

pub(crate) fn run(ix: &Index, policy: &Policy) -> Report {
    let mut cx = Ctx {
        ix,
        policy,
        out: Vec::new(),
    };
    let mut chains = BTreeSet::new();
    let mut facts_of: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    for (i, node) in ix.nodes.iter().enumerate() {
        let e = &node.event;
        match &e.body {
            EventBody::Action(a) => {
                chains.insert(e.chain.clone().unwrap_or_else(|| e.key.to_string()));
                let facts = cx.facts(i, a);
                action_rules(&mut cx, i, e, a, &facts);
                facts_of.insert(i, facts.humans);
            }
            EventBody::Delegation(_) => delegation_rules(&mut cx, i, e),
            EventBody::SecretAccess(s) => {
                unmanaged(&mut cx, i, &s.manager, s.credential.as_deref());
            }
            _ => {}
        }
    }
    credential_rules(&mut cx);
    ambiguity_rules(&mut cx, &facts_of);
    let mut findings = cx.out;
    // (chain, rule, first event), then the rest, so that the order is total.
    findings.sort_by(|a, b| {
        let key = |f: &Finding| {
            (
                f.chain.clone(),
                f.rule,
                f.events.iter().map(ToString::to_string).collect::<Vec<_>>(),
                f.message.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    findings.dedup();
    chains.extend(findings.iter().map(|f| f.chain.clone()));
    Report { findings, chains }
}

fn action_rules(cx: &mut Ctx<'_>, i: usize, e: &Event, a: &Action, facts: &ActionFacts) {
    let action = cx.name(i);
    let actor = a.actor.id.clone();
    let base = |extra: Vec<(&'static str, String)>| {
        let mut v = vec![
            ("action", action.clone()),
            ("actor", actor.clone()),
            ("operation", a.operation.clone()),
            ("resource", a.resource.clone()),
            (
                "credential",
                a.credential.clone().unwrap_or_else(|| "(none)".into()),
            ),
        ];
        v.extend(extra);
        v
    };
    let ix = cx.ix;
    if !facts.missing.is_empty() {
        let evidence: Vec<usize> = facts.ancestors.clone();
        cx.push(
            "incomplete-chain",
            i,
            &evidence,
            &base(vec![("missing", facts.missing.join(", "))]),
        );
    }
    if !facts.human_above {
        cx.push("orphan-action", i, &facts.ancestors, &base(vec![]));
    }
    let Some(cred) = a.credential.as_deref() else {
        approval_rules(cx, i, e, a, facts);
        return;
    };
    let issuers = cx.own_issuers(cred, &a.actor);
    if issuers.is_empty() {
        cx.push("unknown-credential", i, &[], &base(vec![]));
    }
    // overreach: outside every scope the credential was issued with (undecidable without one)
    let scoped: Vec<usize> = issuers
        .iter()
        .copied()
        .filter(|j| scope_of(cx.ev(*j)).is_some())
        .collect();
    if !scoped.is_empty() {
        let params = a.numeric_params();
        let allowed = scoped.iter().any(|j| {
            scope_of(cx.ev(*j)).is_some_and(|s| s.allows(&a.operation, &a.resource, &params))
        });
        if !allowed {
            cx.push("overreach", i, &scoped, &base(vec![]));
        }
    }
    // expired-credential: outside the validity of every issuance that states one
    let bounded: Vec<usize> = issuers
        .iter()
        .copied()
        .filter(|j| {
            credential_bounds(cx.ev(*j))
                .is_some_and(|c| c.not_before.is_some() || c.expires.is_some())
        })
        .collect();
    if !bounded.is_empty() {
        let valid = bounded.iter().any(|j| {
            credential_bounds(cx.ev(*j)).is_some_and(|c| {
                c.not_before.is_none_or(|nb| e.time >= nb) && c.expires.is_none_or(|x| e.time <= x)
            })
        });
        if !valid {
            let c = bounded.first().and_then(|j| credential_bounds(cx.ev(*j)));
            let values = base(vec![
                ("not_before", ts(c.and_then(|c| c.not_before))),
                ("expires", ts(c.and_then(|c| c.expires))),
            ]);
            cx.push("expired-credential", i, &bounded, &values);
        }
    }
    // revoked-credential: any revocation before the use (refused attempts count)
    let revocations: Vec<usize> = ix
        .revoked
        .get(cred)
        .map(|r| {
            r.iter()
                .copied()
                .filter(|j| cx.ev(*j).is_some_and(|rv| rv.time < e.time))
                .collect()
        })
        .unwrap_or_default();
    if let Some(first) = revocations.first() {
        let at = cx
            .ev(*first)
            .map(|r| r.time.to_string())
            .unwrap_or_default();
        cx.push(
            "revoked-credential",
            i,
            &revocations,
            &base(vec![("revoked_at", at)]),
        );
    }
    // chain-too-deep
    let hops = cx.hops(a);
    let depth = hops.len();
    if u32::try_from(depth).unwrap_or(u32::MAX) > cx.policy.max_depth {
        let values = base(vec![
            ("depth", depth.to_string()),
            ("max_depth", cx.policy.max_depth.to_string()),
        ]);
        cx.push("chain-too-deep", i, &hops, &values);
    }
    approval_rules(cx, i, e, a, facts);
}

fn approval_rules(cx: &mut Ctx<'_>, i: usize, e: &Event, a: &Action, facts: &ActionFacts) {
    let params = a.numeric_params();
    let required = cx.policy.approvals.iter().any(|r| {
        r.action.matches(&a.operation)
            && r.resource.matches(&a.resource)
            && match (&r.param, r.above) {
                (Some(p), Some(above)) => params.get(p).is_some_and(|v| *v > above),
                _ => true,
            }
    });
    if !required {
        return;
    }
    // What an approval may name: the action, its requests, delegations in its chain.
    let mut targets = vec![i];
    let mut requests = Vec::new();
    let mut requesters: BTreeSet<String> = BTreeSet::new();
    for j in &facts.ancestors {
        match cx.ev(*j).map(|e| &e.body) {
            Some(EventBody::Request(r)) => {
                targets.push(*j);
                requests.push(*j);
                requesters.insert(r.initiator.id.clone());
            }
            Some(EventBody::Delegation(d)) => {
                targets.push(*j);
                if d.from.is_human() {
                    requesters.insert(d.from.id.clone());
                }
            }
            _ => {}
        }
    }
    let mut approvals: Vec<usize> = targets
        .iter()
        .flat_map(|t| cx.ix.approvals_of.get(t).cloned().unwrap_or_default())
        .collect();
    cx.ix.sort_by_time(&mut approvals);
    approvals.dedup();
    let (mut valid, mut own, mut late) = (false, Vec::new(), Vec::new());
    for j in &approvals {
        let Some(EventBody::Approval(ap)) = cx.ev(*j).map(|e| &e.body) else {
            continue;
        };
        if ap.decision != ApprovalDecision::Approved || !ap.approver.is_human() {
            continue;
        }
        if ap
            .scope
            .as_ref()
            .is_some_and(|s| !s.allows(&a.operation, &a.resource, &params))
        {
            continue;
        }
        let t = cx.ev(*j).map(|x| x.time);
        if requesters.contains(&ap.approver.id) || ap.approver.id == a.actor.id {
            own.push(*j);
        } else if t.is_some_and(|t| t > e.time) {
            late.push(*j);
        } else {
            valid = true;
        }
    }
    if valid {
        return;
    }
    let action = cx.name(i);
    let mut values = vec![
        ("action", action),
        ("actor", a.actor.id.clone()),
        ("operation", a.operation.clone()),
        ("resource", a.resource.clone()),
    ];
    if let Some(first) = own.first() {
        let approver = match cx.ev(*first).map(|e| &e.body) {
            Some(EventBody::Approval(ap)) => ap.approver.id.clone(),
            _ => String::new(),
        };
        values.push(("approver", approver));
        values.push(("approval", cx.name(*first)));
        let evidence: Vec<usize> = own.iter().chain(&requests).copied().collect();
        cx.push("self-approval", i, &evidence, &values);
    } else if let Some(first) = late.first() {
        values.push(("approval", cx.name(*first)));
        cx.push("approval-after-action", i, &late, &values);
    } else {
        cx.push("approval-missing", i, &requests, &values);
    }
}

fn delegation_rules(cx: &mut Ctx<'_>, i: usize, e: &Event) {
    let EventBody::Delegation(d) = &e.body else {
        return;
    };
    if d.via == Via::SecretIssue {
        if let Some(issuer) = d.credential.as_ref().and_then(|c| c.issuer.as_deref()) {
            unmanaged(cx, i, issuer, d.credential.as_ref().map(|c| c.id.as_str()));
        }
    }
    let (Some(scope), Some(parent)) = (&d.scope, &d.parent_credential) else {
        return;
    };
    let parents: Vec<usize> = cx
        .own_issuers(parent, &d.from)
        .into_iter()
        .filter(|j| scope_of(cx.ev(*j)).is_some())
        .collect();
    if parents.is_empty() {
        return; // issued by a secret access or by nothing recorded: undecidable
    }
    if parents
        .iter()
        .any(|j| scope_of(cx.ev(*j)).is_some_and(|p| p.covers(scope)))
    {
        return;
    }
    let values = vec![
        ("delegation", cx.name(i)),
        ("actor", d.to.id.clone()),
        ("parent", parent.clone()),
        ("scope", serde_json::to_string(scope).unwrap_or_default()),
        (
            "credential",
            d.credential
                .as_ref()
                .map(|c| c.id.clone())
                .unwrap_or_default(),
        ),
    ];
    cx.push("scope-escalation", i, &parents, &values);
}

fn unmanaged(cx: &mut Ctx<'_>, i: usize, manager: &str, credential: Option<&str>) {
    if cx.policy.secret_managers.is_empty()
        || cx.policy.secret_managers.iter().any(|m| m == manager)
    {
        return;
    }
    let uses: Vec<usize> = credential
        .and_then(|c| cx.ix.used.get(c))
        .map(|u| u.iter().take(MAX_EVIDENCE).copied().collect())
        .unwrap_or_default();
    let values = vec![
        ("credential", credential.unwrap_or("(none)").to_owned()),
        ("secret_manager", manager.to_owned()),
    ];
    cx.push("unmanaged-secret", i, &uses, &values);
}

/// Rules over all uses of one credential: token-reuse, shared-credential, origin-mismatch.
fn credential_rules(cx: &mut Ctx<'_>) {
    let ix = cx.ix;
    // Every credential that was issued (a credential nobody issued has no rule here); the
    // order does not matter: findings are sorted at the end.
    for cred in ix.issued.keys() {
        let uses: &[usize] = ix.used.get(cred).map(Vec::as_slice).unwrap_or_default();
        let issuers = cx.issuers(cred);
        if issuers.is_empty() {
            continue;
        }
        let recipients: BTreeSet<String> = issuers
            .iter()
            .filter_map(|j| recipient(cx.ev(*j)).map(|p| p.id.clone()))
            .collect();
        let actor_of = |u: usize| match ix.event(u).map(|e| &e.body) {
            Some(EventBody::Action(a)) => Some(a),
            _ => None,
        };
        // token-reuse: beyond max_uses, or by a principal it was not issued to
        let max_uses = issuers
            .iter()
            .filter_map(|j| credential_bounds(cx.ev(*j)).and_then(|c| c.max_uses))
            .max();
        for (n, u) in uses.iter().enumerate() {
            let Some(a) = actor_of(*u) else { continue };
            let count = u64::try_from(n).unwrap_or(u64::MAX).saturating_add(1);
            let detail = match max_uses {
                Some(max) if count > max => Some(format!("use {count} of max_uses {max}")),
                _ if !recipients.contains(&a.actor.id) => Some(format!(
                    "issued to {}, used by {}",
                    principal_list(&recipients),
                    a.actor.id
                )),
                _ => None,
            };
            if let Some(detail) = detail {
                // the issuance, then the earlier uses (at most the ones that used it up)
                let mut evidence: Vec<usize> = issuers.iter().take(MAX_EVIDENCE).copied().collect();
                let earlier = usize::try_from(max_uses.unwrap_or(0)).unwrap_or(MAX_EVIDENCE);
                evidence.extend(uses.iter().take(n.min(earlier).min(MAX_EVIDENCE)));
                let values = vec![
                    ("action", cx.name(*u)),
                    ("actor", a.actor.id.clone()),
                    ("credential", cred.clone()),
                    ("detail", detail),
                ];
                cx.push("token-reuse", *u, &evidence, &values);
            }
        }
        // shared-credential: issued to, or used by, several principals
        let users: BTreeSet<String> = uses
            .iter()
            .filter_map(|u| actor_of(*u).map(|a| a.actor.id.clone()))
            .collect();
        if recipients.len() > 1 || users.len() > 1 {
            let all: BTreeSet<String> = recipients.union(&users).cloned().collect();
            let (flagged, rest): (usize, Vec<usize>) = match uses.split_first() {
                Some((f, r)) => (
                    *f,
                    r.iter()
                        .take(MAX_EVIDENCE)
                        .chain(issuers.iter().take(MAX_EVIDENCE))
                        .copied()
                        .collect(),
                ),
                None => match issuers.split_first() {
                    Some((f, r)) => (*f, r.to_vec()),
                    None => continue,
                },
            };
            let values = vec![
                ("credential", cred.clone()),
                ("principals", principal_list(&all)),
            ];
            cx.push("shared-credential", flagged, &rest, &values);
        }
        origin_mismatch(cx, cred, issuers, uses);
    }
}

/// A credential issued to one workload, used from an origin that workload does not use. The
/// workload's origins are those of its own uses in the chain (run) where it got the credential.
fn origin_mismatch(cx: &mut Ctx<'_>, cred: &str, issuers: &[usize], uses: &[usize]) {
    for issuer in issuers {
        let Some(ev) = cx.ev(*issuer) else { continue };
        let Some(to) = recipient(Some(ev)) else {
            continue;
        };
        if !matches!(
            to.kind,
            PrincipalKind::Workload | PrincipalKind::Pipeline | PrincipalKind::Service
        ) {
            continue;
        }
        let Some(run) = &ev.chain else { continue };
        let ix = cx.ix;
        let origin = |u: usize| match ix.event(u).map(|e| &e.body) {
            Some(EventBody::Action(a)) => a.context.origin.clone(),
            _ => None,
        };
        let baseline: Vec<usize> = uses
            .iter()
            .copied()
            .filter(|u| {
                cx.ev(*u).is_some_and(|e| {
                    e.chain.as_ref() == Some(run)
                        && matches!(&e.body, EventBody::Action(a) if a.actor.id == to.id)
                })
            })
            .filter(|u| origin(*u).is_some())
            .collect();
        let known: BTreeSet<String> = baseline.iter().filter_map(|u| origin(*u)).collect();
        if known.is_empty() {
            continue;
        }
        for u in uses {
            let Some(o) = origin(*u) else { continue };
            if known.contains(&o) {
                continue;
            }
            let mut evidence = vec![*issuer];
            evidence.extend(baseline.iter().take(MAX_EVIDENCE));
            let values = vec![
                ("action", cx.name(*u)),
                ("credential", cred.to_owned()),
                ("workload", to.id.clone()),
                ("origin", o),
                ("expected_origins", principal_list(&known)),
            ];
            cx.push("origin-mismatch", *u, &evidence, &values);
        }
    }
}

/// ambiguous-attribution: an effect (or reference) with several candidate causes, or an
/// action whose chain reaches several human initiators.
fn ambiguity_rules(cx: &mut Ctx<'_>, humans_of: &BTreeMap<usize, BTreeSet<String>>) {
    let ix = cx.ix;
    for amb in &ix.ambiguities {
        let mut initiators = BTreeSet::new();
        for c in &amb.candidates {
            match humans_of.get(c) {
                Some(h) => initiators.extend(h.iter().cloned()),
                None => {
                    for j in ix.ancestors(*c, ANCESTOR_CAP) {
                        if let Some(EventBody::Request(r)) = cx.ev(j).map(|e| &e.body) {
                            initiators.insert(r.initiator.id.clone());
                        }
                    }
                }
            }
        }
        let values = vec![
            ("effect", cx.name(amb.event)),
            ("initiators", principal_list(&initiators)),
        ];
        let mut candidates = amb.candidates.clone();
        ix.sort_by_time(&mut candidates);
        cx.push("ambiguous-attribution", amb.event, &candidates, &values);
    }
    for (i, humans) in humans_of {
        if humans.len() > 1 {
            let values = vec![
                ("effect", cx.name(*i)),
                ("initiators", principal_list(humans)),
            ];
            cx.push("ambiguous-attribution", *i, &[], &values);
        }
    }
}
