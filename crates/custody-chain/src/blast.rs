//! Blast radius (DESIGN §10 `blast-radius`): starting from a credential, a principal or a
//! secret path, everything that followed from it. Every credential derived from the start
//! (a delegation's `parent_credential`), every principal that held one, every action taken
//! with them and the effects those actions caused, the systems changed, and the principals
//! at the top of the chain whose authority was borrowed.
//!
//! Like a trace, the walk only uses the store's indexed lookups (`Issued`, `Used`,
//! `DerivedFrom`, `Revoked`, `ReferencesId`, `Principal`, `Secret`), never a scan, and it
//! stops growing at [`BlastConfig::max_events`] and says so (`truncated`). Effects are those
//! whose `caused_by` names an action reached; effects linked only by inference (same
//! resource, same `chain`) are left to `trace`, where the inference is shown as such.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt::{self, Write as _};

use custody_model::{EventBody, EventKey, EventRef, EventType, Principal, PrincipalKind, RefKind};
use custody_store::{Lookup, Store, StoreError, StoredEvent};
use serde_json::{json, Value};

use crate::render::summary;

/// Where a blast radius starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlastStart {
    /// A credential id: it and everything derived from it.
    Credential(String),
    /// A principal id: the credentials issued to it, used by it or delegated by it.
    Principal(String),
    /// A secret path or name: the credentials obtained by `secret_access` to it.
    Secret(String),
}

impl BlastStart {
    /// `credential`, `principal` or `secret`.
    pub fn kind(&self) -> &'static str {
        match self {
            BlastStart::Credential(_) => "credential",
            BlastStart::Principal(_) => "principal",
            BlastStart::Secret(_) => "secret",
        }
    }

    /// The id, path or name given.
    pub fn id(&self) -> &str {
        match self {
            BlastStart::Credential(s) | BlastStart::Principal(s) | BlastStart::Secret(s) => s,
        }
    }
}

impl fmt::Display for BlastStart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} `{}`", self.kind(), self.id())
    }
}

/// Limits of a blast-radius walk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlastConfig {
    /// The most events the result may hold before the walk stops (and says so).
    pub max_events: usize,
}

impl Default for BlastConfig {
    fn default() -> Self {
        BlastConfig {
            max_events: 200_000,
        }
    }
}

/// Why a blast radius could not be computed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlastError {
    /// No event issues, uses, derives from or revokes the credential.
    #[error("no event issues, uses or derives from credential `{0}`")]
    UnknownCredential(String),
    /// No event names the principal.
    #[error("no event names principal `{0}`")]
    UnknownPrincipal(String),
    /// No secret access reads the secret.
    #[error("no secret access to secret `{0}`")]
    UnknownSecret(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A credential obtained with another one: `to` was issued by `via_event`, a delegation whose
/// `parent_credential` is `from`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Derivation {
    /// The parent credential.
    pub from: String,
    /// The derived credential.
    pub to: String,
    /// The delegation that issued `to`.
    pub via_event: EventKey,
    /// How (`assume_role`, `token_exchange`, ...).
    pub via: String,
}

/// One credential reached, and what the log says about it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CredentialReach {
    /// The credential id.
    pub id: String,
    /// The delegations and secret accesses that issued it.
    pub issued_by: Vec<EventKey>,
    /// Who held it: the delegates and secret readers it was issued to, and its users.
    pub held_by: Vec<Principal>,
    /// The actions that presented it, in log order.
    pub used_by: Vec<EventKey>,
    /// Its revocations.
    pub revoked_by: Vec<EventKey>,
}

/// Everything reached from a start.
#[derive(Clone, Debug)]
pub struct BlastRadius {
    /// Where the walk started.
    pub start: BlastStart,
    /// The credentials the walk started from (the start itself, or what the principal or
    /// secret led to).
    pub roots: Vec<String>,
    /// Every credential reached, in the order found.
    pub credentials: Vec<CredentialReach>,
    /// Every event gathered (issuances, actions, effects, revocations), by log index.
    pub events: BTreeMap<u64, StoredEvent>,
    /// The derivation edges between credentials.
    pub derived: Vec<Derivation>,
    /// Per action, the effects whose `caused_by` names it.
    pub effects_of: BTreeMap<EventKey, Vec<EventKey>>,
    /// The principals at the top of the roots' chains (request initiators, human
    /// delegators, and whoever holds a root with nothing recorded above); humans first.
    pub initiators: Vec<Principal>,
    /// True when the walk stopped at `max_events`.
    pub truncated: bool,
    /// The principal the walk started from, when it did.
    start_principal: Option<Principal>,
    by_key: HashMap<EventKey, u64>,
}

struct Walker<'s> {
    store: &'s dyn Store,
    max_events: usize,
    radius: BlastRadius,
    index_of: HashMap<String, usize>,
    derivations: HashSet<(String, EventKey)>,
    queue: VecDeque<String>,
}

impl<'s> Walker<'s> {
    fn new(store: &'s dyn Store, start: BlastStart, max_events: usize) -> Self {
        Walker {
            store,
            max_events,
            radius: BlastRadius {
                start,
                roots: Vec::new(),
                credentials: Vec::new(),
                events: BTreeMap::new(),
                derived: Vec::new(),
                effects_of: BTreeMap::new(),
                initiators: Vec::new(),
                truncated: false,
                start_principal: None,
                by_key: HashMap::new(),
            },
            index_of: HashMap::new(),
            derivations: HashSet::new(),
            queue: VecDeque::new(),
        }
    }

    /// Adds an event (taken, not copied: a radius can hold 100,000 of them); true when it is
    /// new and fits under the cap.
    fn add(&mut self, event: StoredEvent) -> bool {
        if self.radius.events.contains_key(&event.index) {
            return false;
        }
        if self.radius.events.len() >= self.max_events {
            self.radius.truncated = true;
            return false;
        }
        self.radius.by_key.insert(event.key().clone(), event.index);
        self.radius.events.insert(event.index, event);
        true
    }

    /// The reach entry of a credential, queued for expansion when first seen.
    fn credential(&mut self, id: &str) -> Option<&mut CredentialReach> {
        let i = match self.index_of.get(id) {
            Some(i) => *i,
            None => {
                let i = self.radius.credentials.len();
                self.radius.credentials.push(CredentialReach {
                    id: id.to_owned(),
                    ..CredentialReach::default()
                });
                self.index_of.insert(id.to_owned(), i);
                self.queue.push_back(id.to_owned());
                i
            }
        };
        self.radius.credentials.get_mut(i)
    }

    fn root(&mut self, id: &str) {
        if !self.radius.roots.iter().any(|r| r == id) {
            self.radius.roots.push(id.to_owned());
        }
        self.credential(id);
    }

    fn hold(&mut self, credential: &str, holder: &Principal) {
        if let Some(c) = self.credential(credential) {
            if !c.held_by.iter().any(|p| p.id == holder.id) {
                c.held_by.push(holder.clone());
            }
        }
    }

    fn run(&mut self) -> Result<(), StoreError> {
        while let Some(id) = self.queue.pop_front() {
            if self.radius.truncated {
                break;
            }
            self.expand(&id)?;
        }
        if !self.queue.is_empty() {
            self.radius.truncated = true;
        }
        Ok(())
    }

    /// One credential: its issuers, revocations, uses (with their effects) and the
    /// credentials derived from it.
    fn expand(&mut self, id: &str) -> Result<(), StoreError> {
        for issuer in self.store.lookup(Lookup::Issued(id))? {
            let holder = match &issuer.event.body {
                EventBody::Delegation(d) => Some(d.to.clone()),
                EventBody::SecretAccess(s) => Some(s.principal.clone()),
                _ => None,
            };
            if let Some(c) = self.credential(id) {
                c.issued_by.push(issuer.key().clone());
            }
            if let Some(h) = holder {
                self.hold(id, &h);
            }
            self.add(issuer);
        }
        for revocation in self.store.lookup(Lookup::Revoked(id))? {
            let key = revocation.key().clone();
            if self.add(revocation) {
                if let Some(c) = self.credential(id) {
                    c.revoked_by.push(key);
                }
            }
        }
        for action in self.store.lookup(Lookup::Used(id))? {
            let key = action.key().clone();
            let actor = match &action.event.body {
                EventBody::Action(a) => Some(a.actor.clone()),
                _ => None,
            };
            if !self.add(action) {
                continue;
            }
            if let Some(actor) = actor {
                self.hold(id, &actor);
            }
            if let Some(c) = self.credential(id) {
                c.used_by.push(key.clone());
            }
            self.effects(&key)?;
        }
        for delegation in self.store.lookup(Lookup::DerivedFrom(id))? {
            let EventBody::Delegation(d) = &delegation.event.body else {
                continue;
            };
            let Some(child) = &d.credential else {
                continue;
            };
            let edge = Derivation {
                from: id.to_owned(),
                to: child.id.clone(),
                via_event: delegation.key().clone(),
                via: via_name(d.via),
            };
            let to = d.to.clone();
            let known = self.radius.by_key.contains_key(delegation.key());
            if !self.add(delegation) && !known {
                continue; // over the cap
            }
            if self
                .derivations
                .insert((edge.from.clone(), edge.via_event.clone()))
            {
                self.hold(&edge.to, &to);
                self.radius.derived.push(edge);
            }
        }
        Ok(())
    }

    /// The effects whose `caused_by` resolves to this action.
    fn effects(&mut self, action: &EventKey) -> Result<(), StoreError> {
        for referrer in self.store.lookup(Lookup::ReferencesId(&action.id))? {
            let EventBody::Effect(eff) = &referrer.event.body else {
                continue;
            };
            let Some(cause) = &eff.caused_by else {
                continue;
            };
            if !names(self.store, cause, &referrer.key().source, action)? {
                continue;
            }
            let key = referrer.key().clone();
            if self.add(referrer) {
                self.radius
                    .effects_of
                    .entry(action.clone())
                    .or_default()
                    .push(key);
            }
        }
        Ok(())
    }

    /// The principals at the top of the roots' chains: walks up from the roots' issuances
    /// through `parents`, `request`, `parent_credential` and an action's credential, like a
    /// trace does (DESIGN §4).
    fn initiators(&mut self) -> Result<(), StoreError> {
        let mut stack: Vec<StoredEvent> = Vec::new();
        for root in self.radius.roots.clone() {
            stack.extend(self.store.lookup(Lookup::Issued(&root))?);
        }
        let mut seen: HashSet<EventKey> = HashSet::new();
        let mut found: Vec<Principal> = Vec::new();
        let mut push = |p: &Principal| {
            if !found.iter().any(|f| f.id == p.id) {
                found.push(p.clone());
            }
        };
        while let Some(node) = stack.pop() {
            if !seen.insert(node.key().clone()) {
                continue;
            }
            if seen.len() > self.max_events {
                self.radius.truncated = true;
                break;
            }
            let e = &node.event;
            let mut above = false;
            for (kind, r) in e.references() {
                if kind == RefKind::Approves {
                    continue;
                }
                if let Some(target) = resolve(self.store, r, &e.key.source)? {
                    above = true;
                    stack.push(target);
                }
            }
            let credential_above = match &e.body {
                EventBody::Delegation(d) => d.parent_credential.as_deref(),
                EventBody::Action(a) => a.credential.as_deref(),
                _ => None,
            };
            if let Some(c) = credential_above {
                let issuers = self.store.lookup(Lookup::Issued(c))?;
                above |= !issuers.is_empty();
                stack.extend(issuers);
            }
            match &e.body {
                EventBody::Request(r) => push(&r.initiator),
                EventBody::Delegation(d) if d.from.is_human() || !above => push(&d.from),
                EventBody::SecretAccess(s) if !above => push(&s.principal),
                _ => {}
            }
        }
        found.sort_by_key(|p| p.kind != PrincipalKind::Human);
        self.radius.initiators = found;
        Ok(())
    }
}

fn via_name(via: custody_model::Via) -> String {
    serde_json::to_value(via)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The event a reference names, read from an event of `referrer_source` (DESIGN §3: a bare
/// id is the same source first, else the one event with that id); none when it names
/// nothing or several events.
fn resolve(
    store: &dyn Store,
    r: &EventRef,
    referrer_source: &str,
) -> Result<Option<StoredEvent>, StoreError> {
    if let Some(source) = &r.source {
        return store.get(&EventKey::new(source, &r.id));
    }
    if let Some(e) = store.get(&EventKey::new(referrer_source, &r.id))? {
        return Ok(Some(e));
    }
    let mut found = store.lookup(Lookup::Id(&r.id))?;
    Ok(if found.len() == 1 { found.pop() } else { None })
}

/// Whether the reference, read from an event of `referrer_source`, names `target`.
fn names(
    store: &dyn Store,
    r: &EventRef,
    referrer_source: &str,
    target: &EventKey,
) -> Result<bool, StoreError> {
    if r.id != target.id {
        return Ok(false);
    }
    if let Some(source) = &r.source {
        return Ok(*source == target.source);
    }
    if referrer_source == target.source {
        return Ok(true);
    }
    Ok(resolve(store, r, referrer_source)?.is_some_and(|e| e.key() == target))
}

impl BlastRadius {
    /// Walks the log from `start`.
    ///
    /// # Errors
    /// [`BlastError::UnknownCredential`], [`BlastError::UnknownPrincipal`] or
    /// [`BlastError::UnknownSecret`] when nothing recorded names the start;
    /// [`BlastError::Store`] when the store fails.
    pub fn compute(
        store: &dyn Store,
        start: BlastStart,
        config: &BlastConfig,
    ) -> Result<BlastRadius, BlastError> {
        let mut result = None;
        let mut failed = None;
        store.read_snapshot(&mut || {
            match BlastRadius::compute_in(store, start.clone(), config) {
                Ok(r) => result = Some(r),
                Err(BlastError::Store(e)) => return Err(e),
                Err(e) => failed = Some(e),
            }
            Ok(())
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        result.ok_or_else(|| BlastError::Store(StoreError::Backend("no answer".into())))
    }

    fn compute_in(
        store: &dyn Store,
        start: BlastStart,
        config: &BlastConfig,
    ) -> Result<BlastRadius, BlastError> {
        let mut w = Walker::new(store, start.clone(), config.max_events);
        match &start {
            BlastStart::Credential(id) => {
                let known = !store.lookup(Lookup::Issued(id))?.is_empty()
                    || !store.lookup(Lookup::Used(id))?.is_empty()
                    || !store.lookup(Lookup::DerivedFrom(id))?.is_empty()
                    || !store.lookup(Lookup::Revoked(id))?.is_empty();
                if !known {
                    return Err(BlastError::UnknownCredential(id.clone()));
                }
                w.root(id);
            }
            BlastStart::Secret(path) => {
                let accesses = store.lookup(Lookup::Secret(path))?;
                if accesses.is_empty() {
                    return Err(BlastError::UnknownSecret(path.clone()));
                }
                for access in accesses {
                    w.add(access.clone());
                    if let EventBody::SecretAccess(s) = &access.event.body {
                        if let Some(c) = &s.credential {
                            w.root(c);
                            w.hold(c, &s.principal);
                        }
                    }
                }
            }
            BlastStart::Principal(id) => {
                let events = store.lookup(Lookup::Principal(id))?;
                if events.is_empty() {
                    return Err(BlastError::UnknownPrincipal(id.clone()));
                }
                for e in events {
                    let (seed, me) = match &e.event.body {
                        EventBody::Delegation(d) if d.to.id == *id => {
                            (d.credential.as_ref().map(|c| c.id.clone()), Some(&d.to))
                        }
                        EventBody::Delegation(d) if d.from.id == *id => {
                            (d.credential.as_ref().map(|c| c.id.clone()), Some(&d.from))
                        }
                        EventBody::SecretAccess(s) if s.principal.id == *id => {
                            (s.credential.clone(), Some(&s.principal))
                        }
                        EventBody::Action(a) if a.actor.id == *id => {
                            if a.credential.is_none() && w.add(e.clone()) {
                                w.effects(e.key())?; // what it did without a credential
                            }
                            (a.credential.clone(), Some(&a.actor))
                        }
                        EventBody::Request(r) if r.initiator.id == *id => {
                            (None, Some(&r.initiator))
                        }
                        _ => (None, None),
                    };
                    if w.radius.start_principal.is_none() {
                        w.radius.start_principal = me.cloned();
                    }
                    if let Some(c) = seed {
                        w.root(&c);
                    }
                }
            }
        }
        w.run()?;
        w.initiators()?;
        Ok(w.radius)
    }

    fn event(&self, key: &EventKey) -> Option<&StoredEvent> {
        self.by_key.get(key).and_then(|i| self.events.get(i))
    }

    /// Events of one type, in time order.
    pub fn of_type(&self, kind: EventType) -> Vec<&StoredEvent> {
        let mut found: Vec<&StoredEvent> = self
            .events
            .values()
            .filter(|e| e.event.event_type() == kind)
            .collect();
        found.sort_by_key(|e| (e.event.time, e.index));
        found
    }

    /// Every principal that held a credential reached (and the starting principal), in the
    /// order found.
    pub fn principals(&self) -> Vec<&Principal> {
        let mut out: Vec<&Principal> = Vec::new();
        let candidates = self
            .start_principal
            .iter()
            .chain(self.credentials.iter().flat_map(|c| c.held_by.iter()))
            .chain(self.of_type(EventType::Action).into_iter().filter_map(
                |e| match &e.event.body {
                    EventBody::Action(a) => Some(&a.actor),
                    _ => None,
                },
            ));
        for p in candidates {
            if !out.iter().any(|o| o.id == p.id) {
                out.push(p);
            }
        }
        out
    }

    /// The systems the effects changed, sorted.
    pub fn systems(&self) -> BTreeSet<&str> {
        self.of_type(EventType::Effect)
            .into_iter()
            .filter_map(|e| match &e.event.body {
                EventBody::Effect(f) => Some(f.system.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The resources the effects changed, sorted.
    pub fn resources(&self) -> BTreeSet<&str> {
        self.of_type(EventType::Effect)
            .into_iter()
            .filter_map(|e| match &e.event.body {
                EventBody::Effect(f) => Some(f.resource.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The earliest action taken with a credential reached.
    pub fn first_use(&self) -> Option<&StoredEvent> {
        self.of_type(EventType::Action).into_iter().next()
    }

    /// The latest action taken with a credential reached.
    pub fn last_use(&self) -> Option<&StoredEvent> {
        self.of_type(EventType::Action).into_iter().next_back()
    }

    /// Every event gathered, in time order.
    pub fn timeline(&self) -> Vec<&StoredEvent> {
        let mut all: Vec<&StoredEvent> = self.events.values().collect();
        all.sort_by_key(|e| (e.event.time, e.index));
        all
    }

    /// The DESIGN §10 JSON shape, with the added fields documented there.
    pub fn to_json(&self) -> Value {
        let name = |k: &EventKey| Value::String(k.to_string());
        let names = |es: Vec<&StoredEvent>| -> Vec<Value> {
            es.into_iter().map(|e| name(e.key())).collect()
        };
        let at = |e: Option<&StoredEvent>| match e {
            Some(e) => json!({"event": name(e.key()), "time": e.event.time.to_string()}),
            None => Value::Null,
        };
        json!({
            "start": {"kind": self.start.kind(), "id": self.start.id()},
            "credentials": self.credentials.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
            "principals": self.principals().iter().map(|p| p.id.clone()).collect::<Vec<_>>(),
            "actions": names(self.of_type(EventType::Action)),
            "effects": names(self.of_type(EventType::Effect)),
            "systems": self.systems(),
            "initiators": self.initiators,
            "roots": self.roots,
            "first_use": at(self.first_use()),
            "last_use": at(self.last_use()),
            "derived": self.derived.iter().map(|d| json!({
                "from": d.from,
                "to": d.to,
                "via_event": name(&d.via_event),
                "via": d.via,
            })).collect::<Vec<_>>(),
            "credential_details": self.credentials.iter().map(|c| json!({
                "id": c.id,
                "issued_by": c.issued_by.iter().map(name).collect::<Vec<_>>(),
                "held_by": c.held_by.iter().map(|p| p.id.clone()).collect::<Vec<_>>(),
                "used_by": c.used_by.iter().map(name).collect::<Vec<_>>(),
                "revoked_by": c.revoked_by.iter().map(name).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "resources": self.resources(),
            "timeline": self.timeline().into_iter().map(|e| json!({
                "time": e.event.time.to_string(),
                "event": name(e.key()),
                "type": e.event.event_type().as_str(),
                "index": e.index,
            })).collect::<Vec<_>>(),
            "truncated": self.truncated,
        })
    }

    /// The tree (credentials, their uses and derived credentials, each action's effects)
    /// and the timeline, for terminals.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "blast radius of {}", self.start);
        let mut printed: HashSet<&str> = HashSet::new();
        for root in &self.roots {
            self.render_credential(&mut out, root, None, "", "", &mut printed);
        }
        // Actions without a credential (a principal's own), outside the tree.
        for action in self.of_type(EventType::Action) {
            let in_tree = self
                .credentials
                .iter()
                .any(|c| c.used_by.contains(action.key()));
            if !in_tree {
                let _ = writeln!(out, "{}  {}", action.key(), summary(action));
                self.render_effects(&mut out, action.key(), "");
            }
        }
        let _ = writeln!(out, "\ntimeline:");
        for e in self.timeline() {
            let _ = writeln!(out, "  {}  {}  {}", e.event.time, e.key(), summary(e));
        }
        let _ = writeln!(
            out,
            "\n{} credentials, {} principals, {} actions, {} effects",
            self.credentials.len(),
            self.principals().len(),
            self.of_type(EventType::Action).len(),
            self.of_type(EventType::Effect).len()
        );
        let list = |items: Vec<String>| {
            if items.is_empty() {
                "none".to_owned()
            } else {
                items.join(", ")
            }
        };
        let _ = writeln!(
            out,
            "principals: {}",
            list(self.principals().iter().map(|p| p.to_string()).collect())
        );
        let _ = writeln!(
            out,
            "systems changed: {}",
            list(self.systems().iter().map(|s| (*s).to_owned()).collect())
        );
        let _ = writeln!(
            out,
            "initiators: {}",
            list(self.initiators.iter().map(ToString::to_string).collect())
        );
        if !self.initiators.iter().any(Principal::is_human) {
            let _ = writeln!(out, "  (no human is recorded above the start)");
        }
        for (label, e) in [
            ("first use", self.first_use()),
            ("last use", self.last_use()),
        ] {
            if let Some(e) = e {
                let _ = writeln!(out, "{label}: {} {}", e.event.time, e.key());
            }
        }
        if self.truncated {
            let _ = writeln!(
                out,
                "truncated: the walk stopped at {} events; the radius is larger",
                self.events.len()
            );
        }
        out
    }

    fn render_credential<'a>(
        &'a self,
        out: &mut String,
        id: &'a str,
        derivation: Option<&Derivation>,
        lead: &str,
        rest: &str,
        printed: &mut HashSet<&'a str>,
    ) {
        let Some(reach) = self.credentials.iter().find(|c| c.id == id) else {
            return;
        };
        let how = match derivation {
            Some(d) => format!(" via {} ({})", d.via, d.via_event),
            None => reach
                .issued_by
                .first()
                .map(|k| format!(" issued by {k}"))
                .unwrap_or_default(),
        };
        let holders: Vec<String> = reach.held_by.iter().map(ToString::to_string).collect();
        let held = if holders.is_empty() {
            String::new()
        } else {
            format!(", held by {}", holders.join(", "))
        };
        let revoked = if reach.revoked_by.is_empty() {
            String::new()
        } else {
            let r: Vec<String> = reach.revoked_by.iter().map(ToString::to_string).collect();
            format!(", revoked by {}", r.join(", "))
        };
        if !printed.insert(id) {
            let _ = writeln!(out, "{lead}credential {id}{how} (shown above)");
            return;
        }
        let _ = writeln!(out, "{lead}credential {id}{how}{held}{revoked}");
        // Children: uses and derived credentials, in time order.
        enum Child<'d> {
            Use(&'d EventKey),
            Derived(&'d Derivation),
        }
        let mut children: Vec<((custody_model::Timestamp, u64), Child<'_>)> = Vec::new();
        for k in &reach.used_by {
            if let Some(e) = self.event(k) {
                children.push(((e.event.time, e.index), Child::Use(k)));
            }
        }
        for d in self.derived.iter().filter(|d| d.from == id) {
            if let Some(e) = self.event(&d.via_event) {
                children.push(((e.event.time, e.index), Child::Derived(d)));
            }
        }
        children.sort_by_key(|(order, _)| *order);
        let n = children.len();
        for (i, (_, child)) in children.into_iter().enumerate() {
            let last = i + 1 == n;
            let branch = format!("{rest}{}", if last { "└── " } else { "├── " });
            let below = format!("{rest}{}", if last { "    " } else { "│   " });
            match child {
                Child::Use(k) => {
                    if let Some(e) = self.event(k) {
                        let _ = writeln!(out, "{branch}{}  {}", k, summary(e));
                        self.render_effects(out, k, &below);
                    }
                }
                Child::Derived(d) => {
                    self.render_credential(out, &d.to, Some(d), &branch, &below, printed);
                }
            }
        }
    }

    fn render_effects(&self, out: &mut String, action: &EventKey, rest: &str) {
        let effects = self
            .effects_of
            .get(action)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let n = effects.len();
        for (i, k) in effects.iter().enumerate() {
            let mark = if i + 1 == n {
                "└── "
            } else {
                "├── "
            };
            if let Some(e) = self.event(k) {
                let _ = writeln!(out, "{rest}{mark}{k}  {}", summary(e));
            }
        }
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests {
    use super::*;
    use custody_ingest::Preparer;
    use custody_model::Redactor;
    use custody_store::LineOrigin;
    use custody_store_sqlite::SqliteStore;

    fn store_with(lines: &[&str]) -> SqliteStore {
        let mut store = SqliteStore::open_in_memory().unwrap();
        let preparer = Preparer::new(Redactor::new(b"k"));
        let events: Vec<_> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let origin = LineOrigin {
                    file: "t".into(),
                    line: i as u64 + 1,
                };
                preparer.prepare_line(l, origin).unwrap()
            })
            .collect();
        store.append_batch(&events, &[]).unwrap();
        store
    }

    fn story4() -> SqliteStore {
        let text = include_str!("../../../examples/04-leaked-secret.ndjson");
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        store_with(&lines)
    }

    fn ids(v: &Value, field: &str) -> Vec<String> {
        v[field]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn leaked_key_reaches_every_derived_credential_and_their_uses() {
        let store = story4();
        let start = BlastStart::Credential("AKIAZ7CIPUBL2EXAMPLE".into());
        let r = BlastRadius::compute(&store, start, &BlastConfig::default()).unwrap();
        let v = r.to_json();
        assert_eq!(
            ids(&v, "credentials"),
            [
                "AKIAZ7CIPUBL2EXAMPLE",
                "ASIAZ7PRODDEPEXAMPLE",
                "AKIAZ7BACKUP2EXAMPLE"
            ]
        );
        let actions = ids(&v, "actions");
        for a in [
            "s4-act-2", "s4-act-3", "s4-act-4", "s4-act-5", "s4-act-6", "s4-act-7", "s4-act-8",
        ] {
            assert!(
                actions.iter().any(|k| k.ends_with(&format!("#{a}"))),
                "{a} missing: {actions:?}"
            );
        }
        // The release pipeline's chain is not reached.
        assert!(!actions.iter().any(|k| k.ends_with("#s4-act-1")));
        let effects = ids(&v, "effects");
        assert_eq!(effects.len(), 4, "{effects:?}");
        assert!(!effects.iter().any(|k| k.ends_with("#s4-eff-1")));
        assert!(ids(&v, "systems").contains(&"aws:lambda:123456789012:eu-west-1".to_owned()));
        let principals = ids(&v, "principals");
        assert!(principals.contains(&"arn:aws:iam::123456789012:user/backup-operator".to_owned()));
        assert_eq!(v["derived"].as_array().unwrap().len(), 2);
        assert_eq!(v["derived"][0]["via"], "assume_role");
        assert_eq!(v["first_use"]["time"], "2026-06-04T02:00:40Z");
        assert!(v["last_use"]["event"]
            .as_str()
            .unwrap()
            .ends_with("#s4-act-8"));
        assert_eq!(
            v["initiators"][0]["id"],
            "arn:aws:iam::123456789012:user/ci-publisher"
        );
        assert_eq!(v["truncated"], false);
        let text = r.render_text();
        assert!(
            text.contains("credential ASIAZ7PRODDEPEXAMPLE via assume_role"),
            "{text}"
        );
        assert!(
            text.contains("no human is recorded above the start"),
            "{text}"
        );
    }

    #[test]
    fn secret_path_reaches_what_the_credential_reaches() {
        let store = story4();
        let by_cred = BlastRadius::compute(
            &store,
            BlastStart::Credential("AKIAZ7CIPUBL2EXAMPLE".into()),
            &BlastConfig::default(),
        )
        .unwrap()
        .to_json();
        let by_secret = BlastRadius::compute(
            &store,
            BlastStart::Secret("secret/ci/ci-publisher/aws".into()),
            &BlastConfig::default(),
        )
        .unwrap()
        .to_json();
        for field in ["credentials", "actions", "effects", "systems"] {
            assert_eq!(by_cred[field], by_secret[field], "{field}");
        }
    }

    #[test]
    fn a_human_principal_reaches_what_it_delegated() {
        let store = story4();
        let r = BlastRadius::compute(
            &store,
            BlastStart::Principal("lee@example.com".into()),
            &BlastConfig::default(),
        )
        .unwrap();
        let v = r.to_json();
        assert_eq!(
            ids(&v, "credentials"),
            ["jti:gha-8120455-oidc", "ASIA3RELEASE7EXAMPLE"]
        );
        assert!(ids(&v, "actions")[0].ends_with("#s4-act-1"));
        assert!(ids(&v, "effects")[0].ends_with("#s4-eff-1"));
        assert_eq!(v["initiators"][0]["id"], "lee@example.com");
        assert_eq!(ids(&v, "principals")[0], "lee@example.com");
    }

    #[test]
    fn unknown_starts_are_errors() {
        let store = story4();
        let c = BlastConfig::default();
        for start in [
            BlastStart::Credential("AKIANOSUCHKEY".into()),
            BlastStart::Principal("nobody@example.com".into()),
            BlastStart::Secret("secret/none".into()),
        ] {
            let err = BlastRadius::compute(&store, start.clone(), &c).unwrap_err();
            assert!(err.to_string().contains(start.id()), "{err}");
        }
    }

    #[test]
    fn the_cap_truncates_and_says_so() {
        let store = story4();
        let r = BlastRadius::compute(
            &store,
            BlastStart::Credential("AKIAZ7CIPUBL2EXAMPLE".into()),
            &BlastConfig { max_events: 3 },
        )
        .unwrap();
        assert!(r.truncated);
        assert!(r.events.len() <= 3);
        assert!(r.render_text().contains("truncated"));
    }
}
