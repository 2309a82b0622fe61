#!/usr/bin/env bash
# Many shared tenants: does a request cost more when the server holds 10 000 tenants than when
# it holds 10? One server and cluster (fsync on), TENANTS shared tenants onboarded through the API
# (default 10000), then wrk GET /api/pets/{id} in alternating rounds:
#   hot10  — every request for one of 10 tenants (their keys, tenants and homes stay cached)
#   all    — every request for a tenant drawn at random from all of them
# Every tenant is asked for once first (a server's first request for a tenant looks it up).
# Prints req/s, p50, p99 per round and scenario, the ratio of p99 (all / hot10), and the
# transactions the server ran per request (pg_stat_database's commits and rollbacks over the
# round / requests; a lone statement is a transaction): catalog lookups per request should not
# grow with the tenant count.
#
#   bash bench/tenant-scale.sh
#   BIN=/path/to/petstore TENANTS=2000 ROUNDS=3 DURATION=10s bash bench/tenant-scale.sh
#   RATE_LIMITS=off bash bench/tenant-scale.sh     # without quota accounting
set -euo pipefail
cd "$(dirname "$0")/.."
TENANTS=${TENANTS:-10000}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CLIENTS=${CLIENTS:-16}
PORT=${PORT:-18092}
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }; }
if [ -z "${BIN:-}" ]; then
  swift build -c release --product petstore >/dev/null 2>&1
  BIN=.build/release/petstore
fi
DATA_DIR=$(mktemp -d /tmp/petstore-scale.XXXXXX)
chmod 755 "$DATA_DIR"
WORK=$(mktemp -d)
PLATFORM_KEY=$($BIN key create --platform --data-dir "$DATA_DIR" --log-level error)
eval "$($BIN db start --data-dir "$DATA_DIR" --log-level error)"
PSQL_URL=$SUPERUSER_DATABASE_URL
psql_su() { psql -qtA "$PSQL_URL" -c "$1"; }
CONTROL_DB=${DATABASE_URL##*/}
$BIN serve --data-dir "$DATA_DIR" --port "$PORT" --host 127.0.0.1 --log-level error --pool-size "$CLIENTS" \
  --rate-limits "${RATE_LIMITS:-free=1000000000/h+1000000}" >"$WORK/server.log" 2>&1 &
SERVER=$!
cleanup() {
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  $BIN db stop --data-dir "$DATA_DIR" --log-level error || true
  rm -rf "$DATA_DIR" "$WORK"
}
trap cleanup EXIT
for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break; sleep 0.2; done

# Onboard, then find each tenant's sample pet: lines "slug key pet-id".
python3 - "$PORT" "$PLATFORM_KEY" "$TENANTS" "$WORK/tenants.txt" <<'PY'
import http.client, json, sys, threading, time
port, platform, count, path = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
slugs = [f"t-{i:05d}" for i in range(count)]
lines, lock = {}, threading.Lock()
def worker(mine):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for slug in mine:
        conn.request("POST", "/api/admin/tenants", json.dumps({"slug": slug, "name": slug, "plan": "free"}),
                     {"Authorization": "Bearer " + platform, "Content-Type": "application/json"})
        response = conn.getresponse(); body = json.loads(response.read())
        if response.status != 201: raise SystemExit(f"{slug}: {response.status} {body}")
        key = body["admin_api_key"]
        conn.request("GET", "/api/pets?limit=1", headers={"Authorization": "Bearer " + key, "X-Tenant-ID": slug})
        response = conn.getresponse(); pets = json.loads(response.read())
        with lock: lines[slug] = f"{slug} {key} {pets['items'][0]['id']}"
started = time.monotonic()
threads = [threading.Thread(target=worker, args=(slugs[i::4],)) for i in range(4)]
for t in threads: t.start()
for t in threads: t.join()
with open(path, "w") as out:
    for slug in slugs: out.write(lines[slug] + "\n")
print(f"onboarded {count} shared tenants in {time.monotonic() - started:.0f} s")
PY
head -10 "$WORK/tenants.txt" > "$WORK/hot10.txt"

cat > "$WORK/get.lua" <<'LUA'
local tenants = {}
function init(args)
  for line in io.lines(args[1]) do
    local slug, key, pet = line:match("(%S+) (%S+) (%S+)")
    tenants[#tenants + 1] = { slug = slug, auth = "Bearer " .. key, path = "/api/pets/" .. pet }
  end
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end
function request()
  local t = tenants[math.random(#tenants)]
  return wrk.format("GET", t.path, { ["X-Tenant-ID"] = t.slug, ["Authorization"] = t.auth })
end
function done(summary, latency, requests)
  io.write(string.format("RESULT %d %.1f %.2f %.2f %d\n", summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA

# Stats reach pg_stat_database within a second of a backend going idle: read after a pause.
# Steady state: every tenant asked for once before the rounds, so that each scenario measures
# a server that has seen its tenants (a server's first request for a tenant looks it up).
python3 - "$PORT" "$WORK/tenants.txt" <<'PY'
import http.client, sys, threading, time
port, lines = int(sys.argv[1]), [line.split() for line in open(sys.argv[2])]
def worker(mine):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for slug, key, pet in mine:
        conn.request("GET", f"/api/pets/{pet}", headers={"Authorization": "Bearer " + key, "X-Tenant-ID": slug})
        response = conn.getresponse(); response.read()
        if response.status != 200: raise SystemExit(f"{slug}: {response.status}")
started = time.monotonic()
threads = [threading.Thread(target=worker, args=(lines[i::4],)) for i in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print(f"warm-up: every tenant asked for once, {len(lines)} requests in {time.monotonic() - started:.0f} s")
PY

calls() { sleep 1.5; psql_su "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = '$CONTROL_DB'"; }
for round in $(seq 1 "$ROUNDS"); do
  for scenario in hot10 all; do
    file=$WORK/$scenario.txt; [ "$scenario" = all ] && file=$WORK/tenants.txt
    before=$(calls)
    wrk -t2 -c"$CLIENTS" -d"$DURATION" -s "$WORK/get.lua" "http://127.0.0.1:$PORT" -- "$file" > "$WORK/$scenario-$round.out" 2>&1
    after=$(calls)
    echo "$(grep '^RESULT' "$WORK/$scenario-$round.out") $((after - before))" > "$WORK/$scenario-$round.txt"
  done
done

echo "GET /api/pets/{id} with $TENANTS shared tenants: 10 hot tenants vs all of them at random; wrk -t2 -c$CLIENTS -d$DURATION, $ROUNDS alternating rounds, $(nproc) cores; medians"
python3 - "$WORK" "$ROUNDS" <<'PY'
import statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
rows = {}
for name in ("hot10", "all"):
    for r in range(1, rounds + 1):
        _, requests, rps, p50, p99, errors, calls = open(f"{work}/{name}-{r}.txt").read().split()
        rows.setdefault(name, []).append((float(rps), float(p50), float(p99), int(errors), int(calls) / max(1, int(requests))))
print(f"{'scenario':<8} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'transactions/request':>21}  rounds (req/s)")
for name, vs in rows.items():
    print(f"{name:<8} {statistics.median(v[0] for v in vs):>8.0f} {statistics.median(v[1] for v in vs):>7.2f} "
          f"{statistics.median(v[2] for v in vs):>7.2f} {sum(v[3] for v in vs):>6} {statistics.median(v[4] for v in vs):>21.2f}  "
          + " ".join(f"{v[0]:.0f}" for v in vs))
hot, everyone = rows["hot10"], rows["all"]
print(f"p99 all / hot10: {statistics.median(v[2] for v in everyone) / statistics.median(v[2] for v in hot):.2f} (target <= 1.2); "
      f"transactions per request all / hot10: {statistics.median(v[4] for v in everyone) / statistics.median(v[4] for v in hot):.2f}")
PY
