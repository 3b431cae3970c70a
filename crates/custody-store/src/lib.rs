//! The storage interface every Custody backend implements (DESIGN §9), and the conformance
//! suite they all pass (module [`testing`], behind the `testing` feature).
//!
//! A store keeps three things: the append-only log of events (each with its RFC 8785 bytes
//! and RFC 9162 leaf hash, in arrival order), the quarantine of rejected input, and the
//! signed checkpoints. Appends happen in batches; a batch is one transaction (group commit),
//! so an event reported accepted has been committed. Only store crates know SQL: this crate
//! defines types and the trait, nothing else.

use custody_merkle::Hash;
use custody_model::{Event, EventKey, EventType};

pub mod batch;
pub mod blocks;
pub mod ledger;
pub mod links;
#[cfg(feature = "testing")]
pub mod testing;

pub use ledger::{
    consistency_proof_in, inclusion_proof_in, ConsistencyProof, InclusionProof, Ledger,
    VerifyReport,
};

/// Where a line of input came from, for error messages and the quarantine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineOrigin {
    /// The file name as given (`-` for standard input).
    pub file: String,
    /// 1-based line number (or record number within a file).
    pub line: u64,
}

/// An event ready to store: parsed, redacted, canonicalized and hashed.
///
/// The leaf hash is computed from the canonical bytes when the event is made
/// ([`NewEvent::new`]), and neither can be changed afterwards: a store takes the pair as it
/// is, with no second hashing, and a wrong leaf (which an append-only log could never
/// repair) cannot reach it.
///
/// ```compile_fail
/// fn tamper(e: &mut custody_store::NewEvent) {
///     e.leaf_hash = [0; 32];
/// }
/// ```
#[derive(Clone, Debug)]
pub struct NewEvent {
    /// The typed event (parsed from `canonical`).
    pub event: Event,
    /// RFC 8785 canonical JSON of the redacted event: the Merkle leaf data.
    canonical: Vec<u8>,
    /// RFC 9162 leaf hash of `canonical`.
    leaf_hash: Hash,
    /// Where it came from, when it came from a file.
    pub origin: Option<LineOrigin>,
}

impl NewEvent {
    /// The event `event` whose canonical JSON is `canonical`, with its leaf hash.
    pub fn new(event: Event, canonical: Vec<u8>, origin: Option<LineOrigin>) -> NewEvent {
        let leaf_hash = custody_merkle::leaf_hash(&canonical);
        NewEvent {
            event,
            canonical,
            leaf_hash,
            origin,
        }
    }

    /// RFC 8785 canonical JSON of the redacted event: the Merkle leaf data.
    pub fn canonical(&self) -> &[u8] {
        &self.canonical
    }

    /// RFC 9162 leaf hash of [`NewEvent::canonical`].
    pub fn leaf_hash(&self) -> Hash {
        self.leaf_hash
    }
}

/// A new event as a store appends it: what a store needs of a [`NewEvent`] (its key, type,
/// link keys, canonical bytes and leaf hash), without the typed event.
///
/// Made only from a [`NewEvent`], so its leaf hash is still the hash of its bytes and its
/// link keys are those of its typed event. A bulk ingest turns each prepared event into one
/// on the thread that prepared it: the typed event (a few dozen small allocations, about a
/// kilobyte) is freed there at once and its memory reused for the next event, rather than
/// carried through the batch and freed on another thread after the commit, which cost the
/// preparing threads fresh, uncached memory for every event (2026-12-05: about a tenth of
/// their time).
#[derive(Clone, Debug)]
pub struct LeanEvent {
    key: EventKey,
    kind: EventType,
    /// Every link key of the typed event ([`links::keys_of`]; the same key may come twice).
    links: Vec<i64>,
    canonical: Vec<u8>,
    leaf_hash: Hash,
    /// Where it came from, when it came from a file.
    pub origin: Option<LineOrigin>,
}

impl LeanEvent {
    /// `source#id`.
    pub fn key(&self) -> &EventKey {
        &self.key
    }

    /// The event's type.
    pub fn event_type(&self) -> EventType {
        self.kind
    }

    /// Every link key of the event ([`links::keys_of`]).
    pub fn link_keys(&self) -> &[i64] {
        &self.links
    }

    /// The link key of the event's id (the first of [`LeanEvent::link_keys`]).
    pub fn id_key(&self) -> i64 {
        self.links
            .first()
            .copied()
            .unwrap_or_else(|| links::link_key(links::Tag::Id, &self.key.id))
    }

    /// RFC 8785 canonical JSON of the redacted event: the Merkle leaf data.
    pub fn canonical(&self) -> &[u8] {
        &self.canonical
    }

    /// RFC 9162 leaf hash of [`LeanEvent::canonical`].
    pub fn leaf_hash(&self) -> Hash {
        self.leaf_hash
    }
}

fn link_keys_of(event: &Event) -> Vec<i64> {
    let mut keys = Vec::with_capacity(8);
    links::keys_of(event, |k| keys.push(k));
    keys
}

impl From<NewEvent> for LeanEvent {
    fn from(e: NewEvent) -> LeanEvent {
        LeanEvent {
            kind: e.event.event_type(),
            links: link_keys_of(&e.event),
            key: e.event.key,
            canonical: e.canonical,
            leaf_hash: e.leaf_hash,
            origin: e.origin,
        }
    }
}

impl From<&NewEvent> for LeanEvent {
    fn from(e: &NewEvent) -> LeanEvent {
        LeanEvent {
            key: e.event.key.clone(),
            kind: e.event.event_type(),
            links: link_keys_of(&e.event),
            canonical: e.canonical.clone(),
            leaf_hash: e.leaf_hash,
            origin: e.origin.clone(),
        }
    }
}

/// An event as stored, with its position in the log.
#[derive(Clone, Debug)]
pub struct StoredEvent {
    /// 0-based position in the log (the Merkle leaf index).
    pub index: u64,
    /// The typed event.
    pub event: Event,
    /// The stored canonical bytes.
    pub canonical: Vec<u8>,
    /// The stored leaf hash.
    pub leaf_hash: Hash,
}

impl StoredEvent {
    /// `source#id`.
    pub fn key(&self) -> &EventKey {
        &self.event.key
    }
}

/// A line of input that was not stored, and why. `excerpt` is already redacted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// Where it came from.
    pub origin: LineOrigin,
    /// Why it was rejected (lowercase, no trailing period).
    pub reason: String,
    /// The start of the offending input, redacted, at most a few hundred bytes.
    pub excerpt: String,
}

/// What happened to one batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Events appended to the log.
    pub accepted: u64,
    /// Events already stored with the same content (counted, not stored again).
    pub duplicates: u64,
    /// Events whose `source#id` is stored with different content: quarantined, not stored.
    pub conflicts: Vec<Rejected>,
    /// Rejected lines written to the quarantine (conflicts included).
    pub quarantined: u64,
    /// The log's size after the batch.
    pub size: u64,
    /// The log's root after the batch.
    pub root: Hash,
}

/// A signed checkpoint as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// The tree size it commits to.
    pub size: u64,
    /// The root at that size.
    pub root: Hash,
    /// The whole signed note (C2SP signed-note text).
    pub note: String,
}

/// An index a store keeps for linking (DESIGN §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// Events with this `id`, in any source (bare-id resolution).
    Id(&'a str),
    /// Delegations and secret accesses that issued this credential id.
    Issued(&'a str),
    /// Actions that presented this credential id.
    Used(&'a str),
    /// Revocations of this credential id.
    Revoked(&'a str),
    /// Delegations whose `parent_credential` is this id.
    DerivedFrom(&'a str),
    /// Events sharing this `chain` id.
    Chain(&'a str),
    /// Actions and effects on this resource.
    Resource(&'a str),
    /// Events whose explicit references (`parents`, `caused_by`, `request`, `approves`)
    /// name this id, with or without a source; the caller resolves them.
    ReferencesId(&'a str),
    /// Events whose actor, initiator, delegator, delegate, approver or principal has this id.
    Principal(&'a str),
    /// Secret accesses to this secret path or name.
    Secret(&'a str),
}

/// A storage failure. Messages are lowercase and name the event or index concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend failed (I/O, SQL, locking).
    #[error("storage failed: {0}")]
    Backend(String),
    /// A stored row cannot be read back as an event: damage or tampering.
    #[error("stored event at index {index} is unreadable: {reason}")]
    Corrupt {
        /// The log index.
        index: u64,
        /// What is wrong.
        reason: String,
    },
    /// The store was created by a newer or unknown version.
    #[error("unsupported store schema: {0}")]
    Schema(String),
}

/// Result alias for store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// The storage interface. Implementations are append-only: nothing stored is ever updated
/// or deleted, and the backend itself refuses to do so.
pub trait Store: Send {
    /// Appends a batch atomically (one transaction) and writes `rejected` to the quarantine
    /// in the same transaction. Each event is appended, counted as a duplicate (same
    /// `source#id` and same canonical bytes, stored or earlier in the batch), or quarantined
    /// as a conflict (same `source#id`, other bytes). Returns the new size and root.
    fn append_batch(
        &mut self,
        events: &[NewEvent],
        rejected: &[Rejected],
    ) -> StoreResult<BatchOutcome> {
        let events: Vec<LeanEvent> = events.iter().map(LeanEvent::from).collect();
        self.append_lean(&events, rejected)
    }

    /// [`Store::append_batch`] of events already made lean ([`LeanEvent`]): what a bulk
    /// ingest calls.
    fn append_lean(
        &mut self,
        events: &[LeanEvent],
        rejected: &[Rejected],
    ) -> StoreResult<BatchOutcome>;

    /// The number of events in the log.
    fn size(&self) -> StoreResult<u64>;

    /// The current root (RFC 9162 MTH over every leaf; `SHA-256("")` when empty).
    fn root(&self) -> StoreResult<Hash>;

    /// The event at a log index.
    fn event_at(&self, index: u64) -> StoreResult<Option<StoredEvent>>;

    /// The event stored under `source#id`.
    fn get(&self, key: &EventKey) -> StoreResult<Option<StoredEvent>>;

    /// Events found through one of the linking indexes, in log order.
    fn lookup(&self, by: Lookup<'_>) -> StoreResult<Vec<StoredEvent>>;

    /// Leaf hashes for indexes `start..end`, in order.
    fn leaf_hashes(&self, start: u64, end: u64) -> StoreResult<Vec<Hash>>;

    /// Calls `f(index, canonical, stored_leaf_hash)` for every event from `start` on, in
    /// order, without parsing: the fast path for `verify`.
    #[allow(clippy::type_complexity, reason = "a plain callback reads best here")]
    fn scan(
        &self,
        start: u64,
        f: &mut dyn FnMut(u64, &[u8], &Hash) -> StoreResult<()>,
    ) -> StoreResult<()>;

    /// Records a signed checkpoint.
    fn add_checkpoint(&mut self, checkpoint: &StoredCheckpoint) -> StoreResult<()>;

    /// The checkpoint with the largest size, if any.
    fn latest_checkpoint(&self) -> StoreResult<Option<StoredCheckpoint>>;

    /// Every stored checkpoint, by size.
    fn checkpoints(&self) -> StoreResult<Vec<StoredCheckpoint>>;

    /// The quarantine, in the order lines were rejected.
    fn quarantine(&self) -> StoreResult<Vec<Rejected>>;

    /// Runs `f`, whose reads of this store should see one snapshot: a backend that has read
    /// transactions runs them all in one (SQLite: one lock round trip instead of one per
    /// lookup, which is most of a long walk's system time). The default just calls `f`.
    fn read_snapshot(&self, f: &mut dyn FnMut() -> StoreResult<()>) -> StoreResult<()> {
        f()
    }

    /// Housekeeping a backend can do from a handle other than the writer's, so the writer
    /// never stalls on it (SQLite: a passive WAL checkpoint, which copies committed pages
    /// into the database file without blocking writers). The default does nothing.
    fn maintain(&self) -> StoreResult<()> {
        Ok(())
    }

    /// Tells this handle, the writer's, that [`Store::maintain`] runs elsewhere, so it need
    /// not do that housekeeping inside its commits (SQLite: no automatic WAL checkpoint on
    /// commit). The default does nothing.
    fn defer_maintenance(&mut self) -> StoreResult<()> {
        Ok(())
    }
}
