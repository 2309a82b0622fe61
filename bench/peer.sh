#!/usr/bin/env bash
# Petstore beside the seed's own design, the Flask + SQLAlchemy app in ../shared/peers/seed-flask,
# measured side by side in one run:
#   - one PostgreSQL cluster (Petstore's private one, fsync on) holds both databases;
#   - both servers get the same data: 10 enterprise tenants x 100 pets (Petstore's quota raised so
#     it does not bind, as the peer's in-memory limiter does not);
#   - the peer's own bench.sh (wrk: get_one, list, create) runs against each server in turn,
#     ROUNDS times alternating, each round on freshly seeded tenants (create adds pets);
#   - the list is `?limit=100` for Petstore, so both return 100 pets.
# Prints req/s, p50 and p99 per scenario and server (medians over the rounds) and Petstore/peer.
#
#   bash bench/peer.sh                          # ROUNDS=3 DURATION=10s
#   BIN=/path/to/petstore bash bench/peer.sh    # a release binary built elsewhere
#   SETTLE=30 bash bench/peer.sh                # wait 30 s after seeding Petstore's tenants
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
SETTLE=${SETTLE:-0}
export DURATION=${DURATION:-10s}
PEER_SRC=${PEER_SRC:-$(cd ../shared/peers/seed-flask 2>/dev/null && pwd || true)}
[ -n "$PEER_SRC" ] && [ -f "$PEER_SRC/app.py" ] || { echo "peer.sh: the seed-flask peer is not at ../shared/peers/seed-flask (set PEER_SRC)" >&2; exit 2; }
PETSTORE_PORT=${PETSTORE_PORT:-18090}
PEER_PORT=${PEER_PORT:-58090}
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }; }

# The peer runs from a copy (its folder may be read-only); the copy keeps its venv between runs.
PEER=.build/seed-flask
mkdir -p "$PEER"
cp "$PEER_SRC"/*.py "$PEER_SRC"/*.sh "$PEER_SRC"/*.lua "$PEER_SRC"/requirements.txt "$PEER"/
if [ ! -x "$PEER/.venv/bin/gunicorn" ]; then
  python3 -m venv "$PEER/.venv"
  "$PEER/.venv/bin/pip" install -q -r "$PEER/requirements.txt"
fi

if [ -z "${BIN:-}" ]; then
  swift build -c release --product petstore >/dev/null 2>&1
  BIN=.build/release/petstore
fi
DATA_DIR=$(mktemp -d /tmp/petstore-peer.XXXXXX)
chmod 755 "$DATA_DIR"
WORK=$(mktemp -d)
PLATFORM_KEY=$($BIN key create --platform --data-dir "$DATA_DIR" --log-level error)
eval "$($BIN db start --data-dir "$DATA_DIR" --log-level error)"
# The peer's database on the same server, owned by the same role.
PEER_DB="postgresql://${DATABASE_URL#*://}"
PEER_DB="${PEER_DB%/*}/peer"
python3 - "$DATABASE_URL" <<'PY'
import subprocess, sys, urllib.parse
url = urllib.parse.urlparse(sys.argv[1])
env = {"PGPASSWORD": url.password or "", "PATH": "/usr/bin:/bin"}
subprocess.run(["psql", "-q", "-h", url.hostname, "-p", str(url.port), "-U", url.username, "-d", url.path[1:],
                "-c", "CREATE DATABASE peer"], env=env, check=True, stdout=subprocess.DEVNULL)
PY

# A server of the run before may still be letting go of its port (gunicorn's workers finish
# their requests first): wait for both ports, at most 30 s.
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for port in "$PETSTORE_PORT" "$PEER_PORT"; do
  for _ in $(seq 1 150); do port_taken "$port" || break; sleep 0.2; done
  if port_taken "$port"; then echo "peer.sh: port $port is still taken after 30 s" >&2; exit 2; fi
done
$BIN serve --data-dir "$DATA_DIR" --port "$PETSTORE_PORT" --host 127.0.0.1 --log-level error \
  --rate-limits "enterprise=1000000000/h+1000000" &
SERVER=$!
(cd "$PEER" && exec ./run.sh "$PEER_PORT" "$PEER_DB" >"$WORK/peer.log" 2>&1) &
PEER_PID=$!
cleanup() {
  kill "$SERVER" "$PEER_PID" 2>/dev/null || true
  wait "$SERVER" "$PEER_PID" 2>/dev/null || true
  $BIN db stop --data-dir "$DATA_DIR" --log-level error || true
  rm -rf "$DATA_DIR" "$WORK"
}
trap cleanup EXIT
for _ in $(seq 1 300); do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "X-Tenant-ID: none" "http://127.0.0.1:$PEER_PORT/api/pets" || true)
  if [ "$code" != "000" ] && curl -sf "http://127.0.0.1:$PETSTORE_PORT/health/ready" >/dev/null; then break; fi
  sleep 0.2
done
if [ "$(curl -s -o /dev/null -w '%{http_code}' -H "X-Tenant-ID: none" "http://127.0.0.1:$PEER_PORT/api/pets" || true)" = "000" ]; then
  echo "peer.sh: the peer did not start within 60 s; its log ends:" >&2
  tail -20 "$WORK/peer.log" >&2
  exit 1
fi

# Petstore's tenants for one round: r<N>-tenant-1..10, each with 100 pets (onboarding's sample pet
# and 99 more), their admin keys in the file bench.sh reads.
seed_petstore() { # round
  python3 bench/lib/seed_tenants.py "$PETSTORE_PORT" "$PLATFORM_KEY" "r$1-tenant-" "$WORK/keys-$1.txt"
}

run_bench() { # name url [env...] → the summary lines in $WORK/<name>-<round>.txt
  local name=$1 url=$2 round=$3; shift 3
  env "$@" bash "$PEER/bench.sh" "$url" > "$WORK/$name-$round.out" 2>&1 || { cat "$WORK/$name-$round.out" >&2; exit 1; }
  awk '/^=== summary/ {on = 1; next} on && $1 ~ /^(get_one|list|create)$/' "$WORK/$name-$round.out" > "$WORK/$name-$round.txt"
}

for round in $(seq 1 "$ROUNDS"); do
  (cd "$PEER" && .venv/bin/python seed.py "$PEER_DB" >/dev/null)
  run_bench peer "http://127.0.0.1:$PEER_PORT" "$round"
  seed_petstore "$round"
  sleep "$SETTLE"
  run_bench petstore "http://127.0.0.1:$PETSTORE_PORT" "$round" \
    TENANT_KEYS_FILE="$WORK/keys-$round.txt" TENANTS="$(seq -f "r$round-tenant-%g" 1 10 | tr '\n' ' ')" LIST_PATH="/api/pets?limit=100"
done

echo "Petstore vs the seed's Flask app (gunicorn, 2 sync workers) on one PostgreSQL 15 cluster (fsync on),"
echo "10 enterprise tenants x 100 pets, the peer's bench.sh (wrk -t2 -c16 -d$DURATION), $ROUNDS alternating rounds, $(nproc) cores; medians"
python3 - "$WORK" "$ROUNDS" <<'PY'
import statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
def load(name):
    rows = {}
    for r in range(1, rounds + 1):
        for line in open(f"{work}/{name}-{r}.txt"):
            scenario, _, rps, p50, _, p99, http_err, sock_err = line.split()
            rows.setdefault(scenario, []).append((float(rps), float(p50), float(p99), int(http_err) + int(sock_err)))
    return {s: (statistics.median(v[0] for v in vs), statistics.median(v[1] for v in vs), statistics.median(v[2] for v in vs),
                sum(v[3] for v in vs), [v[0] for v in vs], [v[2] for v in vs]) for s, vs in rows.items()}
peer, ours = load("peer"), load("petstore")
names = {"get_one": "GET /api/pets/{id}", "list": "GET /api/pets (100)", "create": "POST /api/pets"}
print(f"{'scenario':<22} {'petstore rps':>12} {'p50':>6} {'p99':>6} {'peer rps':>9} {'p50':>6} {'p99':>6} {'ratio':>6}  errors  rounds rps/p99 (petstore | peer)")
for s in ("get_one", "list", "create"):
    a, b = ours[s], peer[s]
    print(f"{names[s]:<22} {a[0]:>12.0f} {a[1]:>6.1f} {a[2]:>6.1f} {b[0]:>9.0f} {b[1]:>6.1f} {b[2]:>6.1f} {a[0] / b[0]:>6.2f}  {a[3]}/{b[3]}"
          f"  {' '.join(f'{x:.0f}/{y:.0f}' for x, y in zip(a[4], a[5]))} | {' '.join(f'{x:.0f}/{y:.0f}' for x, y in zip(b[4], b[5]))}")
PY
# Peak resident memory over the whole run (VmHWM): Petstore's one process; the peer's gunicorn
# master and workers added up.
peak_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
peer_kb=0
for pid in $(pgrep -f "gunicorn" || true); do peer_kb=$((peer_kb + $(peak_kb "$pid"))); done
echo "peak RSS: petstore $(( $(peak_kb "$SERVER") / 1024 )) MB, peer (gunicorn master + workers) $(( peer_kb / 1024 )) MB"
