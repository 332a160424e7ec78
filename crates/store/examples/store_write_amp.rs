//! Write amplification of the fjall store under the game's write pattern:
//! the bytes the process writes to disk (journal, flushes, compactions)
//! per byte of keys and values it hands to the store, and the CPU it
//! spends per MB, for several memtable sizes and first-level thresholds.
//!
//! ```text
//! cargo run --release -p guildhall-store --example store_write_amp -- [MB of writes] [MB/s] [seed]
//! CONFIGS=2:4,4:12 ...   # memtable MiB : first-level tables, each in turn
//! ```
//!
//! The world is the soak's once every player has its listings (BENCHMARKS.md,
//! "Flat over time"): 19,500 player snapshots with 32 step parts each,
//! 690 guilds with 150 parts, 195,000 open listings in 16 shards. It is
//! loaded first; then each configuration receives the same seeded stream
//! of batches in the soak's mix (player snapshot plus one step part; guild
//! snapshot plus a part; a listing sold and a new one listed), durable
//! like the server's, at a steady rate (the soak writes ~1-2 MB/s of
//! state; unthrottled, compaction falls behind and the first level piles
//! up, which hides its cost). Databases go under `STORE_BENCH_DIR` (default: the
//! system temp dir); put it on the disk you want measured.

use std::path::{Path, PathBuf};
use std::time::Instant;

use guildhall_store::{FjallOptions, FjallStore, SideWrite, Store, WriteOp};

const PLAYERS: u32 = 19_500;
const STEP_PARTS: u32 = 32;
const GUILDS: u32 = 690;
const GUILD_PARTS: u32 = 150;
const SHARDS: u32 = 16;
const LISTINGS: u32 = 195_000;
/// Ops per durable batch: about what the server commits at 19,500 players.
const BATCH: usize = 32;

/// A small deterministic generator (xorshift), so that every configuration
/// gets the same stream from the same seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n)) as u32
    }
}

fn value(rng: &mut Rng, len: usize) -> Vec<u8> {
    // Half random, half repeated: JSON compresses about that well.
    (0..len).map(|i| if i % 2 == 0 { (rng.next() & 0xff) as u8 } else { b'"' }).collect()
}

fn side(key: String, value: Option<Vec<u8>>) -> SideWrite {
    SideWrite { key: key.into_bytes(), value }
}

/// The world, the state every configuration starts from.
struct World {
    versions: std::collections::HashMap<Vec<u8>, u64>,
    next_listing: Vec<u32>,
    oldest_listing: Vec<u32>,
}

impl World {
    fn put(&mut self, key: String, value: Vec<u8>, side: Vec<SideWrite>) -> WriteOp {
        let key = key.into_bytes();
        let expected = self.versions.get(&key).copied().unwrap_or(0);
        self.versions.insert(key.clone(), expected + 1);
        WriteOp::Put { key, value, expected, side }
    }

    fn initial(&mut self, rng: &mut Rng) -> Vec<WriteOp> {
        let mut ops = Vec::new();
        for p in 0..PLAYERS {
            let parts =
                (0..STEP_PARTS).map(|t| side(format!("e/player/p{p:08}\0t/{t}"), Some(value(rng, 32)))).collect();
            let v = value(rng, 480);
            ops.push(self.put(format!("e/player/p{p:08}"), v, parts));
        }
        for g in 0..GUILDS {
            let parts =
                (0..GUILD_PARTS).map(|i| side(format!("e/guild/g{g:05}\0k/{i}"), Some(value(rng, 150)))).collect();
            let v = value(rng, 600);
            ops.push(self.put(format!("e/guild/g{g:05}"), v, parts));
        }
        for s in 0..SHARDS {
            let per = LISTINGS / SHARDS;
            let parts = (0..per).map(|n| side(format!("e/market/{s}\0l/{n}"), Some(value(rng, 300)))).collect();
            self.next_listing[s as usize] = per;
            let v = value(rng, 100);
            ops.push(self.put(format!("e/market/{s}"), v, parts));
        }
        ops
    }

    /// One step of play in the soak's proportions of bytes: players ~65 %,
    /// guilds ~24 %, market ~10 %.
    fn step(&mut self, rng: &mut Rng) -> Vec<WriteOp> {
        let mut ops = Vec::with_capacity(3);
        let p = rng.below(PLAYERS);
        let slot = rng.below(STEP_PARTS);
        let parts = vec![side(format!("e/player/p{p:08}\0t/{slot}"), Some(value(rng, 32)))];
        let v = value(rng, 480);
        ops.push(self.put(format!("e/player/p{p:08}"), v, parts));
        if rng.below(100) < 22 {
            let g = rng.below(GUILDS);
            let part = rng.below(GUILD_PARTS);
            let parts = vec![side(format!("e/guild/g{g:05}\0k/{part}"), Some(value(rng, 150)))];
            let v = value(rng, 600);
            ops.push(self.put(format!("e/guild/g{g:05}"), v, parts));
        }
        if rng.below(100) < 17 {
            let s = rng.below(SHARDS) as usize;
            let (old, new) = (self.oldest_listing[s], self.next_listing[s]);
            self.oldest_listing[s] += 1;
            self.next_listing[s] += 1;
            let parts = vec![
                side(format!("e/market/{s}\0l/{old}"), None),
                side(format!("e/market/{s}\0l/{new}"), Some(value(rng, 300))),
            ];
            let v = value(rng, 100);
            ops.push(self.put(format!("e/market/{s}"), v, parts));
        }
        ops
    }
}

fn disk_written() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    io.lines().find_map(|l| l.strip_prefix("write_bytes: ")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum());
    ticks / 100.0
}

async fn run(dir: &Path, options: FjallOptions, megabytes: u64, rate: f64, seed: u64) {
    let path = dir.join(format!("m{}-l{}", options.memtable_bytes >> 20, options.l0_threshold));
    let store = FjallStore::open_with(&path, options).expect("open");
    let mut rng = Rng(seed);
    let mut world = World { versions: Default::default(), next_listing: vec![0; 16], oldest_listing: vec![0; 16] };
    for chunk in world.initial(&mut rng).chunks(64) {
        store.write_batch_buffered(chunk.to_vec()).await.expect("load");
    }
    store.sync().await.expect("sync");
    let (disk0, cpu0, t0) = (disk_written(), cpu_seconds(), Instant::now());
    let (mut payload, mut batch) = (0u64, Vec::with_capacity(BATCH));
    while payload < megabytes << 20 {
        while batch.len() < BATCH {
            batch.extend(world.step(&mut rng));
        }
        payload += batch.iter().map(|op| op.payload_bytes() as u64).sum::<u64>();
        let due = t0 + std::time::Duration::from_secs_f64(payload as f64 / (rate * 1e6));
        tokio::time::sleep_until(due.into()).await;
        for result in store.write_batch(std::mem::take(&mut batch)).await.expect("batch") {
            result.expect("write");
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let (disk, cpu) = (disk_written() - disk0, cpu_seconds() - cpu0);
    let stats: std::collections::HashMap<_, _> = store.stats().into_iter().collect();
    let mb = payload as f64 / 1e6;
    println!(
        "memtable {:>3} MiB  l0 {:>2}   written {:>7.1} MB  disk {:>8.1} MB  amp {:>5.2}  cpu {:>6.3} s/MB  {:>5.1} MB/s  tables {:>3} (l0 {:>2})  on disk {:>5.0} MB",
        options.memtable_bytes >> 20,
        options.l0_threshold,
        mb,
        disk as f64 / 1e6,
        disk as f64 / payload as f64,
        cpu / mb,
        mb / secs,
        stats["guildhall_store_tables"],
        stats["guildhall_store_l0_tables"],
        stats["guildhall_store_disk_bytes"] / 1e6,
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let megabytes: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(300);
    let rate: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2.0);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(7);
    let configs: Vec<(u64, u8)> = match std::env::var("CONFIGS") {
        Ok(list) => list
            .split(',')
            .filter_map(|c| c.split_once(':'))
            .filter_map(|(m, l)| Some((m.parse().ok()?, l.parse().ok()?)))
            .collect(),
        Err(_) => vec![(2, 4), (2, 16), (4, 8), (4, 12), (8, 4), (8, 8)],
    };
    let base = std::env::var_os("STORE_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = base.join(format!("guildhall-write-amp-{}", std::process::id()));
    println!("store_write_amp: {megabytes} MB of writes a configuration at {rate} MB/s, seed {seed}, batches of {BATCH} ops, in {}", dir.display());
    for (memtable_mib, l0) in configs {
        let options = FjallOptions { cache_bytes: 2 << 20, memtable_bytes: memtable_mib << 20, l0_threshold: l0 };
        run(&dir, options, megabytes, rate, seed).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
}
