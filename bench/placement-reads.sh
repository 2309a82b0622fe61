#!/usr/bin/env bash
# The read path by placement: a shared and a schema tenant (enterprise plan, 100 pets each) on
# one server, GET /api/pets/{id} and GET /api/pets?limit=100 with wrk against each in
# alternating rounds. A schema tenant's reads also set the search path (in the same statement),
# and a connection that alternates between tenants of different schemas replans the functions'
# queries; this measures what that costs.
#
#   bash bench/placement-reads.sh            # ROUNDS=3 SECONDS_PER_RUN=8 CLIENTS=16
#   BIN=/path/to/petstore bash bench/placement-reads.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-8}
CLIENTS=${CLIENTS:-16}
PORT=${PORT:-18093}
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }; }
if [ -z "${BIN:-}" ]; then
  swift build -c release --product petstore >/dev/null 2>&1
  BIN=.build/release/petstore
fi
DATA_DIR=$(mktemp -d /tmp/petstore-reads.XXXXXX)
chmod 755 "$DATA_DIR"
WORK=$(mktemp -d)
PLATFORM_KEY=$($BIN key create --platform --data-dir "$DATA_DIR" --log-level error)
eval "$($BIN db start --data-dir "$DATA_DIR" --log-level error)"
$BIN serve --data-dir "$DATA_DIR" --port "$PORT" --host 127.0.0.1 --log-level error --pool-size "$CLIENTS" \
  --rate-limits "enterprise=1000000000/h+1000000" >"$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; $BIN db stop --data-dir "$DATA_DIR" --log-level error; rm -rf "$DATA_DIR" "$WORK"' EXIT
for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break; sleep 0.2; done

for placement in shared schema; do
  python3 - "$PORT" "$PLATFORM_KEY" "$placement" > "$WORK/$placement.env" <<'PY'
import http.client, json, sys
port, platform, placement = int(sys.argv[1]), sys.argv[2], sys.argv[3]
conn = http.client.HTTPConnection("127.0.0.1", port)
slug = f"reads-{placement}"
conn.request("POST", "/api/admin/tenants", json.dumps({"slug": slug, "name": slug, "plan": "enterprise", "placement": placement}),
             {"Authorization": "Bearer " + platform, "Content-Type": "application/json"})
key = json.loads(conn.getresponse().read())["admin_api_key"]
pet = None
for i in range(99):
    conn.request("POST", "/api/pets", json.dumps({"name": f"Pet {i}", "species": "dog"}),
                 {"Authorization": "Bearer " + key, "X-Tenant-ID": slug, "Content-Type": "application/json"})
    pet = json.loads(conn.getresponse().read())["id"]
print(f"SLUG={slug} KEY={key} PET={pet}")
PY
  cat > "$WORK/$placement.lua" <<LUA
$(. "$WORK/$placement.env"; echo "wrk.headers[\"Authorization\"] = \"Bearer $KEY\""; echo "wrk.headers[\"X-Tenant-ID\"] = \"$SLUG\"")
function done(summary, latency, requests)
  io.write(string.format("RESULT %.1f %.2f %.2f\n", summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
LUA
done

for round in $(seq 1 "$ROUNDS"); do
  for placement in shared schema; do
    . "$WORK/$placement.env"
    wrk -t2 -c"$CLIENTS" -d"${SECONDS_PER_RUN}s" -s "$WORK/$placement.lua" "http://127.0.0.1:$PORT/api/pets/$PET" | grep RESULT >> "$WORK/get-$placement.txt"
    wrk -t2 -c"$CLIENTS" -d"${SECONDS_PER_RUN}s" -s "$WORK/$placement.lua" "http://127.0.0.1:$PORT/api/pets?limit=100" | grep RESULT >> "$WORK/list-$placement.txt"
  done
done

echo "Reads by placement: one shared and one schema tenant (100 pets each), wrk -t2 -c$CLIENTS -d${SECONDS_PER_RUN}s, $ROUNDS alternating rounds, $(nproc) cores; medians"
python3 - "$WORK" <<'PY'
import statistics, sys
work = sys.argv[1]
print(f"{'request':<24} {'placement':<9} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7}")
for request, name in (("get", "GET /api/pets/{id}"), ("list", "GET /api/pets?limit=100")):
    rps = {}
    for placement in ("shared", "schema"):
        rows = [list(map(float, line.split()[1:])) for line in open(f"{work}/{request}-{placement}.txt")]
        rps[placement] = statistics.median(r[0] for r in rows)
        print(f"{name:<24} {placement:<9} {rps[placement]:>8.0f} {statistics.median(r[1] for r in rows):>7.2f} {statistics.median(r[2] for r in rows):>7.2f}")
    print(f"{name:<24} schema/shared req/s: {rps['schema'] / rps['shared']:.2f}")
PY
