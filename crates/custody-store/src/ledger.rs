//! The tamper-evident log over any [`Store`] (DESIGN §8): appends followed by a signed
//! checkpoint, full verification, and inclusion and consistency proofs.
//!
//! The ledger is backend-agnostic: it only calls the trait, so SQLite and PostgreSQL share
//! one implementation of what "verified" means. Key material is handed in by the caller;
//! nothing here reads files.

use custody_merkle::{
    consistency_proof, inclusion_proof, leaf_hash, Checkpoint, CompactRange, Hash, NoteSigner,
    NoteVerifier, UnverifiedCheckpoint,
};

use crate::{
    BatchOutcome, LeanEvent, NewEvent, Rejected, Store, StoreError, StoreResult, StoredCheckpoint,
};

/// The result of `verify`: whether every stored event, leaf hash and checkpoint agrees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// True when nothing is wrong.
    pub ok: bool,
    /// Events scanned.
    pub size: u64,
    /// The root recomputed from the stored events.
    pub root: Hash,
    /// The first log index that does not match, when one can be named.
    pub first_mismatch: Option<u64>,
    /// Signed checkpoints checked against the recomputed tree.
    pub checkpoints_checked: u64,
    /// What is wrong, one sentence each.
    pub problems: Vec<String>,
}

/// An inclusion proof for one event at one tree size (RFC 9162 §2.1.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InclusionProof {
    /// The leaf index.
    pub index: u64,
    /// The tree size the proof is for.
    pub size: u64,
    /// The root at that size.
    pub root: Hash,
    /// The leaf hash proven.
    pub leaf_hash: Hash,
    /// The audit path.
    pub proof: Vec<Hash>,
}

/// A consistency proof between two tree sizes (RFC 9162 §2.1.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsistencyProof {
    /// The older size.
    pub from: u64,
    /// The newer size.
    pub to: u64,
    /// The root at `from`.
    pub from_root: Hash,
    /// The root at `to`.
    pub to_root: Hash,
    /// The proof hashes.
    pub proof: Vec<Hash>,
}

fn b64(h: &Hash) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(h)
}

impl InclusionProof {
    /// The DESIGN §10 JSON shape (`custody proof --index`, `GET /v1/proofs/inclusion`), with
    /// the leaf's exact bytes (RFC 8785 JSON) so that a verifier can hash them itself.
    pub fn to_json(&self, leaf: Option<&[u8]>) -> serde_json::Value {
        serde_json::json!({
            "index": self.index,
            "size": self.size,
            "root": b64(&self.root),
            "leaf_hash": b64(&self.leaf_hash),
            "leaf_hash_hex": hex::encode(self.leaf_hash),
            "leaf": leaf.map(|l| String::from_utf8_lossy(l).into_owned()),
            "proof": self.proof.iter().map(b64).collect::<Vec<_>>(),
        })
    }

    /// The audit path, base64, one hash a line (`custody proof --index` as text).
    pub fn lines(&self) -> Vec<String> {
        self.proof.iter().map(b64).collect()
    }
}

impl ConsistencyProof {
    /// The DESIGN §10 JSON shape (`custody proof --from`, `GET /v1/proofs/consistency`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "from": self.from,
            "to": self.to,
            "from_root": b64(&self.from_root),
            "to_root": b64(&self.to_root),
            "proof": self.proof.iter().map(b64).collect::<Vec<_>>(),
        })
    }

    /// The proof, base64, one hash a line (`custody proof --from` as text).
    pub fn lines(&self) -> Vec<String> {
        self.proof.iter().map(b64).collect()
    }
}

/// A store with the deployment's signing key: the log as users see it.
pub struct Ledger {
    store: Box<dyn Store>,
    signer: NoteSigner,
    origin: String,
}

impl Ledger {
    /// A ledger over `store`, signing checkpoints for `origin` with `signer`.
    pub fn new(store: Box<dyn Store>, signer: NoteSigner, origin: impl Into<String>) -> Ledger {
        Ledger {
            store,
            signer,
            origin: origin.into(),
        }
    }

    /// See [`Store::defer_maintenance`]: the caller runs [`Store::maintain`] on another
    /// handle (the server does, so that no request waits on a WAL checkpoint).
    pub fn defer_maintenance(&mut self) -> StoreResult<()> {
        self.store.defer_maintenance()
    }

    /// The underlying store, for reads.
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// The log's origin line.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The verifier key (`name+hex+base64`) for this ledger's checkpoints.
    pub fn verifier_key(&self) -> String {
        self.signer.verifier().to_string()
    }

    /// Appends a batch (one transaction) and, when the log grew, signs a checkpoint of the
    /// new head, so every committed batch is covered by a signed statement.
    pub fn append(
        &mut self,
        events: &[NewEvent],
        rejected: &[Rejected],
    ) -> StoreResult<BatchOutcome> {
        let outcome = self.store.append_batch(events, rejected)?;
        self.signed(outcome)
    }

    /// [`Ledger::append`] of events already made lean ([`LeanEvent`]): a bulk ingest's
    /// batches.
    pub fn append_lean(
        &mut self,
        events: &[LeanEvent],
        rejected: &[Rejected],
    ) -> StoreResult<BatchOutcome> {
        let outcome = self.store.append_lean(events, rejected)?;
        self.signed(outcome)
    }

    /// `outcome`, after signing a checkpoint of the new head when the batch grew the log.
    fn signed(&mut self, outcome: BatchOutcome) -> StoreResult<BatchOutcome> {
        if outcome.accepted > 0 {
            self.checkpoint()?;
        }
        Ok(outcome)
    }

    /// Appends a batch without signing a checkpoint, for callers that checkpoint on their own
    /// schedule (a server under load, a benchmark timing the checkpoint alone). Until
    /// [`Ledger::checkpoint`] runs, the new events are stored but not yet covered by a
    /// signed statement.
    pub fn append_unsigned(
        &mut self,
        events: &[LeanEvent],
        rejected: &[Rejected],
    ) -> StoreResult<BatchOutcome> {
        self.store.append_lean(events, rejected)
    }

    /// Signs and records a checkpoint of the current head, unless the latest checkpoint
    /// already covers it. Returns the latest checkpoint.
    pub fn checkpoint(&mut self) -> StoreResult<StoredCheckpoint> {
        let size = self.store.size()?;
        if let Some(latest) = self.store.latest_checkpoint()? {
            if latest.size == size {
                return Ok(latest);
            }
        }
        // Other processes may append between these reads (nodes sharing one PostgreSQL
        // store, docs/scale-out.md). The log only grows, so a root read between two equal
        // sizes is the root at that size; otherwise read both again.
        let mut size = size;
        let mut root = self.store.root()?;
        let mut tries = 0;
        loop {
            let after = self.store.size()?;
            if after == size {
                break;
            }
            tries += 1;
            if tries > 100 {
                return Err(StoreError::Backend(
                    "the log kept growing while a checkpoint was read; try again".into(),
                ));
            }
            size = after;
            root = self.store.root()?;
        }
        let checkpoint = Checkpoint {
            origin: self.origin.clone(),
            size,
            root,
        };
        let note = checkpoint
            .sign(&self.signer)
            .map_err(|e| StoreError::Backend(format!("cannot sign checkpoint: {e}")))?;
        let stored = StoredCheckpoint { size, root, note };
        self.store.add_checkpoint(&stored)?;
        Ok(stored)
    }

    /// Recomputes every leaf hash from the stored bytes and the tree at every signed
    /// checkpoint, and names the first index that does not match (DESIGN §8).
    pub fn verify(&self, verifier: &NoteVerifier) -> StoreResult<VerifyReport> {
        verify_store(self.store.as_ref(), verifier)
    }

    /// An inclusion proof for `index` in the tree of `size` (default: the latest checkpoint).
    pub fn inclusion_proof(&self, index: u64, size: Option<u64>) -> StoreResult<InclusionProof> {
        inclusion_proof_in(self.store.as_ref(), index, size)
    }

    /// A consistency proof from size `from` to size `to` (default: the latest checkpoint).
    pub fn consistency_proof(&self, from: u64, to: Option<u64>) -> StoreResult<ConsistencyProof> {
        consistency_proof_in(self.store.as_ref(), from, to)
    }
}

/// An inclusion proof for `index` in the tree of `size` (default: the latest checkpoint),
/// over any store: reads need no signing key.
pub fn inclusion_proof_in(
    store: &dyn Store,
    index: u64,
    size: Option<u64>,
) -> StoreResult<InclusionProof> {
    let size = proof_size(store, size)?;
    if index >= size {
        return Err(StoreError::Backend(format!(
            "index {index} is not in a tree of size {size}"
        )));
    }
    let leaves = store.leaf_hashes(0, size)?;
    let proof = inclusion_proof(&leaves, index).map_err(|e| StoreError::Backend(e.to_string()))?;
    let leaf = leaves
        .get(usize::try_from(index).unwrap_or(usize::MAX))
        .copied()
        .ok_or_else(|| StoreError::Backend(format!("no leaf at index {index}")))?;
    Ok(InclusionProof {
        index,
        size,
        root: custody_merkle::root(&leaves),
        leaf_hash: leaf,
        proof,
    })
}

/// A consistency proof from size `from` to size `to` (default: the latest checkpoint).
pub fn consistency_proof_in(
    store: &dyn Store,
    from: u64,
    to: Option<u64>,
) -> StoreResult<ConsistencyProof> {
    let to = proof_size(store, to)?;
    if from > to {
        return Err(StoreError::Backend(format!(
            "cannot prove consistency from size {from} to the smaller size {to}"
        )));
    }
    let leaves = store.leaf_hashes(0, to)?;
    let proof = consistency_proof(&leaves, from).map_err(|e| StoreError::Backend(e.to_string()))?;
    let old = leaves
        .get(..usize::try_from(from).unwrap_or(usize::MAX))
        .unwrap_or_default();
    Ok(ConsistencyProof {
        from,
        to,
        from_root: custody_merkle::root(old),
        to_root: custody_merkle::root(&leaves),
        proof,
    })
}

fn proof_size(store: &dyn Store, size: Option<u64>) -> StoreResult<u64> {
    let current = store.size()?;
    let size = match size {
        Some(s) => s,
        None => match store.latest_checkpoint()? {
            Some(c) => c.size,
            None => current,
        },
    };
    if size > current {
        return Err(StoreError::Backend(format!(
            "the log has {current} events, fewer than the requested size {size}"
        )));
    }
    Ok(size)
}

/// `verify` over any store: see [`Ledger::verify`].
pub fn verify_store(store: &dyn Store, verifier: &NoteVerifier) -> StoreResult<VerifyReport> {
    let mut problems = Vec::new();
    // Checkpoints first: each must be validly signed and say what its row says.
    let mut checkpoints: Vec<(u64, Hash)> = Vec::new();
    for stored in store.checkpoints()? {
        match UnverifiedCheckpoint::parse(stored.note.as_bytes()).and_then(|u| u.verify(verifier)) {
            Ok(c) if c.size == stored.size && c.root == stored.root => {
                checkpoints.push((c.size, c.root));
            }
            Ok(c) => problems.push(format!(
                "checkpoint row for size {} holds a note for size {} with another root",
                stored.size, c.size
            )),
            Err(e) => problems.push(format!(
                "checkpoint at size {} does not verify with the given key: {e}",
                stored.size
            )),
        }
    }
    checkpoints.sort_by_key(|(size, _)| *size);

    // Other processes may append while this runs (nodes sharing one PostgreSQL store,
    // docs/scale-out.md): the events they add are replayed too, until the head holds still
    // between two reads of its size, so that the head is compared at one size. The log only
    // grows, so a root read between two equal sizes is the root at that size.
    let mut replay = replay_from(store, 0, Replay::new(&checkpoints))?;
    let mut rounds = 0;
    let (head_size, head_root) = loop {
        let head_size = store.size()?;
        if head_size > replay.expected_index && rounds < HEAD_ROUNDS {
            rounds += 1;
            let next = replay.expected_index;
            replay = replay_from(store, next, replay)?;
            continue;
        }
        let head_root = store.root()?;
        if store.size()? == head_size || rounds >= HEAD_ROUNDS {
            break (head_size, head_root);
        }
        rounds += 1;
    };
    let Replay {
        range,
        next_checkpoint,
        checked,
        mut first_mismatch,
        problems: mut scan_problems,
        checkpoints: all_checkpoints,
        ..
    } = replay;
    problems.append(&mut scan_problems);
    let next_checkpoint = all_checkpoints
        .get(next_checkpoint..)
        .unwrap_or_default()
        .iter();

    let size = range.size();
    let root = range.root();
    for (cp_size, _) in next_checkpoint {
        problems.push(format!(
            "a checkpoint was signed at size {cp_size} but only {size} events are stored"
        ));
        note_mismatch(&mut first_mismatch, size);
    }
    if head_size != size {
        problems.push(format!(
            "the store reports {head_size} events but {size} were scanned"
        ));
    }
    if first_mismatch.is_none() && head_root != root {
        problems.push("the store's head root differs from the recomputed root".to_owned());
    }
    Ok(VerifyReport {
        ok: problems.is_empty(),
        size,
        root,
        first_mismatch,
        checkpoints_checked: checked,
        problems,
    })
}

/// How many times `verify` catches up with a log that other processes keep appending to
/// before it compares the head as it then stands.
const HEAD_ROUNDS: u32 = 8;

/// Replays the events from index `start` on into `replay`. Reading rows (this thread) and
/// re-hashing them (a second thread) overlap: batches of rows are copied into one buffer each
/// and handed over through a bounded channel.
fn replay_from<'c>(
    store: &dyn Store,
    start: u64,
    mut replay: Replay<'c>,
) -> StoreResult<Replay<'c>> {
    std::thread::scope(|scope| -> StoreResult<Replay<'c>> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<RowBatch>(2);
        let worker = scope.spawn(move || -> StoreResult<Replay<'_>> {
            for batch in rx {
                for &(index, start, end, stored) in &batch.rows {
                    let canonical = batch.bytes.get(start..end).unwrap_or_default();
                    replay.visit(index, canonical, &stored)?;
                }
            }
            Ok(replay)
        });
        let mut batch = RowBatch::default();
        let scanned = store.scan(start, &mut |index, canonical, stored_hash| {
            let start = batch.bytes.len();
            batch.bytes.extend_from_slice(canonical);
            batch
                .rows
                .push((index, start, batch.bytes.len(), *stored_hash));
            if batch.rows.len() >= ROWS_PER_BATCH {
                tx.send(std::mem::take(&mut batch))
                    .map_err(|_| StoreError::Backend("the verify worker stopped".into()))?;
            }
            Ok(())
        });
        let flushed = if batch.rows.is_empty() {
            Ok(())
        } else {
            tx.send(batch)
                .map_err(|_| StoreError::Backend("the verify worker stopped".into()))
        };
        drop(tx);
        let done = worker
            .join()
            .map_err(|_| StoreError::Backend("the verify worker panicked".into()))??;
        scanned?;
        flushed?;
        Ok(done)
    })
}

/// Rows handed from the reading thread to the hashing thread.
const ROWS_PER_BATCH: usize = 4096;

#[derive(Default)]
struct RowBatch {
    bytes: Vec<u8>,
    rows: Vec<(u64, usize, usize, Hash)>,
}

fn note_mismatch(first: &mut Option<u64>, index: u64) {
    if first.is_none_or(|f| index < f) {
        *first = Some(index);
    }
}

/// The tree rebuilt from the stored bytes, compared with stored hashes and checkpoints.
struct Replay<'c> {
    checkpoints: &'c [(u64, Hash)],
    range: CompactRange,
    next_checkpoint: usize,
    last_good_checkpoint: u64,
    checked: u64,
    expected_index: u64,
    first_mismatch: Option<u64>,
    problems: Vec<String>,
}

impl<'c> Replay<'c> {
    fn new(checkpoints: &'c [(u64, Hash)]) -> Self {
        Replay {
            checkpoints,
            range: CompactRange::new(),
            next_checkpoint: 0,
            last_good_checkpoint: 0,
            checked: 0,
            expected_index: 0,
            first_mismatch: None,
            problems: Vec::new(),
        }
    }

    fn visit(&mut self, index: u64, canonical: &[u8], stored_hash: &Hash) -> StoreResult<()> {
        if index != self.expected_index {
            self.problems.push(format!(
                "event at index {} is missing (the next stored index is {index})",
                self.expected_index
            ));
            note_mismatch(&mut self.first_mismatch, self.expected_index);
            self.expected_index = index;
        }
        let recomputed = leaf_hash(canonical);
        if &recomputed != stored_hash {
            if self.first_mismatch.is_none() {
                self.problems.push(format!(
                    "event at index {index} does not match its stored leaf hash"
                ));
            }
            note_mismatch(&mut self.first_mismatch, index);
        }
        self.range
            .push(recomputed)
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        self.expected_index += 1;
        while let Some((size, root)) = self.checkpoints.get(self.next_checkpoint) {
            if *size != self.range.size() {
                break;
            }
            self.checked += 1;
            if self.range.root() == *root {
                self.last_good_checkpoint = *size;
            } else {
                self.problems.push(format!(
                    "the first {size} events do not match the checkpoint signed at size {size}; the difference lies in indexes {}..{}",
                    self.last_good_checkpoint,
                    size.saturating_sub(1)
                ));
                // A leaf already found not to match its stored hash is the precise answer;
                // otherwise only the checkpoints can tell, to within this range.
                if self.first_mismatch.is_none() {
                    self.first_mismatch = Some(self.last_good_checkpoint);
                }
            }
            self.next_checkpoint += 1;
        }
        Ok(())
    }
}
