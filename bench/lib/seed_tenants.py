#!/usr/bin/env python3
"""Seeds Petstore over HTTP the way the seed peer's seed.py seeds the peer: 10 enterprise tenants,
each with 100 pets (onboarding's sample pet and 99 more), their admin keys written as the lines
"slug key" that the peer's bench.sh reads (TENANT_KEYS_FILE).

    python3 bench/lib/seed_tenants.py PORT PLATFORM_KEY PREFIX KEYS_FILE [PLACEMENT]

The tenants are PREFIX1 .. PREFIX10 (e.g. "r1-tenant-" or "tenant-"), placed as the plan
places them (a database of their own) unless PLACEMENT (shared, schema, database) says
otherwise. Stdlib only.
"""
import http.client
import json
import sys

port, platform, prefix, keys_path = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
placement = sys.argv[5] if len(sys.argv) > 5 and sys.argv[5] else None
conn = http.client.HTTPConnection("127.0.0.1", port)


def call(method, path, body, headers):
    conn.request(method, path, json.dumps(body), headers)
    response = conn.getresponse()
    data = response.read()
    if response.status >= 300:
        raise SystemExit(f"{method} {path}: {response.status} {data[:200]!r}")
    return json.loads(data) if data else None


with open(keys_path, "w") as keys:
    for t in range(1, 11):
        slug = f"{prefix}{t}"
        tenant = {"slug": slug, "name": slug, "plan": "enterprise"}
        if placement:
            tenant["placement"] = placement
        created = call("POST", "/api/admin/tenants", tenant,
                       {"Authorization": "Bearer " + platform, "Content-Type": "application/json"})
        key = created["admin_api_key"]
        keys.write(f"{slug} {key}\n")
        for p in range(99):
            call("POST", "/api/pets", {"name": f"Pet {p}", "species": ["dog", "cat", "bird"][p % 3], "breed": "Mixed"},
                 {"Authorization": "Bearer " + key, "X-Tenant-ID": slug, "Content-Type": "application/json"})
