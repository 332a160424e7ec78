//! Bots against a real server on port 0: a short bounded swarm, and a ramp
//! that must name what stopped it.

use std::time::Duration;

use guildhall_bots::profile::Profile;
use guildhall_bots::{loopback_sources, RampConfig, SwarmConfig};
use guildhall_server::{Config, Listeners, Server, ServerOptions};

async fn server(config: Config) -> Server {
    let listeners = Listeners::bind(&config).await.unwrap();
    Server::start(config, listeners, ServerOptions::default()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_swarm_plays_and_reports() {
    let mut config = Config::for_tests();
    config.rate_limit_per_sec = 10_000;
    config.rate_limit_burst = 10_000;
    let server = server(config).await;
    let dir = tempfile::tempdir().unwrap();
    let report_path = dir.path().join("report.json");
    let profile = Profile {
        think_mean_secs: 0.02,
        drop_chance: 0.02,
        leave_chance: 0.01,
        offline_mean_secs: 0.1,
        ..Profile::standard()
    };
    let swarm = SwarmConfig {
        targets: vec![server.tcp_addr()],
        players: 20,
        spawn_rate: 100.0,
        duration: Duration::from_secs(3),
        profile,
        source_addrs: loopback_sources(2),
        seed: 42,
        report: Some(report_path.clone()),
        progress: false,
        ..SwarmConfig::default()
    };
    let report = guildhall_bots::run(swarm).await.unwrap();
    assert_eq!(report.errors, 0, "{:?}", report.errors_by_kind);
    assert!(report.requests > 100, "{} requests", report.requests);
    // Sampled once a second while bots leave and come back: never above the count.
    assert!(report.peak_players > 0 && report.peak_players <= 20, "{}", report.peak_players);
    let logins = report.methods.iter().find(|m| m.method == "auth.login").map_or(0, |m| m.count);
    assert!(logins >= 20, "every bot logged in at least once: {logins}");
    for method in
        ["auth.login", "player.battle", "market.browse", "market.subscribe", "guild.recommend", "guild.chat_post"]
    {
        assert!(report.methods.iter().any(|m| m.method == method && m.count > 0), "{method} played");
    }
    assert!(report.drops > 0 && report.resumes > 0, "some connections dropped and resumed");
    assert!(report.pushes > 0, "guild and market pushes reached the players and were counted");
    assert!(!report.samples.is_empty());
    // The machine's CPU is read every second (after the first), within its cores.
    let cores = std::thread::available_parallelism().unwrap().get() as f64;
    assert!(report
        .samples
        .iter()
        .skip(1)
        .all(|s| s.machine_cpu_cores.is_some_and(|m| (0.0..=cores + 0.01).contains(&m))));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(json["seed"], 42);
    let html = std::fs::read_to_string(report_path.with_extension("html")).unwrap();
    assert!(html.contains("<svg") && html.contains("player.battle"));
    // The swarm stopped by itself: every bot has logged off.
    let state = server.runtime().kinds();
    assert!(state.iter().any(|k| k.kind == "player" && k.active >= 20));
    server.shutdown().await;
}

/// Issue 14, defect 10: the bots play over WebSocket as over TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bots_play_over_websocket() {
    let mut config = Config::for_tests();
    config.rate_limit_per_sec = 10_000;
    config.rate_limit_burst = 10_000;
    let server = server(config).await;
    let profile = Profile { think_mean_secs: 0.02, drop_chance: 0.0, leave_chance: 0.0, ..Profile::standard() };
    let swarm = SwarmConfig {
        targets: vec![server.ws_addr().expect("ws listener")],
        websocket: true,
        players: 10,
        spawn_rate: 100.0,
        duration: Duration::from_secs(2),
        profile,
        seed: 7,
        progress: false,
        ..SwarmConfig::default()
    };
    let report = guildhall_bots::run(swarm).await.unwrap();
    assert_eq!(report.errors, 0, "{:?}", report.errors_by_kind);
    assert!(report.requests > 50, "{} requests", report.requests);
    assert!(report.pushes > 0, "pushes arrive over WebSocket");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ramp_names_the_connection_cap_when_it_runs_out() {
    let mut config = Config::for_tests();
    config.max_connections = 15;
    let server = server(config).await;
    let swarm = SwarmConfig {
        targets: vec![server.tcp_addr()],
        players: 60,
        spawn_rate: 40.0,
        duration: Duration::from_secs(10),
        profile: Profile { think_mean_secs: 0.5, drop_chance: 0.0, leave_chance: 0.0, ..Profile::standard() },
        seed: 7,
        progress: false,
        ramp: Some(RampConfig { p99_goal: Duration::from_millis(500), patience_secs: 3 }),
        ..SwarmConfig::default()
    };
    let report = guildhall_bots::run(swarm).await.unwrap();
    let ramp = report.ramp.unwrap();
    assert_eq!(ramp.stopped_by, "connection cap", "{ramp:?}");
    assert!(ramp.held_players <= 15, "{ramp:?}");
    assert!(ramp.at_secs < 10, "stopped before the end");
    server.shutdown().await;
}

#[tokio::test]
async fn bots_refuse_anything_but_loopback() {
    let swarm = SwarmConfig { targets: vec!["192.0.2.1:7350".parse().unwrap()], ..SwarmConfig::default() };
    assert!(guildhall_bots::run(swarm).await.is_err());
}
