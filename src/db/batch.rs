//! Group commit for creating requests.
//!
//! With `synchronous = FULL` every commit waits for an fsync, and there is one writer, so
//! one create per transaction caps creation at one fsync each. Here a single task takes a
//! create, plus every create already queued behind it (up to [`MAX_BATCH`]), writes them all
//! in one transaction and commits once: they share the fsync. Each handler answers only
//! after that commit, so an acknowledged create is exactly as durable as before.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex};

use super::commit::WriteTx;
use super::requests::{insert_in, Inserted, NewRow};
use super::Db;

/// The most creates one transaction takes.
const MAX_BATCH: usize = 64;
/// Creates waiting for the writer; beyond this, callers wait to enqueue.
const QUEUE: usize = 1024;

type Reply = oneshot::Sender<Result<Inserted, BatchError>>;

/// Why a batch failed, for every create in it (`sqlx::Error` cannot be cloned).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct BatchError {
    /// The database was locked by another process for longer than the busy timeout.
    pub busy: bool,
    pub message: String,
}

#[derive(Clone)]
pub struct InsertBatcher {
    queue: mpsc::Sender<(NewRow, Reply)>,
}

impl InsertBatcher {
    /// Starts the writer task, supervised: a panic restarts it on the same queue (the
    /// creates of the batch that panicked fail). It ends when the last `InsertBatcher` is
    /// dropped.
    pub fn spawn(db: Db) -> Self {
        let (queue, jobs) = mpsc::channel(QUEUE);
        let jobs = Arc::new(Mutex::new(jobs));
        crate::tasks::supervise("create writer", move || writer(db.clone(), jobs.clone()));
        Self { queue }
    }

    /// Stores `row` with whatever else is waiting, and answers once that has committed.
    pub async fn insert(&self, row: NewRow) -> Result<Inserted, BatchError> {
        let stopped = || BatchError {
            busy: false,
            message: "the writer has stopped".into(),
        };
        let (reply, answer) = oneshot::channel();
        self.queue.send((row, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn writer(db: Db, jobs: Arc<Mutex<mpsc::Receiver<(NewRow, Reply)>>>) {
    let mut jobs = jobs.lock().await;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        match write(&db, &batch).await {
            Ok(outcomes) => {
                for ((_, reply), outcome) in batch.drain(..).zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                let error = BatchError {
                    busy: crate::error::is_busy(&e),
                    message: e.to_string(),
                };
                tracing::warn!(error = %error, creates = batch.len(), "a batch of creates failed");
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }
}

/// One transaction for the whole batch; nothing is kept unless all of it commits.
async fn write(db: &Db, batch: &[(NewRow, Reply)]) -> Result<Vec<Inserted>, sqlx::Error> {
    let mut tx = WriteTx::begin(db).await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for (row, _) in batch {
        outcomes.push(insert_in(&mut tx, row).await?);
    }
    tx.commit().await?;
    Ok(outcomes)
}
