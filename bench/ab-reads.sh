#!/usr/bin/env bash
# Two builds side by side on bench/peer.sh's data and load: one PostgreSQL cluster (fsync on),
# 10 enterprise tenants x 100 pets (each in a database of its own), each build serving it in
# turn, ROUNDS times alternating (A B A B ...), the seed peer's bench.sh (wrk -t2 -c16) running
# GET /api/pets/{id}, GET /api/pets?limit=100 and POST /api/pets against it. Prints req/s and
# p99 per scenario and build (medians over the rounds) and each build's peak RSS per round,
# measured from a fresh process each time. Also the CPU each request cost the server and
# PostgreSQL (all of the cluster's processes, those that ended during the run included), which
# says where a change saves. On a contended machine it moves as much as req/s does (one build
# against itself: up to 8%), so neither shows a change smaller than that.
#
#   cp .build/release/petstore /tmp/petstore-a   # before
#   cp .build/release/petstore /tmp/petstore-b   # after
#   bash bench/ab-reads.sh /tmp/petstore-a /tmp/petstore-b     # ROUNDS=3 DURATION=10s
#   bash bench/ab-reads.sh "env READ_CONCURRENCY=1000 $BIN" "$BIN"   # one build, two settings
#   SCENARIOS="get_one list" bash bench/ab-reads.sh A B            # a subset of the scenarios
# A and B are commands, split on spaces (an `env VAR=value` prefix sets the server's environment).
# Builds whose schemas differ (one has a migration the other lacks) cannot serve one database:
# with OWN_CLUSTERS=1 each serves a cluster of its own, seeded alike, started side by side.
# PLACEMENT=shared (or schema) places the tenants there instead of in databases of their own.
# NUM_TENANTS=1 (bench.sh's own) sends all the load to the first tenant (its commands then queue
# on its head row).
# SLOW_FSYNC_US=2000 makes every flush of the cluster wait that long first (bench/lib/slow_fsync.c,
# preloaded into PostgreSQL): a slower disk than this machine's, as a network volume would be.
set -euo pipefail
cd "$(dirname "$0")/.."
A=$1 B=$2
ROUNDS=${ROUNDS:-3}
export DURATION=${DURATION:-10s}
export SCENARIOS=${SCENARIOS:-get_one list create}
PORT=${PORT:-18093}
PEER_SRC=${PEER_SRC:-$(cd ../shared/peers/seed-flask 2>/dev/null && pwd || true)}
[ -n "$PEER_SRC" ] && [ -f "$PEER_SRC/bench.sh" ] || { echo "ab-reads.sh: the seed peer's bench.sh is not at ../shared/peers/seed-flask (set PEER_SRC)" >&2; exit 2; }
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }; }
OWN_CLUSTERS=${OWN_CLUSTERS:-0}
DATA_A=$(mktemp -d /tmp/petstore-ab-reads.XXXXXX)
DATA_B=$DATA_A
[ "$OWN_CLUSTERS" = 1 ] && DATA_B=$(mktemp -d /tmp/petstore-ab-reads.XXXXXX)
chmod 755 "$DATA_A" "$DATA_B"
WORK=$(mktemp -d)
cp "$PEER_SRC"/bench.sh "$PEER_SRC"/*.lua "$WORK"/
SERVER=
stop_server() { if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null || true; SERVER=; fi; }
stop_clusters() { $A db stop --data-dir "$DATA_A" --log-level error || true; [ "$DATA_B" = "$DATA_A" ] || $B db stop --data-dir "$DATA_B" --log-level error || true; }
SHIM=$(mktemp -d)
trap 'stop_server; stop_clusters; rm -rf "$DATA_A" "$DATA_B" "$WORK" "$SHIM"' EXIT
SLOW_DISK=()
if [ -n "${SLOW_FSYNC_US:-}" ]; then
  # Where the server's user (postgres, under root) can load it from.
  chmod 755 "$SHIM"
  cc -shared -fPIC -O2 -o "$SHIM/slow_fsync.so" bench/lib/slow_fsync.c -ldl
  SLOW_DISK=(env LD_PRELOAD="$SHIM/slow_fsync.so" SLOW_FSYNC_US="$SLOW_FSYNC_US")
fi
start_server() { # binary, data directory
  $1 serve --data-dir "$2" --port "$PORT" --host 127.0.0.1 --log-level error --rate-limits "enterprise=1000000000/h+1000000" &
  SERVER=$!
  for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && return; sleep 0.2; done
  echo "ab-reads.sh: the server did not become ready" >&2; exit 1
}
seed() { # binary, data directory, keys file
  local key
  key=$($1 key create --platform --data-dir "$2" --log-level error)
  eval "$("${SLOW_DISK[@]}" $1 db start --data-dir "$2" --log-level error)"
  start_server "$1" "$2"
  python3 bench/lib/seed_tenants.py "$PORT" "$key" "tenant-" "$3" "${PLACEMENT:-}"
  stop_server
}

seed "$A" "$DATA_A" "$WORK/keys-a.txt"
if [ "$DATA_B" = "$DATA_A" ]; then cp "$WORK/keys-a.txt" "$WORK/keys-b.txt"; else seed "$B" "$DATA_B" "$WORK/keys-b.txt"; fi

# CPU time in clock ticks: the server's process; the cluster's postmaster with the children it
# has reaped, and its children still running.
server_ticks() { awk '{print $14 + $15}' "/proc/$SERVER/stat"; }
cluster_ticks() { # data directory
  local postmaster total child
  postmaster=$(head -1 "$1/postgres/data/postmaster.pid")
  total=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$postmaster/stat")
  for child in $(pgrep -P "$postmaster" || true); do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$child/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

for round in $(seq 1 "$ROUNDS"); do
  for build in a b; do
    if [ "$build" = a ]; then data=$DATA_A; start_server "$A" "$DATA_A"; else data=$DATA_B; start_server "$B" "$DATA_B"; fi
    : > "$WORK/$build-$round.txt"
    : > "$WORK/$build-$round.cpu"
    for scenario in $SCENARIOS; do
      # Warmed up on its own, so that the CPU counted is the measured requests'.
      TENANT_KEYS_FILE="$WORK/keys-$build.txt" LIST_PATH="/api/pets?limit=100" SCENARIOS=$scenario DURATION=2s WARMUP=0 \
        bash "$WORK/bench.sh" "http://127.0.0.1:$PORT" > /dev/null 2>&1 || true
      before_server=$(server_ticks); before_cluster=$(cluster_ticks "$data")
      TENANT_KEYS_FILE="$WORK/keys-$build.txt" LIST_PATH="/api/pets?limit=100" SCENARIOS=$scenario WARMUP=0 \
        bash "$WORK/bench.sh" "http://127.0.0.1:$PORT" > "$WORK/$build-$round.out" 2>&1 || { cat "$WORK/$build-$round.out" >&2; exit 1; }
      echo "$scenario $(( $(server_ticks) - before_server )) $(( $(cluster_ticks "$data") - before_cluster ))" >> "$WORK/$build-$round.cpu"
      awk '/^=== summary/ {on = 1; next} on && $1 ~ /^(get_one|list|create)$/' "$WORK/$build-$round.out" >> "$WORK/$build-$round.txt"
    done
    # The server's own process: an `env` prefix execs it under the same pid.
    awk '/^VmHWM:/ {print int($2 / 1024)}' "/proc/$SERVER/status" > "$WORK/$build-$round.rss"
    stop_server
  done
done

echo "A: $A"
echo "B: $B"
echo "10 enterprise tenants x 100 pets ($([ -n "${PLACEMENT:-}" ] && echo "placement $PLACEMENT" || echo "each in a database of its own")), load on ${NUM_TENANTS:-10} of them, ${SLOW_FSYNC_US:-no} extra us per fsync, wrk -t2 -c16 -d$DURATION, $ROUNDS alternating rounds (a fresh server each), $(nproc) cores; medians"
python3 - "$WORK" "$ROUNDS" "$(getconf CLK_TCK)" <<'PY'
import statistics, sys
work, rounds, tick = sys.argv[1], int(sys.argv[2]), 1000 / int(sys.argv[3])
def load(build):
    rows, cpu = {}, {}
    for r in range(1, rounds + 1):
        requests = {}
        for line in open(f"{work}/{build}-{r}.txt"):
            scenario, count, rps, p50, p90, p99, http_err, sock_err = line.split()
            requests[scenario] = int(count)
            rows.setdefault(scenario, []).append((float(rps), float(p90), float(p99), int(http_err) + int(sock_err)))
        for line in open(f"{work}/{build}-{r}.cpu"):
            scenario, server, cluster = line.split()
            n = max(requests.get(scenario, 0), 1)
            cpu.setdefault(scenario, []).append((int(server) * tick / n, int(cluster) * tick / n))
    rss = [int(open(f"{work}/{build}-{r}.rss").read().strip() or 0) for r in range(1, rounds + 1)]
    return {s: (statistics.median(v[0] for v in vs), statistics.median(v[1] for v in vs), statistics.median(v[2] for v in vs),
                sum(v[3] for v in vs), [v[2] for v in vs],
                statistics.median(c[0] for c in cpu[s]), statistics.median(c[1] for c in cpu[s])) for s, vs in rows.items()}, rss
(a, rss_a), (b, rss_b) = load("a"), load("b")
names = {"get_one": "GET /api/pets/{id}", "list": "GET /api/pets?limit=100", "create": "POST /api/pets"}
print(f"{'scenario':<24} {'A req/s':>8} {'p90':>6} {'p99':>6} {'B req/s':>8} {'p90':>6} {'p99':>6}  B/A req/s  B/A p99  errors A/B  p99 per round A | B")
for s in ("get_one", "list", "create"):
    if s not in a: continue
    print(f"{names[s]:<24} {a[s][0]:>8.0f} {a[s][1]:>6.1f} {a[s][2]:>6.1f} {b[s][0]:>8.0f} {b[s][1]:>6.1f} {b[s][2]:>6.1f}"
          f"  {b[s][0] / a[s][0]:>9.2f}  {b[s][2] / a[s][2]:>7.2f}  {a[s][3]:>5}/{b[s][3]:<4}"
          f"  {' '.join(f'{x:.0f}' for x in a[s][4])} | {' '.join(f'{x:.0f}' for x in b[s][4])}")
print(f"\nCPU per request, ms (medians): server and PostgreSQL")
print(f"{'scenario':<24} {'A server':>9} {'A pg':>7} {'B server':>9} {'B pg':>7}  B/A server  B/A pg  B/A total")
for s in ("get_one", "list", "create"):
    if s not in a: continue
    print(f"{names[s]:<24} {a[s][5]:>9.3f} {a[s][6]:>7.3f} {b[s][5]:>9.3f} {b[s][6]:>7.3f}  {b[s][5] / a[s][5]:>10.2f}  {b[s][6] / a[s][6]:>6.2f}"
          f"  {(b[s][5] + b[s][6]) / (a[s][5] + a[s][6]):>9.2f}")
print(f"peak RSS per round, MB: A {' '.join(map(str, rss_a))} (median {statistics.median(rss_a):.0f}), B {' '.join(map(str, rss_b))} (median {statistics.median(rss_b):.0f})")
PY
