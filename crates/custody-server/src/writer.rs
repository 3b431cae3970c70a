//! The one writer: a thread that owns the [`Ledger`] and commits what the handlers send it.
//!
//! Handlers never write the store themselves. Each request's batch goes to this thread over
//! a channel; the thread takes every job waiting (group commit), appends each request's
//! batch as its own transaction (so each answer counts exactly its own events), then signs
//! one checkpoint for the lot before it answers anyone. An answer therefore means: the
//! events are committed and covered by a signed checkpoint. On shutdown the channel closes,
//! the thread finishes every job already queued, and [`Writer::shutdown`] waits for it, so
//! no acknowledged event is lost and no queued one is dropped.

use std::sync::Mutex;
use std::thread::JoinHandle;

use custody_store::{
    BatchOutcome, Ledger, NewEvent, Rejected, StoreError, StoreResult, StoredCheckpoint,
};
use tokio::sync::oneshot;

/// The most jobs committed under one checkpoint.
const MAX_GROUP: usize = 512;

enum Job {
    Append {
        events: Vec<NewEvent>,
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
        events: Vec<NewEvent>,
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
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let mut appended = Vec::new();
        let mut checkpoints = Vec::new();
        let mut grew = false;
        for job in jobs {
            match job {
                Job::Append {
                    events,
                    rejected,
                    reply,
                } => {
                    let outcome = ledger.append_unsigned(&events, &rejected);
                    if let Ok(o) = &outcome {
                        grew |= o.accepted > 0;
                    }
                    appended.push((reply, outcome));
                }
                Job::Checkpoint { reply } => checkpoints.push(reply),
            }
        }
        // One signed checkpoint covers every batch of the group, before anyone is answered.
        let signed = if grew || !checkpoints.is_empty() {
            Some(ledger.checkpoint())
        } else {
            None
        };
        if let Some(Err(e)) = &signed {
            tracing::error!(error = %e, "cannot sign a checkpoint");
        }
        for (reply, outcome) in appended {
            let outcome = match (&signed, outcome) {
                (Some(Err(e)), Ok(o)) if o.accepted > 0 => Err(StoreError::Backend(format!(
                    "events committed, but the checkpoint failed: {e}"
                ))),
                (_, o) => o,
            };
            let _ = reply.send(outcome);
        }
        for reply in checkpoints {
            let answer = match &signed {
                Some(Ok(c)) => Ok(c.clone()),
                Some(Err(e)) => Err(StoreError::Backend(e.to_string())),
                None => Err(StoreError::Backend("no checkpoint".into())),
            };
            let _ = reply.send(answer);
        }
    }
}
