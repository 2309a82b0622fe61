#!/usr/bin/env bash
# Latency of the cross-tenant 404 beside the ordinary one: 2 000 interleaved requests, one
# connection, of (a) tenant A's key asking A for a pet id that exists nowhere, and (b) tenant A's
# key asking tenant B for a resource (the wall answers 404 and queues an audit entry). Prints
# min, p10 and median of each; the audit write is off the response path, so (b) must not be
# slower than (a) by more than 1 ms at min and p10.
#
#   bash bench/cross-tenant-404.sh
set -euo pipefail
cd "$(dirname "$0")/.."
REQUESTS=${REQUESTS:-2000}
PORT=${PORT:-18080}
DATA_DIR=$(mktemp -d /tmp/petstore-bench.XXXXXX)
chmod 755 "$DATA_DIR"
swift build -c release --product petstore >/dev/null 2>&1
BIN=.build/release/petstore
PLATFORM_KEY=$($BIN key create --platform --data-dir "$DATA_DIR" --log-level error)
# The enterprise quota raised out of the way: 2 000 requests in a few seconds would meet it.
$BIN serve --data-dir "$DATA_DIR" --port "$PORT" --host 127.0.0.1 --log-level error --rate-limits "enterprise=1000000000/h+1000000" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; wait $SERVER 2>/dev/null; rm -rf "$DATA_DIR"' EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break; sleep 0.1; done

python3 - "$PORT" "$PLATFORM_KEY" "$REQUESTS" <<'PY'
import http.client, json, statistics, sys, time, uuid
port, platform_key, requests = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
conn = http.client.HTTPConnection("127.0.0.1", port)

def call(method, path, headers, body=None):
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    return response.status, response.read()

def onboard(slug):
    status, body = call("POST", "/api/admin/tenants",
                        {"Authorization": "Bearer " + platform_key, "Content-Type": "application/json"},
                        json.dumps({"slug": slug, "name": slug, "plan": "enterprise"}))
    assert status == 201, body
    return json.loads(body)["admin_api_key"]

key_a = onboard("bench-a")
onboard("bench-b")
# The route is one that exists for every tenant; /api/pets/{id} when present, else /api/tenant.
status, _ = call("GET", "/api/pets/" + str(uuid.uuid4()), {"Authorization": "Bearer " + key_a, "X-Tenant-ID": "bench-a"})
route = "/api/pets/%s" if status == 404 else None
cases = {
    "missing resource (own tenant)": lambda: (route % uuid.uuid4() if route else "/api/keys/" + str(uuid.uuid4()), "bench-a"),
    "other tenant's resource": lambda: (route % uuid.uuid4() if route else "/api/keys/" + str(uuid.uuid4()), "bench-b"),
}
method = "GET" if route else "DELETE"
samples = {name: [] for name in cases}
for i in range(requests):
    name = list(cases)[i % 2]
    path, tenant = cases[name]()
    start = time.perf_counter()
    status, body = call(method, path, {"Authorization": "Bearer " + key_a, "X-Tenant-ID": tenant})
    elapsed = (time.perf_counter() - start) * 1000
    assert status == 404, (status, body)
    if i >= 200:  # warm-up
        samples[name].append(elapsed)

print("404 latency, %d interleaved requests on one connection (ms)" % requests)
print("%-32s %8s %8s %8s" % ("case", "min", "p10", "median"))
rows = {}
for name, values in samples.items():
    values.sort()
    rows[name] = (values[0], values[len(values) // 10], statistics.median(values))
    print("%-32s %8.3f %8.3f %8.3f" % ((name,) + rows[name]))
a, b = rows["missing resource (own tenant)"], rows["other tenant's resource"]
print("difference (other - missing)     %8.3f %8.3f %8.3f" % (b[0] - a[0], b[1] - a[1], b[2] - a[2]))
PY
