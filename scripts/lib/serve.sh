# Sourced by the load scripts (soak.sh, long-run.sh): starts the release
# server on the embedded store in a temporary data directory (removed on
# exit) with the ports and limits the bots expect, its log in
# $OUT/server.log; sets SPID. SERVER_ENV and SERVER_ARGS add to it.
start_server() {
  DATA=$(mktemp -d)
  trap 'rm -rf "$DATA"' EXIT
  env ${SERVER_ENV:-} ./target/release/guildhall serve --data-dir "$DATA/data" --listen 127.0.0.1:7360 --ws-listen "" \
    --admin-listen 127.0.0.1:7362 --max-connections 19900 --log-level warn ${SERVER_ARGS:-} > "$OUT/server.log" 2>&1 &
  SPID=$!
  # Listening takes well under a second; the bots retry connects anyway.
  sleep 2
}
