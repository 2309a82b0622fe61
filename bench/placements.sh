#!/usr/bin/env bash
# Placements at scale: onboarding many schema tenants through the API, the control plane's
# connections meanwhile, and `petstore migrate` with nothing to do over all of them.
#   - one private cluster (fsync on), `petstore serve` (release build) on it;
#   - SCHEMA_TENANTS schema tenants (default 1000) onboarded with POST /api/admin/tenants,
#     CONCURRENCY at a time (default 4), timed; the control plane's connections (pg_stat_activity
#     on its database) sampled every 100 ms, the most seen printed;
#   - `petstore migrate` run MIGRATE_RUNS times (default 3) while the server serves: its own
#     account of the tenant pass and the command's wall time (process start, control plane check,
#     tenant pass).
#
#   bash bench/placements.sh
#   BIN=/path/to/petstore SCHEMA_TENANTS=200 bash bench/placements.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SCHEMA_TENANTS=${SCHEMA_TENANTS:-1000}
CONCURRENCY=${CONCURRENCY:-4}
MIGRATE_RUNS=${MIGRATE_RUNS:-3}
PORT=${PORT:-18091}
if [ -z "${BIN:-}" ]; then
  swift build -c release --product petstore >/dev/null 2>&1
  BIN=.build/release/petstore
fi
DATA_DIR=$(mktemp -d /tmp/petstore-placements.XXXXXX)
chmod 755 "$DATA_DIR"
WORK=$(mktemp -d)
PLATFORM_KEY=$($BIN key create --platform --data-dir "$DATA_DIR" --log-level error)
eval "$($BIN db start --data-dir "$DATA_DIR" --log-level error)"
export DATABASE_URL APP_DATABASE_URL SUPERUSER_DATABASE_URL
$BIN serve --data-dir "$DATA_DIR" --port "$PORT" --host 127.0.0.1 --log-level error \
  --rate-limits "premium=1000000000/h+1000000" >"$WORK/server.log" 2>&1 &
SERVER=$!
SAMPLER=
cleanup() {
  [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null || true
  kill "$SERVER" 2>/dev/null || true
  wait "$SERVER" 2>/dev/null || true
  $BIN db stop --data-dir "$DATA_DIR" --log-level error || true
  rm -rf "$DATA_DIR" "$WORK"
}
trap cleanup EXIT
for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break; sleep 0.2; done

# The control plane's connections, every 100 ms, until stopped.
python3 - "$SUPERUSER_DATABASE_URL" "$DATABASE_URL" "$WORK/connections.txt" <<'PY' &
import subprocess, sys, time, urllib.parse
url, control = urllib.parse.urlparse(sys.argv[1]), urllib.parse.urlparse(sys.argv[2]).path[1:]
env = {"PGPASSWORD": url.password or "", "PATH": "/usr/bin:/bin"}
with open(sys.argv[3], "w") as out:
    while True:
        count = subprocess.run(["psql", "-qtA", "-h", url.hostname, "-p", str(url.port), "-U", url.username, "-d", "postgres",
                                "-c", f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{control}'"],
                               env=env, capture_output=True, text=True).stdout.strip()
        if count: out.write(count + "\n"); out.flush()
        time.sleep(0.1)
PY
SAMPLER=$!

python3 - "$PORT" "$PLATFORM_KEY" "$SCHEMA_TENANTS" "$CONCURRENCY" <<'PY'
import http.client, json, sys, threading, time
port, platform, count, concurrency = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
slugs = [f"schema-{i:05d}" for i in range(count)]
failures, durations, lock = [], [], threading.Lock()
def worker(mine):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for slug in mine:
        started = time.monotonic()
        conn.request("POST", "/api/admin/tenants", json.dumps({"slug": slug, "name": slug, "plan": "premium", "placement": "schema"}),
                     {"Authorization": "Bearer " + platform, "Content-Type": "application/json"})
        response = conn.getresponse(); body = response.read()
        with lock:
            durations.append(time.monotonic() - started)
            if response.status != 201: failures.append((slug, response.status, body[:200]))
started = time.monotonic()
threads = [threading.Thread(target=worker, args=(slugs[i::concurrency],)) for i in range(concurrency)]
for t in threads: t.start()
for t in threads: t.join()
elapsed = time.monotonic() - started
durations.sort()
p = lambda q: durations[min(len(durations) - 1, int(q * (len(durations) - 1)))] * 1000
print(f"onboarding {count} schema tenants, {concurrency} at a time: {elapsed:.1f} s ({count / elapsed:.1f} tenants/s), "
      f"each p50 {p(0.5):.0f} ms, p99 {p(0.99):.0f} ms, {len(failures)} failed")
for failure in failures[:5]: print("  failed:", failure)
PY
kill "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true; SAMPLER=
echo "control plane connections during onboarding: at most $(sort -n "$WORK/connections.txt" | tail -1) (server pools: requests 20 + background; sampled every 100 ms)"

for run in $(seq 1 "$MIGRATE_RUNS"); do
  started=$(date +%s.%N)
  output=$($BIN migrate --log-level error 2>&1)
  ended=$(date +%s.%N)
  echo "migrate with nothing to do, run $run: $(echo "$output" | grep '^tenants:') — command wall time $(python3 -c "print(f'{$ended - $started:.2f}')") s"
done
