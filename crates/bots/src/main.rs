//! `guildhall-bots`: AI players against a Guildhall server on this machine.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use guildhall_bots::profile::Profile;
use guildhall_bots::{RampConfig, SwarmConfig};

#[derive(Parser)]
#[command(name = "guildhall-bots", version, about = "Bots that play Guildhall through its public protocol")]
struct Cli {
    /// Server TCP address(es), loopback only; repeat or comma-separate.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:7350")]
    target: Vec<SocketAddr>,
    /// Number of bots.
    #[arg(long, default_value_t = 1000)]
    players: usize,
    /// Bots started per second.
    #[arg(long, default_value_t = 200.0)]
    spawn_rate: f64,
    /// Length of the run in seconds; the bots stop by themselves after it.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Behaviour: standard (5 s mean think time) or hammer (no think time).
    #[arg(long, default_value = "standard")]
    profile: String,
    /// Connect from this many loopback source addresses (127.0.0.2 ...), to
    /// go past one address's ~28k ephemeral ports.
    #[arg(long, default_value_t = 4)]
    source_addrs: u8,
    /// Seed of every random choice (printed; reuse it to replay a run).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the JSON report here (and an HTML page beside it).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Ramp mode: add players until the p99 goal breaks, errors appear or a
    /// resource runs out; report the largest load held.
    #[arg(long)]
    ramp: bool,
    /// p99 goal of the ramp, in milliseconds.
    #[arg(long, default_value_t = 50)]
    p99_goal_ms: u64,
    /// The server's pid (same machine), to record its CPU and RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Prefix of the bots' device ids.
    #[arg(long, default_value = "bot")]
    device_prefix: String,
    /// Transport: `tcp`, or `ws` (then `--target` names WebSocket listeners).
    #[arg(long, default_value = "tcp", value_parser = ["tcp", "ws"])]
    transport: String,
}

fn main() -> std::process::ExitCode {
    guildhall_bots::heap::keep_freed_memory();
    tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime").block_on(run(Cli::parse()))
}

async fn run(cli: Cli) -> std::process::ExitCode {
    let Some(profile) = Profile::by_name(&cli.profile) else {
        eprintln!("guildhall-bots: unknown profile {:?} (standard, hammer)", cli.profile);
        return std::process::ExitCode::from(2);
    };
    let config = SwarmConfig {
        targets: cli.target,
        websocket: cli.transport == "ws",
        players: cli.players,
        spawn_rate: cli.spawn_rate,
        duration: Duration::from_secs(cli.duration),
        profile,
        source_addrs: guildhall_bots::loopback_sources(cli.source_addrs),
        seed: cli.seed,
        report: cli.report,
        progress: true,
        ramp: cli.ramp.then(|| RampConfig { p99_goal: Duration::from_millis(cli.p99_goal_ms), patience_secs: 3 }),
        device_prefix: cli.device_prefix,
        server_pid: cli.server_pid,
    };
    match guildhall_bots::run(config).await {
        Ok(report) => {
            eprintln!(
                "guildhall-bots: done: peak {} players, {} requests, {} errors{}",
                report.peak_players,
                report.requests,
                report.errors,
                report
                    .ramp
                    .map(|r| format!(
                        "; ramp held {} players, stopped by {} ({})",
                        r.held_players, r.stopped_by, r.detail
                    ))
                    .unwrap_or_default()
            );
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("guildhall-bots: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
