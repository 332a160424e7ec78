//! Compares the store backends (redb, fjall, and memory as a floor) on the
//! workloads the game server will put on them.
//!
//! ```text
//! cargo run --release -p guildhall-store --example store_bench
//! ```
//!
//! Everything except the "raw get" row goes through the async [`Store`] trait
//! on a tokio runtime, as the server will, so it includes the cost of moving
//! each call to the blocking pool. Writes are durable (each batch or put is
//! fsynced before it returns). Databases are created in a fresh temporary
//! directory under `STORE_BENCH_DIR`, or the system temp dir if unset; put it
//! on the disk you want measured (tmpfs would make fsync free).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use guildhall_store::{FjallStore, MemoryStore, RedbStore, Store, WriteOp};

const VALUE_LEN: usize = 300;
const BATCHES: u64 = 50;
const BATCH_SIZE: u64 = 1_000;
const SINGLE_PUTS: u64 = 500;
const RECORDS: u64 = 100_000;
const GETS: u64 = 100_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Backend {
    Redb,
    Fjall,
    Memory,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Redb => "redb",
            Backend::Fjall => "fjall",
            Backend::Memory => "memory",
        }
    }

    fn open(self, path: &Path) -> Box<dyn Store> {
        match self {
            Backend::Redb => Box::new(RedbStore::open(path.join("store.redb")).expect("open redb")),
            Backend::Fjall => Box::new(FjallStore::open(path.join("fjall")).expect("open fjall")),
            Backend::Memory => Box::new(MemoryStore::new()),
        }
    }
}

#[derive(Default)]
struct Results {
    create_batch: Vec<Duration>,
    update_batch: Vec<Duration>,
    single_puts: Duration,
    load_100k: Duration,
    disk_bytes: Option<u64>,
    reopen: Option<Duration>,
    first_get_after_reopen: Option<Duration>,
    gets: Duration,
    raw_gets: Option<Duration>,
}

fn key(prefix: &str, i: u64) -> Vec<u8> {
    format!("{prefix}/{i:08}").into_bytes()
}

/// A 300-byte value that differs per key and per round (so updates really
/// rewrite, and compression can't shrink it to nothing).
fn value(i: u64, round: u64) -> Vec<u8> {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ round.wrapping_mul(0xD1B5_4A32_D192_ED03) | 1;
    (0..VALUE_LEN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// xorshift64*: a deterministic "random" key order without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

async fn write_all_ok(store: &dyn Store, ops: Vec<WriteOp>, expect_version: u64) {
    let n = ops.len();
    let results = store.write_batch(ops).await.expect("batch failed");
    assert_eq!(results.len(), n);
    for r in results {
        assert_eq!(r, Ok(expect_version), "unexpected per-op result");
    }
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

async fn bench(backend: Backend, root: &Path) -> Results {
    let mut res = Results::default();

    // (a) + (b): durable batched writes, then single durable puts.
    let dir = root.join(format!("{}-writes", backend.name()));
    {
        let store = backend.open(&dir);
        let half = BATCHES / 2;
        for round in 0..2u64 {
            for b in 0..half {
                let ops: Vec<WriteOp> = (b * BATCH_SIZE..(b + 1) * BATCH_SIZE)
                    .map(|i| WriteOp::put(key("batch", i), value(i, round), round))
                    .collect();
                let start = Instant::now();
                write_all_ok(store.as_ref(), ops, round + 1).await;
                let took = start.elapsed();
                if round == 0 {
                    res.create_batch.push(took)
                } else {
                    res.update_batch.push(took)
                }
            }
        }

        let start = Instant::now();
        for i in 0..SINGLE_PUTS {
            let v = store.put(&key("single", i), value(i, 0), 0).await.expect("put failed");
            assert_eq!(v, 1);
        }
        res.single_puts = start.elapsed();
    }

    // (c) load 100k records, close, time the reopen; (d) random gets.
    let dir = root.join(format!("{}-100k", backend.name()));
    let store = backend.open(&dir);
    let start = Instant::now();
    for b in 0..RECORDS / BATCH_SIZE {
        let ops: Vec<WriteOp> =
            (b * BATCH_SIZE..(b + 1) * BATCH_SIZE).map(|i| WriteOp::put(key("rec", i), value(i, 0), 0)).collect();
        write_all_ok(store.as_ref(), ops, 1).await;
    }
    res.load_100k = start.elapsed();

    let store = if backend == Backend::Memory {
        store
    } else {
        drop(store);
        res.disk_bytes = Some(dir_size(&dir));
        let start = Instant::now();
        let store = backend.open(&dir);
        res.reopen = Some(start.elapsed());
        let start = Instant::now();
        let first = store.get(&key("rec", 0)).await.expect("get failed");
        res.first_get_after_reopen = Some(start.elapsed());
        assert_eq!(first.map(|r| r.version), Some(1));
        store
    };

    let mut rng = Rng(0x0123_4567_89AB_CDEF);
    let start = Instant::now();
    for _ in 0..GETS {
        let i = rng.below(RECORDS);
        let record = store.get(&key("rec", i)).await.expect("get failed").expect("missing record");
        assert_eq!(record.value.len(), VALUE_LEN);
    }
    res.gets = start.elapsed();
    drop(store);

    res.raw_gets = match backend {
        Backend::Redb => Some(raw_redb_gets(&dir.join("store.redb"))),
        Backend::Fjall => Some(raw_fjall_gets(&dir.join("fjall"))),
        Backend::Memory => None,
    };
    res
}

/// The same random gets straight on redb, without the async trait and
/// blocking-pool hop, to separate engine cost from plumbing cost. Relies on
/// `RedbStore`'s layout (one table "records").
fn raw_redb_gets(path: &Path) -> Duration {
    use redb::ReadableDatabase;
    const TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("records");
    let db = redb::Database::create(path).expect("open redb");
    let txn = db.begin_read().expect("begin read");
    let table = txn.open_table(TABLE).expect("open table");
    let mut rng = Rng(0x0123_4567_89AB_CDEF);
    let start = Instant::now();
    for _ in 0..GETS {
        let k = key("rec", rng.below(RECORDS));
        let v = table.get(k.as_slice()).expect("get").expect("missing");
        assert_eq!(v.value().len(), 8 + VALUE_LEN);
    }
    start.elapsed()
}

/// As [`raw_redb_gets`], on fjall (keyspace "records").
fn raw_fjall_gets(path: &Path) -> Duration {
    let db = fjall::Database::builder(path).open().expect("open fjall");
    let ks = db.keyspace("records", fjall::KeyspaceCreateOptions::default).expect("keyspace");
    let mut rng = Rng(0x0123_4567_89AB_CDEF);
    let start = Instant::now();
    for _ in 0..GETS {
        let k = key("rec", rng.below(RECORDS));
        let v = ks.get(&k).expect("get").expect("missing");
        assert_eq!(v.len(), 8 + VALUE_LEN);
    }
    start.elapsed()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn per_sec(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn opt_ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "n/a".into(), |d| format!("{:.1}", ms(d)))
}

fn main() {
    let base = std::env::var_os("STORE_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let tmp = tempfile::Builder::new().prefix("store-bench-").tempdir_in(&base).expect("temp dir");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");

    println!("store_bench: {VALUE_LEN}-byte values; dir {}", tmp.path().display());
    let backends = [Backend::Redb, Backend::Fjall, Backend::Memory];
    let mut all = Vec::new();
    for backend in backends {
        eprintln!("running {} ...", backend.name());
        all.push((backend, rt.block_on(bench(backend, tmp.path()))));
    }

    println!();
    println!(
        "(a) durable batches: {BATCHES} batches x {BATCH_SIZE} puts ({} creating new keys, then {} updating them)",
        BATCHES / 2,
        BATCHES / 2
    );
    println!(
        "{:<8} {:>14} {:>14} {:>14} {:>12} {:>12} {:>12}",
        "backend", "all rec/s", "create rec/s", "update rec/s", "ms/batch avg", "ms/batch p50", "ms/batch max"
    );
    for (backend, r) in &all {
        let mut batches: Vec<Duration> = r.create_batch.iter().chain(&r.update_batch).copied().collect();
        let total: Duration = batches.iter().sum();
        let create: Duration = r.create_batch.iter().sum();
        let update: Duration = r.update_batch.iter().sum();
        batches.sort();
        println!(
            "{:<8} {:>14.0} {:>14.0} {:>14.0} {:>12.2} {:>12.2} {:>12.2}",
            backend.name(),
            per_sec(BATCHES * BATCH_SIZE, total),
            per_sec(r.create_batch.len() as u64 * BATCH_SIZE, create),
            per_sec(r.update_batch.len() as u64 * BATCH_SIZE, update),
            ms(total) / batches.len() as f64,
            ms(batches[batches.len() / 2]),
            ms(batches[batches.len() - 1]),
        );
    }

    println!();
    println!("(b) single durable puts: {SINGLE_PUTS} sequential creates");
    println!("{:<8} {:>10} {:>10}", "backend", "ops/s", "ms/op");
    for (backend, r) in &all {
        println!(
            "{:<8} {:>10.0} {:>10.3}",
            backend.name(),
            per_sec(SINGLE_PUTS, r.single_puts),
            ms(r.single_puts) / SINGLE_PUTS as f64
        );
    }

    println!();
    println!("(c) {RECORDS} records: load (100 durable batches), size on disk, reopen");
    println!("{:<8} {:>10} {:>10} {:>10} {:>16}", "backend", "load s", "disk MiB", "reopen ms", "1st get ms");
    for (backend, r) in &all {
        println!(
            "{:<8} {:>10.2} {:>10} {:>10} {:>16}",
            backend.name(),
            r.load_100k.as_secs_f64(),
            r.disk_bytes.map_or_else(|| "n/a".into(), |b| format!("{:.1}", b as f64 / (1024.0 * 1024.0))),
            opt_ms(r.reopen),
            opt_ms(r.first_get_after_reopen),
        );
    }

    println!();
    println!("(d) {GETS} random gets over the {RECORDS} records (after reopen), sequential");
    println!(
        "{:<8} {:>14} {:>10} {:>16} {:>12}",
        "backend", "Store gets/s", "us/get", "raw engine get/s", "raw us/get"
    );
    for (backend, r) in &all {
        println!(
            "{:<8} {:>14.0} {:>10.2} {:>16} {:>12}",
            backend.name(),
            per_sec(GETS, r.gets),
            r.gets.as_secs_f64() * 1e6 / GETS as f64,
            r.raw_gets.map_or_else(|| "n/a".into(), |d| format!("{:.0}", per_sec(GETS, d))),
            r.raw_gets.map_or_else(|| "n/a".into(), |d| format!("{:.2}", d.as_secs_f64() * 1e6 / GETS as f64)),
        );
    }
}
