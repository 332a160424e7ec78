//! Group commit. Entities hand their snapshots to one flusher task, which
//! writes whatever has accumulated as one store batch (one commit, one fsync)
//! and answers each writer. While one batch is on disk the next accumulates,
//! so a thousand entities flushing at once cost a handful of fsyncs, and a
//! durable-before-reply write shares its fsync with its neighbours.

use std::sync::Arc;

use guildhall_store::{Store, StoreError, Version, WriteOp};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Duration, Instant};

/// Upper bound on ops per batch, to bound the latency of one commit.
const MAX_BATCH: usize = 4096;

pub(crate) struct WriteRequest {
    pub op: WriteOp,
    pub done: oneshot::Sender<Result<Version, StoreError>>,
}

#[derive(Clone)]
pub(crate) struct Flusher {
    tx: mpsc::UnboundedSender<WriteRequest>,
}

impl Flusher {
    /// `commit_interval`: least time from the start of one commit to the
    /// start of the next (zero: commit as soon as the last one is done).
    pub fn spawn(store: Arc<dyn Store>, commit_interval: Duration) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(store, rx, commit_interval));
        Self { tx }
    }

    /// Queues a write and waits for its commit.
    pub async fn write(&self, op: WriteOp) -> Result<Version, StoreError> {
        self.submit(op).await.map_err(|_| StoreError::Backend("flusher dropped the write".into()))?
    }

    /// Queues a write; the receiver has its result once committed. Writes
    /// are committed in the order they are submitted.
    pub fn submit(&self, op: WriteOp) -> oneshot::Receiver<Result<Version, StoreError>> {
        let (done, wait) = oneshot::channel();
        // A stopped flusher drops `done`: the receiver then reports it.
        let _ = self.tx.send(WriteRequest { op, done });
        wait
    }
}

async fn run(store: Arc<dyn Store>, mut rx: mpsc::UnboundedReceiver<WriteRequest>, commit_interval: Duration) {
    let mut batch = Vec::new();
    let mut last_commit: Option<Instant> = None;
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // Under load, commit at most once per interval: a commit costs a
        // fixed amount (pages, free lists, an fsync) whatever its size, and
        // without the pause a busy server committed ~770 times a second with
        // fewer than two writes each (round 6, BENCHMARKS.md). A write that
        // comes after a quiet spell still commits at once.
        if let Some(since) = last_commit.map(|t| t.elapsed()) {
            if since < commit_interval {
                tokio::time::sleep(commit_interval - since).await;
                // Take what arrived while waiting.
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(r) => batch.push(r),
                        Err(_) => break,
                    }
                }
            }
        }
        last_commit = Some(Instant::now());
        let (ops, waiters): (Vec<_>, Vec<_>) = batch.drain(..).map(|r| (r.op, r.done)).unzip();
        let n = ops.len();
        metrics::counter!("guildhall_store_batches_total").increment(1);
        metrics::histogram!("guildhall_store_batch_size").record(n as f64);
        match store.write_batch(ops).await {
            Ok(results) => {
                for (w, r) in waiters.into_iter().zip(results) {
                    let _ = w.send(r);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, ops = n, "store batch failed");
                for w in waiters {
                    let _ = w.send(Err(e.clone()));
                }
            }
        }
    }
}
