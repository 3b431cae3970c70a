//! The one writer: a thread that owns the [`Ledger`] and commits what the handlers send it.
//!
//! Handlers never write the store themselves. Each request's batch goes to this thread over
//! a channel and is appended as its own transaction (so each answer counts exactly its own
//! events); the answer is sent once the transaction has committed. Signing is batched: the
//! thread signs a checkpoint of the head at most [`CHECKPOINT_EVERY`] after the first
//! unsigned commit (and at once when someone asks for a checkpoint, and on shutdown), so a
//! busy server signs a few dozen checkpoints a second, not one per request. On shutdown the
//! channel closes, the thread finishes every job already queued and signs the head, and
//! [`Writer::shutdown`] waits for it: no acknowledged event is lost, none is left unsigned.

use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use custody_store::{
    BatchOutcome, LeanEvent, Ledger, Rejected, StoreError, StoreResult, StoredCheckpoint,
};
use tokio::sync::oneshot;

/// The most jobs taken from the queue at once.
const MAX_GROUP: usize = 512;

/// How long committed events may wait for a signed checkpoint (DESIGN §8: a new checkpoint
/// at most 100 ms after a batch commits).
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(50);

enum Job {
    Append {
        events: Vec<LeanEvent>,
        rejected: Vec<Rejected>,
        reply: oneshot::Sender<StoreResult<BatchOutcome>>,
    },
    Checkpoint {
        reply: oneshot::Sender<StoreResult<StoredCheckpoint>>,
    },
}

/// The handle handlers use to reach the writer thread.
pub struct Writer {
    tx: Mutex<Option<crossbeam_channel::Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

fn closed() -> StoreError {
    StoreError::Backend("the server is shutting down; nothing was written".into())
}

impl Writer {
    /// Starts the writer thread over `ledger`.
    pub fn start(ledger: Ledger) -> std::io::Result<Writer> {
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let thread = std::thread::Builder::new()
            .name("custody-writer".into())
            .spawn(move || run(ledger, &rx))?;
        Ok(Writer {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    fn send(&self, job: Job) -> bool {
        let tx = match self.tx.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        tx.is_some_and(|tx| tx.send(job).is_ok())
    }

    /// Appends a batch and waits until it is committed and checkpointed.
    pub async fn append(
        &self,
        events: Vec<LeanEvent>,
        rejected: Vec<Rejected>,
    ) -> StoreResult<BatchOutcome> {
        let (reply, answer) = oneshot::channel();
        if !self.send(Job::Append {
            events,
            rejected,
            reply,
        }) {
            return Err(closed());
        }
        answer.await.unwrap_or_else(|_| Err(closed()))
    }

    /// The latest checkpoint, signing one first if the log grew since.
    pub async fn checkpoint(&self) -> StoreResult<StoredCheckpoint> {
        let (reply, answer) = oneshot::channel();
        if !self.send(Job::Checkpoint { reply }) {
            return Err(closed());
        }
        answer.await.unwrap_or_else(|_| Err(closed()))
    }

    /// Stops taking jobs, finishes those queued and waits for the thread.
    pub fn shutdown(&self) {
        let tx = match self.tx.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        };
        drop(tx);
        let thread = match self.thread.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        };
        if let Some(t) = thread {
            if t.join().is_err() {
                tracing::error!("the writer thread panicked");
            }
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn run(mut ledger: Ledger, rx: &crossbeam_channel::Receiver<Job>) {
    // Appended but not yet covered by a signed checkpoint, since when.
    let mut unsigned_since: Option<Instant> = None;
    loop {
        let first = match unsigned_since {
            None => match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
            Some(since) => {
                let due = since + CHECKPOINT_EVERY;
                match rx.recv_deadline(due) {
                    Ok(job) => job,
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                        sign(&mut ledger);
                        unsigned_since = None;
                        continue;
                    }
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                        sign(&mut ledger);
                        return;
                    }
                }
            }
        };
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let mut checkpoints = Vec::new();
        for job in jobs {
            match job {
                Job::Append {
                    events,
                    rejected,
                    reply,
                } => {
                    let outcome = ledger.append_unsigned(&events, &rejected);
                    if matches!(&outcome, Ok(o) if o.accepted > 0) && unsigned_since.is_none() {
                        unsigned_since = Some(Instant::now());
                    }
                    let _ = reply.send(outcome);
                }
                Job::Checkpoint { reply } => checkpoints.push(reply),
            }
        }
        if !checkpoints.is_empty() {
            let signed = ledger.checkpoint();
            if signed.is_ok() {
                unsigned_since = None;
            }
            for reply in checkpoints {
                let answer = match &signed {
                    Ok(c) => Ok(c.clone()),
                    Err(e) => Err(StoreError::Backend(e.to_string())),
                };
                let _ = reply.send(answer);
            }
        }
        if unsigned_since.is_some_and(|t| t.elapsed() >= CHECKPOINT_EVERY) {
            sign(&mut ledger);
            unsigned_since = None;
        }
    }
}

fn sign(ledger: &mut Ledger) {
    if let Err(e) = ledger.checkpoint() {
        tracing::error!(error = %e, "cannot sign a checkpoint");
    }
}
