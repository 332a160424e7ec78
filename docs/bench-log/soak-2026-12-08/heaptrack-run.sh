#!/usr/bin/env bash
# Heap profile of the server under the standard bots: heaptrack, N players, T seconds; the server is killed (-9) at T-10 so what is allocated then shows as "leaked".
set -u
cd /work/main
P=${P:-5000}; T=${T:-900}
D=$(mktemp -d); mkdir -p /tmp/ht; rm -f /tmp/ht/*
heaptrack -o /tmp/ht/gh ./target/release/guildhall serve --data-dir "$D/data" --listen 127.0.0.1:7360 --ws-listen "" --admin-listen 127.0.0.1:7362 --max-connections 19900 --log-level warn > /tmp/ht/server.log 2>&1 &
sleep 4
SP=$(pgrep -x guildhall | head -1)
echo "server $SP"
./target/release/guildhall-bots --target 127.0.0.1:7360 --players $P --spawn-rate 300 --duration $T --source-addrs 4 --seed 3 --server-pid $SP 2> /tmp/ht/progress.txt > /tmp/ht/bots.out &
B=$!
sleep $((T-10))
grep heap <(curl -s 127.0.0.1:7362/metrics) > /tmp/ht/heap-metrics.txt
grep -E "VmRSS" /proc/$SP/status >> /tmp/ht/heap-metrics.txt
kill -9 $SP
wait $B
sleep 20
rm -rf "$D"
echo done
