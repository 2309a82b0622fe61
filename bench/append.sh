#!/usr/bin/env bash
# Appends per second through EventStore.append, beside pgbench -M prepared running the same SQL
# transaction (BEGIN; begin_append(); insert + move head; COMMIT) at the same concurrency on the
# same server, for 1 and 100 tenants, batches of 1 and 10 events, 1 and 16 clients.
# Then the cost of a NOTIFY inside the append transaction, measured the same way.
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

# The pgbench script for one configuration: the statements EventStore.append sends, with the
# values it computes (seqs, versions, hashes) filled in by pgbench variables.
pgbench_script() { # tenants batch notify
  local tenants=$1 batch=$2 notify=$3 i seqs= types= ids= versions= etypes= schemas= data= hashes=
  for ((i = 1; i <= batch; i++)); do
    [[ $i -gt 1 ]] && { seqs+=,; types+=,; ids+=,; versions+=,; etypes+=,; schemas+=,; data+=,; hashes+=,; }
    seqs+=":s$i"; types+="'pet'"; ids+=":stream"; versions+=":v$i"; etypes+="'PetRegistered'"; schemas+="1"
    data+="'{\"name\":\"Rex $i\",\"species\":\"dog\"}'"; hashes+="'\\xabababababababababababababababababababababababababababababababab'::bytea"
  done
  echo "\\set t random(1, $tenants)"
  echo "\\set r random(1, 999999999999)"
  echo "BEGIN;"
  echo "SELECT last_seq AS last, stream_versions[1] AS version, recorded_at AS at, ('00000000-0000-4000-8000-' || lpad(:t::text, 12, '0')) AS tenant, ('00000000-0000-4000-9000-' || lpad(:r::text, 12, '0')) AS stream FROM begin_append(('00000000-0000-4000-8000-' || lpad(:t::text, 12, '0'))::uuid, ARRAY['pet'], ARRAY[('00000000-0000-4000-9000-' || lpad(:r::text, 12, '0'))::uuid]) \\gset"
  for ((i = 1; i <= batch; i++)); do echo "\\set s$i :last + $i"; echo "\\set v$i :version + $i"; done
  echo "WITH inserted AS (INSERT INTO events (tenant_id, seq, stream_type, stream_id, stream_version, event_type, schema_version, data, metadata, recorded_at, prev_hash, hash) SELECT :tenant::uuid, e.seq, e.stream_type, e.stream_id, e.stream_version, e.event_type, e.schema_version, e.data::jsonb, '{}'::jsonb, :at::timestamptz, e.prev_hash, e.hash FROM unnest(ARRAY[$seqs]::bigint[], ARRAY[$types]::text[], ARRAY[$ids]::uuid[], ARRAY[$versions]::int[], ARRAY[$etypes]::text[], ARRAY[$schemas]::smallint[], ARRAY[$data]::text[], ARRAY[$hashes]::bytea[], ARRAY[$hashes]::bytea[]) AS e(seq, stream_type, stream_id, stream_version, event_type, schema_version, data, prev_hash, hash) RETURNING 1) UPDATE event_heads SET last_seq = :s$batch, head_hash = '\\xabababababababababababababababababababababababababababababababab'::bytea, updated_at = :at::timestamptz WHERE tenant_id = :tenant::uuid AND (SELECT count(*) FROM inserted) = $batch RETURNING last_seq;"
  [[ $notify == 1 ]] && echo "SELECT pg_notify('petstore_events', :tenant);"
  echo "COMMIT;"
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
echo "NOTIFY inside the append transaction (pgbench, 100 tenants, batch 1, 16 clients)"
pgbench_script 100 1 0 > "$SCRIPTS/plain.sql"
pgbench_script 100 1 1 > "$SCRIPTS/notify.sql"
plain=$(run_pgbench "$SCRIPTS/plain.sql" 16)
notify=$(run_pgbench "$SCRIPTS/notify.sql" 16)
printf 'without NOTIFY %8.0f tps\nwith NOTIFY    %8.0f tps\nratio          %8.2f\n' "$plain" "$notify" "$(awk -v a="$notify" -v b="$plain" 'BEGIN {print a / b}')"
rm -rf "$SCRIPTS"
