//! Every backend runs the shared conformance suite, plus backend-specific
//! checks for what the in-memory store cannot show: durability across reopen
//! and atomic conditional writes under concurrency.

use std::sync::Arc;

use guildhall_store::{conformance, MemoryStore, Record, RedbStore, Store, StoreError};

#[tokio::test]
async fn memory_conformance() {
    conformance::run_all(&MemoryStore::new()).await;
}

#[tokio::test]
async fn redb_conformance() {
    let dir = tempfile::tempdir().unwrap();
    // A nested path also checks that open creates missing parent directories.
    let store = RedbStore::open(dir.path().join("nested/dir/store.redb")).unwrap();
    conformance::run_all(&store).await;
}

/// Writes a few records (including a delete and several versions), drops the
/// store, opens the same path again and checks everything reads back.
async fn check_survives_reopen<S: Store>(open: impl Fn() -> S) {
    {
        let store = open();
        assert_eq!(store.put(b"persist/a", b"a1".to_vec(), 0).await, Ok(1));
        assert_eq!(store.put(b"persist/a", b"a2".to_vec(), 1).await, Ok(2));
        assert_eq!(store.put(b"persist/a", b"a3".to_vec(), 2).await, Ok(3));
        assert_eq!(store.put(b"persist/b", b"b1".to_vec(), 0).await, Ok(1));
        assert_eq!(store.put(b"persist/gone", b"x".to_vec(), 0).await, Ok(1));
        assert_eq!(store.delete(b"persist/gone", 1).await, Ok(0));
    }
    let store = open();
    assert_eq!(store.get(b"persist/a").await, Ok(Some(Record { version: 3, value: b"a3".to_vec() })));
    assert_eq!(store.get(b"persist/b").await, Ok(Some(Record { version: 1, value: b"b1".to_vec() })));
    assert_eq!(store.get(b"persist/gone").await, Ok(None));
    let keys: Vec<Vec<u8>> = store.scan_prefix(b"persist/").await.unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec![b"persist/a".to_vec(), b"persist/b".to_vec()]);
    // Versions carry on from where they were, not from scratch.
    assert_eq!(store.put(b"persist/a", b"a4".to_vec(), 3).await, Ok(4));
    assert_eq!(
        store.put(b"persist/b", b"stale".to_vec(), 0).await,
        Err(StoreError::Conflict { expected: 0, actual: 1 })
    );
}

/// Eight tasks race to update one key, all naming the same version: exactly
/// one wins, the others see a conflict naming the winner's version.
async fn check_concurrent_puts_one_winner(store: Arc<dyn Store>) {
    let key = b"race/k";
    assert_eq!(store.put(key, b"start".to_vec(), 0).await, Ok(1));
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let tasks: Vec<_> = (0..8u8)
        .map(|i| {
            let store = Arc::clone(&store);
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                (i, store.put(key, vec![i], 1).await)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        let (i, result) = task.await.unwrap();
        match result {
            Ok(version) => {
                assert_eq!(version, 2);
                winners.push(i);
            }
            Err(err) => assert_eq!(err, StoreError::Conflict { expected: 1, actual: 2 }),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one put may win, got {winners:?}");
    assert_eq!(store.get(key).await, Ok(Some(Record { version: 2, value: vec![winners[0]] })));
}

#[tokio::test]
async fn redb_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb");
    check_survives_reopen(|| RedbStore::open(&path).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redb_concurrent_puts_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path().join("store.redb")).unwrap();
    check_concurrent_puts_one_winner(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_concurrent_puts_one_winner() {
    check_concurrent_puts_one_winner(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn redb_open_reports_unusable_path() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the database file should be: open must fail cleanly.
    let err = RedbStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
}

mod fjall {
    use super::*;
    use guildhall_store::FjallStore;

    #[tokio::test]
    async fn fjall_conformance() {
        let dir = tempfile::tempdir().unwrap();
        let store = FjallStore::open(dir.path().join("nested/fjall")).unwrap();
        conformance::run_all(&store).await;
    }

    #[tokio::test]
    async fn fjall_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fjall");
        check_survives_reopen(|| FjallStore::open(&path).unwrap()).await;
    }

    /// Buffered batches read back after a reopen, whether a sync or a later
    /// synced batch carried them to disk.
    #[tokio::test]
    async fn fjall_buffered_batches_survive_reopen_once_synced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fjall");
        {
            let store = FjallStore::open(&path).unwrap();
            let put = |k: &[u8], v: &[u8], e| guildhall_store::WriteOp::put(k, v.to_vec(), e);
            assert_eq!(store.write_batch_buffered(vec![put(b"buf/a", b"a1", 0)]).await, Ok(vec![Ok(1)]));
            store.sync().await.unwrap();
            assert_eq!(store.write_batch_buffered(vec![put(b"buf/b", b"b1", 0)]).await, Ok(vec![Ok(1)]));
            assert_eq!(store.put(b"buf/c", b"c1".to_vec(), 0).await, Ok(1));
        }
        let store = FjallStore::open(&path).unwrap();
        assert_eq!(store.get(b"buf/a").await, Ok(Some(Record { version: 1, value: b"a1".to_vec() })));
        assert_eq!(store.get(b"buf/b").await, Ok(Some(Record { version: 1, value: b"b1".to_vec() })));
        assert_eq!(store.get(b"buf/c").await, Ok(Some(Record { version: 1, value: b"c1".to_vec() })));
    }

    /// The engine's gauges are there for operators, and move with writes.
    #[tokio::test]
    async fn fjall_reports_its_engine_figures() {
        let dir = tempfile::tempdir().unwrap();
        let store = FjallStore::open(dir.path().join("fjall")).unwrap();
        let stat = |name: &str| {
            let stats = store.stats();
            stats.iter().find(|(n, _)| *n == name).map(|(_, v)| *v).unwrap_or_else(|| panic!("{name} in {stats:?}"))
        };
        let before = stat("guildhall_store_write_buffer_bytes");
        store.put(b"stats/a", vec![7; 1000], 0).await.unwrap();
        assert!(stat("guildhall_store_write_buffer_bytes") >= before + 1000.0, "the memtable holds the write");
        for name in ["guildhall_store_compaction_seconds", "guildhall_store_tables", "guildhall_store_l0_tables"] {
            assert!(stat(name) >= 0.0);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn fjall_concurrent_puts_one_winner() {
        let dir = tempfile::tempdir().unwrap();
        let store = FjallStore::open(dir.path().join("fjall")).unwrap();
        check_concurrent_puts_one_winner(Arc::new(store)).await;
    }
}
