#!/usr/bin/env bash
# The pets API through HTTP (wrk) beside pgbench -M prepared running the SQL the same request
# sends, at the same concurrency, against the same server, in one run:
#   GET /api/pets/{id}        vs  SELECT … FROM read_pet_json_v2(tenant, id)
#   GET /api/pets?limit=20    vs  SELECT … FROM read_pets_page_v3(tenant, 0, NULL, 20, validator): the
#                                 server holds the page, and passes its validator (Schema/0022)
#   POST /api/pets            vs  the command's unit of work, its projection inside it (BEGIN; enter
#                                 the tenant and take generic plans, as the server's command groups do;
#                                 append_events_checked(…); the batch start (pair lock, checkpoint row);
#                                 insert; checkpoint and search path; COMMIT): one command per transaction,
#                                 and the same with begin_projection_batch as the batch start, side by side
# (pgbench reads ':name' as a variable, so the script spells the time format's colons chr(58).)
# The tenant is in the shared tables, whose sessions send exactly this SQL (a schema tenant's
# also set the search path).
#
#   bash bench/pets.sh        # SECONDS_PER_RUN=8, CLIENTS=16 by default
#   BIN=/path/to/petstore bash bench/pets.sh   # a release binary built elsewhere (another commit)
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${SECONDS_PER_RUN:-8}
CLIENTS=${CLIENTS:-16}
PORT=${PORT:-18081}
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }; }
PGBENCH=$(command -v pgbench || ls /usr/lib/postgresql/*/bin/pgbench | tail -1)
DATA_DIR=$(mktemp -d /tmp/petstore-bench.XXXXXX)
chmod 755 "$DATA_DIR"
WORK=$(mktemp -d)
if [ -z "${BIN:-}" ]; then
  swift build -c release --product petstore >/dev/null 2>&1
  BIN=.build/release/petstore
fi
PLATFORM_KEY=$($BIN key create --platform --data-dir "$DATA_DIR" --log-level error)
eval "$($BIN db start --data-dir "$DATA_DIR" --log-level error)"
# The enterprise quota raised out of the way: this measures throughput, not the limit.
$BIN serve --data-dir "$DATA_DIR" --port "$PORT" --host 127.0.0.1 --log-level error --pool-size "$CLIENTS" \
  --rate-limits "enterprise=1000000000/h+1000000" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; $BIN db stop --data-dir "$DATA_DIR" --log-level error; rm -rf "$DATA_DIR" "$WORK"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break; sleep 0.1; done

# A tenant with 200 pets.
read -r KEY TENANT PET < <(python3 - "$PORT" "$PLATFORM_KEY" <<'PY'
import http.client, json, sys
port, platform = int(sys.argv[1]), sys.argv[2]
conn = http.client.HTTPConnection("127.0.0.1", port)
conn.request("POST", "/api/admin/tenants", json.dumps({"slug": "bench", "name": "Bench", "plan": "enterprise", "placement": "shared"}),
             {"Authorization": "Bearer " + platform, "Content-Type": "application/json"})
created = json.loads(conn.getresponse().read())
key, tenant = created["admin_api_key"], created["tenant"]["id"]
pet = None
for i in range(200):
    conn.request("POST", "/api/pets", json.dumps({"name": "Pet %d" % i, "species": ["dog", "cat"][i % 2]}),
                 {"Authorization": "Bearer " + key, "X-Tenant-ID": "bench", "Content-Type": "application/json"})
    pet = json.loads(conn.getresponse().read())["id"]
print(key, tenant, pet)
PY
)
PETS_VERSION=$(psql -Atq "$DATABASE_URL" -c "SELECT version || ' ' || schema_name FROM projections WHERE name = 'pets' AND state = 'active'")
read -r VERSION SCHEMA <<<"$PETS_VERSION"
# The server restores the search path a session starts with after the projection batch, read once.
DEFAULT_PATH=$(psql -Atq "$APP_DATABASE_URL" -c "SHOW search_path")

cat > "$WORK/get.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $KEY"
wrk.headers["X-Tenant-ID"] = "bench"
LUA
cat > "$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $KEY"
wrk.headers["X-Tenant-ID"] = "bench"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"name":"Rex","species":"dog"}'
LUA
# Reads enter the tenant within the call, as the server's read sessions do (one statement).
echo "SELECT called.* FROM set_config('app.tenant_id', '$TENANT', true) AS entered(tenant), LATERAL read_pet_json_v2(entered.tenant::uuid, '$PET') AS called;" > "$WORK/get.sql"
# The list's validator as the server holds it once it has made the page (colons spelt chr(58)).
VALIDATOR=$(psql -Atq "$APP_DATABASE_URL" -c "SELECT called.validator FROM set_config('app.tenant_id', '$TENANT', true) AS entered(tenant), LATERAL read_pets_page_v3(entered.tenant::uuid, 0, NULL, 20, NULL) AS called")
VALIDATOR_SQL=$(printf %s "$VALIDATOR" | sed "s/:/' || chr(58) || '/g")
echo "SELECT called.* FROM set_config('app.tenant_id', '$TENANT', true) AS entered(tenant), LATERAL read_pets_page_v3(entered.tenant::uuid, 0, NULL, 20, '$VALIDATOR_SQL') AS called;" > "$WORK/list.sql"
cat > "$WORK/post.sql" <<SQL
\\set r random(1, 999999999999)
BEGIN;
SELECT set_config('app.tenant_id', '$TENANT', true), set_config('plan_cache_mode', 'force_generic_plan', true);
SELECT last_seq AS last FROM append_events_checked('$TENANT', '{"actor":"user-bench","correlation_id":"r","request_id":"r"}', ARRAY['pet'], ARRAY[('00000000-0000-4000-9000-' || lpad(:r::text, 12, '0'))::uuid], ARRAY[0], ARRAY[1], ARRAY['PetRegistered'], ARRAY['"PetRegistered"'], ARRAY[1]::smallint[], ARRAY['{"at":"2026-11-29T00:00:00.000000Z","name":"Rex","pet_id":"00000000-0000-4000-9000-' || lpad(:r::text, 12, '0') || '","species":"dog"}']) \\gset
WITH locked AS MATERIALIZED (SELECT pg_advisory_xact_lock(hashtextextended('pets/$VERSION/$TENANT', 0))) SELECT c.applied_seq AS pos, set_config('search_path', quote_ident('$SCHEMA') || ', public', true) FROM locked, projection_checkpoints c WHERE c.tenant_id = '$TENANT' AND c.projection = 'pets' AND c.version = '$VERSION' FOR UPDATE OF c \\gset
INSERT INTO pets (tenant_id, id, registered_seq, name, species, breed, microchip_id, deleted, created_at, updated_at, version) VALUES ('$TENANT', ('00000000-0000-4000-9000-' || lpad(:r::text, 12, '0'))::uuid, :last, 'Rex', 'dog', NULL, NULL, false, now(), now(), 1) ON CONFLICT DO NOTHING;
WITH moved AS (UPDATE projection_checkpoints SET applied_seq = greatest(applied_seq, :last), updated_at = now() WHERE tenant_id = '$TENANT' AND projection = 'pets' AND version = '$VERSION' RETURNING 1) SELECT set_config('search_path', '$DEFAULT_PATH', true), (SELECT count(*) FROM moved);
COMMIT;
SQL

# The same unit of work with the batch started by begin_projection_batch, as before the command
# path's own statement (InlineBatchStart), whose checks the append has already made.
sed "s|^WITH locked AS MATERIALIZED .*|SELECT begin_projection_batch('$TENANT', 'pets', '$VERSION', '$SCHEMA') AS pos \\\\gset|" "$WORK/post.sql" > "$WORK/post-function.sql"

wrk_rps() { # lua url
  wrk -t2 -c"$CLIENTS" -d"${SECONDS_PER_RUN}s" -s "$1" "$2" | awk '/^Requests\/sec:/ {print $2}'
}
pgbench_tps() { # script
  "$PGBENCH" -n -M prepared -c "$CLIENTS" -j 2 -T "$SECONDS_PER_RUN" -f "$1" "$APP_DATABASE_URL" 2>/dev/null | awk '/^tps = / {print $3; exit}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

echo "Pets API over HTTP (wrk) vs pgbench -M prepared with the same SQL: $CLIENTS clients, ${SECONDS_PER_RUN}s each, $(nproc) cores"
printf '%-26s %12s %12s %7s %7s\n' request http_rps pgbench_tps ratio target
BASE="http://127.0.0.1:$PORT"
get_http=$(wrk_rps "$WORK/get.lua" "$BASE/api/pets/$PET"); get_sql=$(pgbench_tps "$WORK/get.sql")
printf '%-26s %12.0f %12.0f %7s %7s\n' "GET /api/pets/{id}" "$get_http" "$get_sql" "$(ratio "$get_http" "$get_sql")" 0.5
list_http=$(wrk_rps "$WORK/get.lua" "$BASE/api/pets?limit=20"); list_sql=$(pgbench_tps "$WORK/list.sql")
printf '%-26s %12.0f %12.0f %7s %7s\n' "GET /api/pets?limit=20" "$list_http" "$list_sql" "$(ratio "$list_http" "$list_sql")" 0.5
post_http=$(wrk_rps "$WORK/post.lua" "$BASE/api/pets"); post_sql=$(pgbench_tps "$WORK/post.sql")
printf '%-26s %12.0f %12.0f %7s %7s\n' "POST /api/pets" "$post_http" "$post_sql" "$(ratio "$post_http" "$post_sql")" 1.5
# The batch start alone, both ways: pgbench -r's latency of that statement, one client and CLIENTS.
batch_start() { # script clients -> "tps start_ms"
  "$PGBENCH" -n -r -M prepared -c "$2" -j "$(( $2 > 1 ? 2 : 1 ))" -T "$SECONDS_PER_RUN" -f "$1" "$APP_DATABASE_URL" 2>/dev/null \
    | awk '/^tps = / {tps = $3} /begin_projection_batch|WITH locked/ {ms = $1} END {print tps, ms}'
}
for clients in 1 "$CLIENTS"; do
  read -r function_tps function_ms < <(batch_start "$WORK/post-function.sql" "$clients")
  read -r statement_tps statement_ms < <(batch_start "$WORK/post.sql" "$clients")
  printf 'POST unit of work, %2s client(s): batch start by function %.3f ms (%.0f tps), by statement %.3f ms (%.0f tps): %s\n' \
    "$clients" "$function_ms" "$function_tps" "$statement_ms" "$statement_tps" "$(ratio "$statement_tps" "$function_tps")"
done
# Projection lag under that POST load, as the server saw it: recorded_at to projected.
python3 - "$PORT" "$PLATFORM_KEY" <<'PY'
import http.client, json, sys
conn = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
conn.request("GET", "/api/admin/projections", headers={"Authorization": "Bearer " + sys.argv[2]})
for item in json.loads(conn.getresponse().read())["items"]:
    if item["state"] == "active" and item["lag_ms_p50"] is not None:
        print("projection lag %-14s p50 %7.2f ms   p99 %7.2f ms   (%d events)" % (item["name"], item["lag_ms_p50"], item["lag_ms_p99"], item["lag_samples"]))
PY
# The HTTP ceiling on this machine: a route that touches no database and no tenant.
live_http=$(wrk_rps "$WORK/get.lua" "$BASE/health/live")
tenant_http=$(wrk_rps "$WORK/get.lua" "$BASE/api/tenant")
printf '%-26s %12.0f %12s %7s %7s\n' "GET /health/live" "$live_http" "-" "-" "-"
printf '%-26s %12.0f %12s %7s %7s\n' "GET /api/tenant" "$tenant_http" "-" "-" "-"
