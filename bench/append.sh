#!/usr/bin/env bash
# Appends per second through EventStore.append, beside pgbench -M prepared running the same SQL
# (one append_events() statement, its own transaction) at the same concurrency on the same
# server, for 1 and 100 tenants, batches of 1 and 10 events, 1 and 16 clients.
# Then what a NOTIFY in the append transaction would cost, measured the same way with pgbench.
#
#   bash bench/append.sh            # SECONDS_PER_RUN=8 by default
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${SECONDS_PER_RUN:-8}
DATA_DIR=$(mktemp -d /tmp/petstore-bench.XXXXXX)
chmod 755 "$DATA_DIR"   # the server runs as the postgres user when we are root

swift build -c release --product petstore >/dev/null
BIN=.build/release/petstore
PGBENCH=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench | tail -1)
eval "$($BIN db start --data-dir "$DATA_DIR" --log-level error)"
trap '$BIN db stop --data-dir "$DATA_DIR" --log-level error; rm -rf "$DATA_DIR"' EXIT
SCRIPTS=$(mktemp -d)

# The pgbench script for one configuration: the statement EventStore.append sends, with the same
# canonical data, a random tenant of the configured set and a new stream each time.
pgbench_script() { # tenants batch mode (0: the append alone; 1: in BEGIN…COMMIT with a NOTIFY; 2: the same with SELECT 1)
  local tenants=$1 batch=$2 notify=$3 i streams= types= typejson= versions= data=
  for ((i = 0; i < batch; i++)); do
    [[ $i -gt 0 ]] && { streams+=,; types+=,; typejson+=,; versions+=,; data+=,; }
    streams+="1"; types+="'PetRegistered'"; typejson+="'\"PetRegistered\"'"; versions+="1"
    data+="'{\"name\":\"Rex $i\",\"species\":\"dog\"}'"
  done
  echo "\\set t random(1, $tenants)"
  echo "\\set r random(1, 999999999999)"
  [[ $notify != 0 ]] && echo "BEGIN;"
  echo "SELECT first_seq, last_seq, head_hash, recorded_at, stream_versions FROM append_events(('00000000-0000-4000-8000-' || lpad(:t::text, 12, '0'))::uuid, '{}', ARRAY['pet'], ARRAY[('00000000-0000-4000-9000-' || lpad(:r::text, 12, '0'))::uuid], ARRAY[-1], ARRAY[$streams], ARRAY[$types], ARRAY[$typejson], ARRAY[$versions]::smallint[], ARRAY[$data]);"
  [[ $notify == 1 ]] && { echo "SELECT pg_notify('petstore_events', :t::text);"; echo "COMMIT;"; }
  [[ $notify == 2 ]] && { echo "SELECT 1;"; echo "COMMIT;"; }
  return 0
}

run_pgbench() { # script clients
  local threads=$(( $2 < 2 ? 1 : 2 ))
  "$PGBENCH" -n -M prepared -c "$2" -j "$threads" -T "$SECONDS_PER_RUN" -f "$1" "$APP_DATABASE_URL" 2>/dev/null \
    | awk '/^tps = / {print $3; exit}'
}

run_petstore() { # tenants batch clients
  "$BIN" bench append --app-database-url "$APP_DATABASE_URL" --tenants "$1" --batch "$2" --concurrency "$3" --seconds "$SECONDS_PER_RUN" \
    | sed -E 's/.*"tps": ([0-9.]+).*/\1/'
}

echo "Appends per second: EventStore.append vs pgbench -M prepared, same SQL, same server ($(nproc) cores, ${SECONDS_PER_RUN}s each)"
printf '%-8s %-6s %-8s %14s %14s %8s %16s\n' tenants batch clients petstore_tps pgbench_tps ratio petstore_events/s
for tenants in 1 100; do
  for batch in 1 10; do
    for clients in 1 16; do
      pgbench_script "$tenants" "$batch" 0 > "$SCRIPTS/append.sql"
      ours=$(run_petstore "$tenants" "$batch" "$clients")
      theirs=$(run_pgbench "$SCRIPTS/append.sql" "$clients")
      printf '%-8s %-6s %-8s %14.0f %14.0f %8.2f %16.0f\n' "$tenants" "$batch" "$clients" "$ours" "$theirs" \
        "$(awk -v a="$ours" -v b="$theirs" 'BEGIN {print a / b}')" "$(awk -v a="$ours" -v b="$batch" 'BEGIN {print a * b}')"
    done
  done
done

echo
echo "NOTIFY inside the append transaction (pgbench, 100 tenants, batch 1, 16 clients; both as BEGIN … COMMIT)"
pgbench_script 100 1 2 > "$SCRIPTS/plain.sql"
pgbench_script 100 1 1 > "$SCRIPTS/notify.sql"
plain=$(run_pgbench "$SCRIPTS/plain.sql" 16)
notify=$(run_pgbench "$SCRIPTS/notify.sql" 16)
printf 'without NOTIFY %8.0f tps\nwith NOTIFY    %8.0f tps\nratio          %8.2f\n' "$plain" "$notify" "$(awk -v a="$notify" -v b="$plain" 'BEGIN {print a / b}')"
rm -rf "$SCRIPTS"
