//! Guildhall bots: AI clients that play the game through the public protocol
//! (the client SDK), like real players, to show how far a server scales.
//!
//! * [`SwarmConfig`]: how many bots, where, how fast, for how long.
//! * [`profile`]: what a bot does (the standard profile and `hammer`).
//! * [`run`]: runs a swarm with live progress and returns a [`Report`].
//!
//! Bots are bounded: they connect to loopback addresses only, never exceed
//! the configured count, and stop by themselves at the end of the duration.

mod bot;
mod config;
pub mod heap;
pub mod profile;
mod report;
mod rng;
mod stats;
mod swarm;

pub use config::{loopback_sources, ConfigError, RampConfig, SwarmConfig};
pub use report::{MethodLatency, Report, Sample};
pub use swarm::run;
