#!/usr/bin/env bash
# POST /api/pets throughput of two builds, side by side in one run: each build serves a fresh
# cluster in turn, ROUNDS times alternating (A B A B …), so drift on the machine hits both alike.
# For checking a change to the command path: build before and after, copy each binary aside.
#
#   cp .build/release/petstore /tmp/petstore-a   # before
#   cp .build/release/petstore /tmp/petstore-b   # after
#   bash bench/ab-post.sh /tmp/petstore-a /tmp/petstore-b      # ROUNDS=2, 6 s per measurement
set -euo pipefail
cd "$(dirname "$0")/.."
A=$1 B=$2
ROUNDS=${ROUNDS:-2}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-6}
PORT=${PORT:-18097}
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }; }

measure() { # binary → requests/s of two back-to-back runs, summed over both
  local bin=$1 data work server key
  data=$(mktemp -d /tmp/petstore-ab.XXXXXX); chmod 755 "$data"; work=$(mktemp -d)
  local platform; platform=$($bin key create --platform --data-dir "$data" --log-level error)
  eval "$($bin db start --data-dir "$data" --log-level error)"
  $bin serve --data-dir "$data" --port "$PORT" --host 127.0.0.1 --log-level error --pool-size 16 --rate-limits off &
  server=$!
  for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break; sleep 0.1; done
  key=$(curl -sf -X POST -H "Authorization: Bearer $platform" -H 'Content-Type: application/json' \
        -d '{"slug":"bench","name":"Bench","plan":"enterprise"}' "http://127.0.0.1:$PORT/api/admin/tenants" \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["admin_api_key"])')
  cat > "$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer $key"
wrk.headers["X-Tenant-ID"] = "bench"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"name":"Bench","species":"dog"}'
LUA
  local total=0 r
  for _ in 1 2; do
    r=$(wrk -t2 -c16 -d"${SECONDS_PER_RUN}s" -s "$work/post.lua" "http://127.0.0.1:$PORT/api/pets" | awk '/Requests\/sec/ {print $2}')
    total=$(awk -v a="$total" -v b="$r" 'BEGIN {print a + b}')
  done
  kill $server; wait $server 2>/dev/null || true
  $bin db stop --data-dir "$data" --log-level error; rm -rf "$data" "$work"
  awk -v t="$total" 'BEGIN {printf "%.0f", t / 2}'
}

echo "POST /api/pets, 16 connections, ${SECONDS_PER_RUN}s x 2 per turn, $ROUNDS rounds, $(nproc) cores"
sum_a=0 sum_b=0
for round in $(seq 1 "$ROUNDS"); do
  a=$(measure "$A"); b=$(measure "$B")
  printf 'round %d: A %6d req/s   B %6d req/s\n' "$round" "$a" "$b"
  sum_a=$((sum_a + a)); sum_b=$((sum_b + b))
done
printf 'A %s: %d req/s, B %s: %d req/s, ratio B/A %.2f\n' "$A" $((sum_a / ROUNDS)) "$B" $((sum_b / ROUNDS)) \
  "$(awk -v a="$sum_a" -v b="$sum_b" 'BEGIN {print b / a}')"
