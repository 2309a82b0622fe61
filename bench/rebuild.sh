#!/usr/bin/env bash
# Rebuild rate of the pets projection over a log of EVENTS PetRegistered events (default
# 1 000 000, one tenant), beside PostgreSQL reading the same events with COPY, in one run.
#
#   bash bench/rebuild.sh            # EVENTS=1000000
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib/write-log.sh
source bench/lib/write-log.sh
EVENTS=${EVENTS:-1000000}
DATA_DIR=$(mktemp -d /tmp/petstore-bench.XXXXXX)
chmod 755 "$DATA_DIR"
swift build -c release --product petstore >/dev/null 2>&1
BIN=.build/release/petstore
eval "$($BIN db start --data-dir "$DATA_DIR" --log-level error)"
trap '$BIN db stop --data-dir "$DATA_DIR" --log-level error; rm -rf "$DATA_DIR"' EXIT
$BIN tenant create --slug rebuild --name Rebuild --plan enterprise --data-dir "$DATA_DIR" --log-level error >/dev/null
TENANT=$(psql -Atq "$DATABASE_URL" -c "SELECT id FROM tenants WHERE slug = 'rebuild'")
# Reading rows past row-level security takes a superuser (on the petstore database).
SU="${SUPERUSER_DATABASE_URL%/postgres}/petstore"

start=$(date +%s.%N)
write_log "$DATABASE_URL" "$TENANT" "$EVENTS"
written=$(psql -Atq "$DATABASE_URL" -c "SELECT last_seq FROM event_heads WHERE tenant_id = '$TENANT'")
echo "log: $written events written in $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e - s}') s"

copy_start=$(date +%s.%N)
copied=$(psql "$SU" -c "\\copy (SELECT seq, stream_type, stream_id, stream_version, event_type, schema_version, data, metadata, recorded_at, prev_hash, hash FROM events WHERE tenant_id = '$TENANT' ORDER BY seq) TO '/dev/null'" | awk '{print $2}')
copy_seconds=$(awk -v s="$copy_start" -v e="$(date +%s.%N)" 'BEGIN {print e - s}')

rebuild_start=$(date +%s.%N)
$BIN projections rebuild pets --tenant rebuild --data-dir "$DATA_DIR" --log-level error >/dev/null
rebuild_seconds=$(awk -v s="$rebuild_start" -v e="$(date +%s.%N)" 'BEGIN {print e - s}')
rows=$(psql -Atq "$SU" -c "SELECT count(*) FROM public.pets WHERE tenant_id = '$TENANT'")

printf '%-34s %10s %14s\n' "" seconds events/s
printf '%-34s %10.1f %14.0f\n' "COPY of the tenant's events" "$copy_seconds" "$(awk -v n="$written" -v t="$copy_seconds" 'BEGIN {print n / t}')"
printf '%-34s %10.1f %14.0f\n' "projections rebuild pets" "$rebuild_seconds" "$(awk -v n="$written" -v t="$rebuild_seconds" 'BEGIN {print n / t}')"
echo "COPY read ${copied:-?} rows"
printf 'ratio (rebuild / COPY rate): %.3f; pets rows after rebuild: %s\n' "$(awk -v a="$copy_seconds" -v b="$rebuild_seconds" 'BEGIN {print a / b}')" "$rows"
