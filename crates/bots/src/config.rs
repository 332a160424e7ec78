//! What a swarm does, validated before anything connects.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::profile::Profile;

/// Settings of a swarm.
#[derive(Debug, Clone)]
pub struct SwarmConfig {
    /// Server addresses (TCP, or WebSocket with `websocket`); bots are
    /// spread over them round-robin.
    pub targets: Vec<SocketAddr>,
    /// Play over WebSocket (`ws://target/`) instead of TCP.
    pub websocket: bool,
    /// Bots to run (at most; the ramp may stop earlier).
    pub players: usize,
    /// Bots started per second.
    pub spawn_rate: f64,
    /// The whole run, spawn phase included; bots stop by themselves after it.
    pub duration: Duration,
    pub profile: Profile,
    /// Source addresses to connect from, round-robin (each loopback address
    /// has its own ~28k ephemeral ports). Empty: let the system choose.
    pub source_addrs: Vec<IpAddr>,
    /// Seed of every random choice; printed so that a run can be replayed.
    pub seed: u64,
    /// Where to write the JSON report (an HTML page is written beside it).
    pub report: Option<PathBuf>,
    /// Print a progress line every second.
    pub progress: bool,
    /// Ramp-to-break mode.
    pub ramp: Option<RampConfig>,
    /// Prefix of bot device ids, so that runs do not share players.
    pub device_prefix: String,
    /// The server's process id (same machine), to sample its CPU and RSS
    /// from /proc into the time series.
    pub server_pid: Option<u32>,
}

/// Adds bots until something breaks, then reports the largest load held.
#[derive(Debug, Clone)]
pub struct RampConfig {
    /// p99 latency goal over a one-second window.
    pub p99_goal: Duration,
    /// Seconds in a row over the goal that count as broken.
    pub patience_secs: u32,
}

impl Default for SwarmConfig {
    fn default() -> Self {
        Self {
            targets: vec![SocketAddr::from(([127, 0, 0, 1], 7350))],
            websocket: false,
            players: 1000,
            spawn_rate: 200.0,
            duration: Duration::from_secs(60),
            profile: Profile::standard(),
            source_addrs: Vec::new(),
            seed: 1,
            report: None,
            progress: true,
            ramp: None,
            device_prefix: "bot".into(),
            server_pid: None,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("target {0} is not a loopback address: bots only load this machine")]
    NotLoopback(SocketAddr),
    #[error("source address {0} is not a loopback address")]
    SourceNotLoopback(IpAddr),
    #[error("at least one target is needed")]
    NoTarget,
    #[error("players must be between 1 and 1,000,000")]
    Players,
    #[error("duration must be between 1 s and 24 h")]
    Duration,
    #[error("spawn rate must be positive")]
    SpawnRate,
}

impl SwarmConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.targets.is_empty() {
            return Err(ConfigError::NoTarget);
        }
        if let Some(t) = self.targets.iter().find(|t| !t.ip().is_loopback()) {
            return Err(ConfigError::NotLoopback(*t));
        }
        if let Some(s) = self.source_addrs.iter().find(|s| !s.is_loopback()) {
            return Err(ConfigError::SourceNotLoopback(*s));
        }
        if self.players == 0 || self.players > 1_000_000 {
            return Err(ConfigError::Players);
        }
        if self.duration < Duration::from_secs(1) || self.duration > Duration::from_secs(24 * 3600) {
            return Err(ConfigError::Duration);
        }
        if self.spawn_rate.is_nan() || self.spawn_rate <= 0.0 {
            return Err(ConfigError::SpawnRate);
        }
        Ok(())
    }
}

/// `127.0.0.2` ... `127.0.0.{n+1}`: n loopback source addresses.
pub fn loopback_sources(n: u8) -> Vec<IpAddr> {
    (0..n).map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_and_bounded_runs_are_accepted() {
        let ok = SwarmConfig { source_addrs: loopback_sources(4), ..SwarmConfig::default() };
        assert_eq!(ok.validate(), Ok(()));
        let remote = SocketAddr::from(([10, 0, 0, 1], 7350));
        assert_eq!(
            SwarmConfig { targets: vec![remote], ..SwarmConfig::default() }.validate(),
            Err(ConfigError::NotLoopback(remote))
        );
        let src = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 2));
        assert_eq!(
            SwarmConfig { source_addrs: vec![src], ..SwarmConfig::default() }.validate(),
            Err(ConfigError::SourceNotLoopback(src))
        );
        assert_eq!(SwarmConfig { players: 0, ..SwarmConfig::default() }.validate(), Err(ConfigError::Players));
        assert_eq!(
            SwarmConfig { duration: Duration::from_secs(100_000), ..SwarmConfig::default() }.validate(),
            Err(ConfigError::Duration)
        );
    }
}
