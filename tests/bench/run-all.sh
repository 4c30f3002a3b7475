#!/bin/sh
# run-all.sh - build the Release binaries (no sanitizers, -O2) and run every
# benchmark in tests/bench/, results to stdout. Not part of ctest: the figures
# depend on the machine. Takes about 20 minutes on a 2-core machine.
#
#   tests/bench/run-all.sh [BUILD_DIR]      (default: build-release in the source tree)
#
# Needs mosquitto, mosquitto_sub, Debian's /usr/bin/python3 with python3-paho-mqtt
# (deploy/install-deps.sh installs all of them). See docs/benchmarks.md.
set -eu
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$SRC/build-release}
PY=/usr/bin/python3

echo "== machine =="
echo "nproc: $(nproc)"
grep -m1 'model name' /proc/cpuinfo || true
uname -sr
echo "build: $BUILD (CMAKE_BUILD_TYPE=Release, BFR_SANITIZE=OFF)"

cmake -S "$SRC" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBFR_SANITIZE=OFF >/dev/null
cmake --build "$BUILD" --target bfr-gateway cuffsim bench_pub bench_sub >/dev/null

export BFR_BUILD_DIR="$BUILD"
cd "$SRC"
$PY tests/bench/bench_throughput.py 10 100 500
$PY tests/bench/bench_safety_latency.py 10 100 500
# The drain (~7700 rows/s) outruns a Python subscriber: mosquitto's default
# per-client queue (max_queued_messages 1000) would drop events for it, which
# is the broker's doing, not the gateway's (docs/benchmarks.md section 3).
$PY tests/bench/bench_outbox.py --cuffs 100 --outage 60 180 --broker-conf "max_queued_messages 0"
# Issue 13: 2000 cuffs on two cuffsim instances against the bare Paho reference
# (bench_pub/bench_sub), production broker settings; about 4 minutes.
$PY tests/bench/bench_scale.py 2000

echo
echo "== bench_outbox_memory =="
tests/bench/bench_outbox_memory.sh 24
echo
echo "== bench_store =="
cc -O2 -std=c11 -D_GNU_SOURCE -Igateway/store tests/bench/bench_store.c \
   gateway/store/store.c gateway/store/store_schema.c gateway/store/outbox.c \
   -lsqlite3 -ljansson -lpthread -o "$BUILD/bench_store"
"$BUILD/bench_store"
