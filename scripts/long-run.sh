#!/usr/bin/env bash
# Issue 4, long runs: the server and the bots for ten minutes (no baseline),
# summarised per minute, with what the store writes and how much of it
# fjall's compaction costs. The 120-s benchmark (bench-scale.sh) shows the
# first two minutes only; this shows whether the server reaches a steady
# state. Raw files land in $OUT.
#
#   scripts/long-run.sh                         # 19,500 players, 600 s
#   DURATION=300 PLAYERS=8000 scripts/long-run.sh
#   SERVER_ARGS="--store-memtable-mib 8" scripts/long-run.sh
#   SERVER_ENV="TOKIO_WORKER_THREADS=1" scripts/long-run.sh   # extra server environment
set -euo pipefail
cd "$(dirname "$0")/.."
PLAYERS=${PLAYERS:-19500}
DURATION=${DURATION:-600}
SPAWN=${SPAWN:-650}
OUT=${OUT:-bench-results/long}
mkdir -p "$OUT"
cargo build --release -p guildhall -p guildhall-bots --bins ${CARGO_FLAGS:-}
cargo build --release -p guildhall-store --example store_stats
. scripts/lib/serve.sh
start_server

# Every 30 s: the server's store figures, and the CPU seconds of fjall's
# worker threads (from /proc: compaction time is wall time, this is CPU).
sample() {
  : > "$OUT/samples.txt"
  while sleep 30; do
    curl -sf 127.0.0.1:7362/metrics > "$OUT/metrics-now.txt" || break
    echo "T $(date +%s)" >> "$OUT/samples.txt"
    grep -E "^guildhall_(entity_written_bytes_total|entity_writes_total|store_compaction_seconds_total|store_disk_bytes|heap_in_use_bytes|pubsub_deliveries_total|requests_total)" \
      "$OUT/metrics-now.txt" >> "$OUT/samples.txt" || true
    ticks=0
    for t in /proc/$SPID/task/*; do
      if grep -q "fjall:worker" "$t/comm" 2>/dev/null; then
        s=($(sed 's/.*) //' "$t/stat")); ticks=$((ticks + ${s[11]} + ${s[12]}))
      fi
    done
    echo "fjall_worker_cpu_seconds $((ticks / $(getconf CLK_TCK)))" >> "$OUT/samples.txt"
  done
}
sample &
SAMPLER=$!

./target/release/guildhall-bots --target 127.0.0.1:7360 --players "$PLAYERS" --spawn-rate "$SPAWN" \
  --duration "$DURATION" --source-addrs 4 --seed 3 --server-pid $SPID --report "$OUT/long.json" \
  2> "$OUT/progress.txt"
kill $SAMPLER 2>/dev/null || true
curl -s 127.0.0.1:7362/metrics > "$OUT/server-metrics.txt" || true
kill -TERM $SPID; wait $SPID || true
./target/release/examples/store_stats "$DATA/data/fjall" > "$OUT/store-stats.txt" || true

python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
r = json.load(open(f"{out}/long.json"))
print(f"peak players {r['peak_players']}, requests {r['requests']}, errors {r['errors']} {r['errors_by_kind']}")
print("minute      cores   RSS MiB   worst 1-s p99   s over 50 ms")
s = r["samples"]
for m in range(0, (len(s) + 59) // 60):
    part = s[m * 60:(m + 1) * 60]
    if not part:
        break
    cores = sum(x["server_cpu_cores"] for x in part) / len(part)
    over = sum(1 for x in part if x["p99_ms"] > 50)
    print(f"{m*60:4d}-{m*60+len(part):4d}s  {cores:5.2f}  {part[-1]['server_rss_kib']/1024:8.0f}   {max(x['p99_ms'] for x in part):9.1f} ms   {over:5d}")

rows, cur = [], None
for line in open(f"{out}/samples.txt"):
    if line.startswith("T "):
        cur = {"t": int(line.split()[1])}; rows.append(cur); continue
    k, v = line.rsplit(" ", 1); cur[k] = float(v)
print("\n   t   store MB/s (by kind)                                   compaction s/s  fjall CPU s/s  heap MB  pushes/s")
for a, b in zip(rows, rows[1:]):
    dt = b["t"] - a["t"]
    d = lambda k: (b.get(k, 0) - a.get(k, 0)) / dt
    kinds = " ".join(f"{k.split(chr(34))[1]}={d(k)/1e6:.2f}" for k in sorted(b) if "entity_written" in k)
    print(f"{b['t']-rows[0]['t']+30:4d}  {sum(d(k) for k in b if 'entity_written' in k)/1e6:5.2f} ({kinds})  "
          f"{d('guildhall_store_compaction_seconds_total'):5.3f}  {d('fjall_worker_cpu_seconds'):5.3f}  {b.get('guildhall_heap_in_use_bytes',0)/1e6:5.0f}  {d('guildhall_pubsub_deliveries_total'):7.0f}")
print()
print(open(f"{out}/store-stats.txt").read())
PY
