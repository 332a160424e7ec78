//! Runs a swarm: spawns bots at the spawn rate, prints one progress line a
//! second, watches the ramp's goals, stops everything at the end.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::bot::Bot;
use crate::report::{MethodLatency, RampOutcome, Report, Sample};
use crate::stats::Stats;
use crate::{ConfigError, SwarmConfig};

/// CPU time of a process in seconds (utime + stime from /proc/<pid>/stat,
/// at the usual 100 ticks per second).
fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// Busy and total CPU time of the whole machine, in ticks (first line of
/// /proc/stat: idle and iowait are not busy).
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let f: Vec<u64> = line.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    let total: u64 = f.iter().take(8).sum();
    let idle = f.get(3)? + f.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// Busy cores between two `machine_ticks` readings.
fn busy_cores(before: (u64, u64), now: (u64, u64), cores: f64) -> Option<f64> {
    let total = now.1.checked_sub(before.1)?;
    (total > 0).then(|| (now.0.saturating_sub(before.0)) as f64 / total as f64 * cores)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmRSS:"))?.split_whitespace().nth(1)?.parse().ok()
}

/// Names what a connect failure says ran out.
fn name_exhaustion(detail: &str) -> &'static str {
    if detail.contains("Too many open files") || detail.contains("os error 24") {
        "open-file limit"
    } else if detail.contains("SERVER_FULL") || detail.contains("ServerFull") {
        "connection cap"
    } else if detail.contains("Address not available") || detail.contains("os error 99") {
        "ephemeral ports"
    } else {
        "connect errors"
    }
}

/// Runs the swarm to its end (or its breaking point) and returns the report.
pub async fn run(config: SwarmConfig) -> Result<Report, ConfigError> {
    config.validate()?;
    eprintln!(
        "guildhall-bots: {} players, spawn {}/s, {:?}, profile {}, seed {} (rerun with --seed {} to replay)",
        config.players, config.spawn_rate, config.duration, config.profile.name, config.seed, config.seed
    );
    let stats = Arc::new(Stats::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let (spawn_stop_tx, mut spawn_stop_rx) = watch::channel(false);
    let started = Instant::now();
    let deadline = started + config.duration;
    let profile = Arc::new(config.profile.clone());
    // The bots' own timer lateness: latencies are measured here, so a
    // starved bots process inflates them; this says when it does.
    let lag_max_us = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let lag_watch = {
        let lag_max_us = lag_max_us.clone();
        tokio::spawn(async move {
            loop {
                let asked = tokio::time::Instant::now() + Duration::from_millis(50);
                tokio::time::sleep_until(asked).await;
                lag_max_us.fetch_max(asked.elapsed().as_micros() as u64, Ordering::Relaxed);
            }
        })
    };

    let spawner = {
        let config = config.clone();
        let stats = stats.clone();
        tokio::spawn(async move {
            let mut bots = Vec::with_capacity(config.players);
            for i in 0..config.players {
                let due = started + Duration::from_secs_f64(i as f64 / config.spawn_rate);
                tokio::select! {
                    _ = tokio::time::sleep_until(due.into()) => {}
                    _ = spawn_stop_rx.changed() => break,
                }
                if Instant::now() >= deadline || *spawn_stop_rx.borrow() {
                    break;
                }
                let target = config.targets[i % config.targets.len()];
                let source =
                    (!config.source_addrs.is_empty()).then(|| config.source_addrs[i % config.source_addrs.len()]);
                let mut bot = Bot::new(
                    stats.clone(),
                    profile.clone(),
                    target,
                    source,
                    format!("{}-{}-{i:06}", config.device_prefix, config.seed),
                    deadline,
                    config.seed.wrapping_mul(1_000_003).wrapping_add(i as u64),
                    stop_rx.clone(),
                );
                bot.websocket = config.websocket;
                bots.push(tokio::spawn(bot.run()));
            }
            bots
        })
    };

    let mut samples = Vec::new();
    let mut peak = 0;
    let mut ramp_outcome = None;
    let mut held = 0i64;
    let mut bad_secs = 0u32;
    let mut last_cpu = config.server_pid.and_then(cpu_secs);
    let cores = std::thread::available_parallelism().map(|n| n.get() as f64).unwrap_or(1.0);
    let mut last_machine = machine_ticks();
    let mut last_self = cpu_secs(std::process::id());
    let mut last_errors = 0;
    let mut last_connect_failures = 0;
    let mut tick = tokio::time::interval_at((started + Duration::from_secs(1)).into(), Duration::from_secs(1));
    while Instant::now() < deadline {
        tick.tick().await;
        let t = started.elapsed().as_secs();
        let (count, p50, p99) = stats.take_window();
        let players = stats.connected.load(Ordering::Relaxed);
        let errors = stats.errors.load(Ordering::Relaxed);
        let connect_failures = stats.connect_failures.load(Ordering::Relaxed);
        let cpu_now = config.server_pid.and_then(cpu_secs);
        let cpu = match (cpu_now, last_cpu) {
            (Some(now), Some(before)) => Some(now - before),
            _ => None,
        };
        last_cpu = cpu_now;
        let machine_now = machine_ticks();
        let machine = match (last_machine, machine_now) {
            (Some(before), Some(now)) => busy_cores(before, now, cores),
            _ => None,
        };
        last_machine = machine_now;
        let self_now = cpu_secs(std::process::id());
        let bots_cpu = match (self_now, last_self) {
            (Some(now), Some(before)) => Some(now - before),
            _ => None,
        };
        last_self = self_now;
        let rss = config.server_pid.and_then(rss_kib);
        let bots_lag_ms = lag_max_us.swap(0, Ordering::Relaxed) as f64 / 1000.0;
        peak = peak.max(players);
        let sample = Sample {
            t_secs: t,
            players,
            requests_per_sec: count,
            p50_ms: p50,
            p99_ms: p99,
            errors,
            server_cpu_cores: cpu,
            server_rss_kib: rss,
            machine_cpu_cores: machine,
            bots_cpu_cores: bots_cpu,
            bots_lag_ms,
        };
        if config.progress {
            let server = match (cpu, rss) {
                (Some(c), Some(r)) => format!(" server cpu={c:.2} cores rss={} MiB", r / 1024),
                _ => String::new(),
            };
            let machine = match machine {
                Some(m) => format!(" machine cpu={m:.2}/{cores:.0}"),
                None => String::new(),
            };
            let machine = format!("{machine} bots lag={bots_lag_ms:.1}ms");
            eprintln!(
                "t={t:>4}s players={players:>6} req/s={count:>6} p50={p50:>7.2}ms p99={p99:>7.2}ms errors={errors} resumes={} reconnects={}{server}{machine}",
                stats.resumes.load(Ordering::Relaxed),
                stats.reconnects.load(Ordering::Relaxed),
            );
        }
        samples.push(sample);

        if let Some(ramp) = &config.ramp {
            let goal = ramp.p99_goal.as_secs_f64() * 1000.0;
            let mut broken: Option<(&str, String)> = None;
            if connect_failures > last_connect_failures {
                let detail = stats.last_connect_error.lock().expect("stats").clone().unwrap_or_default();
                broken = Some((name_exhaustion(&detail), detail));
            } else if errors > last_errors {
                broken = Some(("errors", format!("{:?}", stats.error_kinds())));
            } else if count > 0 && p99 > goal {
                bad_secs += 1;
                if bad_secs >= ramp.patience_secs {
                    let cpu_note = cpu.map(|c| format!(", server at {c:.2} of {cores} cores")).unwrap_or_default();
                    let machine_note = machine
                        .map(|m| format!(", machine (server and bots) at {m:.2} of {cores} cores"))
                        .unwrap_or_default();
                    // Saturated: the server alone, or the machine it shares
                    // with the bots, had (nearly) every core busy.
                    let saturated =
                        cpu.is_some_and(|c| c >= 0.95 * cores) || machine.is_some_and(|m| m >= 0.95 * cores);
                    let what = if saturated { "CPU saturation" } else { "latency" };
                    broken = Some((
                        what,
                        format!("p99 {p99:.1} ms over the {goal:.0} ms goal for {bad_secs} s{cpu_note}{machine_note}"),
                    ));
                }
            } else {
                bad_secs = 0;
                held = held.max(players);
            }
            if let Some((what, detail)) = broken {
                ramp_outcome =
                    Some(RampOutcome { held_players: held, stopped_by: what.to_string(), detail, at_secs: t });
                break;
            }
        }
        last_errors = errors;
        last_connect_failures = connect_failures;
        if players == 0 && spawner.is_finished() && t > 2 {
            break;
        }
    }
    if config.ramp.is_some() && ramp_outcome.is_none() {
        ramp_outcome = Some(RampOutcome {
            held_players: held,
            stopped_by: "none".into(),
            detail: "ran to the end of its duration within every goal".into(),
            at_secs: started.elapsed().as_secs(),
        });
    }
    let _ = spawn_stop_tx.send(true);
    let _ = stop_tx.send(true);
    lag_watch.abort();
    if let Ok(bots) = spawner.await {
        for bot in bots {
            let _ = tokio::time::timeout(Duration::from_secs(10), bot).await;
        }
    }

    let methods = stats
        .methods()
        .into_iter()
        .map(|(method, h)| MethodLatency {
            method: method.to_string(),
            count: h.len(),
            p50_ms: h.value_at_quantile(0.5) as f64 / 1000.0,
            p90_ms: h.value_at_quantile(0.9) as f64 / 1000.0,
            p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
            p999_ms: h.value_at_quantile(0.999) as f64 / 1000.0,
            max_ms: h.max() as f64 / 1000.0,
        })
        .collect();
    let report = Report {
        seed: config.seed,
        profile: config.profile.name.clone(),
        targets: config.targets.iter().map(|t| t.to_string()).collect(),
        players_requested: config.players,
        duration_secs: started.elapsed().as_secs_f64(),
        peak_players: peak,
        requests: stats.requests.load(Ordering::Relaxed),
        errors: stats.errors.load(Ordering::Relaxed),
        errors_by_kind: stats.error_kinds(),
        resumes: stats.resumes.load(Ordering::Relaxed),
        pushes: stats.pushes.load(Ordering::Relaxed),
        reconnects: stats.reconnects.load(Ordering::Relaxed),
        drops: stats.drops.load(Ordering::Relaxed),
        methods,
        samples,
        ramp: ramp_outcome,
    };
    if let Some(path) = &config.report {
        if let Err(e) = report.write(path) {
            eprintln!("guildhall-bots: could not write the report to {}: {e}", path.display());
        } else {
            eprintln!(
                "guildhall-bots: report written to {} and {}",
                path.display(),
                path.with_extension("html").display()
            );
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_cores_is_the_busy_share_of_the_ticks_times_the_cores() {
        assert_eq!(busy_cores((100, 1000), (250, 1200), 2.0), Some(1.5));
        assert_eq!(busy_cores((100, 1000), (100, 1000), 2.0), None, "no time passed");
        let (busy, total) = machine_ticks().expect("/proc/stat on Linux");
        assert!(busy <= total);
    }
}
