//! The bots' heap: keep what was freed instead of handing it back.
//!
//! Pushes reach the bots in bursts (market feeds, guild chat and
//! donations), so the bots' allocations rise and fall within a second.
//! glibc's `free` gives the top of a heap back to the OS once more than the
//! trim threshold is free there, and the next burst faults the same pages in
//! again, each one zeroed by the kernel: in a profile at t = 280 s of a long
//! run 9 % of the bots' CPU went to those faults, in bursts that held the
//! bots' runtime for 150-180 ms every few seconds. Latencies are
//! measured in this process, so a stall here was counted as the server's
//! (docs/bench-log/scaling-rounds.md, "Long runs"). A load generator's memory is not what is
//! being measured; its steadiness is.

/// Bytes free at the top of a heap before glibc gives them back.
pub const TRIM_THRESHOLD: i32 = 512 << 20;

/// Raises glibc's trim threshold to [`TRIM_THRESHOLD`] unless
/// `MALLOC_TRIM_THRESHOLD_` says otherwise. Call before any thread starts.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_TRIM_THRESHOLD_").is_none() {
        // SAFETY: mallopt only sets the allocator's own parameter.
        unsafe {
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        }
    }
}
