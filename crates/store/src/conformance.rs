//! The behaviour every [`Store`] backend must share, as executable checks.
//!
//! Each check panics (via `assert!`) on the first deviation, naming the
//! check. They are library code rather than test code so that every backend's
//! test (and any backend written outside this crate) runs the same suite.
//!
//! Each check writes only under its own key prefix (`conf/<check>/`), so all of
//! them can share one store, but they assume those keys start out absent: run
//! the suite once, on a fresh store.

use crate::{Record, SideWrite, Store, StoreError, Version, WriteOp};

/// Runs every check, in turn, on `store`.
pub async fn run_all(store: &dyn Store) {
    check_get_missing(store).await;
    check_create(store).await;
    check_update_bumps_version(store).await;
    check_stale_version_refused(store).await;
    check_create_existing_refused(store).await;
    check_delete(store).await;
    check_delete_missing(store).await;
    check_batch_mixed(store).await;
    check_batch_same_key(store).await;
    check_scan_prefix(store).await;
    check_empty_batch(store).await;
    check_large_value(store).await;
    check_side_writes(store).await;
    check_buffered_batches(store).await;
}

fn conflict(expected: Version, actual: Version) -> StoreError {
    StoreError::Conflict { expected, actual }
}

fn record(version: Version, value: &[u8]) -> Record {
    Record { version, value: value.to_vec() }
}

fn put(key: &[u8], value: &[u8], expected: Version) -> WriteOp {
    WriteOp::put(key, value.to_vec(), expected)
}

fn delete(key: &[u8], expected: Version) -> WriteOp {
    WriteOp::Delete { key: key.to_vec(), expected }
}

async fn get(store: &dyn Store, key: &[u8]) -> Option<Record> {
    store.get(key).await.expect("get: backend error")
}

/// A key never written reads as `None`, and scanning its prefix finds nothing.
pub async fn check_get_missing(store: &dyn Store) {
    assert_eq!(get(store, b"conf/missing/nothing").await, None, "get_missing: absent key");
    let scanned = store.scan_prefix(b"conf/missing/").await.expect("scan");
    assert!(scanned.is_empty(), "get_missing: scan of an unused prefix returned {scanned:?}");
}

/// A put expecting 0 creates the record at version 1.
pub async fn check_create(store: &dyn Store) {
    let key = b"conf/create/k";
    assert_eq!(store.put(key, b"v1".to_vec(), 0).await, Ok(1), "create: version");
    assert_eq!(get(store, key).await, Some(record(1, b"v1")), "create: read back");
}

/// A put naming the current version succeeds and bumps the version by one.
pub async fn check_update_bumps_version(store: &dyn Store) {
    let key = b"conf/update/k";
    assert_eq!(store.put(key, b"a".to_vec(), 0).await, Ok(1), "update: create");
    assert_eq!(store.put(key, b"b".to_vec(), 1).await, Ok(2), "update: first update");
    assert_eq!(get(store, key).await, Some(record(2, b"b")), "update: after first update");
    assert_eq!(store.put(key, b"c".to_vec(), 2).await, Ok(3), "update: second update");
    assert_eq!(get(store, key).await, Some(record(3, b"c")), "update: after second update");
}

/// A put naming any other version is refused with the actual version, and
/// the record is left as it was; likewise on an absent key.
pub async fn check_stale_version_refused(store: &dyn Store) {
    let key = b"conf/stale/k";
    assert_eq!(store.put(key, b"a".to_vec(), 0).await, Ok(1), "stale: create");
    assert_eq!(store.put(key, b"b".to_vec(), 1).await, Ok(2), "stale: update");
    assert_eq!(store.put(key, b"stale".to_vec(), 1).await, Err(conflict(1, 2)), "stale: behind");
    assert_eq!(store.put(key, b"ahead".to_vec(), 7).await, Err(conflict(7, 2)), "stale: ahead");
    assert_eq!(get(store, key).await, Some(record(2, b"b")), "stale: value unchanged");

    let absent = b"conf/stale/absent";
    assert_eq!(store.put(absent, b"x".to_vec(), 3).await, Err(conflict(3, 0)), "stale: absent key");
    assert_eq!(get(store, absent).await, None, "stale: absent key not created");
}

/// Creating (expecting 0) a key that exists is refused.
pub async fn check_create_existing_refused(store: &dyn Store) {
    let key = b"conf/create_existing/k";
    assert_eq!(store.put(key, b"first".to_vec(), 0).await, Ok(1), "create_existing: create");
    assert_eq!(store.put(key, b"second".to_vec(), 0).await, Err(conflict(0, 1)), "create_existing: second create");
    assert_eq!(get(store, key).await, Some(record(1, b"first")), "create_existing: unchanged");
}

/// A delete naming the current version removes the record and returns 0; one
/// naming another version is refused and removes nothing. The key can then be
/// created again, starting over at version 1 (see [`WriteOp::Delete`]).
pub async fn check_delete(store: &dyn Store) {
    let key = b"conf/delete/k";
    assert_eq!(store.put(key, b"a".to_vec(), 0).await, Ok(1), "delete: create");
    assert_eq!(store.put(key, b"b".to_vec(), 1).await, Ok(2), "delete: update");
    assert_eq!(store.delete(key, 1).await, Err(conflict(1, 2)), "delete: stale version");
    assert_eq!(store.delete(key, 0).await, Err(conflict(0, 2)), "delete: expecting absent");
    assert_eq!(get(store, key).await, Some(record(2, b"b")), "delete: refused delete kept record");
    assert_eq!(store.delete(key, 2).await, Ok(0), "delete: right version");
    assert_eq!(get(store, key).await, None, "delete: record gone");
    assert_eq!(store.put(key, b"again".to_vec(), 2).await, Err(conflict(2, 0)), "delete: old version");
    assert_eq!(store.put(key, b"again".to_vec(), 0).await, Ok(1), "delete: recreate");
    assert_eq!(get(store, key).await, Some(record(1, b"again")), "delete: recreated");
}

/// Deleting an absent key expecting 0 succeeds and returns 0 (the caller's
/// belief that it is absent holds); expecting any other version is a conflict.
pub async fn check_delete_missing(store: &dyn Store) {
    let key = b"conf/delete_missing/k";
    assert_eq!(store.delete(key, 0).await, Ok(0), "delete_missing: expecting 0");
    assert_eq!(store.delete(key, 4).await, Err(conflict(4, 0)), "delete_missing: expecting 4");
    assert_eq!(get(store, key).await, None, "delete_missing: still absent");
}

/// In a batch, each op is checked on its own: the conflicting ones are
/// reported and skipped, the others applied, results in op order.
pub async fn check_batch_mixed(store: &dyn Store) {
    let (a, b, c, d) = (b"conf/batch/a", b"conf/batch/b", b"conf/batch/c", b"conf/batch/d");
    assert_eq!(store.put(a, b"a1".to_vec(), 0).await, Ok(1), "batch: setup a");
    assert_eq!(store.put(b, b"b1".to_vec(), 0).await, Ok(1), "batch: setup b");
    assert_eq!(store.put(d, b"d1".to_vec(), 0).await, Ok(1), "batch: setup d");

    let results = store
        .write_batch(vec![
            put(a, b"a2", 1),      // ok -> 2
            put(b, b"b-stale", 5), // conflict, b stays 1
            put(c, b"c1", 0),      // ok -> 1 (create)
            delete(b, 0),          // conflict, b exists at 1
            delete(d, 1),          // ok -> removed
            put(d, b"d-stale", 1), // conflict: d is gone now (actual 0)
        ])
        .await
        .expect("batch: backend error");
    assert_eq!(
        results,
        vec![Ok(2), Err(conflict(5, 1)), Ok(1), Err(conflict(0, 1)), Ok(0), Err(conflict(1, 0))],
        "batch: per-op results"
    );
    assert_eq!(get(store, a).await, Some(record(2, b"a2")), "batch: a applied");
    assert_eq!(get(store, b).await, Some(record(1, b"b1")), "batch: b untouched");
    assert_eq!(get(store, c).await, Some(record(1, b"c1")), "batch: c created");
    assert_eq!(get(store, d).await, None, "batch: d deleted");

    // A batch where every op conflicts changes nothing.
    let results = store.write_batch(vec![put(a, b"x", 1), delete(c, 9)]).await.expect("batch: backend error");
    assert_eq!(results, vec![Err(conflict(1, 2)), Err(conflict(9, 1))], "batch: all conflicts");
    assert_eq!(get(store, a).await, Some(record(2, b"a2")), "batch: a unchanged by all-conflict batch");
}

/// Two ops on the same key in one batch are checked in order, each seeing the
/// effect of the ones before it.
pub async fn check_batch_same_key(store: &dyn Store) {
    let key = b"conf/same_key/k";
    let results = store
        .write_batch(vec![
            put(key, b"one", 0),   // -> 1
            put(key, b"two", 1),   // sees 1 -> 2
            put(key, b"stale", 1), // sees 2: conflict
            delete(key, 2),        // -> absent
            put(key, b"again", 0), // sees absent -> 1
            put(key, b"final", 1), // -> 2
        ])
        .await
        .expect("same_key: backend error");
    assert_eq!(results, vec![Ok(1), Ok(2), Err(conflict(1, 2)), Ok(0), Ok(1), Ok(2)], "same_key: per-op results");
    assert_eq!(get(store, key).await, Some(record(2, b"final")), "same_key: final state");

    // Created and deleted within one batch: absent afterwards.
    let gone = b"conf/same_key/gone";
    let results =
        store.write_batch(vec![put(gone, b"brief", 0), delete(gone, 1)]).await.expect("same_key: backend error");
    assert_eq!(results, vec![Ok(1), Ok(0)], "same_key: create then delete");
    assert_eq!(get(store, gone).await, None, "same_key: created-then-deleted key absent");

    // An existing key deleted then recreated within one batch.
    assert_eq!(store.put(gone, b"v1".to_vec(), 0).await, Ok(1), "same_key: setup");
    let results =
        store.write_batch(vec![delete(gone, 1), put(gone, b"reborn", 0)]).await.expect("same_key: backend error");
    assert_eq!(results, vec![Ok(0), Ok(1)], "same_key: delete then recreate");
    assert_eq!(get(store, gone).await, Some(record(1, b"reborn")), "same_key: recreated");
}

/// `scan_prefix` returns exactly the keys starting with the prefix, in byte
/// order, with their current versions, and none of their neighbours.
pub async fn check_scan_prefix(store: &dyn Store) {
    let keys: [&[u8]; 10] = [
        b"conf/scan/b/1",    // neighbour after
        b"conf/scan/a/2",    // match
        b"conf/scan/a0",     // neighbour: '0' sorts right after '/'
        b"conf/scan/a/",     // match: the prefix itself
        b"conf/scan/a",      // neighbour: shorter than the prefix
        b"conf/scan/a/1",    // match
        b"conf/scan/a/\xff", // match: highest byte
        b"conf/scan/a.",     // neighbour: '.' sorts right before '/'
        b"conf/scan/a/10",   // match
        b"conf/scan/a/gone", // deleted below
    ];
    for key in keys {
        assert_eq!(store.put(key, key.to_vec(), 0).await, Ok(1), "scan: setup {key:?}");
    }
    assert_eq!(store.put(b"conf/scan/a/2", b"two".to_vec(), 1).await, Ok(2), "scan: update");
    assert_eq!(store.delete(b"conf/scan/a/gone", 1).await, Ok(0), "scan: delete");

    let scanned = store.scan_prefix(b"conf/scan/a/").await.expect("scan: backend error");
    let expected: Vec<(Vec<u8>, Record)> = vec![
        (b"conf/scan/a/".to_vec(), record(1, b"conf/scan/a/")),
        (b"conf/scan/a/1".to_vec(), record(1, b"conf/scan/a/1")),
        (b"conf/scan/a/10".to_vec(), record(1, b"conf/scan/a/10")),
        (b"conf/scan/a/2".to_vec(), record(2, b"two")),
        (b"conf/scan/a/\xff".to_vec(), record(1, b"conf/scan/a/\xff")),
    ];
    assert_eq!(scanned, expected, "scan: prefix conf/scan/a/");

    // A prefix ending in 0xff has no simple "next key" upper bound; a backend
    // computing one by incrementing the last byte gets this wrong.
    for key in [
        &b"conf/scanff/\xff"[..],
        b"conf/scanff/\xff\x00",
        b"conf/scanff/\xff\xff",
        b"conf/scanff/\xfe",
        b"conf/scanfg",
    ] {
        assert_eq!(store.put(key, b"v".to_vec(), 0).await, Ok(1), "scan: setup {key:?}");
    }
    let keys: Vec<Vec<u8>> = store
        .scan_prefix(b"conf/scanff/\xff")
        .await
        .expect("scan: backend error")
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    assert_eq!(
        keys,
        vec![b"conf/scanff/\xff".to_vec(), b"conf/scanff/\xff\x00".to_vec(), b"conf/scanff/\xff\xff".to_vec()],
        "scan: prefix ending in 0xff"
    );
}

/// Side writes ride on their owner's put: applied with it (stored with the
/// owner's new version), removed by `None`, and skipped entirely when the
/// owner's condition fails.
pub async fn check_side_writes(store: &dyn Store) {
    let side = |key: &[u8], value: Option<&[u8]>| SideWrite { key: key.to_vec(), value: value.map(<[u8]>::to_vec) };
    let owner = |expected: Version, side: Vec<SideWrite>| WriteOp::Put {
        key: b"conf/side/owner".to_vec(),
        value: format!("v{expected}").into_bytes(),
        expected,
        side,
    };
    let parts = || async {
        store
            .scan_prefix(b"conf/side/owner\0")
            .await
            .expect("side: backend error")
            .into_iter()
            .map(|(k, r)| (String::from_utf8_lossy(&k).into_owned(), r))
            .collect::<Vec<_>>()
    };
    let r = store
        .write_batch(vec![owner(
            0,
            vec![side(b"conf/side/owner\0a", Some(b"A")), side(b"conf/side/owner\0b", Some(b"B"))],
        )])
        .await;
    assert_eq!(r, Ok(vec![Ok(1)]), "side: owner created");
    assert_eq!(
        parts().await,
        vec![("conf/side/owner\0a".into(), record(1, b"A")), ("conf/side/owner\0b".into(), record(1, b"B"))],
        "side: written with the owner's version"
    );
    // A stale owner writes nothing, side writes included.
    let r = store.write_batch(vec![owner(0, vec![side(b"conf/side/owner\0c", Some(b"C"))])]).await;
    assert_eq!(r, Ok(vec![Err(conflict(0, 1))]), "side: stale owner refused");
    assert_eq!(parts().await.len(), 2, "side: nothing of a refused owner is written");
    // Update one, remove one, add one; a removal of an absent side key is fine.
    let r = store
        .write_batch(vec![owner(
            1,
            vec![
                side(b"conf/side/owner\0a", Some(b"A2")),
                side(b"conf/side/owner\0b", None),
                side(b"conf/side/owner\0d", Some(b"D")),
                side(b"conf/side/owner\0zz", None),
            ],
        )])
        .await;
    assert_eq!(r, Ok(vec![Ok(2)]), "side: owner updated");
    assert_eq!(
        parts().await,
        vec![("conf/side/owner\0a".into(), record(2, b"A2")), ("conf/side/owner\0d".into(), record(2, b"D"))],
        "side: updated, removed and added"
    );
    assert_eq!(get(store, b"conf/side/owner").await, Some(record(2, b"v1")), "side: the owner itself");
}

/// An empty batch succeeds with no results.
pub async fn check_empty_batch(store: &dyn Store) {
    assert_eq!(store.write_batch(Vec::new()).await, Ok(Vec::new()), "empty_batch");
}

/// A 200 KiB value round-trips byte for byte, and can be replaced by another.
pub async fn check_large_value(store: &dyn Store) {
    let key = b"conf/large/k";
    // A non-repeating-looking pattern, so a truncated or shifted copy differs.
    let big: Vec<u8> = (0..200 * 1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    assert_eq!(store.put(key, big.clone(), 0).await, Ok(1), "large: create");
    let got = get(store, key).await.expect("large: record missing");
    assert_eq!(got.version, 1, "large: version");
    assert!(got.value == big, "large: value differs (len {} vs {})", got.value.len(), big.len());

    let bigger: Vec<u8> = big.iter().rev().copied().chain(std::iter::repeat_n(7u8, 1024)).collect();
    assert_eq!(store.put(key, bigger.clone(), 1).await, Ok(2), "large: replace");
    let got = get(store, key).await.expect("large: record missing");
    assert_eq!(got.version, 2, "large: version after replace");
    assert!(got.value == bigger, "large: replaced value differs");
}

/// A buffered batch is checked, applied and visible like any other, and
/// versions carry on across buffered and synced batches alike.
pub async fn check_buffered_batches(store: &dyn Store) {
    let (a, b) = (b"conf/buffered/a".as_slice(), b"conf/buffered/b".as_slice());
    let results = store.write_batch_buffered(vec![put(a, b"a1", 0), put(b, b"b1", 3)]).await.expect("buffered batch");
    assert_eq!(results, vec![Ok(1), Err(conflict(3, 0))], "buffered: conditions are checked");
    assert_eq!(get(store, a).await, Some(record(1, b"a1")), "buffered: visible at once");
    assert_eq!(store.put(a, b"a2".to_vec(), 1).await, Ok(2), "buffered: a synced write follows on");
    let results = store.write_batch_buffered(vec![put(a, b"a3", 2)]).await.expect("buffered batch");
    assert_eq!(results, vec![Ok(3)]);
    store.sync().await.expect("sync");
    assert_eq!(get(store, a).await, Some(record(3, b"a3")));
    assert_eq!(store.write_batch_buffered(Vec::new()).await, Ok(Vec::new()), "buffered: empty batch");
}
