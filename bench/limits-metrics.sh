#!/usr/bin/env bash
# What rate limiting and metrics cost on GET /api/pets/{id}: two servers on the same database,
# one with both on (the enterprise quota raised so that it never binds, but every request still
# spends from it) and one started with --rate-limits off --metrics off, measured by wrk in
# alternating rounds in one run. Prints each round and the ratio of the medians (target: >= 0.90,
# i.e. they cost under 10% of throughput). Both servers log at error level, so the access log is
# not part of either figure.
#
#   bash bench/limits-metrics.sh      # ROUNDS=3, SECONDS_PER_RUN=8, CLIENTS=16 by default
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
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
$BIN serve "${COMMON[@]}" --port "$PORT_ON" --rate-limits "enterprise=1000000000/h+1000000" --metrics on &
SERVER_ON=$!
$BIN serve "${COMMON[@]}" --port "$PORT_OFF" --rate-limits off --metrics off &
SERVER_OFF=$!
trap 'kill $SERVER_ON $SERVER_OFF 2>/dev/null; wait $SERVER_ON $SERVER_OFF 2>/dev/null; $BIN db stop --data-dir "$DATA_DIR" --log-level error; rm -rf "$DATA_DIR" "$WORK"' EXIT
for port in "$PORT_ON" "$PORT_OFF"; do
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$port/health/ready" >/dev/null && break; sleep 0.1; done
done

read -r KEY PET < <(python3 - "$PORT_ON" "$PLATFORM_KEY" <<'PY'
import http.client, json, sys
port, platform = int(sys.argv[1]), sys.argv[2]
conn = http.client.HTTPConnection("127.0.0.1", port)
conn.request("POST", "/api/admin/tenants", json.dumps({"slug": "bench", "name": "Bench", "plan": "enterprise"}),
             {"Authorization": "Bearer " + platform, "Content-Type": "application/json"})
key = json.loads(conn.getresponse().read())["admin_api_key"]
conn.request("POST", "/api/pets", json.dumps({"name": "Rex", "species": "dog"}),
             {"Authorization": "Bearer " + key, "X-Tenant-ID": "bench", "Content-Type": "application/json"})
print(key, json.loads(conn.getresponse().read())["id"])
PY
)
cat > "$WORK/get.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $KEY"
wrk.headers["X-Tenant-ID"] = "bench"
LUA
wrk_rps() { # port
  local out
  out=$(wrk -t2 -c"$CLIENTS" -d"${SECONDS_PER_RUN}s" -s "$WORK/get.lua" "http://127.0.0.1:$1/api/pets/$PET")
  if grep -q "Non-2xx" <<<"$out"; then echo "non-2xx responses on port $1: the comparison is void" >&2; exit 1; fi
  awk '/^Requests\/sec:/ {print $2}' <<<"$out"
}
median() { tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

echo "GET /api/pets/{id}: rate limiter + metrics on vs off, $CLIENTS clients, ${SECONDS_PER_RUN}s per run, $(nproc) cores"
printf '%-6s %12s %12s\n' round on_rps off_rps
ON=(); OFF=()
for round in $(seq 1 "$ROUNDS"); do
  off=$(wrk_rps "$PORT_OFF"); on=$(wrk_rps "$PORT_ON")
  ON+=("$on"); OFF+=("$off")
  printf '%-6s %12.0f %12.0f\n' "$round" "$on" "$off"
done
on_median=$(echo "${ON[*]}" | median); off_median=$(echo "${OFF[*]}" | median)
printf 'median %12.0f %12.0f   ratio on/off %.3f   (target >= 0.90)\n' "$on_median" "$off_median" "$(awk -v a="$on_median" -v b="$off_median" 'BEGIN {print a / b}')"
# The limiter really ran: the on-server's scrape counts the requests it served.
curl -sf -H "Authorization: Bearer $PLATFORM_KEY" "http://127.0.0.1:$PORT_ON/metrics" \
  | awk '/^api_requests_total\{.*endpoint="\/api\/pets\/\{id\}".*status="200"/ {sum += $NF} END {printf "requests counted by the on-server: %d\n", sum}'
