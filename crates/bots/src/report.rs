//! The end-of-run report: JSON for machines, an HTML page with charts for
//! people.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

/// One second of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub t_secs: u64,
    pub players: i64,
    pub requests_per_sec: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Errors so far (cumulative).
    pub errors: u64,
    /// Server CPU in cores busy over this second (needs its pid).
    pub server_cpu_cores: Option<f64>,
    pub server_rss_kib: Option<u64>,
    /// The whole machine's busy cores over this second (/proc/stat): the
    /// server and the bots share it, so the server can be starved while its
    /// own figure looks modest.
    pub machine_cpu_cores: Option<f64>,
    /// This bots process's own busy cores over this second.
    pub bots_cpu_cores: Option<f64>,
    /// The worst lateness of a 50 ms timer in the bots process over this
    /// second: how far the bots' own scheduling may inflate the latencies.
    pub bots_lag_ms: f64,
}

/// Latency percentiles of one method over the whole run.
#[derive(Debug, Clone, Serialize)]
pub struct MethodLatency {
    pub method: String,
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// How a ramp ended.
#[derive(Debug, Clone, Serialize)]
pub struct RampOutcome {
    /// The most players connected during a second that met every goal.
    pub held_players: i64,
    /// What stopped it: "latency", "errors", "open-file limit",
    /// "connection cap", "CPU saturation", or "none" (ran to the end).
    pub stopped_by: String,
    pub detail: String,
    pub at_secs: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub seed: u64,
    pub profile: String,
    pub targets: Vec<String>,
    pub players_requested: usize,
    pub duration_secs: f64,
    pub peak_players: i64,
    pub requests: u64,
    pub errors: u64,
    pub errors_by_kind: BTreeMap<String, u64>,
    pub resumes: u64,
    /// Pushes received by players whose session ended (all of them at the
    /// end of a run): the server-to-client traffic beyond the answers.
    pub pushes: u64,
    pub reconnects: u64,
    pub drops: u64,
    pub methods: Vec<MethodLatency>,
    pub samples: Vec<Sample>,
    pub ramp: Option<RampOutcome>,
}

impl Report {
    /// Writes `path` (JSON) and the same name with `.html`.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?)?;
        std::fs::write(path.with_extension("html"), self.html())
    }

    /// A self-contained page: three charts (players, requests/s, p99) as
    /// inline SVG, and the per-method table. No scripts, no network.
    pub fn html(&self) -> String {
        let xs: Vec<f64> = self.samples.iter().map(|s| s.t_secs as f64).collect();
        let chart = |title: &str, unit: &str, ys: Vec<f64>, color: &str| svg_chart(title, unit, &xs, &ys, color);
        let mut rows = String::new();
        for m in &self.methods {
            rows.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td></tr>",
                m.method, m.count, m.p50_ms, m.p90_ms, m.p99_ms, m.p999_ms, m.max_ms
            ));
        }
        let ramp = match &self.ramp {
            Some(r) => format!(
                "<p><b>Ramp:</b> held {} players; stopped by <b>{}</b> at {} s ({})</p>",
                r.held_players,
                r.stopped_by,
                r.at_secs,
                html_escape(&r.detail)
            ),
            None => String::new(),
        };
        let errors: String =
            self.errors_by_kind.iter().map(|(k, v)| format!("{}: {v}; ", html_escape(k))).collect::<String>();
        format!(
            r#"<!doctype html><html><head><meta charset="utf-8"><title>Guildhall bots report</title>
<style>body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}th{{background:#f4f4f4}}svg{{margin:0.5em 0;display:block}}</style></head>
<body><h1>Guildhall bots report</h1>
<p>Profile <b>{profile}</b>, seed {seed}, {players} players requested against {targets}; ran {dur:.0} s; peak {peak} players;
{requests} requests; {errcount} errors ({errors}); {pushes} pushes received; {resumes} resumes, {reconnects} reconnects, {drops} drops.</p>
{ramp}
{c1}{c2}{c3}
<h2>Latency per method (ms)</h2>
<table><tr><th>method</th><th>count</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>{rows}</table>
</body></html>"#,
            profile = html_escape(&self.profile),
            seed = self.seed,
            players = self.players_requested,
            targets = html_escape(&self.targets.join(", ")),
            dur = self.duration_secs,
            peak = self.peak_players,
            requests = self.requests,
            errcount = self.errors,
            pushes = self.pushes,
            resumes = self.resumes,
            reconnects = self.reconnects,
            drops = self.drops,
            c1 = chart("Connected players", "", self.samples.iter().map(|s| s.players as f64).collect(), "#1f77b4"),
            c2 = chart(
                "Requests per second",
                "/s",
                self.samples.iter().map(|s| s.requests_per_sec as f64).collect(),
                "#2ca02c"
            ),
            c3 = chart("p99 latency", " ms", self.samples.iter().map(|s| s.p99_ms).collect(), "#d62728"),
        )
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A line chart as SVG: 800 x 200 plot with axis labels for min/max.
fn svg_chart(title: &str, unit: &str, xs: &[f64], ys: &[f64], color: &str) -> String {
    let (w, h, left, top) = (800.0, 200.0, 70.0, 30.0);
    let xmax = xs.iter().cloned().fold(1.0, f64::max);
    let ymax = ys.iter().cloned().fold(0.0, f64::max).max(1e-9) * 1.1;
    let points: String =
        xs.iter().zip(ys).map(|(x, y)| format!("{:.1},{:.1} ", left + x / xmax * w, top + h - y / ymax * h)).collect();
    format!(
        r##"<svg width="{tw}" height="{th}" xmlns="http://www.w3.org/2000/svg">
<text x="{left}" y="18" font-size="15" font-weight="bold">{title}</text>
<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="none" stroke="#999"/>
<text x="{lx}" y="{top2}" font-size="11" text-anchor="end">{ylabel}{unit}</text>
<text x="{lx}" y="{bottom}" font-size="11" text-anchor="end">0</text>
<text x="{right}" y="{xl}" font-size="11" text-anchor="end">{xmax:.0} s</text>
<polyline fill="none" stroke="{color}" stroke-width="2" points="{points}"/></svg>"##,
        ylabel = if ymax >= 100.0 { format!("{ymax:.0}") } else { format!("{ymax:.1}") },
        tw = left + w + 20.0,
        th = top + h + 30.0,
        lx = left - 5.0,
        top2 = top + 10.0,
        bottom = top + h,
        right = left + w,
        xl = top + h + 18.0,
    )
}
