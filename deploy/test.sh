#!/usr/bin/env bash
# Install what is missing, build with warnings as errors and ASan + UBSan into
# build/, run every test (unit, integration, fuzz replays). Then, when clang
# is installed, a fuzz smoke run: the libFuzzer targets built into
# build-fuzz/ and each run for BFR_FUZZ_SMOKE_SECONDS (10) seconds
# (tests/fuzz/campaign.sh; about a minute and a half in all). Exit status
# non-zero on any failure. BFR_SKIP_DEPS=1 skips the dependency check,
# BFR_SKIP_FUZZ=1 the smoke run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
JOBS=${BFR_JOBS:-2}

if [ "${BFR_SKIP_DEPS:-0}" != 1 ]; then
	bash deploy/install-deps.sh
fi

echo "test.sh: configure build/ (Ninja, -Werror, ASan + UBSan)"
cmake -S . -B build -G Ninja -DBFR_WERROR=ON -DBFR_SANITIZE=ON
echo "test.sh: build"
cmake --build build -j "$JOBS"
echo "test.sh: test"
ctest --test-dir build --output-on-failure -j "$JOBS"

if [ "${BFR_SKIP_FUZZ:-0}" != 1 ] && command -v clang >/dev/null 2>&1; then
	echo "test.sh: fuzz smoke run (build-fuzz/, clang, ${BFR_FUZZ_SMOKE_SECONDS:-10} s per target)"
	smoke=$(mktemp -d)
	trap 'rm -rf "$smoke"' EXIT
	CC=clang cmake -S . -B build-fuzz -G Ninja -DBFR_WERROR=ON -DBFR_SANITIZE=ON -DBFR_FUZZ=ON \
		>/dev/null
	tests/fuzz/campaign.sh -b build-fuzz -o "$smoke" "${BFR_FUZZ_SMOKE_SECONDS:-10}"
else
	echo "test.sh: no clang (or BFR_SKIP_FUZZ=1): fuzz smoke run skipped; the fuzz inputs were replayed by ctest"
fi
