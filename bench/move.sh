#!/usr/bin/env bash
# Moving a tenant while it serves: how long its writes wait, under load.
#
# Two private clusters (fsync on), the second registered as server `second`, and `petstore
# serve`; TENANTS tenants (enterprise plan, shared tables) with PETS pets each. A load generator
# (LOAD_CLIENTS clients, keep-alive) keeps registering pets in every tenant and reading one back,
# checking every answer, while the first tenant goes round ROUNDS times with `petstore tenant
# move`: to a schema of its own, to a database of its own on `second`, back to the shared tables
# (MOVES sets the stops).
# Prints, per move, how long the switch held the tenant's writes (as the move reports it) and,
# side by side, the write latencies of the moving tenant and of the others while moves ran and
# while none did; then checks that every acknowledged pet is in the moving tenant's log exactly
# once and that its chain verifies. 0 failed is the goal; the pause's target is under 1 s.
#
#   bash bench/move.sh
#   CONFIG=debug ROUNDS=3 bash bench/move.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CONFIG=${CONFIG:-release}
TENANTS=${TENANTS:-4}
PETS=${PETS:-2000}
LOAD_CLIENTS=${LOAD_CLIENTS:-8}
ROUNDS=${ROUNDS:-5}
PORT=${PORT:-18131}
MOVES=${MOVES:-"schema database shared"}

WORK=$(mktemp -d /tmp/petstore-move.XXXXXX)
chmod 755 "$WORK"
DATA_DIR=$WORK/cluster
SECOND_DIR=$WORK/second-cluster
mkdir -m 755 "$DATA_DIR" "$SECOND_DIR"
SERVER= LOAD=
cleanup() {
  for pid in $LOAD $SERVER; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  [ -x "${BIN:-}" ] && { $BIN db stop --data-dir "$DATA_DIR" --log-level error || true; $BIN db stop --data-dir "$SECOND_DIR" --log-level error || true; }
  [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

swift build -c "$CONFIG" --product petstore >"$WORK/build.log" 2>&1 || { tail -20 "$WORK/build.log"; exit 1; }
BIN=$ROOT/.build/$CONFIG/petstore
echo "build: $(git rev-parse --short HEAD) (plus any local changes), $CONFIG; $(nproc) cores"

PLATFORM_KEY=$($BIN key create --platform --data-dir "$DATA_DIR" --log-level error)
SECOND_URL=$($BIN db start --data-dir "$SECOND_DIR" --log-level error | sed -n 's/^SUPERUSER_DATABASE_URL=//p')
eval "$($BIN db start --data-dir "$DATA_DIR" --log-level error)"
export DATABASE_URL APP_DATABASE_URL SUPERUSER_DATABASE_URL
$BIN server add second "$SECOND_URL" --log-level error >/dev/null
$BIN serve --data-dir "$DATA_DIR" --port "$PORT" --host 127.0.0.1 --log-level warning \
  --rate-limits "enterprise=1000000000/h+1000000" >"$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break; sleep 0.2; done

python3 - "$PORT" "$PLATFORM_KEY" "$TENANTS" "$PETS" "$WORK/tenants.json" <<'PY'
import json, sys, http.client, concurrent.futures
port, platform, count, pets, out = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
def call(conn, method, path, body, key, tenant=None):
    headers = {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
    if tenant: headers["X-Tenant-ID"] = tenant
    conn.request(method, path, json.dumps(body) if body is not None else None, headers)
    response = conn.getresponse()
    data = response.read()
    if response.status >= 300: raise SystemExit(f"{method} {path}: {response.status} {data[:200]!r}")
    return json.loads(data) if data else None
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
tenants = []
for n in range(count):
    slug = f"move-{n}"
    created = call(conn, "POST", "/api/admin/tenants", {"slug": slug, "name": slug, "plan": "enterprise", "placement": "shared"}, platform)
    tenants.append({"slug": slug, "key": created["admin_api_key"]})
def fill(tenant):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for i in range(pets):
        call(c, "POST", "/api/pets", {"name": f"Seed {i}", "species": "dog"}, tenant["key"], tenant["slug"])
with concurrent.futures.ThreadPoolExecutor(4) as pool: list(pool.map(fill, tenants))
json.dump(tenants, open(out, "w"))
print(f"{count} tenants (enterprise, shared tables) with {pets} pets each; the first one moves")
PY

# The load: every client writes and reads in every tenant; the moving tenant is move-0. Each
# answer is recorded with its time, so latencies can be split by whether a move was running.
python3 - "$PORT" "$WORK" "$LOAD_CLIENTS" <<'PY' &
import http.client, json, sys, threading, time
port, work, clients = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
tenants = json.load(open(f"{work}/tenants.json"))
stop = f"{work}/stop"
lock = threading.Lock()
samples, failures, acknowledged = [], [], []
def client(number):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    i = 0
    while True:
        import os
        if os.path.exists(stop): return
        tenant = tenants[(number + i) % len(tenants)]
        i += 1
        headers = {"Authorization": "Bearer " + tenant["key"], "X-Tenant-ID": tenant["slug"], "Content-Type": "application/json"}
        try:
            started = time.time()
            conn.request("POST", "/api/pets", json.dumps({"name": f"Load {number}-{i}", "species": "cat"}), headers)
            response = conn.getresponse(); body = response.read()
            took = time.time() - started
            if response.status != 201:
                with lock: failures.append(f"POST {tenant['slug']} {response.status} {body[:120]!r}")
                continue
            pet = json.loads(body)["id"]
            with lock:
                samples.append((started, took, tenant["slug"], "write"))
                if tenant["slug"] == "move-0": acknowledged.append(pet)
            started = time.time()
            conn.request("GET", f"/api/pets/{pet}", headers=headers)
            response = conn.getresponse(); response.read()
            with lock:
                samples.append((started, time.time() - started, tenant["slug"], "read"))
                if response.status != 200: failures.append(f"GET {tenant['slug']} {response.status}")
        except Exception as error:
            with lock: failures.append(f"{tenant['slug']} {error!r}")
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
for t in threads: t.start()
for t in threads: t.join()
json.dump({"samples": samples, "failures": failures, "acknowledged": acknowledged}, open(f"{work}/load.json", "w"))
PY
LOAD=$!

sleep 5
: >"$WORK/moves.txt"
for round in $(seq 1 "$ROUNDS"); do
  for target in $MOVES; do
    started=$(date +%s.%N)
    server=(); [ "$target" = database ] && server=(--server second)
    output=$($BIN tenant move move-0 --to "$target" "${server[@]}" --data-dir "$DATA_DIR" --log-level error)
    ended=$(date +%s.%N)
    paused=$(printf '%s\n' "$output" | sed -n 's/^writes paused\t//p')
    online=$(printf '%s\n' "$output" | sed -n 's/^events copied\t\([0-9]*\) while serving.*/\1/p')
    echo "$started $ended $target $paused $online" >>"$WORK/moves.txt"
    echo "round $round to $target: writes paused $paused; $online events copied while serving"
    sleep 2
  done
done
sleep 3
touch "$WORK/stop"
wait "$LOAD"; LOAD=

python3 - "$WORK" "$PORT" <<'PY'
import json, sys, http.client
work, port = sys.argv[1], int(sys.argv[2])
load = json.load(open(f"{work}/load.json"))
moves = [line.split() for line in open(f"{work}/moves.txt")]
windows = [(float(m[0]), float(m[1])) for m in moves]
def pauses():
    out = []
    for m in moves:
        value, unit = float(m[3]), m[4]
        out.append(value if unit == "ms" else value * 1000)
    return sorted(out)
def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))] * 1000 if values else float("nan")
def during(t): return any(a <= t <= b for a, b in windows)
print()
p = pauses()
print(f"writes paused by the switch, {len(p)} moves: p50 {p[len(p) // 2]:.1f} ms, p99 {p[min(len(p) - 1, int(0.99 * len(p)))]:.1f} ms, max {p[-1]:.1f} ms")
for target in sorted({m[2] for m in moves}):
    q = sorted(float(m[3]) * (1 if m[4] == "ms" else 1000) for m in moves if m[2] == target)
    print(f"  to {target:<9} {len(q)} moves: p50 {q[len(q) // 2]:.1f} ms, max {q[-1]:.1f} ms")
print(f"{'write latency (ms)':<40}{'requests':>10}{'p50':>10}{'p99':>10}{'max':>10}")
for label, select in [("moving tenant, while a move runs", lambda s: s[2] == "move-0" and during(s[0])),
                      ("moving tenant, no move running", lambda s: s[2] == "move-0" and not during(s[0])),
                      ("other tenants, while a move runs", lambda s: s[2] != "move-0" and during(s[0])),
                      ("other tenants, no move running", lambda s: s[2] != "move-0" and not during(s[0]))]:
    values = [s[1] for s in load["samples"] if s[3] == "write" and select(s)]
    print(f"{label:<40}{len(values):>10}{pct(values, 50):>10.1f}{pct(values, 99):>10.1f}{(max(values) * 1000 if values else float('nan')):>10.1f}")
print(f"failed requests: {len(load['failures'])}" + (f" (first: {load['failures'][:3]})" if load["failures"] else ""))
tenants = json.load(open(f"{work}/tenants.json"))
mover = tenants[0]
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
headers = {"Authorization": "Bearer " + mover["key"], "X-Tenant-ID": mover["slug"]}
registered, after = {}, 0
for _ in range(100000):
    conn.request("GET", f"/api/events?type=PetRegistered&after={after}&limit=1000", headers=headers)
    response = conn.getresponse(); page = json.loads(response.read())
    for event in page.get("items", []):
        pet = event["stream"].removeprefix("pet-")
        registered[pet] = registered.get(pet, 0) + 1
    if page.get("next_after") is None: break
    after = page["next_after"]
missing = [p for p in load["acknowledged"] if registered.get(p, 0) != 1]
print(f"acknowledged writes of the moving tenant: {len(load['acknowledged'])}; not in its log exactly once: {len(missing)}")
conn.request("GET", "/api/events/verify", headers=headers)
response = conn.getresponse(); verified = json.loads(response.read())
print(f"its chain: {'valid' if verified.get('ok') else 'BROKEN'} to seq {verified.get('head_seq')}")
PY
