#!/usr/bin/env bash
# Issue 15 soak: the server and N bots (standard profile) as separate
# processes for a given time; each minute a row of server CPU, RSS (and per
# player), heap, worst p99, seconds over 50 ms, errors, state written
# (MB/s and bytes per request, by entity kind), disk writes, write
# amplification and disk use goes to $OUT/minutes.csv and the terminal, and
# $OUT/soak.html draws them. At the end: the summary against issue 15's
# acceptance (scripts/soak_summary.py).
#
#   scripts/soak.sh                               # 19,500 players, one hour
#   PLAYERS=5000 DURATION=600 scripts/soak.sh     # shorter, smaller
#   SERVER_ARGS="--store redb" scripts/soak.sh    # extra server flags
set -euo pipefail
cd "$(dirname "$0")/.."
PLAYERS=${PLAYERS:-19500}
DURATION=${DURATION:-3600}
SPAWN=${SPAWN:-650}
SEED=${SEED:-3}
INTERVAL=${INTERVAL:-60}
OUT=${OUT:-bench-results/soak}
mkdir -p "$OUT"
cargo build --release -p guildhall -p guildhall-bots --bins ${CARGO_FLAGS:-}
. scripts/lib/serve.sh
start_server
IDLE_RSS=$(awk '/^VmRSS:/ {print $2}' /proc/$SPID/status)
echo "soak: $PLAYERS players, ${DURATION}s, seed $SEED, server pid $SPID (idle RSS $IDLE_RSS KiB), output in $OUT"

./target/release/guildhall-bots --target 127.0.0.1:7360 --players "$PLAYERS" --spawn-rate "$SPAWN" \
  --duration "$DURATION" --source-addrs 4 --seed "$SEED" --server-pid $SPID --report "$OUT/soak.json" \
  2> "$OUT/progress.txt" &
BPID=$!
python3 scripts/soak_sampler.py --pid $SPID --bots-pid $BPID --admin 127.0.0.1:7362 --data "$DATA/data" \
  --progress "$OUT/progress.txt" --out "$OUT" --interval "$INTERVAL" --idle-rss-kib "$IDLE_RSS"
wait $BPID
curl -s 127.0.0.1:7362/metrics > "$OUT/server-metrics.txt" || true
kill -TERM $SPID; wait $SPID || true
python3 scripts/soak_summary.py "$OUT" "$PLAYERS"
