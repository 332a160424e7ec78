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

/// Most write-behind writes one commit takes. Durable writes wait for the
/// commit in progress and then their own, so this bounds how long the commit
/// in front of them can be: with every write in one queue, a durable write
/// sat behind hundreds of snapshots, and a few per cent of chest openings
/// took over 25 ms on the server (BENCHMARKS.md, round 12).
const BACKGROUND_PER_COMMIT: usize = 128;

pub(crate) struct WriteRequest {
    pub op: WriteOp,
    pub done: oneshot::Sender<Result<Version, StoreError>>,
}

/// Two lanes: durable writes (someone waits for the reply) go first; write-
/// behind fills what is left of a commit. An entity never has a write in
/// both lanes at once (it waits for its write-behind before a durable
/// write), so taking them out of order cannot reorder one entity's writes.
#[derive(Clone)]
pub(crate) struct Flusher {
    urgent: mpsc::UnboundedSender<WriteRequest>,
    background: mpsc::UnboundedSender<WriteRequest>,
}

impl Flusher {
    /// `commit_interval`: least time from the start of one commit to the
    /// start of the next (zero: commit as soon as the last one is done).
    pub fn spawn(store: Arc<dyn Store>, commit_interval: Duration) -> Self {
        let (urgent, urgent_rx) = mpsc::unbounded_channel();
        let (background, background_rx) = mpsc::unbounded_channel();
        tokio::spawn(run(store, urgent_rx, background_rx, commit_interval));
        Self { urgent, background }
    }

    /// Queues a durable write and waits for its commit.
    pub async fn write(&self, op: WriteOp) -> Result<Version, StoreError> {
        Self::send(&self.urgent, op).await.map_err(|_| StoreError::Backend("flusher dropped the write".into()))?
    }

    /// Queues a write-behind write; the receiver has its result once
    /// committed. Write-behind writes are committed in the order submitted.
    pub fn submit(&self, op: WriteOp) -> oneshot::Receiver<Result<Version, StoreError>> {
        Self::send(&self.background, op)
    }

    fn send(lane: &mpsc::UnboundedSender<WriteRequest>, op: WriteOp) -> oneshot::Receiver<Result<Version, StoreError>> {
        let (done, wait) = oneshot::channel();
        // A stopped flusher drops `done`: the receiver then reports it.
        let _ = lane.send(WriteRequest { op, done });
        wait
    }
}

/// Takes queued requests from `lane` into `batch`, at most `room` of them.
fn take(lane: &mut mpsc::UnboundedReceiver<WriteRequest>, batch: &mut Vec<WriteRequest>, room: usize) {
    for _ in 0..room {
        match lane.try_recv() {
            Ok(r) => batch.push(r),
            Err(_) => break,
        }
    }
}

async fn run(
    store: Arc<dyn Store>,
    mut urgent: mpsc::UnboundedReceiver<WriteRequest>,
    mut background: mpsc::UnboundedReceiver<WriteRequest>,
    commit_interval: Duration,
) {
    let mut batch = Vec::new();
    let mut last_commit: Option<Instant> = None;
    loop {
        let first = tokio::select! {
            biased;
            r = urgent.recv() => r,
            r = background.recv() => r,
        };
        // Both lanes close together, when the runtime is dropped.
        let Some(first) = first else { break };
        batch.push(first);
        // Under load, commit at most once per interval: a commit costs a
        // fixed amount (pages, free lists, an fsync) whatever its size. A
        // write that comes after a quiet spell still commits at once.
        if let Some(since) = last_commit.map(|t| t.elapsed()) {
            if since < commit_interval {
                tokio::time::sleep(commit_interval - since).await;
            }
        }
        let room = MAX_BATCH - batch.len();
        take(&mut urgent, &mut batch, room);
        let room = BACKGROUND_PER_COMMIT.min(MAX_BATCH - batch.len());
        take(&mut background, &mut batch, room);
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use guildhall_store::{MemoryStore, Record};

    use super::*;

    /// Records the size of every batch; the first one waits at a gate.
    struct Recording {
        inner: MemoryStore,
        gate: tokio::sync::Semaphore,
        sizes: Mutex<Vec<usize>>,
    }

    #[async_trait]
    impl Store for Recording {
        async fn get(&self, key: &[u8]) -> Result<Option<Record>, StoreError> {
            self.inner.get(key).await
        }
        async fn write_batch(&self, ops: Vec<WriteOp>) -> Result<Vec<Result<Version, StoreError>>, StoreError> {
            let _pass = self.gate.acquire().await.expect("gate");
            self.sizes.lock().unwrap().push(ops.len());
            self.inner.write_batch(ops).await
        }
        async fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Record)>, StoreError> {
            self.inner.scan_prefix(prefix).await
        }
    }

    #[tokio::test]
    async fn a_durable_write_passes_a_backlog_of_write_behind() {
        let store = Arc::new(Recording {
            inner: MemoryStore::new(),
            gate: tokio::sync::Semaphore::new(0),
            sizes: Mutex::new(Vec::new()),
        });
        let flusher = Flusher::spawn(store.clone(), Duration::ZERO);
        let put = |k: String| WriteOp::put(k.into_bytes(), b"v".to_vec(), 0);
        // The first write-behind write is being committed (held at the gate)...
        let first = flusher.submit(put("first".into()));
        tokio::task::yield_now().await;
        // ...while 1,000 more queue up, then one durable write.
        let backlog: Vec<_> = (0..1000).map(|i| flusher.submit(put(format!("wb{i}")))).collect();
        let durable = {
            let flusher = flusher.clone();
            tokio::spawn(async move { flusher.write(put("durable".into())).await })
        };
        tokio::task::yield_now().await;
        store.gate.add_permits(usize::MAX >> 4);
        assert_eq!(durable.await.unwrap(), Ok(1));
        let sizes = store.sizes.lock().unwrap().clone();
        assert_eq!(sizes[0], 1, "the commit in progress");
        assert_eq!(sizes[1], 1 + BACKGROUND_PER_COMMIT, "the durable write, with a bounded share of the backlog");
        assert_eq!(first.await.unwrap(), Ok(1));
        for w in backlog {
            assert_eq!(w.await.unwrap(), Ok(1), "the backlog is written too, in later commits");
        }
    }
}
