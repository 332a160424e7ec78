//! Giving freed heap memory back to the OS.
//!
//! glibc's malloc keeps freed chunks in its arenas, and a page goes back to
//! the OS only when it sits at the top of an arena. Under play, sessions
//! come and go and messages wait for acks in between, so free chunks end up
//! scattered and the process keeps pages it no longer uses: RSS grows well
//! past the live heap. `malloc_trim` walks the arenas and releases every
//! whole free page (`madvise(MADV_DONTNEED)`). The server calls it every few
//! seconds from a blocking thread, so no worker waits for the walk.

/// Seconds between two trims.
pub const TRIM_EVERY_SECS: u64 = 10;

/// Trims between two readings of the heap's figures: `mallinfo2` walks the
/// free chunks of every arena holding its lock, as the trim does, so it
/// runs at a fraction of the trims' rate.
pub const REPORT_EVERY_TRIMS: u64 = 3;

/// Arenas glibc may create. By default it makes one per thread up to eight
/// per core, and memory freed by another thread stays in its arena: at
/// 19,500 players the two workers' arenas sat at 64 MiB each while those of
/// the store's threads grew by ~0.5 MB/s (`/proc/<pid>/smaps`). Capped at
/// 4 the RSS fell by 16 MiB with CPU within noise; at 2 it fell by 20 MiB
/// but the server's CPU rose 9 % (lock contention between the workers).
/// Measured in docs/bench-log/scaling-rounds.md, "Rounds".
pub const ARENAS: i32 = 4;

/// Caps glibc's arenas at [`ARENAS`] unless `MALLOC_ARENA_MAX` says
/// otherwise. Call before any thread starts.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets the allocator's own parameter.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, ARENAS);
        }
    }
}

/// Releases free heap pages; returns whether any memory went back.
pub fn trim() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only touches the allocator's own state, under
        // the allocator's locks; 0 keeps no extra padding at the heap's top.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// What glibc's heap holds (`mallinfo2`, summed over every arena).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeapStats {
    /// Bytes in chunks the program is using.
    pub in_use: usize,
    /// Bytes the allocator took from the OS for its arenas and large
    /// chunks. Held minus in use is free space inside the heap: the part
    /// of RSS that fragmentation costs (less what `trim` gave back).
    pub held: usize,
}

/// The heap's current figures, where the allocator reports them.
pub fn heap_stats() -> Option<HeapStats> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 reads the allocator's counters under its locks.
        let info = unsafe { libc::mallinfo2() };
        Some(HeapStats { in_use: info.uordblks + info.hblkhd, held: info.arena + info.hblkhd })
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}

/// The heap's figures as gauges (`guildhall_heap_in_use_bytes`,
/// `guildhall_heap_held_bytes`): what the process's RSS is made of. Walks
/// every arena: call it from a blocking thread.
pub fn report() {
    if let Some(stats) = heap_stats() {
        metrics::gauge!("guildhall_heap_in_use_bytes").set(stats.in_use as f64);
        metrics::gauge!("guildhall_heap_held_bytes").set(stats.held as f64);
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    /// The two tests measure the whole process's heap: one at a time.
    static ALONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[test]
    fn freed_memory_scattered_in_the_heap_goes_back_to_the_os() {
        let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
        // 3,200 chunks of 40 KiB (under malloc's mmap threshold, so in the
        // arena), touched so that they are resident; every 16th stays
        // alive, so the freed ones are holes, not the top of the heap.
        let mut chunks: Vec<Vec<u8>> = (0..3_200).map(|i| vec![i as u8 | 1; 40 << 10]).collect();
        let kept: Vec<Vec<u8>> = chunks.iter_mut().step_by(16).map(std::mem::take).collect();
        drop(chunks);
        let before = rss_kib();
        assert!(trim(), "some memory went back");
        let after = rss_kib();
        // ~117 MiB were freed; most of it must leave the RSS.
        assert!(before.saturating_sub(after) > 60 << 10, "RSS {before} KiB -> {after} KiB");
        assert!(kept.iter().all(|c| c.len() == 40 << 10 && c[0] != 0), "live chunks untouched");
    }

    #[test]
    fn heap_stats_count_what_the_program_holds() {
        let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
        let before = heap_stats().expect("glibc reports its heap");
        let block: Vec<u8> = vec![7; 8 << 20];
        let during = heap_stats().unwrap();
        assert!(during.in_use >= before.in_use + (8 << 20), "{before:?} -> {during:?}");
        assert!(during.held >= during.in_use, "{during:?}");
        assert_eq!(block[4 << 20], 7);
    }
}
