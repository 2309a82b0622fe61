#!/usr/bin/env bash
# Faults, measured side by side in one run:
#  1. A stalled tenant: its log head is locked and 64 clients flood it with commands while another
#     tenant reads (wrk, 4 clients). The calm tenant's latency unloaded, then during the stall with
#     the per-tenant pool share (50%), then with the share switched off (100%).
#  2. Slow clients: 3 000 connections that send half a request head; the server's RSS before,
#     while they are open, and after the header timeout has closed them.
#
#   bash bench/faults.sh            # BUILD=release by default; SECONDS_PER_RUN=8
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_RUN=${SECONDS_PER_RUN:-8}
BUILD=${BUILD:-release}
PORT=${PORT:-18083}
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }; }
PSQL=$(command -v psql || ls /usr/lib/postgresql/*/bin/psql | tail -1)
DATA_DIR=$(mktemp -d /tmp/petstore-bench.XXXXXX)
chmod 755 "$DATA_DIR"
WORK=$(mktemp -d)
swift build -c "$BUILD" --product petstore >/dev/null 2>&1
BIN=.build/$BUILD/petstore
PLATFORM_KEY=$($BIN key create --platform --data-dir "$DATA_DIR" --log-level error)
eval "$($BIN db start --data-dir "$DATA_DIR" --log-level error)"
# The lock is taken as the superuser: row-level security would hide the row from the owner.
LOCKER_URL=${SUPERUSER_DATABASE_URL%/postgres}/petstore
SERVER=
stop_server() { if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null || true; SERVER=; fi; }
trap 'stop_server; $BIN db stop --data-dir "$DATA_DIR" --log-level error; rm -rf "$DATA_DIR" "$WORK"' EXIT

start_server() { # extra flags…
  # Long statement, lock and request timeouts: the stalled tenant's requests hold on to what they get.
  $BIN serve --data-dir "$DATA_DIR" --port "$PORT" --host 127.0.0.1 --log-level error --pool-size 16 \
    --rate-limits "enterprise=1000000000/h+1000000" --lock-timeout 60s --statement-timeout 60s --request-timeout 60s \
    --connection-wait-timeout 2s "$@" &
  SERVER=$!
  for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && return; sleep 0.1; done
  echo "server did not start" >&2; exit 1
}

start_server
read -r CALM_KEY STALLED_KEY STALLED_ID PET < <(python3 - "$PORT" "$PLATFORM_KEY" <<'PY'
import http.client, json, sys
port, platform = int(sys.argv[1]), sys.argv[2]
conn = http.client.HTTPConnection("127.0.0.1", port)
def onboard(slug):
    conn.request("POST", "/api/admin/tenants", json.dumps({"slug": slug, "name": slug, "plan": "enterprise"}),
                 {"Authorization": "Bearer " + platform, "Content-Type": "application/json"})
    created = json.loads(conn.getresponse().read())
    return created["admin_api_key"], created["tenant"]["id"]
calm, _ = onboard("calm")
stalled, stalled_id = onboard("stalled")
pet = None
for i in range(50):
    conn.request("POST", "/api/pets", json.dumps({"name": "Pet %d" % i, "species": "dog"}),
                 {"Authorization": "Bearer " + calm, "X-Tenant-ID": "calm", "Content-Type": "application/json"})
    pet = json.loads(conn.getresponse().read())["id"]
print(calm, stalled, stalled_id, pet)
PY
)
cat > "$WORK/calm.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $CALM_KEY"
wrk.headers["X-Tenant-ID"] = "calm"
LUA
cat > "$WORK/stalled.lua" <<LUA
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $STALLED_KEY"
wrk.headers["X-Tenant-ID"] = "stalled"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"name":"Stuck","species":"cat"}'
done = function(summary, latency, requests)
  io.write(string.format("STALLED %d %d\n", summary.requests, summary.errors.status))
end
LUA
calm_latency() { # label
  wrk -t1 -c4 -d"${SECONDS_PER_RUN}s" --latency -s "$WORK/calm.lua" "http://127.0.0.1:$PORT/api/pets/$PET" > "$WORK/calm.out"
  local rps p50 p99 errors
  rps=$(awk '/^Requests\/sec:/ {print $2}' "$WORK/calm.out")
  p50=$(awk '$1 == "50%" {print $2}' "$WORK/calm.out")
  p99=$(awk '$1 == "99%" {print $2}' "$WORK/calm.out")
  errors=$(awk '/Non-2xx/ {print $5}' "$WORK/calm.out"); errors=${errors:-0}
  printf "%-40s %10s req/s  p50 %8s  p99 %8s  non-2xx %s\n" "$1" "$rps" "$p50" "$p99" "$errors"
}
stalled_run() { # label
  # The stalled tenant's log head, held by another session for the length of the run.
  "$PSQL" -Atq "$LOCKER_URL" -c "BEGIN; SELECT 1 FROM event_heads WHERE tenant_id = '$STALLED_ID' FOR UPDATE; SELECT pg_sleep($((SECONDS_PER_RUN + 4))); COMMIT;" >/dev/null &
  local locker=$!
  sleep 0.5
  wrk -t1 -c64 -d"$((SECONDS_PER_RUN + 2))s" -s "$WORK/stalled.lua" "http://127.0.0.1:$PORT/api/pets" > "$WORK/stalled.out" 2>&1 &
  local flood=$!
  sleep 1
  calm_latency "$1"
  wait "$flood" || true
  wait "$locker" || true
  awk '/^STALLED/ {printf "%-40s %d answered, %d of them 503\n", "  stalled tenant meanwhile:", $2, $3}' "$WORK/stalled.out"
}

echo "== one tenant stalled, another reading GET /api/pets/{id} (4 clients, ${SECONDS_PER_RUN}s each, $BUILD build)"
calm_latency "calm tenant, nothing else running"
stalled_run "calm tenant, other stalled, share 50%"
stop_server
start_server --tenant-pool-share 100
stalled_run "calm tenant, other stalled, share 100%"
stop_server

echo "== 3000 connections sending half a request head (header timeout 5 s)"
start_server --header-timeout 5s --max-connections 4096
python3 - "$PORT" "$SERVER" <<'PY'
import socket, sys, time
port, pid = int(sys.argv[1]), int(sys.argv[2])
def rss():
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
before = rss()
sockets = []
for _ in range(3000):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\n")
    sockets.append(s)
time.sleep(1)
during = rss()
open_after = None
time.sleep(8)
closed = 0
for s in sockets:
    s.settimeout(0.01)
    try:
        if s.recv(1) == b"":
            closed += 1
    except (socket.timeout, BlockingIOError):
        pass
    except OSError:
        closed += 1
for s in sockets:
    s.close()
time.sleep(3)
after = rss()
print("server RSS: before %.1f MB, with 3000 half-sent heads %.1f MB, after they were cut off %.1f MB" % (before, during, after))
print("closed by the server within 9 s: %d of 3000" % closed)
PY
