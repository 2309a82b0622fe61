#!/usr/bin/env bash
# Placements at scale: onboarding many schema tenants and many database tenants through the API,
# the connections they take meanwhile, and `petstore migrate` with nothing to do over all of them.
#   - one private cluster (fsync on), `petstore serve` (release build) on it, and a second
#     private cluster registered as server `second`;
#   - SCHEMA_TENANTS schema tenants (default 1000), then DATABASE_TENANTS tenants with a
#     database of their own on `second` (default 100), onboarded with POST /api/admin/tenants,
#     CONCURRENCY at a time (default 4), timed; the control plane's connections (pg_stat_activity
#     on its database) and every connection to the second server sampled every 100 ms, the most
#     seen printed;
#   - `petstore migrate` run MIGRATE_RUNS times (default 3) while the server serves: its own
#     account of the tenant pass and the command's wall time (process start, control plane check,
#     tenant pass).
#
#   bash bench/placements.sh
#   BIN=/path/to/petstore SCHEMA_TENANTS=200 DATABASE_TENANTS=20 bash bench/placements.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SCHEMA_TENANTS=${SCHEMA_TENANTS:-1000}
DATABASE_TENANTS=${DATABASE_TENANTS:-100}
CONCURRENCY=${CONCURRENCY:-4}
MIGRATE_RUNS=${MIGRATE_RUNS:-3}
PORT=${PORT:-18091}
if [ -z "${BIN:-}" ]; then
  swift build -c release --product petstore >/dev/null 2>&1
  BIN=.build/release/petstore
fi
DATA_DIR=$(mktemp -d /tmp/petstore-placements.XXXXXX)
SECOND_DIR=$(mktemp -d /tmp/petstore-placements-second.XXXXXX)
chmod 755 "$DATA_DIR" "$SECOND_DIR"
WORK=$(mktemp -d)
PLATFORM_KEY=$($BIN key create --platform --data-dir "$DATA_DIR" --log-level error)
SECOND_URL=$($BIN db start --data-dir "$SECOND_DIR" --log-level error | sed -n 's/^SUPERUSER_DATABASE_URL=//p')
eval "$($BIN db start --data-dir "$DATA_DIR" --log-level error)"
export DATABASE_URL APP_DATABASE_URL SUPERUSER_DATABASE_URL
$BIN server add second "$SECOND_URL" --log-level error >/dev/null
$BIN serve --data-dir "$DATA_DIR" --port "$PORT" --host 127.0.0.1 --log-level error \
  --rate-limits "premium=1000000000/h+1000000" >"$WORK/server.log" 2>&1 &
SERVER=$!
SAMPLER=
cleanup() {
  [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null || true
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  $BIN db stop --data-dir "$DATA_DIR" --log-level error || true
  $BIN db stop --data-dir "$SECOND_DIR" --log-level error || true
  rm -rf "$DATA_DIR" "$SECOND_DIR" "$WORK"
}
trap cleanup EXIT
for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break; sleep 0.2; done

# Connections every 100 ms until stopped: the control plane's (its database on main) and every
# one to the second server (whatever the database).
sample() {
  python3 - "$SUPERUSER_DATABASE_URL" "$DATABASE_URL" "$SECOND_URL" "$WORK/connections.txt" <<'PY' &
import subprocess, sys, time, urllib.parse
def count(url, where):
    url = urllib.parse.urlparse(url)
    env = {"PGPASSWORD": url.password or "", "PATH": "/usr/bin:/bin"}
    return subprocess.run(["psql", "-qtA", "-h", url.hostname, "-p", str(url.port), "-U", url.username, "-d", "postgres",
                           "-c", f"SELECT count(*) FROM pg_stat_activity WHERE {where}"],
                          env=env, capture_output=True, text=True).stdout.strip()
control = urllib.parse.urlparse(sys.argv[2]).path[1:]
with open(sys.argv[4], "w") as out:
    while True:
        main = count(sys.argv[1], f"datname = '{control}'")
        # Not this sampler's own connection, nor the server's background processes.
        second = count(sys.argv[3], "backend_type = 'client backend' AND pid <> pg_backend_pid()")
        if main and second: out.write(f"{main} {second}\n"); out.flush()
        time.sleep(0.1)
PY
  SAMPLER=$!
}
stop_sampling() {
  kill "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true; SAMPLER=
}

# onboard COUNT PLACEMENT [SERVER]
onboard() {
  python3 - "$PORT" "$PLATFORM_KEY" "$1" "$CONCURRENCY" "$2" "${3:-}" <<'PY'
import http.client, json, sys, threading, time
port, platform, count, concurrency, placement, server = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
slugs = [f"{placement}-{i:05d}" for i in range(count)]
failures, durations, lock = [], [], threading.Lock()
def worker(mine):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for slug in mine:
        body = {"slug": slug, "name": slug, "plan": "premium" if placement == "schema" else "enterprise", "placement": placement}
        if server: body["server"] = server
        started = time.monotonic()
        conn.request("POST", "/api/admin/tenants", json.dumps(body), {"Authorization": "Bearer " + platform, "Content-Type": "application/json"})
        response = conn.getresponse(); answer = response.read()
        with lock:
            durations.append(time.monotonic() - started)
            if response.status != 201: failures.append((slug, response.status, answer[:200]))
started = time.monotonic()
threads = [threading.Thread(target=worker, args=(slugs[i::concurrency],)) for i in range(concurrency)]
for t in threads: t.start()
for t in threads: t.join()
elapsed = time.monotonic() - started
durations.sort()
p = lambda q: durations[min(len(durations) - 1, int(q * (len(durations) - 1)))] * 1000
where = f" on server {server}" if server else ""
print(f"onboarding {count} {placement} tenants{where}, {concurrency} at a time: {elapsed:.1f} s ({count / elapsed:.1f} tenants/s), "
      f"each p50 {p(0.5):.0f} ms, p99 {p(0.99):.0f} ms, {len(failures)} failed")
for failure in failures[:5]: print("  failed:", failure)
PY
}

report_connections() {
  echo "  connections meanwhile: control plane at most $(cut -d' ' -f1 "$WORK/connections.txt" | sort -n | tail -1)," \
       "second server at most $(cut -d' ' -f2 "$WORK/connections.txt" | sort -n | tail -1) (sampled every 100 ms)"
}

if [ "$SCHEMA_TENANTS" -gt 0 ]; then
  sample; onboard "$SCHEMA_TENANTS" schema; stop_sampling; report_connections
fi
if [ "$DATABASE_TENANTS" -gt 0 ]; then
  sample; onboard "$DATABASE_TENANTS" database second; stop_sampling; report_connections
  sleep 12
  sample; sleep 1; stop_sampling
  echo "  12 s later, idle: second server $(cut -d' ' -f2 "$WORK/connections.txt" | sort -n | tail -1) connections"
fi

for run in $(seq 1 "$MIGRATE_RUNS"); do
  started=$(date +%s.%N)
  output=$($BIN migrate --log-level error 2>&1)
  ended=$(date +%s.%N)
  echo "migrate with nothing to do, run $run: $(echo "$output" | grep '^tenants:') — command wall time $(python3 -c "print(f'{$ended - $started:.2f}')") s"
done
