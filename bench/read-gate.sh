#!/usr/bin/env bash
# Reads let in a few at a time (--read-concurrency, default three times the cores) against every
# read let in at once: bench/ab-reads.sh with one release binary served with the gate (A) and with
# READ_CONCURRENCY=1000 (B, no read ever waits), GET /api/pets/{id} and GET /api/pets?limit=100
# on 10 enterprise tenants x 100 pets, ROUNDS times alternating.
#
#   bash bench/read-gate.sh                       # ROUNDS=3 DURATION=10s
#   BIN=/path/to/petstore bash bench/read-gate.sh
#   GATED=8 bash bench/read-gate.sh                # the gated server's READ_CONCURRENCY
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${BIN:-}" ]; then
  swift build -c release --product petstore >/dev/null 2>&1
  BIN=.build/release/petstore
fi
echo "A: reads let in ${GATED:-$(( 3 * $(nproc) ))} at a time per server ($(nproc) cores; the default is three times the cores); B: all at once"
SCENARIOS=${SCENARIOS:-get_one list} exec bash bench/ab-reads.sh "env ${GATED:+READ_CONCURRENCY=$GATED} $BIN" "env READ_CONCURRENCY=1000 $BIN"
