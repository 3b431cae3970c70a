//! One in-memory index of the whole log, built from a single `Store::scan`, with the linking
//! rules of DESIGN §4 (the same semantics as `custody-chain`'s `Trace`, computed once for
//! every event instead of one trace per action).

use std::collections::HashMap as StdHashMap;
use std::hash::{BuildHasherDefault, Hasher};

use custody_model::{Event, EventBody, EventKey, EventRef, EventType, RefKind};
use custody_store::{Store, StoreError};

/// FxHash (rustc's hasher): the index hashes millions of short strings, where SipHash's
/// DoS resistance buys nothing (the input is the operator's own log).
#[derive(Default, Clone, Copy)]
pub(crate) struct Fx(u64);

impl Hasher for Fx {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(*b)).wrapping_mul(K);
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write(&[i]);
    }
    fn write_usize(&mut self, i: usize) {
        self.write(&i.to_le_bytes());
    }
}

pub(crate) type HashMap<K, V> = StdHashMap<K, V, BuildHasherDefault<Fx>>;

/// What an edge stands for (as `custody_chain::EdgeKind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Edge {
    Explicit,
    Credential,
    ParentCredential,
    Chain,
    SameResource,
}

/// A link with two or more candidates (no edge is drawn).
#[derive(Clone, Debug)]
pub(crate) struct Ambiguity {
    pub event: usize,
    pub candidates: Vec<usize>,
}

/// A stored event and its log index.
pub(crate) struct Node {
    pub index: u64,
    /// Boxed: nodes move while the log is loaded, and an `Event` is large.
    pub event: Box<Event>,
}

enum Resolution {
    One(usize),
    Many(Vec<usize>),
    Missing,
}

/// The whole log, indexed for the rules.
#[derive(Default)]
pub(crate) struct Index {
    pub nodes: Vec<Node>,
    pub by_key: HashMap<EventKey, usize>,
    pub by_id: HashMap<String, Vec<usize>>,
    /// credential id → delegations and secret accesses that issued it
    pub issued: HashMap<String, Vec<usize>>,
    /// credential id → actions that presented it, in (time, index) order
    pub used: HashMap<String, Vec<usize>>,
    /// credential id → revocations
    pub revoked: HashMap<String, Vec<usize>>,
    /// chain id → events, in (time, index) order
    pub by_chain: HashMap<String, Vec<usize>>,
    /// resource → actions on it
    pub actions_on: HashMap<String, Vec<usize>>,
    /// per node: the events it follows from
    pub up: Vec<Vec<(usize, Edge)>>,
    /// per node: the events that follow from it
    pub down: Vec<Vec<(usize, Edge)>>,
    /// approved event → approvals that name it
    pub approvals_of: HashMap<usize, Vec<usize>>,
    pub ambiguities: Vec<Ambiguity>,
}

fn parse(index: u64, bytes: &[u8]) -> Result<Event, StoreError> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
            index,
            reason: e.to_string(),
        })?;
    let mut event = Event::from_value(&value).map_err(|e| StoreError::Corrupt {
        index,
        reason: e.to_string(),
    })?;
    // No rule reads free-form attributes: free them now, so the memory is reused while the
    // log loads instead of held until the end.
    event.attributes = None;
    Ok(event)
}

/// Reads the log once: this thread scans, worker threads parse (`Event::from_value`) batches
/// as they arrive. Nodes come back in log order.
fn load(store: &dyn Store) -> Result<Vec<Node>, StoreError> {
    const BATCH: usize = 1024;
    /// Raw events back to back in one buffer: (log index, end offset) each.
    #[derive(Default)]
    struct Batch {
        bytes: Vec<u8>,
        items: Vec<(u64, usize)>,
    }
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let (tx, rx) = crossbeam_channel::bounded::<Batch>(threads * 16);
    let broken = || StoreError::Backend("a parsing thread failed".into());
    let size = usize::try_from(store.size()?).unwrap_or(0);
    let (scanned, parts) = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let rx = rx.clone();
                s.spawn(move || -> Result<Vec<Node>, StoreError> {
                    let mut out = Vec::with_capacity(size / threads + BATCH);
                    for batch in rx {
                        let mut start = 0;
                        for (index, end) in batch.items {
                            let bytes = batch.bytes.get(start..end).unwrap_or_default();
                            start = end;
                            out.push(Node {
                                index,
                                event: Box::new(parse(index, bytes)?),
                            });
                        }
                    }
                    Ok(out)
                })
            })
            .collect();
        drop(rx);
        let fresh = || Batch {
            bytes: Vec::with_capacity(BATCH * 512),
            items: Vec::with_capacity(BATCH),
        };
        let mut batch = fresh();
        let scanned = store.scan(0, &mut |index, bytes, _| {
            batch.bytes.extend_from_slice(bytes);
            batch.items.push((index, batch.bytes.len()));
            if batch.items.len() >= BATCH {
                tx.send(std::mem::replace(&mut batch, fresh()))
                    .map_err(|_| broken())?;
            }
            Ok(())
        });
        let last = if batch.items.is_empty() {
            Ok(())
        } else {
            tx.send(batch).map_err(|_| broken())
        };
        drop(tx);
        let parts: Vec<Result<Vec<Node>, StoreError>> = workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|_| Err(broken())))
            .collect();
        (scanned.and(last), parts)
    });
    let mut nodes = Vec::with_capacity(size);
    for part in parts {
        nodes.extend(part?);
    }
    scanned?;
    nodes.sort_unstable_by_key(|n| n.index);
    Ok(nodes)
}

impl Index {
    /// Reads the whole log once and links it.
    pub fn build(store: &dyn Store, window_secs: i64) -> Result<Index, StoreError> {
        let nodes = load(store)?;
        Ok(Index::from_nodes(nodes, window_secs))
    }

    pub(crate) fn from_nodes(nodes: Vec<Node>, window_secs: i64) -> Index {
        let mut ix = Index {
            nodes,
            ..Index::default()
        };
        // Bare ids are resolved through `by_id` only when the referrer's source has no such
        // event, so only ids that some bare reference names need an entry.
        let bare: std::collections::HashSet<&str, BuildHasherDefault<Fx>> = ix
            .nodes
            .iter()
            .flat_map(|n| n.event.references())
            .filter(|(_, r)| r.source.is_none())
            .map(|(_, r)| r.id.as_str())
            .collect();
        let mut by_id: HashMap<String, Vec<usize>> = HashMap::default();
        for (i, node) in ix.nodes.iter().enumerate() {
            let e = &node.event;
            ix.by_key.insert(e.key.clone(), i);
            if bare.contains(e.key.id.as_str()) {
                by_id.entry(e.key.id.clone()).or_default().push(i);
            }
            if let Some(chain) = &e.chain {
                ix.by_chain.entry(chain.clone()).or_default().push(i);
            }
            match &e.body {
                EventBody::Delegation(d) => {
                    if let Some(c) = &d.credential {
                        ix.issued.entry(c.id.clone()).or_default().push(i);
                    }
                }
                EventBody::SecretAccess(s) => {
                    if let Some(c) = &s.credential {
                        ix.issued.entry(c.clone()).or_default().push(i);
                    }
                }
                EventBody::Action(a) => {
                    if let Some(c) = &a.credential {
                        ix.used.entry(c.clone()).or_default().push(i);
                    }
                    ix.actions_on.entry(a.resource.clone()).or_default().push(i);
                }
                EventBody::Revocation(r) => {
                    ix.revoked.entry(r.credential.clone()).or_default().push(i);
                }
                _ => {}
            }
        }
        drop(bare);
        ix.by_id = by_id;
        let nodes = &ix.nodes;
        let order = |i: &usize| nodes.get(*i).map(|n| (n.event.time, n.index));
        for list in ix.by_chain.values_mut() {
            list.sort_by_key(order);
        }
        for list in ix.used.values_mut() {
            list.sort_by_key(order);
        }
        for list in ix.actions_on.values_mut() {
            list.sort_by_key(order);
        }
        ix.link(window_secs);
        ix
    }

    pub fn event(&self, i: usize) -> Option<&Event> {
        self.nodes.get(i).map(|n| &*n.event)
    }

    pub fn key(&self, i: usize) -> Option<&EventKey> {
        self.event(i).map(|e| &e.key)
    }

    fn resolve(&self, r: &EventRef, referrer_source: &str) -> Resolution {
        if let Some(source) = &r.source {
            return match self.by_key.get(&EventKey::new(source, &r.id)) {
                Some(i) => Resolution::One(*i),
                None => Resolution::Missing,
            };
        }
        if let Some(i) = self.by_key.get(&EventKey::new(referrer_source, &r.id)) {
            return Resolution::One(*i);
        }
        match self.by_id.get(&r.id).map(Vec::as_slice) {
            None | Some([]) => Resolution::Missing,
            Some([one]) => Resolution::One(*one),
            Some(many) => Resolution::Many(many.to_vec()),
        }
    }

    /// Whether the event's own fields name an upward link (as in `custody-chain`).
    fn has_explicit_up(e: &Event) -> bool {
        matches!(e.event_type(), EventType::Approval | EventType::Revocation)
            || e.references().iter().any(|(k, _)| *k != RefKind::Approves)
            || (e.event_type() == EventType::Action && e.credential_id().is_some())
            || e.parent_credential().is_some()
    }

    /// Actions on the effect's resource within the window before it.
    fn actions_before(&self, effect: &Event, window_secs: i64) -> Vec<usize> {
        let Some(resource) = effect.resource() else {
            return Vec::new();
        };
        let t = effect.time.unix_nanos();
        let window = i128::from(window_secs) * 1_000_000_000;
        let Some(list) = self.actions_on.get(resource) else {
            return Vec::new();
        };
        // `list` is in time order: the window is one slice of it.
        let time = |j: &usize| self.event(*j).map(|ev| ev.time.unix_nanos());
        let from = list.partition_point(|j| time(j).is_some_and(|at| at < t - window));
        let to = list.partition_point(|j| time(j).is_some_and(|at| at <= t));
        list.get(from..to)
            .map(<[usize]>::to_vec)
            .unwrap_or_default()
    }

    fn chain_predecessor(&self, i: usize) -> Option<usize> {
        let node = self.nodes.get(i)?;
        let list = self.by_chain.get(node.event.chain.as_ref()?)?;
        let me = (node.event.time, node.index);
        let pos = list.partition_point(|j| {
            self.nodes
                .get(*j)
                .is_some_and(|n| (n.event.time, n.index) < me)
        });
        pos.checked_sub(1).and_then(|p| list.get(p)).copied()
    }

    fn link(&mut self, window_secs: i64) {
        let n = self.nodes.len();
        let mut up: Vec<Vec<(usize, Edge)>> = vec![Vec::new(); n];
        let mut approvals_of: HashMap<usize, Vec<usize>> = HashMap::default();
        let mut ambiguities = Vec::new();
        for (i, slot) in up.iter_mut().enumerate() {
            let Some(node) = self.nodes.get(i) else {
                continue;
            };
            let e = &node.event;
            let mut out: Vec<(usize, Edge)> = Vec::new();
            let mut ambiguous = false;
            for (kind, r) in e.references() {
                match self.resolve(r, &e.key.source) {
                    Resolution::One(t) if kind == RefKind::Approves => {
                        approvals_of.entry(t).or_default().push(i)
                    }
                    Resolution::One(t) => out.push((t, Edge::Explicit)),
                    Resolution::Many(c) => {
                        ambiguous = true;
                        ambiguities.push(Ambiguity {
                            event: i,
                            candidates: c,
                        })
                    }
                    Resolution::Missing => {}
                }
            }
            let issuers =
                |cred: &str| -> Vec<usize> { self.issued.get(cred).cloned().unwrap_or_default() };
            match &e.body {
                EventBody::Action(a) => {
                    if let Some(c) = &a.credential {
                        out.extend(issuers(c).into_iter().map(|j| (j, Edge::Credential)));
                    }
                }
                EventBody::Delegation(d) => {
                    if let Some(p) = &d.parent_credential {
                        out.extend(issuers(p).into_iter().map(|j| (j, Edge::ParentCredential)));
                    }
                }
                EventBody::Revocation(r) => {
                    out.extend(
                        issuers(&r.credential)
                            .into_iter()
                            .map(|j| (j, Edge::Credential)),
                    );
                }
                EventBody::Effect(eff) if eff.caused_by.is_none() => {
                    let c = self.actions_before(e, window_secs);
                    match c.len() {
                        0 => {}
                        1 => out.extend(c.into_iter().map(|j| (j, Edge::SameResource))),
                        _ => {
                            ambiguous = true;
                            ambiguities.push(Ambiguity {
                                event: i,
                                candidates: c,
                            });
                        }
                    }
                }
                _ => {}
            }
            if out.is_empty() && !ambiguous && !Self::has_explicit_up(e) {
                if let Some(p) = self.chain_predecessor(i) {
                    out.push((p, Edge::Chain));
                }
            }
            out.retain(|(j, _)| *j != i);
            out.sort();
            out.dedup();
            *slot = out;
        }
        let mut down: Vec<Vec<(usize, Edge)>> = vec![Vec::new(); n];
        for (i, edges) in up.iter().enumerate() {
            for (j, kind) in edges {
                if let Some(d) = down.get_mut(*j) {
                    d.push((i, *kind));
                }
            }
        }
        self.up = up;
        self.down = down;
        self.approvals_of = approvals_of;
        self.ambiguities = ambiguities;
    }

    /// Every event this one follows from, transitively (at most `cap`), excluding itself,
    /// in (time, index) order.
    pub fn ancestors(&self, i: usize, cap: usize) -> Vec<usize> {
        let mut seen: std::collections::HashSet<usize, BuildHasherDefault<Fx>> =
            std::collections::HashSet::default();
        seen.insert(i);
        let mut stack = vec![i];
        let mut out = Vec::new();
        while let Some(k) = stack.pop() {
            for (j, _) in self.up.get(k).map(Vec::as_slice).unwrap_or_default() {
                if seen.insert(*j) {
                    out.push(*j);
                    stack.push(*j);
                    if out.len() >= cap {
                        stack.clear();
                        break;
                    }
                }
            }
        }
        self.sort_by_time(&mut out);
        out
    }

    pub fn sort_by_time(&self, list: &mut [usize]) {
        list.sort_by_key(|j| self.nodes.get(*j).map(|n| (n.event.time, n.index)));
    }
}
