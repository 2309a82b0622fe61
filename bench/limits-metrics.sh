#!/usr/bin/env bash
# What rate limiting and metrics cost on GET /api/pets/{id}: two servers on the same database,
# one with both on and one started with --rate-limits off --metrics off, measured by wrk in
# alternating rounds in one run, in two scenarios:
#   one tenant   a single enterprise tenant whose quota is raised so that it never binds; the
#                limiter then leases requests from the database in blocks (the cheap case);
#   many tenants TENANTS enterprise tenants at their real limits (100 000 per hour, 500 per
#                second), each request for a random one: the expensive case, where each
#                tenant's takes are small and the limiter asks the database every few requests
#                of each tenant (each take decides both the quota window and the burst limit).
# Prints each round and the ratio of the medians (target: >= 0.90, i.e. they cost under 10% of
# throughput). Both servers log at error level, so the access log is in neither figure.
#
#   bash bench/limits-metrics.sh      # ROUNDS=3, SECONDS_PER_RUN=8, CLIENTS=16 by default
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
TENANTS=${TENANTS:-300}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-8}
CLIENTS=${CLIENTS:-16}
PORT_ON=${PORT_ON:-18082}
PORT_OFF=${PORT_OFF:-18083}
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }; }
DATA_DIR=$(mktemp -d /tmp/petstore-bench.XXXXXX)
chmod 755 "$DATA_DIR"
WORK=$(mktemp -d)
swift build -c release --product petstore >/dev/null 2>&1
BIN=.build/release/petstore
PLATFORM_KEY=$($BIN key create --platform --data-dir "$DATA_DIR" --log-level error)
eval "$($BIN db start --data-dir "$DATA_DIR" --log-level error)"
COMMON=(--data-dir "$DATA_DIR" --host 127.0.0.1 --log-level error --pool-size "$CLIENTS")
# ON_FLAGS isolates one of the two, e.g. ON_FLAGS="--rate-limits off --metrics on".
ON_FLAGS=${ON_FLAGS:---rate-limits premium=1000000000/h+1000000 --metrics on}
# shellcheck disable=SC2086
$BIN serve "${COMMON[@]}" --port "$PORT_ON" $ON_FLAGS &
SERVER_ON=$!
$BIN serve "${COMMON[@]}" --port "$PORT_OFF" --rate-limits off --metrics off &
SERVER_OFF=$!
trap 'kill $SERVER_ON $SERVER_OFF 2>/dev/null; wait $SERVER_ON $SERVER_OFF 2>/dev/null; $BIN db stop --data-dir "$DATA_DIR" --log-level error; rm -rf "$DATA_DIR" "$WORK"' EXIT
for port in "$PORT_ON" "$PORT_OFF"; do
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null && break; sleep 0.1; done
done

# "bench" (premium, quota raised out of the way) and TENANTS enterprise tenants, each with the
# sample pet onboarding gives it; the many-tenant script picks one at random per request.
python3 - "$PORT_ON" "$PLATFORM_KEY" "$TENANTS" "$WORK" <<'PY'
import http.client, json, sys
port, platform, count, work = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
conn = http.client.HTTPConnection("127.0.0.1", port)
def onboard(slug, plan):
    conn.request("POST", "/api/admin/tenants", json.dumps({"slug": slug, "name": slug, "plan": plan, "placement": "shared"}),
                 {"Authorization": "Bearer " + platform, "Content-Type": "application/json"})
    key = json.loads(conn.getresponse().read())["admin_api_key"]
    conn.request("GET", "/api/pets?limit=1", headers={"Authorization": "Bearer " + key, "X-Tenant-ID": slug})
    return key, json.loads(conn.getresponse().read())["items"][0]["id"]
key, pet = onboard("bench", "premium")
with open(work + "/one.lua", "w") as f:
    f.write('wrk.headers["Authorization"] = "Bearer %s"\nwrk.headers["X-Tenant-ID"] = "bench"\nwrk.path = "/api/pets/%s"\n' % (key, pet))
rows = [onboard("bench-%03d" % i, "enterprise") + ("bench-%03d" % i,) for i in range(count)]
with open(work + "/many.lua", "w") as f:
    f.write("local tenants = {\n")
    for key, pet, slug in rows:
        f.write('  {"%s", "%s", "%s"},\n' % (key, pet, slug))
    f.write("}\n")
    f.write("math.randomseed(os.time())\n")
    f.write("request = function()\n  local t = tenants[math.random(#tenants)]\n")
    f.write('  return wrk.format("GET", "/api/pets/" .. t[2], {["Authorization"] = "Bearer " .. t[1], ["X-Tenant-ID"] = t[3]})\nend\n')
PY
wrk_rps() { # port script
  local out
  out=$(wrk -t2 -c"$CLIENTS" -d"${SECONDS_PER_RUN}s" -s "$WORK/$2.lua" "http://127.0.0.1:$1")
  if grep -q "Non-2xx" <<<"$out"; then echo "non-2xx responses on port $1: the comparison is void" >&2; exit 1; fi
  awk '/^Requests\/sec:/ {print $2}' <<<"$out"
}
median() { tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

echo "GET /api/pets/{id}: on ($ON_FLAGS) vs off, $CLIENTS clients, ${SECONDS_PER_RUN}s per run, $(nproc) cores"
for scenario in one many; do
  [ "$scenario" = one ] && echo "-- one tenant, quota out of the way" || echo "-- $TENANTS enterprise tenants at their real limits, a random one per request"
  printf '%-6s %12s %12s\n' round on_rps off_rps
  ON=(); OFF=()
  for round in $(seq 1 "$ROUNDS"); do
    off=$(wrk_rps "$PORT_OFF" "$scenario"); on=$(wrk_rps "$PORT_ON" "$scenario")
    ON+=("$on"); OFF+=("$off")
    printf '%-6s %12.0f %12.0f\n' "$round" "$on" "$off"
  done
  on_median=$(echo "${ON[*]}" | median); off_median=$(echo "${OFF[*]}" | median)
  printf 'median %12.0f %12.0f   ratio on/off %.3f   (target >= 0.90)\n' "$on_median" "$off_median" "$(awk -v a="$on_median" -v b="$off_median" 'BEGIN {print a / b}')"
done
# The limiter really ran: the on-server's scrape counts the requests it served.
curl -sf -H "Authorization: Bearer $PLATFORM_KEY" "http://127.0.0.1:$PORT_ON/metrics" \
  | awk '/^api_requests_total\{.*endpoint="\/api\/pets\/\{id\}".*status="200"/ {sum += $NF} /^rate_limited_requests_total/ {limited += $NF}
         /^rate_limit_store_statements_total/ {statements = $NF} /^rate_limit_store_takes_total/ {takes = $NF}
         END {printf "on-server scrape: %d GET /api/pets/{id} answered 200, %d rate-limited; %d limiter statements carried %d takes\n", sum, limited, statements, takes}'
