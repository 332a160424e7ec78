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
/// took over 25 ms on the server (docs/bench-log/scaling-rounds.md, "Rounds").
const BACKGROUND_PER_COMMIT: usize = 128;

pub(crate) struct WriteRequest {
    /// `None`: a sync barrier, answered once everything before it is durable.
    pub op: Option<WriteOp>,
    pub done: oneshot::Sender<Result<Version, StoreError>>,
}

/// Two lanes: durable writes (someone waits for the reply) go first; write-
/// behind fills what is left of a commit. An entity never has a write in
/// both lanes at once (it waits for its write-behind before a durable
/// write), so taking them out of order cannot reorder one entity's writes.
///
/// Only a commit that carries a durable write waits for the disk (an
/// `fsync`). A commit of write-behind alone is buffered
/// ([`Store::write_batch_buffered`]): the next synced commit, or a sync at
/// most `sync_interval` later, puts it on disk. Write-behind state may lag
/// memory by the flush interval anyway; this adds at most `sync_interval` to
/// what a crash of the whole machine can take back, and nothing to what a
/// crash of the process can.
#[derive(Clone)]
pub(crate) struct Flusher {
    urgent: mpsc::UnboundedSender<WriteRequest>,
    background: mpsc::UnboundedSender<WriteRequest>,
}

/// How the flusher paces and syncs its commits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pacing {
    /// Least time from the start of one commit to the start of the next
    /// (zero: commit as soon as the last one is done).
    pub commit_interval: Duration,
    /// Longest a buffered commit waits for a sync (zero: every commit syncs).
    pub sync_interval: Duration,
}

impl Flusher {
    pub fn spawn(store: Arc<dyn Store>, pacing: Pacing) -> Self {
        let (urgent, urgent_rx) = mpsc::unbounded_channel();
        let (background, background_rx) = mpsc::unbounded_channel();
        tokio::spawn(run(store, urgent_rx, background_rx, pacing));
        Self { urgent, background }
    }

    /// Queues a durable write and waits for its commit.
    pub async fn write(&self, op: WriteOp) -> Result<Version, StoreError> {
        Self::send(&self.urgent, Some(op)).await.map_err(|_| dropped())?
    }

    /// Queues a write-behind write; the receiver has its result once
    /// committed. Write-behind writes are committed in the order submitted.
    pub fn submit(&self, op: WriteOp) -> oneshot::Receiver<Result<Version, StoreError>> {
        Self::send(&self.background, Some(op))
    }

    /// Waits until every write committed so far is durable.
    pub async fn sync(&self) -> Result<(), StoreError> {
        Self::send(&self.urgent, None).await.map_err(|_| dropped())?.map(drop)
    }

    fn send(
        lane: &mpsc::UnboundedSender<WriteRequest>,
        op: Option<WriteOp>,
    ) -> oneshot::Receiver<Result<Version, StoreError>> {
        let (done, wait) = oneshot::channel();
        // A stopped flusher drops `done`: the receiver then reports it.
        let _ = lane.send(WriteRequest { op, done });
        wait
    }
}

fn dropped() -> StoreError {
    StoreError::Backend("flusher dropped the write".into())
}

/// Takes queued requests from `lane` into `batch`, at most `room` of them;
/// returns how many.
fn take(lane: &mut mpsc::UnboundedReceiver<WriteRequest>, batch: &mut Vec<WriteRequest>, room: usize) -> usize {
    let mut n = 0;
    while n < room {
        match lane.try_recv() {
            Ok(r) => batch.push(r),
            Err(_) => break,
        }
        n += 1;
    }
    n
}

async fn run(
    store: Arc<dyn Store>,
    mut urgent: mpsc::UnboundedReceiver<WriteRequest>,
    mut background: mpsc::UnboundedReceiver<WriteRequest>,
    pacing: Pacing,
) {
    let mut batch = Vec::new();
    let mut last_commit: Option<Instant> = None;
    // When the oldest commit not yet on disk was made.
    let mut unsynced_since: Option<Instant> = None;
    loop {
        let sync_due = unsynced_since.map(|t| t + pacing.sync_interval);
        let first = tokio::select! {
            biased;
            r = urgent.recv() => r.map(|r| (r, true)),
            r = background.recv() => r.map(|r| (r, false)),
            _ = sleep_until_some(sync_due) => {
                // Quiet since a buffered commit: put it on disk now.
                match store.sync().await {
                    Ok(()) => {
                        metrics::counter!("guildhall_store_syncs_total").increment(1);
                        unsynced_since = None;
                    }
                    Err(e) => tracing::error!(error = %e, "store sync failed"),
                }
                continue;
            }
        };
        // Both lanes close together, when the runtime is dropped.
        let Some((first, first_urgent)) = first else { break };
        batch.push(first);
        // Under load, commit at most once per interval: a commit costs a
        // fixed amount (pages, free lists, an fsync) whatever its size. A
        // write that comes after a quiet spell still commits at once.
        if let Some(since) = last_commit.map(|t| t.elapsed()) {
            if since < pacing.commit_interval {
                tokio::time::sleep(pacing.commit_interval - since).await;
            }
        }
        let room = MAX_BATCH - batch.len();
        let urgent_n = usize::from(first_urgent) + take(&mut urgent, &mut batch, room);
        let room = BACKGROUND_PER_COMMIT.min(MAX_BATCH - batch.len());
        take(&mut background, &mut batch, room);
        let now = Instant::now();
        last_commit = Some(now);
        let sync = urgent_n > 0 || pacing.sync_interval.is_zero() || sync_due.is_some_and(|due| now >= due);
        let mut ops = Vec::with_capacity(batch.len());
        let mut waiters = Vec::with_capacity(batch.len());
        for r in batch.drain(..) {
            // A barrier's waiter gets `None`: it has no op and no version.
            waiters.push((r.op.is_some(), r.done));
            ops.extend(r.op);
        }
        let n = ops.len();
        metrics::counter!("guildhall_store_batches_total").increment(1);
        metrics::histogram!("guildhall_store_batch_size").record(n as f64);
        let written = match (sync, ops.is_empty()) {
            (true, true) => store.sync().await.map(|()| Vec::new()),
            (true, false) => store.write_batch(ops).await,
            (false, _) => store.write_batch_buffered(ops).await,
        };
        match written {
            Ok(results) => {
                if sync {
                    metrics::counter!("guildhall_store_syncs_total").increment(1);
                    unsynced_since = None;
                } else {
                    unsynced_since.get_or_insert(now);
                }
                let mut results = results.into_iter();
                for (has_op, w) in waiters {
                    let r = if has_op { results.next().unwrap_or_else(|| Err(short())) } else { Ok(0) };
                    let _ = w.send(r);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, ops = n, "store batch failed");
                for (_, w) in waiters {
                    let _ = w.send(Err(e.clone()));
                }
            }
        }
    }
    // The runtime is gone: what was buffered goes to disk before the task ends.
    if unsynced_since.is_some() {
        if let Err(e) = store.sync().await {
            tracing::error!(error = %e, "final store sync failed");
        }
    }
}

/// A backend answered fewer results than ops.
fn short() -> StoreError {
    StoreError::Backend("store returned fewer results than writes".into())
}

/// Sleeps until `at`, or forever when there is nothing to wait for.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
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
        let flusher =
            Flusher::spawn(store.clone(), Pacing { commit_interval: Duration::ZERO, sync_interval: Duration::ZERO });
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

    /// Records what the flusher asked of the store, in order.
    #[derive(Default)]
    struct Journal {
        inner: MemoryStore,
        calls: Mutex<Vec<String>>,
    }

    impl Journal {
        fn take(&self) -> Vec<String> {
            std::mem::take(&mut *self.calls.lock().unwrap())
        }
    }

    #[async_trait]
    impl Store for Journal {
        async fn get(&self, key: &[u8]) -> Result<Option<Record>, StoreError> {
            self.inner.get(key).await
        }
        async fn write_batch(&self, ops: Vec<WriteOp>) -> Result<Vec<Result<Version, StoreError>>, StoreError> {
            self.calls.lock().unwrap().push(format!("synced {}", ops.len()));
            self.inner.write_batch(ops).await
        }
        async fn write_batch_buffered(
            &self,
            ops: Vec<WriteOp>,
        ) -> Result<Vec<Result<Version, StoreError>>, StoreError> {
            self.calls.lock().unwrap().push(format!("buffered {}", ops.len()));
            self.inner.write_batch(ops).await
        }
        async fn sync(&self) -> Result<(), StoreError> {
            self.calls.lock().unwrap().push("sync".into());
            Ok(())
        }
        async fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Record)>, StoreError> {
            self.inner.scan_prefix(prefix).await
        }
    }

    /// Gives the flusher task its turns without letting the paused clock
    /// advance by itself (the test task stays runnable).
    async fn let_the_flusher_run() {
        for _ in 0..8 {
            tokio::task::yield_now().await;
        }
    }

    /// Write-behind alone is buffered; a durable write syncs (and with it
    /// everything before); a quiet spell after a buffered commit ends in a
    /// sync one `sync_interval` later, on tokio's paused clock moved by hand.
    #[tokio::test(start_paused = true)]
    async fn only_durable_writes_and_the_sync_interval_wait_for_the_disk() {
        let store = Arc::new(Journal::default());
        let pacing = Pacing { commit_interval: Duration::ZERO, sync_interval: Duration::from_secs(1) };
        let flusher = Flusher::spawn(store.clone(), pacing);
        let put = |k: &str| WriteOp::put(k.as_bytes().to_vec(), b"v".to_vec(), 0);

        assert_eq!(flusher.submit(put("wb1")).await.unwrap(), Ok(1));
        assert_eq!(store.take(), vec!["buffered 1"]);
        assert_eq!(flusher.write(put("durable")).await, Ok(1));
        assert_eq!(store.take(), vec!["synced 1"], "a durable write syncs; nothing is left to sync later");

        assert_eq!(flusher.submit(put("wb2")).await.unwrap(), Ok(1));
        assert_eq!(flusher.submit(put("wb3")).await.unwrap(), Ok(1));
        assert_eq!(store.take(), vec!["buffered 1", "buffered 1"]);
        // An explicit sync does not wait for the interval.
        let started = Instant::now();
        flusher.sync().await.unwrap();
        assert_eq!(store.take(), vec!["sync"], "one sync for both buffered commits");
        assert_eq!(started.elapsed(), Duration::ZERO);

        // A quiet spell after a buffered commit: the clock is moved by hand.
        assert_eq!(flusher.submit(put("wb4")).await.unwrap(), Ok(1));
        assert_eq!(store.take(), vec!["buffered 1"]);
        tokio::time::advance(Duration::from_millis(999)).await;
        let_the_flusher_run().await;
        assert!(store.take().is_empty(), "not due yet");
        tokio::time::advance(Duration::from_millis(1)).await;
        let_the_flusher_run().await;
        assert_eq!(store.take(), vec!["sync"], "the quiet spell ends in a sync");
        tokio::time::advance(Duration::from_secs(5)).await;
        let_the_flusher_run().await;
        assert!(store.take().is_empty(), "nothing unsynced: no more syncs");
    }

    /// With a zero `sync_interval` every commit syncs, as before buffering.
    #[tokio::test(start_paused = true)]
    async fn a_zero_sync_interval_syncs_every_commit() {
        let store = Arc::new(Journal::default());
        let pacing = Pacing { commit_interval: Duration::ZERO, sync_interval: Duration::ZERO };
        let flusher = Flusher::spawn(store.clone(), pacing);
        assert_eq!(flusher.submit(WriteOp::put(b"k".to_vec(), b"v".to_vec(), 0)).await.unwrap(), Ok(1));
        assert_eq!(store.take(), vec!["synced 1"]);
    }
}
