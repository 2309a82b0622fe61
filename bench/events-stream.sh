#!/usr/bin/env bash
# GET /api/events as NDJSON over a log of EVENTS events (default 1 000 000, one tenant): the time
# to the first line, the rate, and the server's resident memory sampled while it streams, beside
# PostgreSQL reading the same rows with COPY, in one run. Memory should stay flat: the route
# holds one page of 1 000 events, whatever the log's length.
#
#   bash bench/events-stream.sh      # EVENTS=1000000
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib/write-log.sh
source bench/lib/write-log.sh
EVENTS=${EVENTS:-1000000}
PORT=${PORT:-18084}
DATA_DIR=$(mktemp -d /tmp/petstore-bench.XXXXXX)
chmod 755 "$DATA_DIR"
WORK=$(mktemp -d)
swift build -c release --product petstore >/dev/null 2>&1
BIN=.build/release/petstore
eval "$($BIN db start --data-dir "$DATA_DIR" --log-level error)"
KEY=$($BIN tenant create --slug history --name History --plan enterprise --placement shared --data-dir "$DATA_DIR" --log-level error \
      | awk '/admin API key/ {print $NF}')
TENANT=$(psql -Atq "$DATABASE_URL" -c "SELECT id FROM tenants WHERE slug = 'history'")
SU="${SUPERUSER_DATABASE_URL%/postgres}/petstore"
$BIN serve --data-dir "$DATA_DIR" --port "$PORT" --host 127.0.0.1 --log-level error --rate-limits off &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; $BIN db stop --data-dir "$DATA_DIR" --log-level error; rm -rf "$DATA_DIR" "$WORK"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break; sleep 0.1; done

write_log "$DATABASE_URL" "$TENANT" "$EVENTS"
total=$(psql -Atq "$DATABASE_URL" -c "SELECT last_seq FROM event_heads WHERE tenant_id = '$TENANT'")

copy_start=$(date +%s.%N)
psql "$SU" -c "\\copy (SELECT seq, stream_type, stream_id, stream_version, event_type, schema_version, data, metadata, recorded_at, prev_hash, hash FROM events WHERE tenant_id = '$TENANT' ORDER BY seq) TO '/dev/null'" >/dev/null
copy_seconds=$(awk -v s="$copy_start" -v e="$(date +%s.%N)" 'BEGIN {print e - s}')

rss() { awk '/^VmRSS/ {print $2}' "/proc/$SERVER/status"; }
before=$(rss)
( peak=0; while kill -0 $SERVER 2>/dev/null && [ ! -f "$WORK/done" ]; do r=$(rss); [ "$r" -gt "$peak" ] && peak=$r; echo "$peak" > "$WORK/peak"; sleep 0.2; done ) &
SAMPLER=$!
stream_start=$(date +%s.%N)
curl -s -N -H "Authorization: Bearer $KEY" -H "X-Tenant-ID: history" -H "Accept: application/x-ndjson" \
     -w '%{time_starttransfer}\n' -o "$WORK/stream.ndjson" "http://127.0.0.1:$PORT/api/events" > "$WORK/first_byte"
stream_seconds=$(awk -v s="$stream_start" -v e="$(date +%s.%N)" 'BEGIN {print e - s}')
touch "$WORK/done"; wait $SAMPLER || true
after=$(rss)
lines=$(wc -l < "$WORK/stream.ndjson")
bytes=$(stat -c %s "$WORK/stream.ndjson")
last_seq=$(tail -1 "$WORK/stream.ndjson" | python3 -c 'import json, sys; print(json.loads(sys.stdin.read())["seq"])')

echo "GET /api/events as NDJSON over $total events ($(nproc) cores)"
printf '%-34s %10s %14s\n' "" seconds events/s
printf '%-34s %10.1f %14.0f\n' "COPY of the tenant's events" "$copy_seconds" "$(awk -v n="$total" -v t="$copy_seconds" 'BEGIN {print n / t}')"
printf '%-34s %10.1f %14.0f\n' "NDJSON stream over HTTP" "$stream_seconds" "$(awk -v n="$lines" -v t="$stream_seconds" 'BEGIN {print n / t}')"
printf 'ratio (stream / COPY rate): %.3f\n' "$(awk -v a="$copy_seconds" -v b="$stream_seconds" 'BEGIN {print a / b}')"
echo "lines: $lines (last seq $last_seq), $((bytes / 1048576)) MiB; first byte after $(awk '{printf "%.0f", $1 * 1000}' "$WORK/first_byte") ms"
echo "server RSS: before $((before / 1024)) MiB, peak while streaming $(( $(cat "$WORK/peak") / 1024 )) MiB, after $((after / 1024)) MiB"
