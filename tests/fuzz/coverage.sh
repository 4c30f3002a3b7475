#!/usr/bin/env bash
# Line and branch coverage of the project's code reached by each fuzz target's
# inputs: the seeds, the regression inputs and a campaign's corpus.
#
#   tests/fuzz/coverage.sh [-b BUILD_DIR] [-c CAMPAIGN_DIR] [TARGET...]
#
#   -b DIR  clang build with source-based coverage (default build-fuzz-cov;
#           configured here: CC=clang, -fprofile-instr-generate
#           -fcoverage-mapping, no sanitizers)
#   -c DIR  the campaign work directory whose <target>/corpus is replayed too
#           (default build-fuzz/campaign; skipped if absent)
#
# Prints llvm-cov's per-file summary for the files the target is about
# (docs/reliability.md, "Fuzzing"). Needs llvm-profdata and llvm-cov (clang's).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=$ROOT/build-fuzz-cov
CAMPAIGN=$ROOT/build-fuzz/campaign
ALL=(att profile config command control link)

while getopts "b:c:h" opt; do
	case $opt in
	b) BUILD=$(realpath -m "$OPTARG") ;;
	c) CAMPAIGN=$(realpath -m "$OPTARG") ;;
	*) sed -n '2,/^set -/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//'; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL[@]}")

# The sources each target is meant to exercise.
files_of() {
	case $1 in
	att) echo gateway/proto/att.c ;;
	profile) echo gateway/proto/cuff_profile.c gateway/proto/sfloat.c ;;
	config) echo gateway/src/config.c ;;
	command) echo gateway/logic/command.c ;;
	control) echo cuffsim/control.c ;;
	link) echo gateway/src/att_client.c gateway/src/gatt_discovery.c gateway/src/cuff_link.c \
		gateway/src/transport.c ;;
	esac
}

if [ ! -f "$BUILD/CMakeCache.txt" ]; then
	CC=clang CFLAGS="-fprofile-instr-generate -fcoverage-mapping" \
		cmake -S "$ROOT" -B "$BUILD" -G Ninja >/dev/null
fi
nice -n 10 cmake --build "$BUILD" -j "${BFR_JOBS:-2}" \
	--target $(printf 'fuzz-replay-%s ' "${TARGETS[@]}") >/dev/null

for t in "${TARGETS[@]}"; do
	prof=$BUILD/cov-$t
	rm -rf "$prof"
	mkdir -p "$prof"
	dirs=("$ROOT/tests/fuzz/corpus/$t" "$ROOT/tests/fuzz/regress/$t")
	[ -d "$CAMPAIGN/$t/corpus" ] && dirs+=("$CAMPAIGN/$t/corpus")
	LLVM_PROFILE_FILE=$prof/%p.profraw nice -n 10 "$BUILD/fuzz/fuzz-replay-$t" "${dirs[@]}" \
		</dev/null >/dev/null 2>&1
	llvm-profdata merge -sparse -o "$prof/merged.profdata" "$prof"/*.profraw
	echo "== $t: $(find "${dirs[@]}" -type f ! -name '.*' | wc -l) inputs"
	# shellcheck disable=SC2046
	(cd "$ROOT" && llvm-cov report "$BUILD/fuzz/fuzz-replay-$t" \
		-instr-profile="$prof/merged.profdata" $(files_of "$t")) |
		awk 'NR == 1 || /\.c / || /^TOTAL/'
done
