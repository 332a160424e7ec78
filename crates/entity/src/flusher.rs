//! Group commit. Entities hand their snapshots to one flusher task, which
//! writes whatever has accumulated as one store batch (one commit, one fsync)
//! and answers each writer. While one batch is on disk the next accumulates,
//! so a thousand entities flushing at once cost a handful of fsyncs, and a
//! durable-before-reply write shares its fsync with its neighbours.

use std::sync::Arc;

use guildhall_store::{Store, StoreError, Version, WriteOp};
use tokio::sync::{mpsc, oneshot};

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
    pub fn spawn(store: Arc<dyn Store>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(store, rx));
        Self { tx }
    }

    /// Queues a write and waits for its commit.
    pub async fn write(&self, op: WriteOp) -> Result<Version, StoreError> {
        let (done, wait) = oneshot::channel();
        self.tx.send(WriteRequest { op, done }).map_err(|_| StoreError::Backend("flusher stopped".into()))?;
        wait.await.map_err(|_| StoreError::Backend("flusher dropped the write".into()))?
    }
}

async fn run(store: Arc<dyn Store>, mut rx: mpsc::UnboundedReceiver<WriteRequest>) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
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
