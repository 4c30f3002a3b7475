#!/bin/sh
# bench_outbox_memory.sh - the outbox's memory through a 24-hour broker outage
# of 100 cuffs, then the drain, with the outbox of this tree and with the old
# one that kept every pending row in memory (docs/benchmarks.md "Outbox memory").
#
#   tests/bench/bench_outbox_memory.sh [HOURS [e2e]]        (default 24)
#
# Builds tests/bench/bench_outbox_memory.c twice (-O2, no sanitizers): against
# gateway/store/outbox.c and against outbox.{c,h} of OLD_OUTBOX_REV (default
# 1375081, the last commit before the bounded window), both with this tree's
# store. The new one runs the whole outage; the old one stops producing once
# its RSS passes RSS_STOP_OLD MiB (default 256: its memory grows with the
# backlog) and drains what it has. Each run writes its database under
# BENCH_DIR (default /tmp/bfr-bench-outbox; ~1.7 GB for 24 h, removed after
# the run) and restarts once before draining (--restart: the start-up reload).
# Takes about 5 minutes for 24 h on a 2-core VM. Run it niced on a shared
# machine: the figures that matter (RSS, order) do not depend on speed.
#
# With "e2e": then the new outbox makes the same backlog again (--no-drain)
# and tests/bench/bench_outbox_drain.py drains it through the real gateway
# (a Release build in BFR_BUILD_DIR, default build-release, configured and
# built here) and mosquitto; ~10 more minutes for 24 h.
set -eu
SRC=$(cd "$(dirname "$0")/../.." && pwd)
HOURS=${1:-24}
OLD_REV=${OLD_OUTBOX_REV:-1375081}
RSS_STOP_OLD=${RSS_STOP_OLD:-256}
DIR=${BENCH_DIR:-/tmp/bfr-bench-outbox}

mkdir -p "$DIR/old-src"
git -C "$SRC" show "$OLD_REV:gateway/store/outbox.c" >"$DIR/old-src/outbox.c"
git -C "$SRC" show "$OLD_REV:gateway/store/outbox.h" >"$DIR/old-src/outbox.h"
STORE="$SRC/gateway/store/store.c $SRC/gateway/store/store_schema.c"
CFLAGS="-O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra"
LIBS="-lsqlite3 -ljansson -lpthread"
# shellcheck disable=SC2086
cc $CFLAGS -I"$SRC/gateway/store" "$SRC/tests/bench/bench_outbox_memory.c" $STORE \
   "$SRC/gateway/store/outbox.c" $LIBS -o "$DIR/bench_new"
# shellcheck disable=SC2086
cc $CFLAGS -I"$DIR/old-src" -I"$SRC/gateway/store" "$SRC/tests/bench/bench_outbox_memory.c" \
   $STORE "$DIR/old-src/outbox.c" $LIBS -o "$DIR/bench_old"

echo "== machine =="
echo "nproc: $(nproc)"
grep -m1 'model name' /proc/cpuinfo || true
uname -sr
sqlite3 --version 2>/dev/null | cut -d' ' -f1 | sed 's/^/sqlite3 /' || true
echo "old outbox: $OLD_REV; new: $(git -C "$SRC" rev-parse --short HEAD)"

for which in new old; do
	echo
	rm -rf "$DIR/$which-data"
	if [ "$which" = old ]; then
		"$DIR/bench_$which" --hours "$HOURS" --rss-stop "$RSS_STOP_OLD" --restart \
			"$DIR/$which-data"
	else
		"$DIR/bench_$which" --hours "$HOURS" --restart "$DIR/$which-data"
	fi
	rm -rf "$DIR/$which-data"
done

if [ "${2:-}" = e2e ]; then
	BUILD=${BFR_BUILD_DIR:-$SRC/build-release}
	cmake -S "$SRC" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBFR_SANITIZE=OFF >/dev/null
	cmake --build "$BUILD" --target bfr-gateway cuffsim >/dev/null
	echo
	rm -rf "$DIR/e2e-data"
	"$DIR/bench_new" --hours "$HOURS" --no-drain --label "new (backlog for the gateway)" \
		"$DIR/e2e-data" | grep -v ' h  depth'
	BFR_BUILD_DIR="$BUILD" /usr/bin/python3 "$SRC/tests/bench/bench_outbox_drain.py" \
		"$DIR/e2e-data" --broker-conf "max_queued_messages 0"
	rm -rf "$DIR/e2e-data"
fi
