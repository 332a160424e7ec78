//! Guild directory search benchmark: prefix searches and recommendations
//! over 100,000 generated guilds, directly on `DirectoryIndex` (the struct
//! the directory entity runs; no network, no runtime).
//!
//! ```sh
//! cargo run --release -p guildhall-game --example directory_bench
//! ```
//!
//! Prints the time per operation (mean over many runs) and the result sizes,
//! so that a figure can be checked against what was asked.

use std::hint::black_box;
use std::time::Instant;

use guildhall_game::guild::directory::{DirectoryIndex, SearchQuery};
use guildhall_game::guild::{week_of, GuildSummary};
use guildhall_game::rng::SplitMix64;

const GUILDS: usize = 100_000;
const NOW_MS: u64 = 1_767_225_600_000;
const SYLLABLES: &[&str] = &[
    "dra", "gon", "moon", "sun", "ka", "ri", "el", "thor", "wyn", "sha", "dow", "fal", "con", "ash", "iron", "mist",
    "val", "kor", "zen", "lu", "mar", "bel", "ny", "ox",
];
const LANGUAGES: &[&str] = &["en", "en", "en", "de", "fr", "es", "pt", "ru", "ja", "ko"];

fn generate(rng: &mut SplitMix64) -> DirectoryIndex {
    let mut ix = DirectoryIndex::default();
    let week = week_of(NOW_MS);
    let mut n = 0u64;
    while ix.len() < GUILDS {
        n += 1;
        let parts = 2 + rng.below(2);
        let mut name = String::new();
        for _ in 0..parts {
            name.push_str(SYLLABLES[rng.below(SYLLABLES.len() as u64) as usize]);
        }
        let mut chars = name.chars();
        let name: String = chars.next().unwrap().to_uppercase().chain(chars).collect();
        let name = format!("{name} {n}");
        let id = format!("g{n}");
        let tag = format!("T{n:X}");
        let language = LANGUAGES[rng.below(LANGUAGES.len() as u64) as usize];
        let open = rng.below(4) != 0;
        if ix.reserve(&id, &name, &tag, language, open).is_err() {
            continue;
        }
        let summary = GuildSummary {
            id,
            name,
            tag,
            members: 1 + rng.below(30) as u32,
            capacity: 30,
            open,
            language: language.into(),
            activity: rng.below(500),
            activity_week: week,
        };
        ix.upsert(summary, 1);
    }
    ix
}

/// Runs `op` `iters` times; prints the mean time per call and the last
/// result's size.
fn time(label: &str, iters: u32, mut op: impl FnMut(u32) -> usize) {
    let mut size = 0;
    // Warm-up.
    for i in 0..iters.min(100) {
        size = black_box(op(i));
    }
    let start = Instant::now();
    for i in 0..iters {
        size = black_box(op(i));
    }
    let per = start.elapsed() / iters;
    println!("{label:<58} {iters:>7} runs  {:>10.1} µs/op  results {size}", per.as_secs_f64() * 1e6);
}

fn main() {
    let mut rng = SplitMix64::new(42);
    let start = Instant::now();
    let ix = generate(&mut rng);
    println!("generated {} guilds in {:.0} ms", ix.len(), start.elapsed().as_secs_f64() * 1e3);
    let q = |prefix: &str| SearchQuery { prefix: prefix.into(), ..SearchQuery::default() };
    let prefixes: Vec<String> = SYLLABLES.iter().map(|s| s.to_string()).collect();

    time("search: 1-letter prefix (\"d\")", 100_000, |_| ix.search(&q("d"), NOW_MS).len());
    time("search: syllable prefixes, rotating", 100_000, |i| {
        ix.search(&q(&prefixes[i as usize % prefixes.len()]), NOW_MS).len()
    });
    time("search: 6-letter prefix (\"dragon\")", 100_000, |_| ix.search(&q("dragon"), NOW_MS).len());
    time("search: no match (\"qq\")", 100_000, |_| ix.search(&q("qq"), NOW_MS).len());
    time("search: \"moon\" + open + room + ja", 10_000, |_| {
        let filt = SearchQuery { open_only: true, has_room: true, language: "ja".into(), ..q("moon") };
        ix.search(&filt, NOW_MS).len()
    });
    time("search: empty prefix, 25-30 members, ko (wide scan)", 1_000, |_| {
        let filt = SearchQuery { language: "ko".into(), min_members: 25, ..q("") };
        ix.search(&filt, NOW_MS).len()
    });
    time("search: empty prefix, impossible filter (full scan)", 100, |_| {
        let filt = SearchQuery { min_members: 31, ..q("") };
        ix.search(&filt, NOW_MS).len()
    });
    time("recommend: en, top 20 (full scan)", 200, |_| ix.recommend("en", None, 20, NOW_MS).len());
    time("recommend: ko, top 20 (full scan)", 200, |_| ix.recommend("ko", Some("g17"), 20, NOW_MS).len());
}
