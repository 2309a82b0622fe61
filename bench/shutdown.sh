#!/usr/bin/env bash
# How long `petstore serve` takes to stop on SIGTERM after load, cycle after cycle.
#
#   bash bench/shutdown.sh                      # this checkout's release build
#   bash bench/shutdown.sh A_BIN B_BIN          # two builds, alternating, side by side
#   CYCLES=12 LOAD=6s bash bench/shutdown.sh
#
# One private cluster; per cycle and build: a fresh `petstore serve`, 10 enterprise tenants x 100
# pets (each in a database of its own), the seed peer's bench.sh (wrk) with POST and GET for
# LOAD. Odd cycles send SIGTERM once the load is over, even ones in the middle of it. Prints each
# shutdown's duration and exit status, then per build the median and the longest, and how many
# cycles logged "shutdown is waiting for services to finish" (still running 5 s after SIGTERM).
set -euo pipefail
cd "$(dirname "$0")/.."
CYCLES=${CYCLES:-8}
LOAD=${LOAD:-6s}
PORT=${PORT:-18092}
PEER_SRC=${PEER_SRC:-$(cd ../shared/peers/seed-flask 2>/dev/null && pwd || true)}
[ -n "$PEER_SRC" ] && [ -f "$PEER_SRC/bench.sh" ] || { echo "shutdown.sh: the seed-flask peer's bench.sh is not at ../shared/peers/seed-flask (set PEER_SRC)" >&2; exit 2; }
command -v wrk >/dev/null || { apt-get install -y -qq wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }; }
if [ $# -eq 0 ]; then
  swift build -c release --product petstore >/dev/null 2>&1
  set -- .build/release/petstore
fi
BINS=("$@")
WORK=$(mktemp -d)
DATA_DIR=$(mktemp -d /tmp/petstore-shutdown.XXXXXX)
chmod 755 "$DATA_DIR"
cp "$PEER_SRC/bench.sh" "$PEER_SRC/bench.lua" "$WORK/"
PLATFORM_KEY=$("${BINS[0]}" key create --platform --data-dir "$DATA_DIR" --log-level error)
eval "$("${BINS[0]}" db start --data-dir "$DATA_DIR" --log-level error)"
cleanup() {
  [ -n "${SERVER:-}" ] && kill -9 "$SERVER" 2>/dev/null || true
  "${BINS[0]}" db stop --data-dir "$DATA_DIR" --log-level error || true
  rm -rf "$DATA_DIR" "$WORK"
}
trap cleanup EXIT

for cycle in $(seq 1 "$CYCLES"); do
  for b in "${!BINS[@]}"; do
    bin=${BINS[$b]}
    log="$WORK/serve-$cycle-$b.log"
    "$bin" serve --data-dir "$DATA_DIR" --port "$PORT" --host 127.0.0.1 --log-level notice \
      --rate-limits "enterprise=1000000000/h+1000000" >"$log" 2>&1 &
    SERVER=$!
    for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$PORT/health/ready" >/dev/null && break; sleep 0.2; done
    prefix="c$cycle-b$b-t-"
    python3 bench/lib/seed_tenants.py "$PORT" "$PLATFORM_KEY" "$prefix" "$WORK/keys.txt" >/dev/null
    DURATION=$LOAD WARMUP=0 SCENARIOS="create get_one" TENANT_KEYS_FILE="$WORK/keys.txt" \
      TENANTS="$(seq -f "$prefix%g" 1 10 | tr '\n' ' ')" bash "$WORK/bench.sh" "http://127.0.0.1:$PORT" >"$WORK/bench.out" 2>&1 &
    load=$!
    if [ $((cycle % 2)) -eq 0 ]; then when=during; sleep "$(( ${LOAD%s} / 2 ))"; else when=after; wait "$load" || true; fi
    started=$(date +%s.%N)
    kill -TERM "$SERVER"
    status=0; wait "$SERVER" || status=$?
    ended=$(date +%s.%N)
    SERVER=
    wait "$load" 2>/dev/null || true
    waited=$(grep -c "shutdown is waiting for services" "$log" || true)
    printf '%s\t%s\t%s\t%.2f\t%s\t%s\n' "$cycle" "$b" "$when" "$(echo "$ended - $started" | bc)" "$status" "$waited" | tee -a "$WORK/results.tsv"
  done
done

echo
python3 - "$WORK/results.tsv" "${BINS[@]}" <<'PY'
import statistics, sys
rows = [line.rstrip("\n").split("\t") for line in open(sys.argv[1])]
print(f"{'build':<44} {'cycles':>6} {'median s':>9} {'longest s':>10} {'over 5 s':>9} {'exit != 0':>10}")
for b, name in enumerate(sys.argv[2:]):
    mine = [r for r in rows if r[1] == str(b)]
    durations = [float(r[3]) for r in mine]
    print(f"{name:<44} {len(mine):>6} {statistics.median(durations):>9.2f} {max(durations):>10.2f}"
          f" {sum(1 for r in mine if int(r[5]) > 0):>9} {sum(1 for r in mine if r[4] != '0'):>10}")
PY
