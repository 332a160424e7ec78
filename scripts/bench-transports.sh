#!/usr/bin/env bash
# Issue 14 transport benchmark: the same bots (same seed, players, duration)
# against a fresh Guildhall server over TCP, then over WebSocket, in one run.
# Prints the server's CPU per delivered message (responses + pushes) for
# each and the WebSocket / TCP ratio; raw reports land in bench-results/.
#
#   scripts/bench-transports.sh                      # 3,000 players, 60 s each
#   PLAYERS=10000 DURATION=90 scripts/bench-transports.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PLAYERS=${PLAYERS:-3000}
DURATION=${DURATION:-60}
SPAWN=${SPAWN:-500}
OUT=${OUT:-bench-results}
mkdir -p "$OUT"
cargo build --release -p guildhall -p guildhall-bots --bins
DATA=$(mktemp -d)
trap 'rm -rf "$DATA"' EXIT

# run TRANSPORT: a fresh server, the bots over TRANSPORT, the server stopped.
run() {
  local transport=$1
  ./target/release/guildhall serve --data-dir "$DATA/$transport" --listen 127.0.0.1:7360 --ws-listen 127.0.0.1:7361 \
    --admin-listen "" --max-connections 19900 --log-level warn > "$OUT/transport-$transport-server.log" 2>&1 &
  local pid=$!
  sleep 2
  local target=127.0.0.1:7360
  [ "$transport" = ws ] && target=127.0.0.1:7361
  ./target/release/guildhall-bots --transport "$transport" --target "$target" --players "$PLAYERS" \
    --spawn-rate "$SPAWN" --duration "$DURATION" --source-addrs 4 --seed 1 --server-pid $pid \
    --report "$OUT/transport-$transport.json" 2> "$OUT/transport-$transport-progress.txt"
  kill -TERM $pid; wait $pid || true
}

echo "== tcp: $PLAYERS players, ${DURATION}s"; run tcp
echo "== ws: $PLAYERS players, ${DURATION}s"; run ws

python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
per = {}
for t in ("tcp", "ws"):
    r = json.load(open(f"{out}/transport-{t}.json"))
    cpu_secs = sum(s["server_cpu_cores"] or 0 for s in r["samples"])
    delivered = r["requests"] + r["pushes"]
    per[t] = cpu_secs * 1e6 / delivered
    rss = max(s["server_rss_kib"] or 0 for s in r["samples"])
    print(f"{t}: {r['requests']} requests, {r['pushes']} pushes, {r['errors']} errors, peak {r['peak_players']} players; "
          f"server CPU {cpu_secs:.1f} core-s, {per[t]:.2f} us per delivered message; peak RSS {rss} KiB")
print(f"ws / tcp CPU per delivered message: {per['ws'] / per['tcp']:.2f}")
PY
