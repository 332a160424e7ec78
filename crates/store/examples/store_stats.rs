//! What a store holds, grouped by kind of record: how many keys and bytes.
//!
//! ```text
//! cargo run --release -p guildhall-store --example store_stats -- <data-dir>/fjall
//! ```
//!
//! Entity records are `e/{kind}/{key}` and their parts `e/{kind}/{key}\0{name}`;
//! a group is the kind plus the part name with its digits dropped
//! (`market … l/`), so that one line stands for every listing of every shard.
//! Used to see what grows in a long run (docs/bench-log/scaling-rounds.md, "Long runs").

use std::collections::BTreeMap;

use guildhall_store::{FjallStore, Store};

fn group(key: &[u8]) -> String {
    let key = String::from_utf8_lossy(key);
    let (record, part) = match key.split_once('\0') {
        Some((r, p)) => (r.to_string(), Some(p.to_string())),
        None => (key.to_string(), None),
    };
    let kind = record.split('/').take(2).collect::<Vec<_>>().join("/");
    match part {
        Some(p) => format!("{kind} part {}", p.trim_end_matches(|c: char| c.is_ascii_digit())),
        None => format!("{kind} snapshot"),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: store_stats <fjall directory>");
        std::process::exit(2);
    };
    let store = match FjallStore::open(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot open {path}: {e}");
            std::process::exit(1);
        }
    };
    let records = match store.scan_prefix(b"").await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot scan {path}: {e}");
            std::process::exit(1);
        }
    };
    let mut groups: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for (key, record) in &records {
        let g = groups.entry(group(key)).or_default();
        g.0 += 1;
        g.1 += key.len() as u64;
        g.2 += record.value.len() as u64;
    }
    println!("{:<36} {:>9} {:>12} {:>12} {:>9}", "group", "keys", "key bytes", "value bytes", "mean");
    let (mut keys, mut bytes) = (0, 0);
    for (name, (n, k, v)) in &groups {
        println!("{name:<36} {n:>9} {k:>12} {v:>12} {:>9}", (k + v) / n);
        keys += n;
        bytes += k + v;
    }
    println!("{:<36} {keys:>9} {bytes:>25}", "total");
}
