#!/usr/bin/env bash
# Reads let in a few at a time (--read-concurrency, default three times the cores) against every read
# let in at once, measured side by side in one run:
#   - one PostgreSQL cluster (Petstore's private one, fsync on), 10 enterprise tenants x 100 pets
#     (each in a database of its own, as in bench/peer.sh);
#   - the same release binary served twice in turn on that data: with the default read
#     concurrency, and with READ_CONCURRENCY=1000 (no read ever waits);
#   - the seed peer's bench.sh (wrk -t2 -c16) runs GET /api/pets/{id} and GET /api/pets?limit=100
#     against each, ROUNDS times alternating.
# Prints req/s, p50, p90 and p99 per scenario and setting (medians over the rounds) and the ratios.
#
#   bash bench/read-gate.sh                       # ROUNDS=3 DURATION=10s
#   BIN=/path/to/petstore bash bench/read-gate.sh
#   GATED=8 bash bench/read-gate.sh                # the gated server's READ_CONCURRENCY
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
export DURATION=${DURATION:-10s}
PORT=${PORT:-18092}
GATED=${GATED:-}
PEER_SRC=${PEER_SRC:-$(cd ../shared/peers/seed-flask 2>/dev/null && pwd || true)}
[ -n "$PEER_SRC" ] && [ -f "$PEER_SRC/bench.sh" ] || { echo "read-gate.sh: the seed peer's bench.sh is not at ../shared/peers/seed-flask (set PEER_SRC)" >&2; exit 2; }
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }; }
if [ -z "${BIN:-}" ]; then
  swift build -c release --product petstore >/dev/null 2>&1
  BIN=.build/release/petstore
fi
DATA_DIR=$(mktemp -d /tmp/petstore-reads.XXXXXX)
chmod 755 "$DATA_DIR"
WORK=$(mktemp -d)
cp "$PEER_SRC"/bench.sh "$PEER_SRC"/*.lua "$WORK"/
PLATFORM_KEY=$($BIN key create --platform --data-dir "$DATA_DIR" --log-level error)
eval "$($BIN db start --data-dir "$DATA_DIR" --log-level error)"
SERVER=
stop_server() { if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null || true; SERVER=; fi; }
trap 'stop_server; $BIN db stop --data-dir "$DATA_DIR" --log-level error || true; rm -rf "$DATA_DIR" "$WORK"' EXIT
start_server() { # READ_CONCURRENCY value, or empty for the default
  env ${1:+READ_CONCURRENCY=$1} $BIN serve --data-dir "$DATA_DIR" --port "$PORT" --host 127.0.0.1 --log-level error \
    --rate-limits "enterprise=1000000000/h+1000000" &
  SERVER=$!
  for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && return; sleep 0.2; done
  echo "read-gate.sh: the server did not become ready" >&2; exit 1
}

start_server ""
python3 bench/lib/seed_tenants.py "$PORT" "$PLATFORM_KEY" "tenant-" "$WORK/keys.txt"
stop_server

for round in $(seq 1 "$ROUNDS"); do
  for setting in gated open; do
    start_server "$([ "$setting" = open ] && echo 1000 || echo "$GATED")"
    SCENARIOS="get_one list" TENANT_KEYS_FILE="$WORK/keys.txt" LIST_PATH="/api/pets?limit=100" \
      bash "$WORK/bench.sh" "http://127.0.0.1:$PORT" > "$WORK/$setting-$round.out" 2>&1 || { cat "$WORK/$setting-$round.out" >&2; exit 1; }
    awk '/^=== summary/ {on = 1; next} on && $1 ~ /^(get_one|list)$/' "$WORK/$setting-$round.out" > "$WORK/$setting-$round.txt"
    stop_server
  done
done

echo "Reads let in ${GATED:-$(( 3 * $(nproc) ))} at a time per server ($(nproc) cores; the default is three times the cores) against all at once (READ_CONCURRENCY=1000),"
echo "10 enterprise tenants x 100 pets, wrk -t2 -c16 -d$DURATION, $ROUNDS alternating rounds; medians"
python3 - "$WORK" "$ROUNDS" <<'PY'
import statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
def load(name):
    rows = {}
    for r in range(1, rounds + 1):
        for line in open(f"{work}/{name}-{r}.txt"):
            scenario, _, rps, p50, p90, p99, http_err, sock_err = line.split()
            rows.setdefault(scenario, []).append((float(rps), float(p50), float(p90), float(p99), int(http_err) + int(sock_err)))
    return {s: [statistics.median(v[i] for v in vs) for i in range(4)] + [sum(v[4] for v in vs), [v[3] for v in vs]] for s, vs in rows.items()}
gated, open_ = load("gated"), load("open")
names = {"get_one": "GET /api/pets/{id}", "list": "GET /api/pets?limit=100"}
print(f"{'scenario':<24} {'setting':<8} {'req/s':>7} {'p50':>6} {'p90':>6} {'p99':>6}  errors  p99 per round")
for s in ("get_one", "list"):
    for label, data in (("gated", gated), ("open", open_)):
        rps, p50, p90, p99, errors, p99s = data[s]
        print(f"{names[s]:<24} {label:<8} {rps:>7.0f} {p50:>6.1f} {p90:>6.1f} {p99:>6.1f}  {errors:>6}  {' '.join(f'{x:.0f}' for x in p99s)}")
    print(f"{'':<24} {'gated/open':<10} req/s {gated[s][0] / open_[s][0]:.2f}, p99 {gated[s][3] / open_[s][3]:.2f}")
PY
