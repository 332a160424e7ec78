//! Server configuration: defaults, then a TOML file, then environment
//! variables, then command-line flags (each overrides the one before).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// Every setting of the server. Field names are the keys of the TOML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Directory of the embedded store.
    pub data_dir: PathBuf,
    /// Storage backend: "fjall" (embedded LSM, durable; the default),
    /// "redb" (embedded B-tree, durable) or "memory" (lost at exit; for
    /// experiments).
    pub store: String,
    /// Block cache (fjall) or page cache (redb) of the embedded store, MiB
    /// (part of the server's RSS).
    /// Live entities are in memory, so the cache serves only activations;
    /// the OS page cache (outside the RSS) holds the file as well.
    pub store_cache_mib: usize,
    /// Memtable of the fjall store, MiB: sealed and flushed to a table at
    /// this size. The active memtable and a sealed one being flushed are
    /// both in the RSS; smaller means more flushes and compactions.
    pub store_memtable_mib: usize,
    /// Tables of the fjall store's first level merged into the next at
    /// once: each merge rewrites the second level, so fewer, larger merges
    /// write less (BENCHMARKS.md, "Store write amplification"). fjall
    /// stalls writes at 20 first-level tables: keep well below.
    /// The memtable size and this are fixed when the data directory is
    /// created; an existing directory keeps the values it was created with.
    pub store_l0_tables: u8,
    /// TCP listener for clients (length-prefixed protobuf frames).
    pub listen: String,
    /// WebSocket listener for clients (binary messages); empty to disable.
    pub ws_listen: String,
    /// Admin HTTP listener (health, metrics, introspection); empty to disable.
    /// Unauthenticated: keep it on a private address.
    pub admin_listen: String,
    /// Largest frame accepted or sent, in bytes.
    pub max_frame: usize,
    /// Connections held at once (TCP + WebSocket); more are told SERVER_FULL.
    pub max_connections: usize,
    /// Sustained requests per second allowed per connection.
    pub rate_limit_per_sec: u32,
    /// Requests a connection may send in a burst above the sustained rate.
    pub rate_limit_burst: u32,
    /// A connection silent for this long gets a ping.
    pub heartbeat_secs: u64,
    /// A connection silent for this long is closed.
    pub idle_timeout_secs: u64,
    /// A connection without a session (not yet logged in, or logged out)
    /// is closed this long after it connected (or logged out) unless it
    /// logs in or resumes: pings and other frames do not extend it, so
    /// sockets that never log in cannot hold the connection slots.
    pub login_deadline_secs: u64,
    /// How long a session outlives its dropped connection.
    pub resume_window_secs: u64,
    /// Lifetime of a session token.
    pub token_ttl_secs: u64,
    /// HMAC secret for session tokens. Unset: a random one per start (tokens
    /// then do not survive a restart) and a warning.
    pub secret: Option<String>,
    /// Unacknowledged server messages a session keeps for replay.
    pub replay_buffer: usize,
    /// Results of recent requests a session remembers for retransmissions.
    /// A client re-sends only its unanswered requests after a reconnect, so
    /// this needs to cover what a client has in flight, not its history;
    /// each remembered result holds a whole response.
    pub remembered_results: usize,
    /// A session receives at most one market offer-stream push per this many
    /// milliseconds (0: every offer).
    pub stream_push_interval_ms: u64,
    /// Longest time dirty entity state stays unwritten (write-behind).
    pub flush_interval_ms: u64,
    /// Least time between two store commits, in milliseconds: durable writes
    /// arriving meanwhile share one commit (and one fsync). Adds at most this
    /// much to a durable request under load; 0 commits back to back.
    pub commit_interval_ms: u64,
    /// Longest a commit of write-behind state alone waits for an fsync, in
    /// milliseconds: it is handed to the OS at once (a crash of the process
    /// loses nothing) and synced with the next durable write or after this
    /// long. 0 syncs every commit.
    pub sync_interval_ms: u64,
    /// Entities idle this long are passivated.
    pub entity_idle_secs: u64,
    /// How long a request waits for an entity.
    pub call_timeout_ms: u64,
    /// Length of an expedition period (a game "week"), in seconds.
    pub expedition_period_secs: u64,
    /// Expedition rewards paid per maintenance tick.
    pub expedition_payouts_per_tick: usize,
    /// Tokio worker threads; 0: one per core but one, at least one. The
    /// store's commits (`fdatasync`, on blocking threads) and fjall's
    /// flushes and compactions run beside the workers, and a worker per
    /// core competes with them and wakes and parks more: on the 2-core
    /// benchmark machine one worker used 9 % less CPU than two at 19,500
    /// players, with the latency goal held (docs/bench-log/scaling-rounds.md, "Rounds").
    pub worker_threads: usize,
    /// Log format: "json" or "text".
    pub log_format: String,
    /// Log filter, e.g. "info" or "guildhall_server=debug,info".
    pub log_level: String,
    /// Log lines buffered for the writer thread; beyond them lines are
    /// dropped (and counted), never waited for.
    pub log_buffer_lines: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("guildhall-data"),
            store: "fjall".into(),
            store_cache_mib: 2,
            store_memtable_mib: 4,
            store_l0_tables: 12,
            listen: "127.0.0.1:7350".into(),
            ws_listen: "127.0.0.1:7351".into(),
            admin_listen: "127.0.0.1:7352".into(),
            max_frame: guildhall_protocol::DEFAULT_MAX_FRAME,
            max_connections: 19_500,
            rate_limit_per_sec: 20,
            rate_limit_burst: 60,
            heartbeat_secs: 15,
            idle_timeout_secs: 45,
            login_deadline_secs: 10,
            resume_window_secs: 60,
            token_ttl_secs: 24 * 3600,
            secret: None,
            replay_buffer: 256,
            remembered_results: 8,
            stream_push_interval_ms: 5_000,
            flush_interval_ms: 2_000,
            commit_interval_ms: 0,
            sync_interval_ms: 1_000,
            entity_idle_secs: 300,
            call_timeout_ms: 5_000,
            expedition_period_secs: 7 * 24 * 3600,
            expedition_payouts_per_tick: 200,
            worker_threads: 0,
            log_format: "json".into(),
            log_level: "info".into(),
            log_buffer_lines: 64 * 1024,
        }
    }
}

impl Config {
    /// Reads a TOML file over the defaults.
    pub fn from_file(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The tokio worker threads to start: [`Config::worker_threads`], or
    /// for 0 one per core but one (at least one).
    pub fn resolved_worker_threads(&self) -> usize {
        if self.worker_threads > 0 {
            return self.worker_threads;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        cores.saturating_sub(1).max(1)
    }

    pub fn resume_window(&self) -> Duration {
        Duration::from_secs(self.resume_window_secs)
    }

    /// A configuration for tests: ephemeral ports, in-memory store, no
    /// secrets needed.
    pub fn for_tests() -> Self {
        Self {
            store: "memory".into(),
            listen: "127.0.0.1:0".into(),
            ws_listen: "127.0.0.1:0".into(),
            admin_listen: "127.0.0.1:0".into(),
            secret: Some("test-secret".into()),
            // Tests check every offer of the stream.
            stream_push_interval_ms: 0,
            // Tests make many durable requests one after another.
            commit_interval_ms: 0,
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_values_override_defaults_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.toml");
        std::fs::write(&path, "listen = \"0.0.0.0:9000\"\nresume_window_secs = 5\n").unwrap();
        let c = Config::from_file(&path).unwrap();
        assert_eq!(c.listen, "0.0.0.0:9000");
        assert_eq!(c.resume_window_secs, 5);
        assert_eq!(c.max_frame, 64 * 1024, "unset keys keep their defaults");

        std::fs::write(&path, "lisen = \"typo\"\n").unwrap();
        let err = Config::from_file(&path).unwrap_err();
        assert!(err.contains("lisen"), "{err}");
    }

    #[test]
    fn worker_threads_zero_leaves_a_core_to_the_store_and_a_number_is_kept() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let auto = Config::default().resolved_worker_threads();
        assert_eq!(auto, cores.saturating_sub(1).max(1));
        assert!(auto >= 1);
        let c = Config { worker_threads: 3, ..Config::default() };
        assert_eq!(c.resolved_worker_threads(), 3);
    }
}
