#!/usr/bin/env bash
# The /admin page in headless Chromium (Debian's package) over a generated multi-tenant workload:
# takes a screenshot, then checks every figure on the rendered page against GET /api/admin/analytics,
# for all tenants and for one tenant's view opened from its address (/admin?tenant=SLUG).
# Exits non-zero when a number on the page differs from the API's.
#
#   bash bench/admin-page.sh      # TENANTS=8, screenshot at bench/admin-page.png
set -euo pipefail
cd "$(dirname "$0")/.."
TENANTS=${TENANTS:-8}
PORT=${PORT:-18086}
SHOT=${SHOT:-bench/admin-page.png}
command -v chromium >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
DATA_DIR=$(mktemp -d /tmp/petstore-bench.XXXXXX)
chmod 755 "$DATA_DIR"
WORK=$(mktemp -d)
swift build -c release --product petstore >/dev/null 2>&1
BIN=.build/release/petstore
eval "$($BIN db start --data-dir "$DATA_DIR" --log-level error)"
PLATFORM_KEY=$($BIN key create --platform --data-dir "$DATA_DIR" --log-level error)
# Free tenants meet their limit within the workload, so refusals show up too.
$BIN serve --data-dir "$DATA_DIR" --port "$PORT" --host 127.0.0.1 --log-level error --rate-limits "free=40/h+5" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; $BIN db stop --data-dir "$DATA_DIR" --log-level error; rm -rf "$DATA_DIR" "$WORK"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break; sleep 0.1; done

python3 - "$PORT" "$PLATFORM_KEY" "$TENANTS" <<'PY'
import json, random, sys, urllib.request, urllib.error
port, platform, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
base = f"http://127.0.0.1:{port}"
def call(method, path, key, body=None, tenant=None):
    headers = {"Authorization": f"Bearer {key}"}
    if tenant: headers["X-Tenant-ID"] = tenant
    data = None
    if body is not None:
        data = json.dumps(body).encode(); headers["Content-Type"] = "application/json"
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request) as response: return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error: return error.code, None
random.seed(2026)
plans = ["free", "basic", "premium", "enterprise"]
species = ["dog", "cat", "rabbit", "parrot", "tortoise", "hamster", "goldfish", "<img src=x onerror=alert(1)>"]
keys = {}
for n in range(count):
    slug = f"shop-{n + 1:02d}"
    status, body = call("POST", "/api/admin/tenants", platform, {"slug": slug, "name": f"Shop {n + 1}", "plan": plans[n % 4]})
    assert status == 201, (status, body)
    keys[slug] = body["admin_api_key"]
tally = {"201": 0, "429": 0, "404": 0}
for slug, key in keys.items():
    alive = []
    for step in range(random.randint(20, 70)):
        roll = random.random()
        if not alive or roll < 0.55:
            status, body = call("POST", "/api/pets", key, {"name": f"pet{step}", "species": random.choice(species)}, slug)
            if status == 201: alive.append(body["id"])
        elif roll < 0.75:
            status, _ = call("PATCH", f"/api/pets/{random.choice(alive)}", key, {"species": random.choice(species)}, slug)
        elif roll < 0.9:
            status, _ = call("PATCH", f"/api/pets/{random.choice(alive)}", key, {"name": f"renamed{step}"}, slug)
        else:
            status, _ = call("DELETE", f"/api/pets/{alive.pop(random.randrange(len(alive)))}", key, None, slug)
        tally[str(status)] = tally.get(str(status), 0) + 1
slugs = list(keys)
for _ in range(12):
    actor, target = random.sample(slugs, 2)
    status, _ = call("GET", "/api/pets", keys[actor], None, target)
    tally[str(status)] = tally.get(str(status), 0) + 1
status, _ = call("PATCH", f"/api/admin/tenants/{slugs[-1]}", platform, {"status": "suspended"})
print("workload:", count, "tenants; responses by status:", dict(sorted(tally.items())))
PY

# Quiet: the projection has caught up and the refusal counts are written when two reads agree.
previous=""
for _ in $(seq 1 60); do
  sleep 1
  current=$(curl -sf -H "Authorization: Bearer $PLATFORM_KEY" "http://127.0.0.1:$PORT/api/admin/analytics" | python3 -c 'import json, sys; r = json.load(sys.stdin); r.pop("generated_at"); print(json.dumps(r, sort_keys=True))')
  if [ -n "$previous" ] && [ "$current" = "$previous" ] && python3 -c 'import json, sys; r = json.loads(sys.argv[1]); sys.exit(r["projection"]["events_behind"])' "$current"; then break; fi
  previous=$current
done
curl -sf -H "Authorization: Bearer $PLATFORM_KEY" "http://127.0.0.1:$PORT/api/admin/analytics" > "$WORK/analytics.json"

URL="http://127.0.0.1:$PORT/admin#key=$PLATFORM_KEY"
FLAGS=(--headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,2300 --virtual-time-budget=10000)
chromium "${FLAGS[@]}" --screenshot="$SHOT" "$URL" >/dev/null 2>&1
chromium "${FLAGS[@]}" --dump-dom "$URL" > "$WORK/dom.html" 2>/dev/null
echo "screenshot: $SHOT ($(stat -c %s "$SHOT") bytes)"
grep -q 'data-state="ready"' "$WORK/dom.html" || { echo "FAILED: the page did not finish rendering"; exit 1; }
python3 bench/lib/check_admin_dom.py "$WORK/dom.html" "$WORK/analytics.json"

# One tenant's view, opened from its address: its figures and its own security events only.
ONE=shop-02
curl -sf -H "Authorization: Bearer $PLATFORM_KEY" "http://127.0.0.1:$PORT/api/admin/analytics?tenant=$ONE" > "$WORK/one.json"
chromium "${FLAGS[@]}" --dump-dom "http://127.0.0.1:$PORT/admin?tenant=$ONE#key=$PLATFORM_KEY" > "$WORK/one.html" 2>/dev/null
grep -q 'data-state="ready"' "$WORK/one.html" || { echo "FAILED: the page for $ONE did not finish rendering"; exit 1; }
grep -q "Recent security events — $ONE" "$WORK/one.html" || { echo "FAILED: the security events are not $ONE's"; exit 1; }
python3 bench/lib/check_admin_dom.py "$WORK/one.html" "$WORK/one.json" | tail -1
