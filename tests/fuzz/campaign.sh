#!/usr/bin/env bash
# Runs the libFuzzer targets one after another and prints libFuzzer's final
# figures per target: executions, exec/s, cov (edges covered), ft (features),
# corpus (inputs/bytes kept by libFuzzer at the end). docs/reliability.md
# ("Fuzzing") explains the targets and records the campaigns.
#
#   tests/fuzz/campaign.sh [-b BUILD_DIR] [-o WORK_DIR] [-r RUNS] SECONDS [TARGET...]
#
#   SECONDS   time per target (-max_total_time); 0 with -r: no time limit
#   -r RUNS   stop a target after RUNS executions (-runs), e.g. 10000000
#   -b DIR    clang build directory (default build-fuzz); configured and built
#             here with -DBFR_FUZZ=ON if needed (CC=clang)
#   -o DIR    work directory (default DIR_OF_BUILD/campaign): WORK/<target>/corpus
#             keeps what the runs found (a later campaign starts from it),
#             WORK/<target>/log the libFuzzer output (leakcheck.log: see
#             below), crashes go to WORK/<target>/crash-*, leak-*, timeout-*
#   TARGET    att profile config command control link (default: all)
#
# Every run starts from the committed seeds (tests/fuzz/corpus/<target>/), the
# regression inputs (tests/fuzz/regress/<target>/) and WORK/<target>/corpus.
# Runs under nice -n 10, stdin from /dev/null (see fuzz_config.c), with ASan +
# UBSan + LeakSanitizer. A target with tests/fuzz/<target>.lsan.supp (config:
# libconfig's own leak) fuzzes without per-input leak checks and then replays
# every input it kept with them (-runs=0), which is as thorough for the
# inputs that matter and ten times faster.
# Exit status 1 if any target found something: copy the reproducer into
# tests/fuzz/regress/<target>/ and fix it (docs/reliability.md, "Findings").
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=$ROOT/build-fuzz
WORK=
RUNS=
ALL=(att profile config command control link)

usage() { sed -n '2,/^set -/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//'; exit 2; }

while getopts "b:o:r:h" opt; do
	case $opt in
	b) BUILD=$(realpath -m "$OPTARG") ;;
	o) WORK=$(realpath -m "$OPTARG") ;;
	r) RUNS=$OPTARG ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || usage
SECONDS_PER_TARGET=$1
shift
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL[@]}")
WORK=${WORK:-$BUILD/campaign}

if [ ! -f "$BUILD/CMakeCache.txt" ]; then
	CC=${CC:-clang} cmake -S "$ROOT" -B "$BUILD" -G Ninja -DBFR_WERROR=ON -DBFR_SANITIZE=ON \
		-DBFR_FUZZ=ON >/dev/null
fi
nice -n 10 cmake --build "$BUILD" --target fuzz -j "${BFR_JOBS:-2}" >/dev/null

# ATT and profile values never exceed 517 bytes; a link script of 1 KB is a
# few hundred steps (reconnections included) and runs at twice the speed of
# 4 KB ones.
max_len() {
	case $1 in
	att | profile) echo 600 ;;
	link) echo 1024 ;;
	*) echo 4096 ;;
	esac
}

# The value of "name: value" on libFuzzer's last status line (e.g. cov, ft).
status_field() {
	grep -E '^#[0-9]+' "$1" | tail -1 | sed -nE "s/.* $2: ([^ ]+).*/\1/p"
}

stat_field() {
	sed -nE "s/^stat::$2: *([0-9]+).*/\1/p" "$1" | tail -1
}

printf '%-8s %12s %9s %6s %7s %14s %s\n' target execs exec/s cov ft corpus result
failed=0
for t in "${TARGETS[@]}"; do
	bin=$BUILD/fuzz/fuzz-$t
	[ -x "$bin" ] || { echo "campaign: no $bin" >&2; exit 2; }
	dir=$WORK/$t
	mkdir -p "$dir/corpus"
	rm -f "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-* "$dir"/oom-*
	args=(-max_total_time="$SECONDS_PER_TARGET" -max_len="$(max_len "$t")" -timeout=10
	      -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$dir/")
	[ -n "$RUNS" ] && args+=(-runs="$RUNS")
	[ -f "$ROOT/tests/fuzz/$t.dict" ] && args+=(-dict="$ROOT/tests/fuzz/$t.dict")
	lsan=
	leak_pass=no
	if [ -f "$ROOT/tests/fuzz/$t.lsan.supp" ]; then
		lsan=suppressions=$ROOT/tests/fuzz/$t.lsan.supp:print_suppressions=0
		# libFuzzer runs a whole-heap LeakSanitizer scan after every input
		# that leaks; a suppressed leak (libconfig's, on every syntax error)
		# still costs the scan: 415 instead of 4 400 exec/s. So leaks are
		# checked afterwards, input by input, over everything kept.
		args+=(-detect_leaks=0)
		leak_pass=yes
	fi
	dirs=("$dir/corpus" "$ROOT/tests/fuzz/corpus/$t" "$ROOT/tests/fuzz/regress/$t")
	set +e
	LSAN_OPTIONS=$lsan nice -n 10 "$bin" "${args[@]}" "${dirs[@]}" </dev/null >"$dir/log" 2>&1
	rc=$?
	if [ $rc -eq 0 ] && [ $leak_pass = yes ]; then
		LSAN_OPTIONS=$lsan nice -n 10 "$bin" -runs=0 -detect_leaks=1 -timeout=10 \
			-artifact_prefix="$dir/" "${dirs[@]}" </dev/null >"$dir/leakcheck.log" 2>&1
		rc=$?
	fi
	set -e
	found=$(find "$dir" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o \
		-name 'timeout-*' -o -name 'oom-*' \) -printf '%f ')
	result=ok
	if [ $rc -ne 0 ] || [ -n "$found" ]; then
		result="FOUND (exit $rc): ${found}see $dir/log"
		failed=1
	fi
	printf '%-8s %12s %9s %6s %7s %14s %s\n' "$t" \
		"$(stat_field "$dir/log" number_of_executed_units)" \
		"$(stat_field "$dir/log" average_exec_per_sec)" \
		"$(status_field "$dir/log" cov)" "$(status_field "$dir/log" ft)" \
		"$(status_field "$dir/log" corp)" "$result"
done
exit $failed
