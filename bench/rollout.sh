#!/usr/bin/env bash
# A read-model change rolled out while requests flow, over tenants of all three placements:
# the last change to Projections/pets.sql (pets gained microchip_registered_at), from the build
# before it to this one, blue-green, the way the README's rollout goes:
#   1. the previous build (OLD_REF, by default the commit before the last change to
#      Projections/pets.sql, built in a git worktree) serves on one private cluster (fsync on),
#      with a second private cluster registered as server `second`; TENANTS tenants of each
#      placement (shared, schema, database on `second`) with PETS pets each;
#   2. a load generator (LOAD_CLIENTS clients, keep-alive) keeps creating pets (half with a
#      microchip), reading each back at once, re-chipping some and listing, against whichever
#      server is current, checking every answer;
#   3. this build's `petstore migrate` runs while the old build serves: it builds the new pets
#      version beside the served one for every tenant and switches to it;
#   4. this build's `petstore serve` starts on another port; once ready, the load moves to it
#      (as a load balancer would), and the old server is stopped (SIGTERM: it drains);
#   5. the load goes on for a while; then every pet the load made is read from the new server and
#      its microchip_registered_at compared with what its own history says.
# Prints requests and failures per phase (a failure is any answer but the one expected, or a
# connection error), latencies, and the mismatches of step 5. 0 failed is the goal.
#
#   bash bench/rollout.sh
#   CONFIG=debug TENANTS=2 PETS=100 bash bench/rollout.sh
#   OLD_BIN=/path/to/old/petstore bash bench/rollout.sh     # an old build made earlier
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CONFIG=${CONFIG:-release}
TENANTS=${TENANTS:-3}
PETS=${PETS:-200}
LOAD_CLIENTS=${LOAD_CLIENTS:-8}
PHASE_SECONDS=${PHASE_SECONDS:-8}
OLD_PORT=${OLD_PORT:-18111}
NEW_PORT=${NEW_PORT:-18112}
OLD_REF=${OLD_REF:-$(git log -1 --format=%H -- Projections/pets.sql)~1}

WORK=$(mktemp -d /tmp/petstore-rollout.XXXXXX)
chmod 755 "$WORK"
DATA_DIR=$WORK/main-cluster
SECOND_DIR=$WORK/second-cluster
mkdir -m 755 "$DATA_DIR" "$SECOND_DIR"
OLD_SERVER= NEW_SERVER= LOAD=
cleanup() {
  for pid in $LOAD $OLD_SERVER $NEW_SERVER; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  [ -x "${NEW:-}" ] && { $NEW db stop --data-dir "$DATA_DIR" --log-level error || true; $NEW db stop --data-dir "$SECOND_DIR" --log-level error || true; }
  git -C "$ROOT" worktree remove --force "$WORK/old" 2>/dev/null || true
  [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

if [ -n "${OLD_BIN:-}" ]; then
  OLD=$OLD_BIN
  echo "builds: $OLD_BIN (old) and $(git rev-parse --short HEAD) (new, plus any local changes), $CONFIG"
else
  echo "builds: $(git rev-parse --short "$OLD_REF") (old) and $(git rev-parse --short HEAD) (new, plus any local changes), $CONFIG"
  git worktree add --detach "$WORK/old" "$OLD_REF" >/dev/null 2>&1
  (cd "$WORK/old" && swift build -c "$CONFIG" --product petstore >"$WORK/old-build.log" 2>&1) || { tail -20 "$WORK/old-build.log"; exit 1; }
  OLD=$WORK/old/.build/$CONFIG/petstore
fi
swift build -c "$CONFIG" --product petstore >"$WORK/new-build.log" 2>&1 || { tail -20 "$WORK/new-build.log"; exit 1; }
NEW=$ROOT/.build/$CONFIG/petstore

PLATFORM_KEY=$($OLD key create --platform --data-dir "$DATA_DIR" --log-level error)
SECOND_URL=$($OLD db start --data-dir "$SECOND_DIR" --log-level error | sed -n 's/^SUPERUSER_DATABASE_URL=//p')
eval "$($OLD db start --data-dir "$DATA_DIR" --log-level error)"
export DATABASE_URL APP_DATABASE_URL SUPERUSER_DATABASE_URL
$OLD server add second "$SECOND_URL" --log-level error >/dev/null
LIMITS="enterprise=1000000000/h+1000000"
serve() { # BIN PORT LOG
  $1 serve --data-dir "$DATA_DIR" --port "$2" --host 127.0.0.1 --log-level warning --rate-limits "$LIMITS" >"$3" 2>&1 &
}
ready() { for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$1/health/ready" >/dev/null && return 0; sleep 0.2; done; return 1; }
serve "$OLD" "$OLD_PORT" "$WORK/old-server.log"; OLD_SERVER=$!
ready "$OLD_PORT"

# Tenants of every placement, with pets, through the old server's API.
python3 - "$OLD_PORT" "$PLATFORM_KEY" "$TENANTS" "$PETS" "$WORK/tenants.json" <<'PY'
import json, sys, http.client
port, platform, count, pets, out = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
def call(method, path, body, key, tenant=None):
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    if tenant: headers["X-Tenant-ID"] = tenant
    conn.request(method, path, json.dumps(body), headers)
    response = conn.getresponse(); data = response.read()
    if response.status >= 300: raise SystemExit(f"{method} {path}: {response.status} {data[:300]}")
    return json.loads(data)
tenants = []
for placement in ["shared", "schema", "database"]:
    for index in range(count):
        slug = f"{placement}-{index}"
        body = {"slug": slug, "name": slug, "plan": "enterprise", "placement": placement}
        if placement == "database": body["server"] = "second"
        key = call("POST", "/api/admin/tenants", body, platform)["admin_api_key"]
        for n in range(pets):
            pet = {"name": f"seed {n}", "species": "dog"}
            if n % 2 == 0: pet["microchip_id"] = f"{900000000 + n}"
            call("POST", "/api/pets", pet, key, slug)
        tenants.append({"slug": slug, "key": key, "placement": placement})
json.dump(tenants, open(out, "w"))
print(f"tenants: {len(tenants)} ({count} per placement), {pets} pets each")
PY

# The load: reads the current port and phase from files, so that moving it is one write.
echo "$OLD_PORT" >"$WORK/port"
echo "old" >"$WORK/phase"
python3 - "$WORK" "$LOAD_CLIENTS" <<'PY' &
import http.client, json, os, random, sys, threading, time
work, clients = sys.argv[1], int(sys.argv[2])
tenants = json.load(open(f"{work}/tenants.json"))
def current(name):
    with open(f"{work}/{name}") as f: return f.read().strip()
lock = threading.Lock()
stats = {}       # phase -> {"requests": n, "failures": n, "latencies": [...]}
samples = []     # the first failures, described
made = {}        # pet id -> (slug, key, expected microchip_registered_at source: "created_at" | "updated_at" of a time | None)
def record(phase, seconds, ok, what):
    with lock:
        entry = stats.setdefault(phase, {"requests": 0, "failures": 0, "latencies": []})
        entry["requests"] += 1
        entry["latencies"].append(seconds)
        if not ok:
            entry["failures"] += 1
            if len(samples) < 20: samples.append(f"[{phase}] {what}")
def client(number):
    rng = random.Random(number)
    connections = {}
    serial = 0
    while not os.path.exists(f"{work}/stop"):
        port, phase = int(current("port")), current("phase")
        connection = connections.get(port) or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connections[port] = connection
        tenant = tenants[serial % len(tenants)]
        serial += 1
        headers = {"Authorization": f"Bearer {tenant['key']}", "X-Tenant-ID": tenant["slug"], "Content-Type": "application/json"}
        def call(method, path, body=None, expected=200):
            started = time.monotonic()
            try:
                connection.request(method, path, None if body is None else json.dumps(body), headers)
                response = connection.getresponse()
                data = response.read()
                ok = response.status == expected
                record(phase, time.monotonic() - started, ok, f"{method} {path} on {port}: {response.status} {data[:200]!r}")
                return json.loads(data) if ok else None
            except Exception as error:
                connection.close()
                record(phase, time.monotonic() - started, False, f"{method} {path} on {port}: {error!r}")
                return None
        chipped = serial % 2 == 0
        body = {"name": f"load {number}-{serial}", "species": rng.choice(["dog", "cat"])}
        if chipped: body["microchip_id"] = f"{100000000 + number * 10000000 + serial}"
        created = call("POST", "/api/pets", body, 201)
        if created is None: continue
        pet = created["id"]
        with lock: made[pet] = (tenant["slug"], tenant["key"], created["created_at"] if chipped else None)
        # Read your write, whichever server answered the create.
        call("GET", f"/api/pets/{pet}")
        if serial % 5 == 0:
            patched = call("PATCH", f"/api/pets/{pet}", {"microchip_id": f"{200000000 + number * 10000000 + serial}"})
            if patched is not None:
                with lock: made[pet] = (tenant["slug"], tenant["key"], patched["updated_at"])
        if serial % 7 == 0:
            call("GET", "/api/pets?limit=20")
threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
for thread in threads: thread.start()
for thread in threads: thread.join()
for phase, entry in stats.items():
    entry["latencies"].sort()
    values = entry.pop("latencies")
    entry["p50_ms"] = round(values[len(values) // 2] * 1000, 1) if values else None
    entry["p99_ms"] = round(values[min(len(values) - 1, int(len(values) * 0.99))] * 1000, 1) if values else None
json.dump({"stats": stats, "samples": samples, "made": made}, open(f"{work}/load.json", "w"))
PY
LOAD=$!

sleep "$PHASE_SECONDS"
echo "migrate" >"$WORK/phase"
started=$(date +%s.%N)
$NEW migrate --jobs 2 --log-level error >"$WORK/migrate.log" 2>&1 || { cat "$WORK/migrate.log"; exit 1; }
migrated=$(date +%s.%N)
echo "migrated (this build's petstore migrate while the old build served, $(python3 -c "print(f'{$migrated - $started:.1f}')") s):"
sed 's/^/  /' "$WORK/migrate.log"
echo "both" >"$WORK/phase"
sleep 2
serve "$NEW" "$NEW_PORT" "$WORK/new-server.log"; NEW_SERVER=$!
ready "$NEW_PORT"
sleep 2
echo "$NEW_PORT" >"$WORK/port"
echo "drain" >"$WORK/phase"
# As a load balancer's deregistration delay: requests already sent to the old server finish first.
sleep 1
kill -TERM "$OLD_SERVER"; wait "$OLD_SERVER" 2>/dev/null || true; OLD_SERVER=
echo "new" >"$WORK/phase"
sleep "$PHASE_SECONDS"
touch "$WORK/stop"
wait "$LOAD"; LOAD=

# Every pet the load made, read from the new server: its microchip_registered_at must be what
# its own history says (its create's time if it was given a chip, its last re-chip's, or null).
python3 - "$WORK" "$NEW_PORT" <<'PY'
import http.client, json, sys
work, port = sys.argv[1], int(sys.argv[2])
load = json.load(open(f"{work}/load.json"))
order = ["old", "migrate", "both", "drain", "new"]
total = failed = 0
print(f"{'phase':<10}{'requests':>10}{'failed':>8}{'p50 ms':>9}{'p99 ms':>9}")
for phase in order:
    entry = load["stats"].get(phase)
    if not entry: continue
    total += entry["requests"]; failed += entry["failures"]
    print(f"{phase:<10}{entry['requests']:>10}{entry['failures']:>8}{entry['p50_ms']:>9}{entry['p99_ms']:>9}")
print(f"{'all':<10}{total:>10}{failed:>8}")
for sample in load["samples"]: print("  " + sample)
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
wrong = 0
for pet, (slug, key, expected) in load["made"].items():
    conn.request("GET", f"/api/pets/{pet}", headers={"Authorization": f"Bearer {key}", "X-Tenant-ID": slug})
    response = conn.getresponse(); body = json.loads(response.read())
    if response.status != 200 or body.get("microchip_registered_at") != expected:
        wrong += 1
        if wrong <= 5: print(f"  {slug} {pet}: {response.status} microchip_registered_at={body.get('microchip_registered_at')!r}, expected {expected!r}")
print(f"pets made under load: {len(load['made'])}, read back from the new server with the wrong microchip_registered_at: {wrong}")
# The pets from before the rollout: the new version was built from their logs.
seeded = backfilled = wrong = 0
for tenant in json.load(open(f"{work}/tenants.json")):
    after = None
    while True:
        conn.request("GET", "/api/pets?limit=100" + (f"&cursor={after}" if after else ""),
                     headers={"Authorization": f"Bearer {tenant['key']}", "X-Tenant-ID": tenant["slug"]})
        page = json.loads(conn.getresponse().read())
        for pet in page["items"]:
            if not pet["name"].startswith("seed "): continue
            seeded += 1
            expected = pet["created_at"] if pet["microchip_id"] else None
            if expected: backfilled += 1
            if pet["microchip_registered_at"] != expected: wrong += 1
        after = page.get("next_cursor")
        if not after: break
print(f"pets from before the rollout: {seeded}, {backfilled} with a chip; wrong microchip_registered_at: {wrong}")
PY
