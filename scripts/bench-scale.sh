#!/usr/bin/env bash
# Issue 4 scaling benchmark: the Guildhall server and the bots as separate
# processes on loopback, then the same traffic against the bare baseline
# server, in the same run, twice: answering the requests only, then also
# sending as many pushes per request as the bots received from Guildhall.
# Prints a summary; the raw reports (JSON + HTML) land in bench-results/.
#
#   scripts/bench-scale.sh                 # 19,500 players, standard profile
#   PLAYERS=5000 DURATION=60 scripts/bench-scale.sh
#   SERVER_ARGS="--commit-interval-ms 2" scripts/bench-scale.sh   # extra server flags
#   SERVER_ENV="TOKIO_WORKER_THREADS=1" scripts/bench-scale.sh      # extra server environment
#   SERVER_ARGS="--store redb" scripts/bench-scale.sh                  # the other embedded store
#   CARGO_FLAGS="--features ..." scripts/bench-scale.sh                # extra cargo build flags
#   TRANSPORTS="tcp ws" scripts/bench-scale.sh     # Guildhall over TCP, then over WebSocket (the baselines are TCP)
set -euo pipefail
cd "$(dirname "$0")/.."
PLAYERS=${PLAYERS:-19500}
DURATION=${DURATION:-120}
SPAWN=${SPAWN:-650}
OUT=${OUT:-bench-results}
mkdir -p "$OUT"
cargo build --release -p guildhall -p guildhall-bots --bins ${CARGO_FLAGS:-}
DATA=$(mktemp -d)
trap 'rm -rf "$DATA"' EXIT

rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

TRANSPORTS=${TRANSPORTS:-tcp}
# run_guildhall TRANSPORT: a fresh server, the bots over TRANSPORT; the report
# is guildhall.json (TCP) or guildhall-ws.json, the idle RSS beside it.
run_guildhall() {
  local transport=$1 name=guildhall target=127.0.0.1:7360
  [ "$transport" = ws ] && name=guildhall-ws && target=127.0.0.1:7361
  echo "== $name: $PLAYERS players, ${DURATION}s"
  env ${SERVER_ENV:-} ./target/release/guildhall serve --data-dir "$DATA/data-$transport" --listen 127.0.0.1:7360 \
    --ws-listen 127.0.0.1:7361 --admin-listen 127.0.0.1:7362 --max-connections 19900 --log-level warn ${SERVER_ARGS:-} \
    > "$OUT/$name-server.log" 2>&1 &
  local pid=$!
  sleep 2
  rss $pid > "$OUT/$name.idle-rss"
  ./target/release/guildhall-bots --transport "$transport" --target "$target" --players "$PLAYERS" --spawn-rate "$SPAWN" \
    --duration "$DURATION" --source-addrs 4 --seed 1 --server-pid $pid --report "$OUT/$name.json" \
    2> "$OUT/$name-progress.txt"
  # The server's own view: request latency from frame read to answer queued.
  curl -s 127.0.0.1:7362/metrics > "$OUT/$name-metrics.txt" || true
  kill -TERM $pid; wait $pid || true
}
rm -f "$OUT/guildhall.json" "$OUT/guildhall-ws.json"
for t in $TRANSPORTS; do run_guildhall "$t"; done

# run_baseline NAME [baseline-server flags]: the same bots against the bare
# server; its idle RSS (before the bots) goes to $OUT/NAME.idle-rss.
run_baseline() {
  local name=$1; shift
  ./target/release/baseline-server --listen 127.0.0.1:7450 "$@" > "$OUT/$name.log" 2>&1 &
  local pid=$!
  sleep 1
  rss $pid > "$OUT/$name.idle-rss"
  ./target/release/guildhall-bots --target 127.0.0.1:7450 --players "$PLAYERS" --spawn-rate "$SPAWN" \
    --duration "$DURATION" --source-addrs 4 --seed 1 --server-pid $pid --report "$OUT/$name.json" \
    2> "$OUT/$name-progress.txt"
  kill $pid; wait $pid 2>/dev/null || true
}

echo "== baseline: $PLAYERS players, ${DURATION}s"
run_baseline baseline
BASE_IDLE_RSS=$(cat "$OUT/baseline.idle-rss")

# The pushes Guildhall sent per request, for the baseline that sends them too.
FIRST=guildhall; [ "${TRANSPORTS%% *}" = ws ] && FIRST=guildhall-ws
PPR=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("%.4f" % (r["pushes"] / max(r["requests"], 1)))' "$OUT/$FIRST.json")
echo "== baseline with pushes ($PPR per request): $PLAYERS players, ${DURATION}s"
run_baseline baseline-pushes --pushes-per-request "$PPR"
PUSH_IDLE_RSS=$(cat "$OUT/baseline-pushes.idle-rss")

python3 - "$OUT" "$BASE_IDLE_RSS" "$PLAYERS" "$PUSH_IDLE_RSS" <<'PY'
import json, os, sys
out, base_idle, players, push_idle = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def steady(report):
    # The steady state: every sample with (nearly) all players connected (bots leave and come back), minus the last 3 s (shutdown).
    s = [x for x in report["samples"] if x["players"] >= 0.97 * players][:-3]
    return s
def summary(name, path, idle_rss):
    r = json.load(open(path))
    s = steady(r)
    if not s:
        print(f"{name}: never reached {players} players (peak {r['peak_players']})"); return None
    cores = sum(x["server_cpu_cores"] for x in s) / len(s)
    rps = sum(x["requests_per_sec"] for x in s) / len(s)
    p99 = max(x["p99_ms"] for x in s)
    rss = max(x["server_rss_kib"] for x in s)
    conn = sum(x["players"] for x in s) / len(s)
    print(f"{name}: {len(s)} steady seconds, {conn:.0f} players, {rps:.0f} req/s, server {cores:.3f} cores busy, "
          f"worst 1-s p99 {p99:.2f} ms, errors {r['errors']} {r['errors_by_kind']}")
    over = sum(1 for x in s if x["p99_ms"] > 50)
    lag = max((x.get("bots_lag_ms", 0) for x in s), default=0)
    machine = [x["machine_cpu_cores"] for x in s if x.get("machine_cpu_cores") is not None]
    machine = sum(machine) / len(machine) if machine else float("nan")
    print(f"{name}: {over} of {len(s)} seconds with p99 over 50 ms; median 1-s p99 {sorted(x['p99_ms'] for x in s)[len(s)//2]:.2f} ms; "
          f"bots' worst timer lag {lag:.1f} ms; machine {machine:.2f} cores busy")
    print(f"{name}: {r.get('pushes', 0)} pushes received, {r.get('pushes', 0)/max(r['requests'],1):.2f} per request")
    print(f"{name}: RSS idle {idle_rss} KiB, loaded {rss} KiB, {(rss-idle_rss)*1024/conn:.0f} bytes per player; "
          f"players per busy core {conn/cores:.0f}; CPU per request {cores/rps*1e6:.1f} us")
    for m in r["methods"]:
        print(f"  {m['method']:<22} {m['count']:>8} p50 {m['p50_ms']:7.2f} p99 {m['p99_ms']:7.2f} p99.9 {m['p999_ms']:7.2f} max {m['max_ms']:8.2f} ms")
    return cores / rps
def server_side(path, label="guildhall"):
    # Cumulative buckets of guildhall_request_seconds over the whole run.
    import re, os
    if not os.path.exists(path):
        return
    tot = {}
    for line in open(path):
        m = re.match(r'guildhall_request_seconds_bucket\{method="[^"]+",le="([^"]+)"\} (\d+)', line)
        if m:
            tot[m.group(1)] = tot.get(m.group(1), 0) + int(m.group(2))
    if not tot:
        return
    n = tot["+Inf"]
    les = sorted((float(k), v) for k, v in tot.items() if k != "+Inf")
    p99 = next((le for le, v in les if v >= 0.99 * n), float("inf"))
    p999 = next((le for le, v in les if v >= 0.999 * n), float("inf"))
    over50 = n - dict((str(le), v) for le, v in les).get("0.05", n)
    print(f"{label} server-side (whole run, {n} requests): p99 <= {p99*1000:g} ms, p99.9 <= {p999*1000:g} ms, "
          f"{over50} requests ({100*over50/n:.3f} %) over 50 ms")
g = gw = None
for name in ("guildhall", "guildhall-ws"):
    if os.path.exists(f"{out}/{name}.json"):
        cost = summary(name, f"{out}/{name}.json", int(open(f"{out}/{name}.idle-rss").read()))
        server_side(f"{out}/{name}-metrics.txt", name)
        if name == "guildhall": g = cost
        else: gw = cost
b = summary("baseline", f"{out}/baseline.json", base_idle)
bp = summary("baseline+pushes", f"{out}/baseline-pushes.json", push_idle)
if g and b:
    print(f"CPU per request, guildhall / baseline: {g/b:.2f}")
if g and bp:
    print(f"CPU per request, guildhall / baseline with the same pushes: {g/bp:.2f}")
if gw and bp:
    print(f"CPU per request, guildhall over WebSocket / baseline (TCP) with the same pushes: {gw/bp:.2f}")
if g and gw:
    print(f"CPU per request, guildhall over WebSocket / over TCP: {gw/g:.2f}")
PY
