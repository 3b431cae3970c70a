//! What the gate knows about the recorded log: credential issuances, uses, revocations,
//! approvals and requests, held in maps keyed the way a decision asks (no scan of events per
//! decision).
//!
//! A [`FactIndex`] is filled in two ways: by [`FactIndex::observe`] as events arrive (a
//! long-running gate, the policy replay over the whole log), or by [`FactIndex::load_for`],
//! which reads only what one decision needs through the store's linking indexes (the
//! one-shot `custody check`). Both feed the same decision code.

use std::collections::{HashMap, HashSet};

use custody_model::{
    Action, ApprovalDecision, Credential, Event, EventBody, EventKey, EventRef, Principal, Scope,
    Timestamp, Via,
};
use custody_store::{Lookup, Store, StoreError};

/// How far up parent credentials a chain is followed (a cycle or a pathological log stops
/// here, and the depth check reports it).
pub const MAX_HOPS: usize = 64;

/// How a credential was issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssuedBy {
    /// A `delegation` event.
    Delegation,
    /// A `secret_access` event.
    SecretAccess,
}

impl IssuedBy {
    /// `delegation` or `secret_access`.
    pub fn as_str(self) -> &'static str {
        match self {
            IssuedBy::Delegation => "delegation",
            IssuedBy::SecretAccess => "secret_access",
        }
    }
}

/// One recorded issuance of a credential.
#[derive(Clone, Debug)]
pub struct Issuance {
    /// The issuing event.
    pub key: EventKey,
    /// When it was issued.
    pub time: Timestamp,
    /// Delegation or secret access.
    pub by: IssuedBy,
    /// The delegator (delegations only).
    pub from: Option<Principal>,
    /// Who received the credential.
    pub to: Principal,
    /// How (delegations only).
    pub via: Option<Via>,
    /// The credential's bounds (delegations only).
    pub credential: Option<Credential>,
    /// The credential used to obtain this one.
    pub parent_credential: Option<String>,
    /// The scope granted (delegations only).
    pub scope: Option<Scope>,
    /// The request it serves, resolved against the issuing event's source.
    pub request: Option<EventRef>,
    /// The secrets manager (secret accesses only).
    pub manager: Option<String>,
}

/// A recorded approval.
#[derive(Clone, Debug)]
pub struct ApprovalFact {
    /// The approval event.
    pub key: EventKey,
    /// When.
    pub time: Timestamp,
    /// Who approved.
    pub approver: Principal,
    /// Approved or denied.
    pub decision: ApprovalDecision,
    /// What it allows, when it says.
    pub scope: Option<Scope>,
    /// What it approves.
    pub approves: EventRef,
}

impl ApprovalFact {
    /// Whether this approval names `target`.
    pub fn names(&self, target: &EventKey) -> bool {
        self.approves.id == target.id
            && self.approves.source.as_deref().unwrap_or(&self.key.source) == target.source
    }
}

/// A recorded request.
#[derive(Clone, Debug)]
pub struct RequestFact {
    /// The request event.
    pub key: EventKey,
    /// When.
    pub time: Timestamp,
    /// Who asked.
    pub initiator: Principal,
}

/// A use or revocation: when, and which event.
#[derive(Clone, Debug)]
pub struct Stamp {
    /// When it happened.
    pub time: Timestamp,
    /// The event.
    pub key: EventKey,
}

/// The gate's view of the log.
#[derive(Clone, Debug, Default)]
pub struct FactIndex {
    issued: HashMap<String, Vec<Issuance>>,
    uses: HashMap<String, Vec<Stamp>>,
    revoked: HashMap<String, Vec<Stamp>>,
    approvals: HashMap<String, Vec<ApprovalFact>>,
    requests: HashMap<EventKey, RequestFact>,
    request_ids: HashMap<String, Vec<EventKey>>,
    seen: HashSet<EventKey>,
    events: u64,
}

impl FactIndex {
    /// An empty index.
    pub fn new() -> FactIndex {
        FactIndex::default()
    }

    /// Events observed so far (each `source#id` counted once).
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Records what one stored event tells the gate. Observing the same `source#id` twice
    /// changes nothing.
    pub fn observe(&mut self, event: &Event) {
        if !self.seen.insert(event.key.clone()) {
            return;
        }
        self.events += 1;
        let key = &event.key;
        match &event.body {
            EventBody::Delegation(d) => {
                let Some(c) = &d.credential else { return };
                self.issued.entry(c.id.clone()).or_default().push(Issuance {
                    key: key.clone(),
                    time: event.time,
                    by: IssuedBy::Delegation,
                    from: Some(d.from.clone()),
                    to: d.to.clone(),
                    via: Some(d.via),
                    credential: Some(c.clone()),
                    parent_credential: d.parent_credential.clone(),
                    scope: d.scope.clone(),
                    request: d.request.clone(),
                    manager: None,
                });
            }
            EventBody::SecretAccess(s) => {
                let Some(c) = &s.credential else { return };
                self.issued.entry(c.clone()).or_default().push(Issuance {
                    key: key.clone(),
                    time: event.time,
                    by: IssuedBy::SecretAccess,
                    from: None,
                    to: s.principal.clone(),
                    via: None,
                    credential: None,
                    parent_credential: None,
                    scope: None,
                    request: None,
                    manager: Some(s.manager.clone()),
                });
            }
            EventBody::Action(a) => {
                if let Some(c) = &a.credential {
                    self.uses.entry(c.clone()).or_default().push(Stamp {
                        time: event.time,
                        key: key.clone(),
                    });
                }
            }
            EventBody::Revocation(r) => {
                self.revoked
                    .entry(r.credential.clone())
                    .or_default()
                    .push(Stamp {
                        time: event.time,
                        key: key.clone(),
                    });
            }
            EventBody::Approval(a) => {
                self.approvals
                    .entry(a.approves.id.clone())
                    .or_default()
                    .push(ApprovalFact {
                        key: key.clone(),
                        time: event.time,
                        approver: a.approver.clone(),
                        decision: a.decision,
                        scope: a.scope.clone(),
                        approves: a.approves.clone(),
                    });
            }
            EventBody::Request(r) => {
                self.request_ids
                    .entry(key.id.clone())
                    .or_default()
                    .push(key.clone());
                self.requests.insert(
                    key.clone(),
                    RequestFact {
                        key: key.clone(),
                        time: event.time,
                        initiator: r.initiator.clone(),
                    },
                );
            }
            EventBody::Effect(_) | EventBody::Decision(_) => {}
        }
    }

    /// Every recorded issuance of `credential`.
    pub fn issuances(&self, credential: &str) -> &[Issuance] {
        self.issued
            .get(credential)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// Recorded uses of `credential` strictly before `at`, not counting `except`.
    pub fn uses_before(&self, credential: &str, at: Timestamp, except: Option<&EventKey>) -> u64 {
        self.uses.get(credential).map_or(0, |u| {
            u.iter()
                .filter(|s| s.time < at && except != Some(&s.key))
                .count() as u64
        })
    }

    /// The earliest revocation of `credential` at or before `at`.
    pub fn revoked_at(&self, credential: &str, at: Timestamp) -> Option<&Stamp> {
        self.revoked
            .get(credential)?
            .iter()
            .filter(|s| s.time <= at)
            .min_by_key(|s| s.time)
    }

    /// Approvals naming `target`.
    pub fn approvals_of<'a>(
        &'a self,
        target: &'a EventKey,
    ) -> impl Iterator<Item = &'a ApprovalFact> + 'a {
        self.approvals
            .get(&target.id)
            .into_iter()
            .flatten()
            .filter(move |a| a.names(target))
    }

    /// The request a reference names, read from an event of `referrer_source`: the same
    /// source first, else the one request with that id anywhere (DESIGN §3).
    pub fn request(&self, r: &EventRef, referrer_source: &str) -> Option<&RequestFact> {
        if let Some(found) = self.requests.get(&r.key_in(referrer_source)) {
            return Some(found);
        }
        if r.source.is_some() {
            return None;
        }
        match self.request_ids.get(&r.id).map(Vec::as_slice) {
            Some([only]) => self.requests.get(only),
            _ => None,
        }
    }

    /// Reads, through the store's linking indexes, every event one decision about `action`
    /// can need: the issuances of its credential and of each parent credential, their
    /// revocations, the uses of the presented credential, the requests named on the way,
    /// and the approvals of any of those or of the proposed event itself.
    pub fn load_for(
        store: &dyn Store,
        action: &Action,
        source: &str,
        proposed: Option<&EventKey>,
    ) -> Result<FactIndex, StoreError> {
        let mut ix = FactIndex::new();
        let mut request_refs: Vec<(EventRef, String)> = Vec::new();
        if let Some(r) = &action.request {
            request_refs.push((r.clone(), source.to_owned()));
        }
        let mut targets: Vec<EventKey> = proposed.cloned().into_iter().collect();
        if let Some(presented) = &action.credential {
            for e in store.lookup(Lookup::Used(presented))? {
                ix.observe(&e.event);
            }
            let mut queue = vec![presented.clone()];
            let mut visited = HashSet::new();
            while let Some(cred) = queue.pop() {
                if visited.len() >= MAX_HOPS || !visited.insert(cred.clone()) {
                    continue;
                }
                for e in store.lookup(Lookup::Issued(&cred))? {
                    ix.observe(&e.event);
                    targets.push(e.event.key.clone());
                    if let EventBody::Delegation(d) = &e.event.body {
                        if let Some(p) = &d.parent_credential {
                            queue.push(p.clone());
                        }
                        if let Some(r) = &d.request {
                            request_refs.push((r.clone(), e.event.key.source.clone()));
                        }
                    }
                }
                for e in store.lookup(Lookup::Revoked(&cred))? {
                    ix.observe(&e.event);
                }
            }
        }
        for (r, referrer) in &request_refs {
            let key = r.key_in(referrer);
            match store.get(&key)? {
                Some(e) => ix.observe(&e.event),
                None if r.source.is_none() => {
                    for e in store.lookup(Lookup::Id(&r.id))? {
                        ix.observe(&e.event);
                    }
                }
                None => {}
            }
            targets.push(key);
        }
        let mut asked = HashSet::new();
        for target in &targets {
            if !asked.insert(target.id.clone()) {
                continue;
            }
            for e in store.lookup(Lookup::ReferencesId(&target.id))? {
                if matches!(e.event.body, EventBody::Approval(_)) {
                    ix.observe(&e.event);
                }
            }
        }
        Ok(ix)
    }
}
