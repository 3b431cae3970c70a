//! Building a trace: the walk up and down the event graph, then the completeness test.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use custody_model::{
    EventBody, EventKey, EventRef, EventType, Outcome, Principal, PrincipalKind, RefKind, Scope,
};
use custody_store::{Lookup, Store, StoreError, StoredEvent};
use serde_json::{json, Value};

/// Linking settings (`[chain]` in `custody.toml`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkConfig {
    /// Window for linking an effect without `caused_by` to an action on the same resource.
    pub inference_window_secs: i64,
    /// The most events one trace may hold before it stops growing (and says so).
    pub max_events: usize,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            inference_window_secs: 60,
            max_events: 50_000,
        }
    }
}

/// Why a trace could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// The starting event is not stored.
    #[error("no event `{0}` in the log")]
    UnknownEvent(String),
    /// A bare id names events in several sources.
    #[error("`{id}` names {} events ({}); give it as source#id", candidates.len(), candidates.join(", "))]
    AmbiguousEvent {
        /// The id given.
        id: String,
        /// The matching `source#id`s.
        candidates: Vec<String>,
    },
    /// No event issues or uses the credential.
    #[error("no event issues or uses credential `{0}`")]
    UnknownCredential(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an edge stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EdgeKind {
    /// `parents`
    Parent,
    /// `caused_by`
    CausedBy,
    /// `request`
    Request,
    /// `approves`
    Approves,
    /// The issuer of the credential an action presented.
    Credential,
    /// The issuer of a delegation's parent credential.
    ParentCredential,
    /// Inferred: the same `chain` id and nothing else links them.
    Chain,
    /// Inferred: an effect on the resource of exactly one recent action.
    SameResource,
}

impl EdgeKind {
    /// The name used in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            EdgeKind::Parent => "parents",
            EdgeKind::CausedBy => "caused_by",
            EdgeKind::Request => "request",
            EdgeKind::Approves => "approves",
            EdgeKind::Credential => "credential",
            EdgeKind::ParentCredential => "parent_credential",
            EdgeKind::Chain => "chain",
            EdgeKind::SameResource => "same_resource",
        }
    }

    fn from_ref(kind: RefKind) -> EdgeKind {
        match kind {
            RefKind::Parent => EdgeKind::Parent,
            RefKind::CausedBy => EdgeKind::CausedBy,
            RefKind::Request => EdgeKind::Request,
            RefKind::Approves => EdgeKind::Approves,
        }
    }

    /// Whether edges of this kind are inferred rather than recorded.
    pub fn is_inferred(self) -> bool {
        matches!(self, EdgeKind::Chain | EdgeKind::SameResource)
    }
}

/// A directed edge, from cause to consequence.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Edge {
    /// The earlier event (request, issuer, action).
    pub from: EventKey,
    /// The later event.
    pub to: EventKey,
    /// What links them.
    pub kind: EdgeKind,
}

impl Edge {
    /// Whether the edge is inferred.
    pub fn inferred(&self) -> bool {
        self.kind.is_inferred()
    }
}

/// An event with two or more candidates where one was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ambiguity {
    /// The event whose link is ambiguous.
    pub event: EventKey,
    /// What it tried to link (`caused_by`, `same_resource`, ...).
    pub link: String,
    /// The candidates.
    pub candidates: Vec<EventKey>,
}

/// A reference or credential that names nothing stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dangling {
    /// The event that refers.
    pub event: EventKey,
    /// The field (`caused_by`, `credential`, ...).
    pub field: String,
    /// What it names.
    pub target: String,
}

/// One of the four links of a complete chain (DESIGN §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Link {
    /// It reaches a request or delegation from a human.
    Initiator,
    /// Every hop from that human to the actor is a recorded delegation with scope and credential.
    Authority,
    /// The action names actor, credential, operation and resource.
    Context,
    /// A mutating action has at least one effect.
    Impact,
}

impl Link {
    /// The name used in `missing`.
    pub fn as_str(self) -> &'static str {
        match self {
            Link::Initiator => "initiator",
            Link::Authority => "authority",
            Link::Context => "context",
            Link::Impact => "impact",
        }
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The completeness of one action's chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completeness {
    /// The action.
    pub action: EventKey,
    /// The links it misses, in DESIGN order.
    pub missing: BTreeSet<Link>,
}

/// A delegation hop as shown in a trace.
#[derive(Clone, Debug, PartialEq)]
pub struct Hop {
    /// The delegation event.
    pub event: EventKey,
    /// Who delegated.
    pub from: Principal,
    /// Who received.
    pub to: Principal,
    /// How.
    pub via: String,
    /// The credential issued.
    pub credential: Option<String>,
    /// Its scope.
    pub scope: Option<Scope>,
}

/// The chain around an event or a credential.
#[derive(Clone, Debug)]
pub struct Trace {
    /// What the trace started from (`source#id` or `credential ID`).
    pub start: String,
    /// Every event in the trace, by log index.
    pub events: BTreeMap<u64, StoredEvent>,
    /// Edges, sorted.
    pub edges: Vec<Edge>,
    /// Links with several candidates.
    pub ambiguities: Vec<Ambiguity>,
    /// References that name nothing stored.
    pub dangling: Vec<Dangling>,
    /// Per action, what its chain misses.
    pub actions: Vec<Completeness>,
    /// True when the walk stopped at `max_events`.
    pub truncated: bool,
}

enum Resolution {
    One(Box<StoredEvent>),
    Many(Vec<EventKey>),
    Missing,
}

struct Walker<'s> {
    store: &'s dyn Store,
    config: &'s LinkConfig,
    events: BTreeMap<u64, StoredEvent>,
    by_key: HashMap<EventKey, u64>,
    edges: BTreeSet<Edge>,
    ambiguities: Vec<Ambiguity>,
    dangling: Vec<Dangling>,
    truncated: bool,
    expanded_up: BTreeSet<u64>,
    expanded_down: BTreeSet<u64>,
}

impl<'s> Walker<'s> {
    fn new(store: &'s dyn Store, config: &'s LinkConfig) -> Self {
        Walker {
            store,
            config,
            events: BTreeMap::new(),
            by_key: HashMap::new(),
            edges: BTreeSet::new(),
            ambiguities: Vec::new(),
            dangling: Vec::new(),
            truncated: false,
            expanded_up: BTreeSet::new(),
            expanded_down: BTreeSet::new(),
        }
    }

    /// Adds an event; true when it is new.
    fn add(&mut self, event: &StoredEvent) -> bool {
        if self.by_key.contains_key(event.key()) {
            return false;
        }
        if self.events.len() >= self.config.max_events {
            self.truncated = true;
            return false;
        }
        self.by_key.insert(event.key().clone(), event.index);
        self.events.insert(event.index, event.clone());
        true
    }

    fn resolve(&self, r: &EventRef, referrer_source: &str) -> Result<Resolution, StoreError> {
        if let Some(source) = &r.source {
            return Ok(match self.store.get(&EventKey::new(source, &r.id))? {
                Some(e) => Resolution::One(Box::new(e)),
                None => Resolution::Missing,
            });
        }
        if let Some(e) = self.store.get(&EventKey::new(referrer_source, &r.id))? {
            return Ok(Resolution::One(Box::new(e)));
        }
        let mut found = self.store.lookup(Lookup::Id(&r.id))?;
        Ok(match found.len() {
            0 => Resolution::Missing,
            1 => match found.pop() {
                Some(e) => Resolution::One(Box::new(e)),
                None => Resolution::Missing,
            },
            _ => Resolution::Many(found.into_iter().map(|e| e.event.key).collect()),
        })
    }

    fn note_ambiguity(&mut self, event: &EventKey, link: &str, candidates: Vec<EventKey>) {
        if !self
            .ambiguities
            .iter()
            .any(|a| &a.event == event && a.link == link)
        {
            self.ambiguities.push(Ambiguity {
                event: event.clone(),
                link: link.to_owned(),
                candidates,
            });
        }
    }

    fn note_dangling(&mut self, event: &EventKey, field: &str, target: String) {
        let d = Dangling {
            event: event.clone(),
            field: field.to_owned(),
            target,
        };
        if !self.dangling.contains(&d) {
            self.dangling.push(d);
        }
    }

    /// Whether the event's own fields name an upward link (resolvable or not).
    fn has_explicit_up(event: &StoredEvent) -> bool {
        let e = &event.event;
        matches!(e.event_type(), EventType::Approval | EventType::Revocation)
            || !e
                .references()
                .iter()
                .all(|(kind, _)| *kind == RefKind::Approves)
            || matches!(e.event_type(), EventType::Action) && e.credential_id().is_some()
            || e.parent_credential().is_some()
    }

    /// The events this one follows from, with the edge kind.
    fn up(&mut self, node: &StoredEvent) -> Result<Vec<(StoredEvent, EdgeKind)>, StoreError> {
        let mut out = Vec::new();
        let e = &node.event;
        for (kind, r) in e.references() {
            if kind == RefKind::Approves {
                continue; // an approval is upstream of what it approves, handled below
            }
            match self.resolve(r, &e.key.source)? {
                Resolution::One(target) => out.push((*target, EdgeKind::from_ref(kind))),
                Resolution::Many(c) => self.note_ambiguity(&e.key, kind.as_str(), c),
                Resolution::Missing => self.note_dangling(&e.key, kind.as_str(), r.to_string()),
            }
        }
        out.extend(
            self.approvals_of(node)?
                .into_iter()
                .map(|a| (a, EdgeKind::Approves)),
        );
        match &e.body {
            EventBody::Action(a) => {
                if let Some(cred) = &a.credential {
                    out.extend(self.issuers(&e.key, cred, EdgeKind::Credential)?);
                }
            }
            EventBody::Delegation(d) => {
                if let Some(parent) = &d.parent_credential {
                    out.extend(self.issuers(&e.key, parent, EdgeKind::ParentCredential)?);
                }
            }
            EventBody::Revocation(r) => {
                out.extend(self.issuers(&e.key, &r.credential, EdgeKind::Credential)?);
            }
            EventBody::Effect(eff) if eff.caused_by.is_none() => {
                let candidates = self.actions_before_effect(node)?;
                match candidates.len() {
                    0 => {}
                    1 => out.extend(candidates.into_iter().map(|a| (a, EdgeKind::SameResource))),
                    _ => {
                        let keys = candidates.into_iter().map(|c| c.event.key).collect();
                        self.note_ambiguity(&e.key, "same_resource", keys);
                    }
                }
            }
            _ => {}
        }
        if out.iter().all(|(_, k)| *k == EdgeKind::Approves) && !Self::has_explicit_up(node) {
            let same_resource_pending = matches!(&e.body, EventBody::Effect(eff) if eff.caused_by.is_none())
                && self.ambiguities.iter().any(|a| a.event == e.key);
            if !same_resource_pending {
                if let Some(pred) = self.chain_predecessor(node)? {
                    out.push((pred, EdgeKind::Chain));
                }
            }
        }
        Ok(out)
    }

    /// The events that issued `credential`, as parents of `event` by `kind`; none is a
    /// dangling reference.
    fn issuers(
        &mut self,
        event: &EventKey,
        credential: &str,
        kind: EdgeKind,
    ) -> Result<Vec<(StoredEvent, EdgeKind)>, StoreError> {
        let issuers = self.store.lookup(Lookup::Issued(credential))?;
        if issuers.is_empty() {
            self.note_dangling(event, kind.as_str(), credential.to_owned());
        }
        Ok(issuers.into_iter().map(|i| (i, kind)).collect())
    }

    /// Approvals whose `approves` resolves to this event.
    fn approvals_of(&self, node: &StoredEvent) -> Result<Vec<StoredEvent>, StoreError> {
        let mut out = Vec::new();
        for referrer in self.store.lookup(Lookup::ReferencesId(&node.key().id))? {
            if let EventBody::Approval(a) = &referrer.event.body {
                if let Resolution::One(t) = self.resolve(&a.approves, &referrer.key().source)? {
                    if t.key() == node.key() {
                        out.push(referrer);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Actions on the effect's resource within the window before it.
    fn actions_before_effect(&self, effect: &StoredEvent) -> Result<Vec<StoredEvent>, StoreError> {
        let Some(resource) = effect.event.resource() else {
            return Ok(Vec::new());
        };
        let t = effect.event.time.unix_nanos();
        let window = i128::from(self.config.inference_window_secs) * 1_000_000_000;
        Ok(self
            .store
            .lookup(Lookup::Resource(resource))?
            .into_iter()
            .filter(|c| c.event.event_type() == EventType::Action)
            .filter(|c| {
                let ct = c.event.time.unix_nanos();
                ct <= t && t - ct <= window
            })
            .collect())
    }

    /// For an event nothing else links: the latest earlier event sharing its `chain` id.
    fn chain_predecessor(&self, node: &StoredEvent) -> Result<Option<StoredEvent>, StoreError> {
        let Some(chain) = &node.event.chain else {
            return Ok(None);
        };
        let order = |e: &StoredEvent| (e.event.time, e.index);
        let me = order(node);
        Ok(self
            .store
            .lookup(Lookup::Chain(chain))?
            .into_iter()
            .filter(|c| order(c) < me)
            .max_by_key(order))
    }

    /// The events that follow from this one.
    fn down(&mut self, node: &StoredEvent) -> Result<Vec<(StoredEvent, EdgeKind)>, StoreError> {
        let mut out = Vec::new();
        let e = &node.event;
        for referrer in self.store.lookup(Lookup::ReferencesId(&e.key.id))? {
            if referrer.key() == node.key() {
                continue;
            }
            let mut kinds = Vec::new();
            for (kind, r) in referrer.event.references() {
                if kind == RefKind::Approves {
                    continue;
                }
                if r.id != e.key.id {
                    continue;
                }
                if let Resolution::One(t) = self.resolve(r, &referrer.key().source)? {
                    if t.key() == node.key() {
                        kinds.push(EdgeKind::from_ref(kind));
                    }
                }
            }
            for kind in kinds {
                out.push((referrer.clone(), kind));
            }
        }
        if let EventBody::Approval(a) = &e.body {
            if let Resolution::One(t) = self.resolve(&a.approves, &e.key.source)? {
                out.push((*t, EdgeKind::Approves));
            }
        }
        let issued = match &e.body {
            EventBody::Delegation(d) => d.credential.as_ref().map(|c| c.id.clone()),
            EventBody::SecretAccess(s) => s.credential.clone(),
            _ => None,
        };
        if let Some(cred) = issued {
            out.extend(
                self.store
                    .lookup(Lookup::Used(&cred))?
                    .into_iter()
                    .map(|a| (a, EdgeKind::Credential)),
            );
            out.extend(
                self.store
                    .lookup(Lookup::DerivedFrom(&cred))?
                    .into_iter()
                    .map(|d| (d, EdgeKind::ParentCredential)),
            );
            out.extend(
                self.store
                    .lookup(Lookup::Revoked(&cred))?
                    .into_iter()
                    .map(|r| (r, EdgeKind::Credential)),
            );
        }
        if let EventBody::Action(a) = &e.body {
            let t = e.time.unix_nanos();
            let window = i128::from(self.config.inference_window_secs) * 1_000_000_000;
            for effect in self.store.lookup(Lookup::Resource(&a.resource))? {
                let EventBody::Effect(eff) = &effect.event.body else {
                    continue;
                };
                let et = effect.event.time.unix_nanos();
                if eff.caused_by.is_some() || et < t || et - t > window {
                    continue;
                }
                let candidates = self.actions_before_effect(&effect)?;
                if candidates.len() == 1 && candidates.iter().all(|c| c.key() == node.key()) {
                    out.push((effect, EdgeKind::SameResource));
                } else if candidates.len() > 1 {
                    let keys = candidates.into_iter().map(|c| c.event.key).collect();
                    self.note_ambiguity(&effect.event.key, "same_resource", keys);
                }
            }
        }
        if let Some(chain) = &e.chain {
            let me = (e.time, node.index);
            for other in self.store.lookup(Lookup::Chain(chain))? {
                if (other.event.time, other.index) <= me || Self::has_explicit_up(&other) {
                    continue;
                }
                if matches!(&other.event.body, EventBody::Effect(eff) if eff.caused_by.is_none())
                    && !self.actions_before_effect(&other)?.is_empty()
                {
                    continue; // linked (or ambiguous) by resource, not by chain
                }
                if self
                    .chain_predecessor(&other)?
                    .is_some_and(|p| p.key() == node.key())
                {
                    out.push((other, EdgeKind::Chain));
                }
            }
        }
        Ok(out)
    }

    fn walk_up(&mut self, start: &StoredEvent) -> Result<(), StoreError> {
        self.add(start);
        let mut stack = vec![start.clone()];
        while let Some(node) = stack.pop() {
            if !self.expanded_up.insert(node.index) {
                continue;
            }
            for (parent, kind) in self.up(&node)? {
                self.edges.insert(Edge {
                    from: parent.key().clone(),
                    to: node.key().clone(),
                    kind,
                });
                if self.add(&parent) || !self.expanded_up.contains(&parent.index) {
                    stack.push(parent);
                }
            }
            if self.truncated {
                break;
            }
        }
        Ok(())
    }

    fn walk_down(&mut self, start: &StoredEvent) -> Result<(), StoreError> {
        self.add(start);
        let mut stack = vec![start.clone()];
        while let Some(node) = stack.pop() {
            if !self.expanded_down.insert(node.index) {
                continue;
            }
            for (child, kind) in self.down(&node)? {
                self.edges.insert(Edge {
                    from: node.key().clone(),
                    to: child.key().clone(),
                    kind,
                });
                if self.add(&child) || !self.expanded_down.contains(&child.index) {
                    stack.push(child);
                }
            }
            if self.truncated {
                break;
            }
        }
        Ok(())
    }

    /// Completes the picture for events reached going down: what a descendant follows from
    /// besides the start (its approvals, its credential's issuer) belongs to the chain too.
    /// The effects of actions reached on the way up (an action above the start, such as
    /// the one that created the credential the start used): without them such an action
    /// would be judged as missing its impact when its impact is recorded. Only effects are
    /// added, not what else follows from those actions.
    fn effects_of_ancestors(&mut self) -> Result<(), StoreError> {
        let ancestors: Vec<StoredEvent> = self
            .events
            .values()
            .filter(|e| {
                matches!(e.event.body, EventBody::Action(_))
                    && !self.expanded_down.contains(&e.index)
            })
            .cloned()
            .collect();
        for action in ancestors {
            for (child, kind) in self.down(&action)? {
                if matches!(child.event.body, EventBody::Effect(_)) {
                    self.edges.insert(Edge {
                        from: action.key().clone(),
                        to: child.key().clone(),
                        kind,
                    });
                    self.add(&child);
                }
            }
        }
        Ok(())
    }

    fn close_upward(&mut self) -> Result<(), StoreError> {
        let nodes: Vec<StoredEvent> = self.events.values().cloned().collect();
        for node in nodes {
            self.walk_up(&node)?;
        }
        Ok(())
    }

    fn finish(self, start: String) -> Trace {
        let mut trace = Trace {
            start,
            events: self.events,
            edges: self.edges.into_iter().collect(),
            ambiguities: self.ambiguities,
            dangling: self.dangling,
            actions: Vec::new(),
            truncated: self.truncated,
        };
        trace.actions = trace.judge();
        trace
    }
}

impl Trace {
    /// The chain of one event: up to its initiators, down to its effects.
    pub fn of_event(
        store: &dyn Store,
        name: &str,
        config: &LinkConfig,
    ) -> Result<Trace, TraceError> {
        let start = find_event(store, name)?;
        let mut w = Walker::new(store, config);
        w.walk_down(&start)?;
        w.close_upward()?;
        w.effects_of_ancestors()?;
        Ok(w.finish(start.key().to_string()))
    }

    /// The chain of a credential: the hops from the humans to its issuance, every action
    /// that used it, and their effects.
    pub fn of_credential(
        store: &dyn Store,
        id: &str,
        config: &LinkConfig,
    ) -> Result<Trace, TraceError> {
        let issuers = store.lookup(Lookup::Issued(id))?;
        let users = store.lookup(Lookup::Used(id))?;
        if issuers.is_empty() && users.is_empty() {
            return Err(TraceError::UnknownCredential(id.to_owned()));
        }
        let mut w = Walker::new(store, config);
        for issuer in &issuers {
            w.add(issuer);
        }
        for user in &users {
            w.add(user);
            // Only the action's effects: not what other events follow from it.
            for (child, kind) in w.down(user)? {
                if matches!(child.event.body, EventBody::Effect(_)) {
                    w.edges.insert(Edge {
                        from: user.key().clone(),
                        to: child.key().clone(),
                        kind,
                    });
                    w.add(&child);
                }
            }
        }
        w.close_upward()?;
        Ok(w.finish(format!("credential {id}")))
    }

    /// The stored event with this key, if it is in the trace.
    pub fn event(&self, key: &EventKey) -> Option<&StoredEvent> {
        self.events.values().find(|e| e.key() == key)
    }

    fn parents_of<'a>(&'a self, key: &'a EventKey) -> impl Iterator<Item = &'a Edge> + 'a {
        self.edges.iter().filter(move |e| &e.to == key)
    }

    fn children_of<'a>(&'a self, key: &'a EventKey) -> impl Iterator<Item = &'a Edge> + 'a {
        self.edges.iter().filter(move |e| &e.from == key)
    }

    /// The union of what the actions' chains miss (an event trace without any action
    /// misses `context`).
    pub fn missing(&self) -> BTreeSet<Link> {
        let mut missing: BTreeSet<Link> = self
            .actions
            .iter()
            .flat_map(|a| a.missing.iter().copied())
            .collect();
        if self.actions.is_empty() {
            missing.insert(Link::Context);
            if self.human_initiators().is_empty() {
                missing.insert(Link::Initiator);
            }
        }
        missing
    }

    /// Whether all four links hold for every action in the trace.
    pub fn complete(&self) -> bool {
        self.missing().is_empty()
    }

    /// The humans whose request or delegation starts the chain.
    pub fn human_initiators(&self) -> Vec<Principal> {
        self.initiators()
            .into_iter()
            .filter(|p| p.kind == PrincipalKind::Human)
            .collect()
    }

    /// The principals at the top of the chain: request initiators, and the delegators of
    /// delegations nothing recorded precedes. Humans first.
    pub fn initiators(&self) -> Vec<Principal> {
        let mut found: Vec<Principal> = Vec::new();
        let mut push = |p: &Principal| {
            if !found.iter().any(|f| f.id == p.id) {
                found.push(p.clone());
            }
        };
        for e in self.events.values() {
            match &e.event.body {
                EventBody::Request(r) => push(&r.initiator),
                EventBody::Delegation(d)
                    if d.from.is_human()
                        || !self
                            .parents_of(e.key())
                            .any(|edge| edge.kind != EdgeKind::Approves) =>
                {
                    push(&d.from)
                }
                _ => {}
            }
        }
        found.sort_by_key(|p| p.kind != PrincipalKind::Human);
        found
    }

    /// The delegation hops, in time order.
    pub fn hops(&self) -> Vec<Hop> {
        let mut hops: Vec<(&StoredEvent, Hop)> = self
            .events
            .values()
            .filter_map(|e| match &e.event.body {
                EventBody::Delegation(d) => Some((
                    e,
                    Hop {
                        event: e.key().clone(),
                        from: d.from.clone(),
                        to: d.to.clone(),
                        via: serde_json::to_value(d.via)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default(),
                        credential: d.credential.as_ref().map(|c| c.id.clone()),
                        scope: d.scope.clone(),
                    },
                )),
                _ => None,
            })
            .collect();
        hops.sort_by_key(|(e, _)| (e.event.time, e.index));
        hops.into_iter().map(|(_, h)| h).collect()
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

    fn ancestors(&self, key: &EventKey) -> Vec<&StoredEvent> {
        let mut seen: BTreeSet<&EventKey> = BTreeSet::new();
        let mut stack = vec![key];
        let mut out = Vec::new();
        while let Some(k) = stack.pop() {
            for edge in self.parents_of(k) {
                if seen.insert(&edge.from) {
                    if let Some(e) = self.event(&edge.from) {
                        out.push(e);
                    }
                    stack.push(&edge.from);
                }
            }
        }
        out
    }

    /// DESIGN §4: the four links, for every action in the trace.
    fn judge(&self) -> Vec<Completeness> {
        self.of_type(EventType::Action)
            .into_iter()
            .filter_map(|action| {
                let EventBody::Action(a) = &action.event.body else {
                    return None;
                };
                let mut missing = BTreeSet::new();
                let ancestors = self.ancestors(action.key());
                let human_above = ancestors.iter().any(|e| match &e.event.body {
                    EventBody::Request(r) => r.initiator.is_human(),
                    EventBody::Delegation(d) => d.from.is_human(),
                    _ => false,
                }) || a.actor.is_human();
                if !human_above {
                    missing.insert(Link::Initiator);
                }
                if !self.authority_holds(action, a.credential.as_deref(), &a.actor) {
                    missing.insert(Link::Authority);
                }
                let named = |s: &str| !s.trim().is_empty();
                if !(named(&a.actor.id)
                    && a.credential.as_deref().is_some_and(named)
                    && named(&a.operation)
                    && named(&a.resource))
                {
                    missing.insert(Link::Context);
                }
                let ran = !matches!(a.outcome, Some(Outcome::Failure | Outcome::Denied));
                if a.is_mutating()
                    && ran
                    && !self.children_of(action.key()).any(|edge| {
                        self.event(&edge.to)
                            .is_some_and(|e| e.event.event_type() == EventType::Effect)
                    })
                {
                    missing.insert(Link::Impact);
                }
                Some(Completeness {
                    action: action.key().clone(),
                    missing,
                })
            })
            .collect()
    }

    /// Follows the credential from the action up through `parent_credential` to a
    /// delegation from a human; every delegation on the way needs a credential and a scope.
    fn authority_holds(
        &self,
        action: &StoredEvent,
        credential: Option<&str>,
        actor: &Principal,
    ) -> bool {
        if actor.is_human() && credential.is_none() {
            return true;
        }
        let mut current: Vec<&StoredEvent> = self
            .parents_of(action.key())
            .filter(|e| e.kind == EdgeKind::Credential)
            .filter_map(|e| self.event(&e.from))
            .collect();
        let mut steps = 0usize;
        while !current.is_empty() && steps <= self.events.len() {
            steps += 1;
            let mut next = Vec::new();
            for issuer in current {
                let EventBody::Delegation(d) = &issuer.event.body else {
                    continue; // a secret access is not a delegation with a scope
                };
                if d.credential.is_none() || d.scope.is_none() {
                    continue;
                }
                if d.from.is_human() {
                    return true;
                }
                next.extend(
                    self.parents_of(issuer.key())
                        .filter(|e| e.kind == EdgeKind::ParentCredential)
                        .filter_map(|e| self.event(&e.from)),
                );
            }
            current = next;
        }
        false
    }

    /// The §10 JSON shape (fields may be added, never renamed or removed).
    pub fn to_json(&self) -> Value {
        let name = |k: &EventKey| Value::String(k.to_string());
        let missing: Vec<&str> = self.missing().iter().map(|l| l.as_str()).collect();
        json!({
            "event": self.start,
            "complete": self.complete(),
            "missing": missing,
            "initiators": self.initiators(),
            "hops": self.hops().iter().map(|h| json!({
                "event": name(&h.event),
                "from": h.from,
                "to": h.to,
                "via": h.via,
                "credential": h.credential,
                "scope": h.scope,
            })).collect::<Vec<_>>(),
            "actions": self.of_type(EventType::Action).iter().map(|e| name(e.key())).collect::<Vec<_>>(),
            "effects": self.of_type(EventType::Effect).iter().map(|e| name(e.key())).collect::<Vec<_>>(),
            "edges": self.edges.iter().map(|e| json!({
                "from": name(&e.from),
                "to": name(&e.to),
                "kind": e.kind.as_str(),
                "inferred": e.inferred(),
            })).collect::<Vec<_>>(),
            "chains": self.actions.iter().map(|c| json!({
                "action": name(&c.action),
                "complete": c.missing.is_empty(),
                "missing": c.missing.iter().map(|l| l.as_str()).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "ambiguous": self.ambiguities.iter().map(|a| json!({
                "event": name(&a.event),
                "link": a.link,
                "candidates": a.candidates.iter().map(name).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "dangling": self.dangling.iter().map(|d| json!({
                "event": name(&d.event),
                "field": d.field,
                "target": d.target,
            })).collect::<Vec<_>>(),
            "events": self.events.values().map(|e| json!({
                "event": name(e.key()),
                "index": e.index,
                "type": e.event.event_type().as_str(),
                "time": e.event.time.to_string(),
            })).collect::<Vec<_>>(),
            "truncated": self.truncated,
        })
    }
}

/// Finds an event by `source#id`, or by a bare id that names exactly one event.
pub fn find_event(store: &dyn Store, name: &str) -> Result<StoredEvent, TraceError> {
    if let Some(key) = EventKey::parse(name) {
        if let Some(e) = store.get(&key)? {
            return Ok(e);
        }
    }
    let mut found = store.lookup(Lookup::Id(name))?;
    match found.len() {
        0 => Err(TraceError::UnknownEvent(name.to_owned())),
        1 => found
            .pop()
            .ok_or_else(|| TraceError::UnknownEvent(name.to_owned())),
        _ => Err(TraceError::AmbiguousEvent {
            id: name.to_owned(),
            candidates: found.iter().map(|e| e.key().to_string()).collect(),
        }),
    }
}
